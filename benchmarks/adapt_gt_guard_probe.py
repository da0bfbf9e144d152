"""Probe for the guard: run benchmarks/adapt_gt.py and, at every guard check, keep the held-out images'
base and candidate outputs and the checkpoint's GT score on the evaluation images.

    OMP_NUM_THREADS=1 python benchmarks/adapt_gt_guard_probe.py --probe-out DIR [adapt_gt.py args]
    python benchmarks/adapt_gt_guard_probe.py --summarise DIR [DIR ...] --out benchmarks/results/NAME \
        [--schedules 48:12,96:24] [--structure 30,44] [--dehaze 0.5,0.7]

One ``DIR/<task>__<method>.npz`` per LoRA run: ``hazy``/``base`` (held-out inputs and the base model's
outputs, lists), ``cand_<step>`` (outputs at that check), ``steps``, ``psnr``/``psnr_gain`` (mean over
the evaluation images per step, and ``psnr_none``/``psnr_gain_none`` for the base). Runs with --jobs 1
(the patch lives in this process); ``--no-stop`` lets every run go its full length (every check
passes) so that any bound can be replayed on it. ``--summarise`` replays the guard's choice (checks
in order, stop at the first failure after a pass, ship the last pass) for several
``min_structure_db`` bounds (``--schedules``: also as if the runs had been shorter, or checked less
often) and writes NAME.json (every check: step, GT dPSNR, structure dB, other bounds' failures) and
NAME.md. Used to choose GuardBounds (see dehazekit/adapt/guard.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adapt_gt

from dehazekit.adapt import guard as guard_mod

_STATE: dict = {}


def _out(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    from dehazekit.backbones import forward_padded

    device = next(model.parameters()).device
    with torch.no_grad():
        return forward_padded(model, x[None].to(device)).float().cpu().clamp(0, 1)[0].numpy()


def _mean_scores(model: torch.nn.Module) -> tuple[float, float]:
    rows = adapt_gt.evaluate(model, _STATE["task"], None)
    return float(np.mean([r["psnr"] for r in rows])), float(np.mean([r["psnr_gain"] for r in rows]))


def _patch() -> None:
    orig_check, orig_run_lora = guard_mod.Guard.check, adapt_gt.run_lora

    def check(self, model, step):
        result = orig_check(self, model, step)
        rec = _STATE["rec"]
        if "hazy" not in rec:
            from dehazekit.catalog import WEIGHTS_SYNTHETIC, bundled_model_dir
            from dehazekit.models import load_model

            base = load_model(bundled_model_dir(WEIGHTS_SYNTHETIC), backbone="gunet-t").eval()
            rec["hazy"] = [x.numpy() for x in self.holdout]
            rec["base"] = [_out(base, x) for x in self.holdout]
            rec["psnr_none"], rec["psnr_gain_none"] = _mean_scores(base)
        was = model.training
        model.eval()
        rec[f"cand_{step}"] = [_out(model, x) for x in self.holdout]
        psnr, gain = _mean_scores(model)
        model.train(was)
        rec.setdefault("steps", []).append(step)
        rec.setdefault("psnr", []).append(psnr)
        rec.setdefault("psnr_gain", []).append(gain)
        if _STATE.get("no_stop"):  # record every check of the full-length run; bounds are replayed later
            self.checks[-1] = guard_mod.GuardCheck(result.step, result.ratios)
            return self.checks[-1]
        return result

    def run_lora(task, objective, mode, seed):
        _STATE["task"], _STATE["rec"] = task, {}
        res = orig_run_lora(task, objective, mode, seed)
        rec = _STATE["rec"]
        name = f"{task.name}__lora_{objective}".replace(":", "_")
        arrays = {
            k: np.asarray(v, dtype=object) if k in ("hazy", "base") or k.startswith("cand_") else v
            for k, v in rec.items()
        }
        np.savez(_STATE["dir"] / name, allow_pickle=True, **arrays)
        return res

    guard_mod.Guard.check, adapt_gt.run_lora = check, run_lora


def _checks(path: Path) -> list[dict]:
    """Every check of one probed run: GT dPSNR, structure dB, haze removal kept, other bounds' failures."""
    from dataclasses import replace

    d = np.load(path, allow_pickle=True)
    hazy = [torch.from_numpy(np.asarray(h, dtype=np.float32))[None] for h in d["hazy"]]

    def stats(outs) -> dict[str, float]:
        ts = [torch.from_numpy(np.asarray(o, dtype=np.float32))[None] for o in outs]
        per = [guard_mod.image_stats(h, o) for h, o in zip(hazy, ts)]
        return {k: float(np.mean([p[k] for p in per])) for k in per[0]}

    base, base_outs = stats(d["base"]), [torch.from_numpy(np.asarray(o, np.float32))[None] for o in d["base"]]
    others = replace(guard_mod.GuardBounds(), min_structure_db=-1.0, min_dehaze_kept=0.0)
    rows = []
    for k, step in enumerate(d["steps"]):
        outs = d[f"cand_{step}"]
        cand = stats(outs)
        struct = [
            guard_mod.structure_db(b, torch.from_numpy(np.asarray(o, np.float32))[None])
            for b, o in zip(base_outs, outs)
        ]
        cand["structure"] = float(np.mean(struct))
        check = guard_mod.judge(int(step), base, cand, others)
        rows.append(
            {
                "step": int(step),
                "dpsnr": float(d["psnr"][k] - d["psnr_none"]),
                "structure_db": cand["structure"],
                "dehaze_kept": check.ratios["dehaze"],
                "other_failures": check.failures,
            }
        )
    return rows


