"""runtimes must import (and later, infer) with torch unimportable: a camera pipeline embeds it alone."""

import subprocess
import sys
import textwrap

from tests.conftest import REPO


def run_blocked(code: str) -> subprocess.CompletedProcess:
    prelude = "import sys\nsys.modules['torch'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_runtimes_imports_with_torch_blocked():
    proc = run_blocked("""
        import dehazekit.runtimes, dehazekit.runtimes.errors, dehazekit.runtimes.meta
        import dehazekit.runtimes.io_utils
        import dehazekit.runtimes.media, dehazekit.runtimes.budget, dehazekit.runtimes.signals
        runtimes = dehazekit.runtimes
        assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None and m == 'torch']
        meta = runtimes.ModelMeta(backbone='gunet-t', pad_multiple=16)
        print(meta.pad_multiple)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "16"


def test_blocking_really_blocks_torch():
    proc = run_blocked("import torch")
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr


def test_onnx_inference_and_video_pipeline_run_with_torch_blocked(tiny_onnx, tmp_path):
    """The camera-side package alone: Dehazer + onnxruntime + PyAV, torch unimportable."""
    import numpy as np

    from dehazekit.runtimes import Dehazer
    from tests.runtimes.media import moving_frames

    frame = moving_frames(1, 37, 21)[0]
    np.save(tmp_path / "frame.npy", frame)
    expected = Dehazer(tiny_onnx, device="cpu")(frame)  # same computation in this (torch-loaded) process
    proc = run_blocked(f"""
        import numpy as np
        from dehazekit.runtimes import Dehazer, open_source, open_sink, run_pipeline
        frame = np.load({str(tmp_path / "frame.npy")!r})
        dehazer = Dehazer({str(tiny_onnx)!r}, device="cpu")
        np.save({str(tmp_path / "out.npy")!r}, dehazer(frame))
        source = open_source(iter([frame] * 3))
        report = run_pipeline(source, open_sink({str(tmp_path / "v.mp4")!r}, source), dehazer)
        loaded = sorted(m for m in ("torch", "onnxruntime", "av") if sys.modules.get(m) is not None)
        print(report.frames, report.backend["backend"], ",".join(loaded))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3 onnxruntime av,onnxruntime"
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    assert (tmp_path / "v.mp4").stat().st_size > 0
