"""Probe for the guard: run benchmarks/adapt_gt.py and, at every guard check, keep the held-out images'
base and candidate outputs and the checkpoint's GT score on the evaluation images.

    OMP_NUM_THREADS=1 python benchmarks/adapt_gt_guard_probe.py --probe-out DIR [adapt_gt.py args]

One ``DIR/<task>__<method>.npz`` per LoRA run: ``hazy``/``base`` (held-out inputs and the base model's
outputs, lists), ``cand_<step>`` (outputs at that check), ``steps``, ``psnr``/``psnr_gain`` (mean over
the evaluation images per step, and ``psnr_none``/``psnr_gain_none`` for the base). Runs with --jobs 1
(the patch lives in this process). Used to choose GuardBounds (see dehazekit/adapt/guard.py).
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
            from dehazekit.models import load_model

            base = load_model(None, backbone="gunet-t").eval()
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


if __name__ == "__main__":
    i = sys.argv.index("--probe-out")
    _STATE["dir"] = Path(sys.argv[i + 1])
    _STATE["dir"].mkdir(parents=True, exist_ok=True)
    del sys.argv[i : i + 2]
    _patch()
    adapt_gt.main()