def _ship(checks: list[dict], bound: float, dehaze: float) -> float:
    """GT dPSNR of what the guard ships with these structure and haze-removal bounds (0 when it rejects
    every check)."""
    passed, chosen = [], 0.0
    for c in checks:
        ok = not c["other_failures"] and c["structure_db"] >= bound and c["dehaze_kept"] >= dehaze
        passed.append(ok)
        chosen = c["dpsnr"] if ok else chosen
        if not ok and any(passed[:-1]):
            break
    return chosen


def _table(runs: dict[str, list[dict]], bounds: tuple[float, ...], dehaze: tuple[float, ...]) -> list[str]:
    lines = [
        "| haze removal kept >= | structure bound (dB) | harmful runs stopped / shipped "
        "| good runs kept / cut | worst shipped dPSNR | sum of shipped dPSNR |",
        "|---|---|---|---|---|---|",
    ]
    for kept, bound in ((k, b) for k in dehaze for b in bounds):
        n = {"stop": 0, "ship": 0, "kept": 0, "cut": 0}
        shipped = {k: _ship(v, bound, kept) for k, v in runs.items()}
        for k, v in runs.items():
            full = v[-1]["dpsnr"]  # where the run ended (the other bounds may stop it early)
            if full < -0.1:
                n["ship" if shipped[k] < -0.1 else "stop"] += 1
            else:
                n["kept" if shipped[k] >= full - 0.1 else "cut"] += 1
        name = "none" if bound < 0 else f"{bound:.0f}"
        lines.append(
            f"| {kept:.2f} | {name} | {n['stop']} / {n['ship']} | {n['kept']} / {n['cut']} | "
            f"{min(shipped.values()):+.2f} | {sum(shipped.values()):+.2f} |"
        )
    return lines


def summarise(
    dirs: list[str],
    out: Path,
    schedules: list[tuple[int, int]] | None = None,
    bounds=(-1.0, 28.0, 30.0, 32.0, 34.0, 36.0, 40.0, 44.0, 48.0),
    dehaze: tuple[float, ...] = (guard_mod.GuardBounds().min_dehaze_kept,),
) -> None:
    """``schedules``: (last fine-tune step, check interval) pairs replayed on the probed checks, as if
    the runs had been that long with checks that often (the LoRA lr is constant, so a shorter run is
    the start of a longer one); None: every check of the whole run."""
    import json

    runs = {f"{Path(d).name}/{p.stem}": _checks(p) for d in dirs for p in sorted(Path(d).glob("*.npz"))}
    sections = []
    for last, every in schedules or [(None, None)]:
        cut = {
            k: [c for c in v if last is None or (c["step"] <= last and c["step"] % every == 0)]
            for k, v in runs.items()
        }
        head = "every check" if last is None else f"fine-tune steps 0-{last}, a check every {every}"
        sections.append(f"### {head}\n\n" + "\n".join(_table(cut, bounds, dehaze)))
    table = "\n\n".join(sections)
    out.with_suffix(".json").write_text(json.dumps({"runs": runs, "table": table}, indent=1))
    cmd = "python benchmarks/adapt_gt_guard_probe.py " + " ".join(sys.argv[1:])
    out.with_suffix(".md").write_text(f"# guard probe\n\n    {cmd}\n\n{len(runs)} runs\n\n{table}\n")
    print(table)


def _floats(argv: list[str], flag: str) -> tuple[float, ...] | None:
    """``--flag 0.5,0.7`` -> (0.5, 0.7) (removed from argv)."""
    if flag not in argv:
        return None
    i = argv.index(flag)
    values = tuple(float(v) for v in argv[i + 1].split(","))
    del argv[i : i + 2]
    return values


def _schedules(argv: list[str]) -> list[tuple[int, int]] | None:
    """``--schedules 48:12,96:24`` -> [(48, 12), (96, 24)] (removed from argv)."""
    if "--schedules" not in argv:
        return None
    i = argv.index("--schedules")
    spec = argv[i + 1]
    del argv[i : i + 2]
    return [(int(a), int(b)) for a, b in (part.split(":") for part in spec.split(","))]


if __name__ == "__main__" and "--summarise" in sys.argv:
    argv = list(sys.argv)
    schedules = _schedules(argv)
    extra = {
        k: v
        for k, v in (("bounds", _floats(argv, "--structure")), ("dehaze", _floats(argv, "--dehaze")))
        if v
    }
    i, j = argv.index("--summarise"), argv.index("--out")
    summarise(argv[i + 1 : j] if j > i else argv[i + 1 :], Path(argv[j + 1]), schedules, **extra)
elif __name__ == "__main__":
    i = sys.argv.index("--probe-out")
    _STATE["dir"] = Path(sys.argv[i + 1])
    _STATE["dir"].mkdir(parents=True, exist_ok=True)
    del sys.argv[i : i + 2]
    if "--no-stop" in sys.argv:
        sys.argv.remove("--no-stop")
        _STATE["no_stop"] = True
    _patch()
    adapt_gt.main()
