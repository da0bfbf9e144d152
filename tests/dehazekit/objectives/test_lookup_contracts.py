"""Finding things without a network, and naming what is missing: the CLIP weights cache lookup, the
HF_HUB_OFFLINE switch, the reachability probe's thread, open_clip's log filter, objective-name suggestions
and handing the network to objective terms (found by benchmarks/mutants.py)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from dehazekit.objectives import attach_network, clip_model, create_objective, parse_objective_spec
from dehazekit.objectives.rehaze import RehazeObjective
from dehazekit.runtimes.errors import ConfigError, OfflineError, UnknownNameError

REVISION = "0" * 40


def _hf_put(home: Path, repo_id: str, filename: str) -> Path:
    """A file in the Hugging Face cache layout (what huggingface_hub itself writes after a download)."""
    repo = home / "hf" / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    path = repo / "snapshots" / REVISION / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    return path


# (files in the cache, hf_hub tag as open_clip writes it, the file open_clip would load)
CACHE_CASES = {
    "default name": (["open_clip_pytorch_model.bin"], "org/repo/", "open_clip_pytorch_model.bin"),
    "default name, safetensors twin preferred": (
        ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"],
        "org/repo/",
        "open_clip_model.safetensors",
    ),
    "given name, safetensors twin preferred": (
        ["weights.bin", "weights.safetensors"],
        "org/repo/weights.bin",
        "weights.safetensors",
    ),
    "given name without twin": (["weights.bin"], "org/repo/weights.bin", "weights.bin"),
}


@pytest.mark.parametrize("case", sorted(CACHE_CASES))
def test_cached_weights_are_found_offline_and_the_safetensors_twin_wins(
    case: str, empty_caches: None, tmp_path: Path
) -> None:
    files, tag, expected = CACHE_CASES[case]
    for name in files:
        _hf_put(tmp_path, "org/repo", name)
    found = clip_model._hf_cached_file(tag)
    assert found is not None and Path(found).name == expected


def test_a_tag_in_the_hf_cache_resolves_with_the_network_off(
    empty_caches: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user who downloaded once must be able to adapt offline: the HF cache alone is enough.
    import open_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = open_clip.get_pretrained_cfg("RN50", "openai")
    repo_id, filename = cfg["hf_hub"].rstrip("/"), "open_clip_pytorch_model.bin"
    path = _hf_put(tmp_path, repo_id, filename)
    assert Path(clip_model.resolve_pretrained("RN50", "openai")).resolve() == path.resolve()


def test_hf_hub_offline_means_no_network_probe_at_all(
    empty_caches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HF_HUB_OFFLINE=1 is the user saying "do not touch the network": fail on the flag, never probe.
    probes: list[int] = []
    monkeypatch.setattr(clip_model, "_network_reachable", lambda: probes.append(1) or False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError):
        clip_model.resolve_pretrained("RN50", "openai")
    assert probes == []


def test_reachability_waits_for_a_probe_that_answers_within_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The probe's own timeout bounds urlopen; the waiting side must not give up before the probe can answer.
    monkeypatch.setattr(clip_model, "_PROBE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(clip_model, "_probe", lambda: time.sleep(0.4) or True)
    assert clip_model._network_reachable() is True


def test_a_hanging_probe_is_abandoned_without_keeping_the_process_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS can hang past any socket timeout: we stop waiting, and the stuck thread must not block interpreter
    # exit (a daemon thread), or `dehazekit adapt` would hang at the end instead of failing fast.
    release, seen = threading.Event(), []

    def hanging_probe() -> bool:
        seen.append(threading.current_thread())
        release.wait(30)
        return True

    monkeypatch.setattr(clip_model, "_PROBE_TIMEOUT_S", 0.05)
    monkeypatch.setattr(clip_model, "_probe", hanging_probe)
    try:
        start = time.monotonic()
        assert clip_model._network_reachable() is False
        assert time.monotonic() - start < 10
        assert seen and seen[0].is_alive() and seen[0].daemon
    finally:
        release.set()


def test_open_clip_info_is_silenced_only_inside_the_context() -> None:
    root = logging.getLogger()
    record = logging.LogRecord("x", logging.INFO, "/site-packages/open_clip/factory.py", 1, "cfg", None, None)
    assert root.filter(record)
    with clip_model._quiet_open_clip():
        assert not root.filter(record)  # open_clip's INFO dump does not reach our handlers
    assert root.filter(record)  # and the filter does not outlive the call


def test_a_spec_with_an_empty_term_is_refused_as_a_spec_error() -> None:
    for spec in ("dcp+", "+dcp", "2*"):
        with pytest.raises(ConfigError, match="empty objective spec"):
            parse_objective_spec(spec)


@pytest.mark.parametrize(("typed", "meant"), [("clip", "h2c"), ("dark-channel", "dcp"), ("dpc", "dcp")])
def test_unknown_objective_names_suggest_the_one_meant(typed: str, meant: str) -> None:
    # aliases from papers/other tools and a transposed-letter typo both point at our name
    with pytest.raises(UnknownNameError, match=f"did you mean {meant}"):
        create_objective(typed)


class _Doubler(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def test_every_term_of_a_weighted_objective_gets_the_network() -> None:
    # rehaze needs the network being adapted; inside a weighted sum it must get it like on its own
    objective = create_objective("0.5*rehaze+dcp")
    net = _Doubler()
    attach_network(objective, net)
    rehaze = [m for m in objective.modules() if isinstance(m, RehazeObjective)]
    assert len(rehaze) == 1 and rehaze[0]._net == [net]
    hazy = torch.rand(1, 3, 16, 16)
    assert torch.isfinite(objective(hazy, hazy))


def test_a_mistyped_clip_model_name_suggests_the_real_one() -> None:
    from dehazekit.objectives.clip_model import load_clip

    with pytest.raises(UnknownNameError, match="did you mean .*ViT-B-32"):
        load_clip("ViT-B-23", None)
