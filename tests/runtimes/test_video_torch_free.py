"""Stabiliser, router and bank runtime run with torch unimportable (camera side)."""

from __future__ import annotations

from tests.runtimes.test_import_without_torch import run_blocked


def test_stabilizer_router_and_bank_import_and_run_without_torch():
    proc = run_blocked("""
        import numpy as np
        import dehazekit.runtimes.bank, dehazekit.runtimes.bank_trt
        from dehazekit.runtimes.stabilize import Stabilizer
        from dehazekit.runtimes.routing import Router, haze_score
        frame = np.full((40, 60, 3), 128, np.uint8)
        stab = Stabilizer()
        out = [stab.step(frame, frame) for _ in range(3)][-1]
        router = Router({'a': 0.2, 'b': 0.8})
        print(out.shape, router.step(haze_score(frame)) in ('a', 'b'))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(40, 60, 3) True"
