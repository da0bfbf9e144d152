"""Adapter bank: memory of N adapters in one bank vs N separate models, switch time, latency.

    python benchmarks/bank.py --adapters 4 --size 256 --workdir /tmp/bankbench

Builds N adapters of the bundled model (gunet-t) with random LoRA on K=3 blocks each (the weights do
not matter for memory or time), their bank, and each adapter's own merged ONNX. Each measurement
runs in a fresh process (RSS after import, then after loading and one inference per adapter):
  separate: N onnxruntime sessions, one per merged model;  bank: one session + N adapters;
  single: one session of one model (what one model costs).
Switch time: ``use(name)`` plus the first inference after it, vs a steady inference.
Writes benchmarks/results/bank.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(mode: str, workdir: Path, n: int, size: int) -> dict:
    """Runs inside a fresh process."""
    import numpy as np
    import onnxruntime  # noqa: F401  (imported before the baseline, like the models' code)

    from dehazekit.runtimes.backends.onnx_backend import OnnxBackend
    from dehazekit.runtimes.bank import OnnxBankBackend

    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    names = [f"a{i}" for i in range(n)]
    before = rss_mb()
    timings: dict = {}
    if mode == "bank":
        bank = OnnxBankBackend(workdir / "bank")
        for name in names:
            bank.use(name)
            bank.infer(x)
        timings = switch_times(bank, names, x)
    else:
        paths = [workdir / f"{name}.onnx" for name in (names if mode == "separate" else names[:1])]
        sessions = [OnnxBackend(p) for p in paths]
        for s in sessions:
            s.infer(x)
        timings = {"steady_ms": steady_ms(sessions[0], x)}
    return {"mode": mode, "rss_mb": rss_mb() - before, **timings}


def steady_ms(backend, x, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        backend.infer(x)
        times.append(time.perf_counter() - start)
    return 1000 * float(sorted(times)[len(times) // 2])


def switch_times(bank, names, x) -> dict:
    use, first = [], []
    for i in range(2 * len(names)):
        name = names[i % len(names)]
        start = time.perf_counter()
        bank.use(name)
        mid = time.perf_counter()
        bank.infer(x)
        end = time.perf_counter()
        use.append(mid - start)
        first.append(end - mid)
    return {
        "use_us": 1e6 * float(sorted(use)[len(use) // 2]),
        "first_after_switch_ms": 1000 * float(sorted(first)[len(first) // 2]),
        "steady_ms": steady_ms(bank, x),
    }


def make_adapter(base, folder: Path, blocks_at: tuple[int, ...], seed: int) -> Path:
    """An adapt-style folder (adapter + merged model) with random LoRA on the candidate blocks ``blocks_at``:
    random weights are enough to measure memory and switch time."""
    import copy

    import torch

    from dehazekit.adapt.backbone import candidate_list
    from dehazekit.lora import adapter_digest, inject_lora, merge_lora, save_adapter
    from dehazekit.models import save_model

    model = copy.deepcopy(base)
    candidates = candidate_list(model, "auto")
    blocks = [candidates[i] for i in blocks_at]
    torch.manual_seed(seed)
    inject_lora(model, blocks, rank=2, lora_alpha=4.0, gated=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lora_B"):
                param.normal_(0, 0.3)
    save_adapter(model, folder, info={"objective": "random", "seed": seed})
    merge_lora(model, safe=True)
    save_model(model, folder, adapter_digest=adapter_digest(folder), selected_blocks=blocks)
    return folder


def prepare(workdir: Path, n: int) -> None:
    import torch

    from dehazekit.catalog import WEIGHTS_SYNTHETIC, bundled_model_dir
    from dehazekit.exporters.bank import build_bank
    from dehazekit.exporters.onnx_export import export_onnx
    from dehazekit.models import load_model

    base = load_model(bundled_model_dir(WEIGHTS_SYNTHETIC))  # build_bank's default base
    blocks = [(0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (1, 5, 6), (2, 3, 7)]
    folders = []
    for i in range(n):
        folder = make_adapter(base, workdir / f"a{i}", blocks[i % len(blocks)], seed=i)
        export_onnx(folder, workdir / f"a{i}.onnx")
        folders.append(f"a{i}={folder}")
    torch.manual_seed(0)
    build_bank(folders, workdir / "bank", force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bankbench"))
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.workdir, args.adapters, args.size)))
        return
    if not (args.workdir / "bank" / "bank.json").is_file():
        prepare(args.workdir, args.adapters)
    rows = {}
    for mode in ("single", "separate", "bank"):
        cmd = [
            sys.executable,
            __file__,
            "--measure",
            mode,
            "--adapters",
            str(args.adapters),
            "--size",
            str(args.size),
            "--workdir",
            str(args.workdir),
        ]
        rows[mode] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        print(rows[mode])
    bank_dir = args.workdir / "bank"
    sizes = {
        "base_onnx_mb": (bank_dir / "base.onnx").stat().st_size / 1e6,
        "adapter_files_mb": {
            p.stem: p.stat().st_size / 1e6 for p in sorted((bank_dir / "adapters").glob("*.npz"))
        },
        "merged_onnx_mb": (args.workdir / "a0.onnx").stat().st_size / 1e6,
    }
    out = {
        "command": f"python benchmarks/bank.py --adapters {args.adapters} --size {args.size}",
        "adapters": args.adapters,
        "input": [1, 3, args.size, args.size],
        "rows": rows,
        "files": sizes,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bank.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
