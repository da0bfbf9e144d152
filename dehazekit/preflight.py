"""Checks the CLI runs before torch loads: would CLIP weights be available to the h2c objective?

``dehazekit.objectives.clip_model`` stays the authority (it runs when the objective is built); this
module only answers early, without torch or open_clip's package import (several seconds on a busy
machine), and answers None whenever it cannot tell, so a wrong guess never blocks a run.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
import types
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dehazekit.runtimes.errors import OfflineError

log = logging.getLogger(__name__)

_PROBE_URL = "https://huggingface.co/api/models?limit=1"
_PROBE_TIMEOUT_S = 2.0
_LIGHT = "_dehazekit_open_clip_tables"


def _open_clip_pretrained_table() -> Any:
    """open_clip's ``pretrained`` module (a table of names, tags and hub ids) without open_clip/__init__
    (which imports torch): loaded from open_clip's folder under a private package name."""
    if f"{_LIGHT}.pretrained" in sys.modules:
        return sys.modules[f"{_LIGHT}.pretrained"]
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = types.ModuleType(_LIGHT)
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules[_LIGHT] = package
    # pretrained.py tries `import safetensors.torch` (torch) only to pick a file format; hide it here.
    hidden = "safetensors.torch" not in sys.modules
    if hidden:
        sys.modules["safetensors.torch"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(f"{_LIGHT}.pretrained")
    finally:
        if hidden:
            sys.modules.pop("safetensors.torch", None)


def _cached(cfg: dict[str, Any]) -> bool:
    hub = cfg.get("hf_hub")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            found = try_to_load_from_cache(repo_id=repo_id, filename=name)
            if isinstance(found, str) and Path(found).is_file():
                return True
    url = cfg.get("url")
    return bool(url) and (Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)).is_file()


def _reachable() -> bool:
    result: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(_PROBE_URL, timeout=_PROBE_TIMEOUT_S):
                result.append(True)
        except urllib.error.HTTPError:
            result.append(True)  # a server answered
        except (OSError, ValueError):
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # DNS ignores socket timeouts
    thread.start()
    thread.join(_PROBE_TIMEOUT_S + 1.0)
    return bool(result and result[0])


def clip_unavailable(name: str, tag: str | None) -> OfflineError | None:
    """The error a run would hit later when CLIP ``name``/``tag`` is neither cached nor downloadable;
    None when the weights are there, reachable, not needed, or this cannot be told without torch."""
    if tag is None or str(tag).lower() in ("", "none", "random") or str(name).endswith(".json"):
        return None
    try:
        table = _open_clip_pretrained_table()
        cfg = table.get_pretrained_cfg(name, tag) if table is not None else None
        if not cfg or _cached(cfg):
            return None
    except Exception as exc:  # noqa: BLE001 - any surprise in open_clip's layout: leave it to clip_model
        log.debug("CLIP preflight skipped: %s", exc)
        return None
    if os.environ.get("HF_HUB_OFFLINE") != "1" and _reachable():
        return None
    return offline_error(name, tag)


def offline_error(name: str, tag: str) -> OfflineError:
    """The one message for CLIP weights that can be neither found nor fetched (here and in clip_model)."""
    return OfflineError.build(
        f"CLIP weights {name}/{tag} are not cached and the network is unreachable",
        got="no cached file",
        expected="a cached or downloadable open_clip checkpoint",
        fix=f"pass a local checkpoint with --clip-weights PATH (same architecture as --clip {name}), "
        "or use the CLIP-free objective: --objective offline",
    )
