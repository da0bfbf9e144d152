"""benchmarks/gpu.py runs end to end (tiny sizes, whatever device is here) and writes its JSON and table."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_gpu_benchmark_smoke_run_writes_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    for name in ("adapt", "inference", "pipeline"):
        assert isinstance(results[name], list) and results[name], results.get(name)
    assert {r["precision"] for r in results["adapt"]} == {"fp32", "bf16"}
    assert "| backbone | precision |" in out.with_suffix(".md").read_text()
