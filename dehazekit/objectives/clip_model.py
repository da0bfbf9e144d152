"""Load a frozen open_clip model for the H2C objective, offline-safe.

Three ways to name the model:
  * ``name`` + ``pretrained`` tag (default ``ViT-B-32`` / ``openai``): weights come from the
    Hugging Face cache or are downloaded once;
  * ``name`` + ``weights=PATH``: a local open_clip or OpenAI checkpoint, no network at all;
  * ``name`` = path to an open_clip model-config JSON (e.g. ``tests/data/tiny_clip.json``): the config
    is registered under the file's stem; with ``pretrained`` None/"none" the weights stay random
    (tests use this, never a download).

When a tagged model is neither cached nor reachable we fail within seconds with an OfflineError that
names ``--clip-weights`` and ``--objective offline`` instead of hanging in a download retry loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from dehazekit.runtimes.errors import (
    ConfigError,
    ModelFileError,
    OfflineError,
    UnknownNameError,
    missing_dependency,
)

log = logging.getLogger(__name__)

DEFAULT_CLIP = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
_PROBE_URL = "https://huggingface.co/api/models?limit=1"
_PROBE_TIMEOUT_S = 2.0
_NO_WEIGHTS = (None, "", "none", "random")


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise missing_dependency("open_clip_torch", None, "the h2c objective") from exc
    return open_clip


def register_config(path: str | Path) -> str:
    """Register an open_clip model-config JSON; returns the model name (the file's stem)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError.build("CLIP model config not found", got=str(path), expected="a JSON file")
    open_clip = _open_clip()
    if path.stem not in open_clip.list_models():
        open_clip.add_model_config(path)
    if path.stem not in open_clip.list_models():
        raise ConfigError.build(
            "not an open_clip model config",
            got=str(path),
            expected="JSON with embed_dim, vision_cfg and text_cfg",
        )
    return path.stem


def _hf_cached_file(hf_hub: str) -> str | None:
    """Local path of a tag's weights in the Hugging Face cache, or None (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    # open_clip's convention: 'org/repo/' means the default file name, 'org/repo/file.bin' a given one
    repo_id, filename = os.path.split(hf_hub)
    filename = filename or "open_clip_pytorch_model.bin"
    filenames = [filename]
    if filename.endswith((".bin", ".pth")):  # open_clip prefers a safetensors twin when the hub has one
        default = filename == "open_clip_pytorch_model.bin"
        twin = "open_clip_model.safetensors" if default else filename[:-4] + ".safetensors"
        filenames.insert(0, twin)
    for name in filenames:
        found = try_to_load_from_cache(repo_id=repo_id, filename=name)
        if isinstance(found, str) and Path(found).is_file():
            return found
    return None


def _url_cached_file(url: str) -> str | None:
    # open_clip keeps url downloads under ~/.cache/clip/<basename>
    path = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
    return str(path) if path.is_file() else None


def _probe() -> bool:
    # A full HTTPS request, not a bare TCP connect: sandboxes and captive proxies accept any TCP
    # connection, but only a real server completes TLS and answers HTTP.
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(_PROBE_URL, timeout=_PROBE_TIMEOUT_S):
            return True
    except urllib.error.HTTPError:
        return True  # the server answered, just not with 200
    except (OSError, ValueError):
        return False


def _network_reachable() -> bool:
    # DNS resolution ignores socket timeouts, so the probe runs in a daemon thread we stop waiting for.
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(_probe()), daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT_S + 1.0)
    return bool(result and result[0])


def _offline_error(name: str, tag: str) -> OfflineError:
    from dehazekit.preflight import offline_error

    return offline_error(name, tag)


def resolve_pretrained(name: str, tag: str) -> str:
    """Return a local file for ``name``/``tag``: cached, or downloaded when the network is up.

    Raises OfflineError quickly (one short TCP probe) when neither is possible.
    """
    open_clip = _open_clip()
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise UnknownNameError.build(
            f"unknown CLIP pretrained tag {tag!r} for {name}",
            expected=tags or "none",
            fix="pick a listed tag or pass --clip-weights PATH",
        )
    cached = (_hf_cached_file(cfg["hf_hub"]) if cfg.get("hf_hub") else None) or (
        _url_cached_file(cfg["url"]) if cfg.get("url") else None
    )
    if cached:
        return cached
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not _network_reachable():
        raise _offline_error(name, tag)
    log.info("downloading CLIP weights %s/%s (once; cached afterwards)", name, tag)
    try:
        return open_clip.pretrained.download_pretrained(cfg)
    except Exception as exc:  # any download failure is the same user problem
        raise OfflineError.build(
            f"could not download CLIP weights {name}/{tag}",
            got=str(exc)[:200],
            fix="pass --clip-weights PATH, or adapt without CLIP: --objective offline",
        ) from exc


def load_clip(
    name: str = DEFAULT_CLIP, pretrained: str | None = DEFAULT_PRETRAINED, weights: str | Path | None = None
) -> tuple[nn.Module, Any]:
    """Build a frozen fp32 CPU open_clip model and its tokenizer.

    Returns ``(model, tokenizer)``; the model is in eval mode with ``requires_grad=False`` on every
    parameter, so gradients flow through it to the image but never into it.
    """
    open_clip = _open_clip()
    if str(name).endswith(".json"):
        name = register_config(name)
    if name not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(name, open_clip.list_models(), n=3, cutoff=0.5)
        raise UnknownNameError.build(
            f"unknown CLIP model {name!r}",
            expected="an open_clip model name",
            fix=f"did you mean {', '.join(close)}?" if close else "see open_clip.list_models()",
        )
    if weights is not None:
        if not Path(weights).is_file():
            raise ModelFileError.build("--clip-weights file not found", got=str(weights))
        checkpoint = str(weights)
    elif pretrained in _NO_WEIGHTS:
        log.warning("CLIP %s has random weights (no pretrained tag): only for tests", name)
        checkpoint = None
    else:
        checkpoint = resolve_pretrained(name, str(pretrained))
    try:
        with _quiet_open_clip():
            model = open_clip.create_model(name, pretrained=checkpoint, precision="fp32", device="cpu")
    except Exception as exc:
        raise ModelFileError.build(
            f"could not load CLIP {name}",
            got=f"{checkpoint}: {str(exc)[:300]}",
            fix="check that the checkpoint matches the --clip architecture",
        ) from exc
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    with _quiet_open_clip():
        tokenizer = open_clip.get_tokenizer(name)
    return model, tokenizer


class _DropOpenClipInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "open_clip" not in record.pathname


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    # open_clip logs its config dumps at INFO on the ROOT logger; keep them out of our CLI output.
    root, drop = logging.getLogger(), _DropOpenClipInfo()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def image_size_of(model: nn.Module) -> tuple[int, int]:
    size = getattr(model.visual, "image_size", 224)
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def mean_std_of(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    return tuple(cfg.get("mean", OPENAI_DATASET_MEAN)), tuple(cfg.get("std", OPENAI_DATASET_STD))
