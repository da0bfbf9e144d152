"""Faults from outside: signals, kill -9, full or read-only disks, too little memory. Each case checks the
exit code, the one-line message, and that no partial file sits under a final name."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dehazekit.runtimes.io_utils import stale_temp_files, temp_name_prefix
from tests.reliability.conftest import assert_user_error, digest_tree, files_in, invoke, rgb
from tests.reliability.faults import interrupt_when, run_limited, temps
from tests.runtimes.media import make_video, probe
from tests.runtimes.onnx_models import export_tiny


@pytest.fixture(scope="module")
def slow_onnx(tmp_path_factory) -> Path:
    """About 0.1 s per 192x160 frame on one core: a run lasts long enough to be interrupted mid-way."""
    return export_tiny(tmp_path_factory.mktemp("models") / "slow.onnx", width=16, depth=12)


@pytest.fixture
def clip(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    return make_video(tmp_path / "in" / "clip.mp4", count=40, width=192, height=160, audio=True)


@pytest.mark.parametrize(
    "sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_signal_mid_video_removes_the_temporary(tmp_path, slow_onnx, clip, sig, code, word):
    out = tmp_path / "out"
    out.mkdir()
    before = digest_tree(clip)
    rc, text = interrupt_when(
        ["run", clip, "--model", slow_onnx, "--out", out / "clip.mp4"], lambda: bool(temps(out)), sig
    )
    assert rc == code, text
    assert word in text and "unfinished outputs were removed" in text and "Traceback" not in text
    assert files_in(out) == []
    assert digest_tree(clip) == before


def test_kill_9_leaves_a_temporary_that_the_next_run_removes(tmp_path, slow_onnx, identity_onnx, clip):
    out = tmp_path / "out"
    out.mkdir()
    rc, _ = interrupt_when(
        ["run", clip, "--model", slow_onnx, "--out", out / "clip.mp4"],
        lambda: bool(temps(out)),
        signal.SIGKILL,
    )
    assert rc == -signal.SIGKILL
    (left,) = temps(out)
    assert left.name.startswith(".clip.dk") and stale_temp_files(out) == [left]
    result = invoke("run", clip, "--model", identity_onnx, "--out", out / "clip.mp4")
    assert result.exit_code == 0, result.output
    assert "cleaned    1 temporary file(s) of an earlier killed run" in result.output
    assert files_in(out) == ["clip.mp4"] and probe(out / "clip.mp4")["frames"] == 40


def test_temporaries_of_live_runs_are_left_alone(tmp_path):
    mine = tmp_path / f"{temp_name_prefix(tmp_path / 'a.png')}abcd1234.png"  # this (living) process
    mine.write_bytes(b"x")
    dead = tmp_path / ".a.dk999999999-abcd1234.png"  # no such pid
    dead.write_bytes(b"x")
    user = tmp_path / ".a.png.swp"  # not ours: never touched
    user.write_bytes(b"x")
    assert stale_temp_files(tmp_path) == [dead]


@pytest.mark.parametrize("suffix", [".mp4", ".png"])
def test_file_size_limit_is_one_line_and_leaves_nothing(tmp_path, identity_onnx, suffix):
    src = (
        make_video(tmp_path / "in.mp4", count=20, width=96, height=64)
        if suffix == ".mp4"
        else tmp_path / "in.png"
    )
    if suffix == ".png":
        Image.fromarray(rgb(200, 300)).save(src)
    before = digest_tree(src)
    out = tmp_path / "out"
    out.mkdir()
    done = run_limited(
        "run",
        src,
        "--model",
        identity_onnx,
        "--out",
        out / f"x{suffix}",
        limits={resource.RLIMIT_FSIZE: 8_000},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot write {out / ('x' + suffix)}" in done.stderr and "file too large" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert files_in(out) == [] and digest_tree(src) == before


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir()
    if os.geteuid() != 0:
        return False
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, check=False
        ).returncode
        == 0
    )


@pytest.mark.parametrize("kind", ["disk-full", "read-only"])
def test_full_or_read_only_target_is_one_line(tmp_path, identity_onnx, kind):
    target = tmp_path / "target"
    options = "size=64k" if kind == "disk-full" else "ro,size=64k"
    if not _mount_tmpfs(target, options):
        if kind == "disk-full" or os.geteuid() == 0:
            pytest.skip("needs root and mount(2) to make a small or read-only file system")
        target.chmod(0o555)  # read-only for a normal user
    try:
        src = tmp_path / "in.png"
        Image.fromarray(rgb(300, 400)).save(src)  # ~360 kB as PNG: more than the 64 kB disk holds
        result = invoke("run", src, "--model", identity_onnx, "--out", target / "sub" / "out.png")
        phrase = "no space left on the device" if kind == "disk-full" else "cannot write"
        assert_user_error(result, 2, phrase, str(target))
        assert files_in(target) in ([], ["sub"])  # never a partial out.png or a temporary
    finally:
        subprocess.run(["umount", str(target)], capture_output=True, check=False)
        target.chmod(0o755)


def _big_frame(path: Path, side: int = 3200) -> Path:
    ramp = np.linspace(0, 255, side).astype(np.uint8)
    Image.fromarray(np.dstack([np.tile(ramp[:, None], (1, side))] * 3)).save(path)
    return path


@pytest.mark.parametrize("max_memory", ["off", pytest.param("auto", marks=pytest.mark.slow)])
def test_frame_too_large_for_memory(tmp_path, tiny_onnx, max_memory):
    """Under a 2.6 GB address-space limit a 3200x3200 frame does not fit whole: with the budget off the run
    fails with one line suggesting --tile; with the default budget it is tiled and succeeds (slow: 20 s)."""
    src = _big_frame(tmp_path / "big.png")
    out = tmp_path / "out.png"
    done = run_limited(
        "run",
        src,
        "--model",
        tiny_onnx,
        "--out",
        out,
        "--max-memory",
        max_memory,
        limits={resource.RLIMIT_AS: 2_600_000_000},
    )
    text = done.stdout + done.stderr
    assert "Traceback" not in text
    if max_memory == "off":
        assert done.returncode == 2, text
        assert "frame is too large for the available memory" in text and "--tile" in text
        assert not out.exists()
    else:
        assert done.returncode == 0, text
        assert "auto tiles of" in text and Image.open(out).size == (3200, 3200)
    assert temps(tmp_path) == []


@pytest.mark.slow
def test_adapt_killed_with_9_resumes_to_the_same_adapter(tmp_path):
    """kill -9 in the middle of `adapt` (after a checkpoint): `--resume` ends where an unbroken run ends."""
    import json

    import torch

    from dehazekit.backbones import create_backbone
    from dehazekit.models import save_model
    from tests.dehazekit.adapt.conftest import write_hazy_images

    write_hazy_images(tmp_path / "hazy", 6)
    before = digest_tree(tmp_path / "hazy")
    torch.manual_seed(0)
    save_model(create_backbone("tiny-gunet").eval(), tmp_path / "base")

    def args(out: Path, *extra: str) -> list[object]:
        return [
            "adapt",
            "--images",
            tmp_path / "hazy",
            "--backbone",
            "tiny-gunet",
            "--weights",
            tmp_path / "base",
            "--objective",
            "dcp",
            "--search-steps",
            "60",
            "--finetune-steps",
            "30",
            "--batch-size",
            "2",
            "--size",
            "32",
            "--checkpoint-every",
            "5",
            "--out",
            out,
            *extra,
        ]

    full = run_limited(*args(tmp_path / "full"), timeout=600)
    assert full.returncode == 0, full.stdout + full.stderr
    cut = tmp_path / "cut"
    rc, _ = interrupt_when(
        args(cut), lambda: (cut / "checkpoint" / "state.pt").exists(), signal.SIGKILL, timeout=600
    )
    assert rc == -signal.SIGKILL and not (cut / "adapter.json").exists()
    resumed = run_limited(*args(cut, "--resume"), timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    a, b = (json.loads((d / "adapter.json").read_text()) for d in (tmp_path / "full", cut))
    assert a["blocks"] == b["blocks"] and a["gates"] == b["gates"]
    assert digest_tree(tmp_path / "hazy") == before


def test_export_removes_temporaries_of_a_killed_run(tmp_path):
    import torch

    from dehazekit.backbones import create_backbone
    from dehazekit.models import save_model

    torch.manual_seed(0)
    folder = tmp_path / "m"
    save_model(create_backbone("tiny-gunet").eval(), folder)
    stale = folder / ".model.dk999999999-abcdefgh.onnx"  # what a kill -9 during an earlier export leaves
    stale.write_bytes(b"half an onnx")
    result = invoke("export", folder)
    assert result.exit_code == 0, result.output
    assert "removed 1 temporary file(s)" in result.output
    assert files_in(folder) == ["model.json", "model.onnx", "model.parity.json", "model.safetensors"]


def test_adapt_checkpoint_survives_a_full_disk(tmp_path):
    """A checkpoint write that hits the size limit fails in one line and leaves the previous one loadable."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import resource, signal, sys, torch
        from dehazekit.adapt.checkpoint import save_checkpoint, checkpoint_path
        from dehazekit.runtimes.errors import OutputError
        save_checkpoint({str(tmp_path)!r}, {{"step": 1, "w": torch.zeros(10)}})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
        try:
            save_checkpoint({str(tmp_path)!r}, {{"step": 2, "w": torch.zeros(100_000)}})
        except OutputError as exc:
            print("ERR", exc)
        state = torch.load(checkpoint_path({str(tmp_path)!r}), weights_only=True)
        print("STEP", state["step"])
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "ERR cannot write" in done.stdout and "file too large" in done.stdout
    assert "STEP 1" in done.stdout
    assert [p.name for p in (tmp_path / "checkpoint").iterdir()] == ["state.pt"]
