"""Does adaptation help on ground truth? Adapt on unlabeled hazy images, score disjoint images against GT.

    OMP_NUM_THREADS=1 python benchmarks/adapt_gt.py --quick      # development, < 10 min
    OMP_NUM_THREADS=1 python benchmarks/adapt_gt.py              # full run (tables in benchmarks/README.md)

Tasks (benchmarks/adapt_gt_tasks.py): synthetic target domains (`dehazekit synth` presets patchy, dust,
bluegrey, dense, depth) over disjoint clear photos; O-HAZE 27/35 leave-one-out and transductive; figure-crop
pairs per real-haze family (two folds, and transductive); BeDDE Chengdu (shift-tolerant: best integer
shift within +-SHIFT px on the clear reference, chosen per output).
Methods: none (bundled model), lora:OBJ (`dehazekit.adapt.adapt`, BiLaLoRA, guard on; both the model the
guard ships and the last step), full:OBJ (Adam on every weight, same objective and step count),
l1 (full fine-tuning on the adaptation images' GT: the supervised ceiling).
Metrics per evaluation image: PSNR/SSIM, the same after the best per-channel gain, FADE, mean luma (and GT
luma), clipped share, colourfulness. Writes benchmarks/results/adapt_gt[_quick].{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adapt_gt_tasks as tasks_mod
from adapt_gt_report import write_outputs

from dehazekit.adapt.config import schedule_for
from dehazekit.catalog import WEIGHTS_SYNTHETIC, bundled_model_dir
from dehazekit.metrics.psnr_ssim import ssim_torch

log = logging.getLogger("adapt_gt")
RESULTS = Path(__file__).resolve().parent / "results"
SHIFT = 6
# `dehazekit adapt --objective offline` as a user runs it: the CLIP-free default schedule (one source:
# dehazekit.adapt.config.SCHEDULES); its LoRA learning rate comes from there too (no adapt_overrides).
_OFFLINE = schedule_for("offline")
_PRODUCT = {"search": _OFFLINE.search_steps, "finetune": _OFFLINE.finetune_steps, "size": _OFFLINE.size}
MODES = {
    "quick": {
        **_PRODUCT,
        "side": 192,
        "synth": ("patchy",),
        "synth_n": (4, 2),
        "families": ("O-HAZE",),
        "methods": ("lora:offline", "lora:dcp"),
        "extra_methods": ("l1",),
        "extra_on": ("ohaze:eval27",),
        "transductive": False,
        "bedde": False,
        "folds": 1,
    },
    "default": {
        **_PRODUCT,
        "side": 256,
        "synth": ("patchy", "dust", "dense", "depth"),
        "synth_n": (6, 3),
        "families": tasks_mod.FAMILIES,
        "methods": ("lora:offline", "lora:dcp"),
        "extra_methods": ("full:offline", "l1"),
        "extra_on": ("synth:", "ohaze:eval"),
        "extra_dcp_on": ("ohaze:eval",),
        "transductive": True,
        "crops_transductive": False,
        "bedde": True,
        "folds": 2,
    },
}


def base_weights(mode: dict) -> Path:
    """The model every method starts from: --model, else the bundled model adapt is measured from."""
    return Path(mode["model"]) if mode.get("model") else bundled_model_dir(WEIGHTS_SYNTHETIC)


def build_tasks(mode: dict, only: list[str] | None) -> list[tasks_mod.Task]:
    def wanted(prefix: str) -> bool:
        return not only or any(o in prefix or prefix in o for o in only)

    out = [
        tasks_mod.synthetic(d, *mode["synth_n"], size=mode["side"])
        for d in mode["synth"]
        if wanted(f"synth:{d}")
    ]
    if wanted("ohaze:"):
        out += tasks_mod.ohaze(mode["side"])[: 3 if mode["transductive"] else mode["folds"]]
    for fam in mode["families"]:
        if wanted(f"crops:{fam}"):
            fam_tasks = tasks_mod.crops(fam, mode.get("crops_transductive", mode["transductive"]))
            out += fam_tasks[: mode["folds"]] + fam_tasks[2:]
    if mode["bedde"] and wanted("bedde:"):
        out.append(tasks_mod.bedde())
    return [t for t in out if not only or any(o in t.name for o in only)]


# --- metrics ------------------------------------------------------------------------------------------
def _luma(x: np.ndarray) -> float:
    return float((x @ np.array([0.299, 0.587, 0.114])).mean() * 255)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]

    return float(ssim_torch(t(a), t(b)))


def _best_shift(out: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping crops of out and ref at the integer shift (|dy|, |dx| <= SHIFT) with the best PSNR."""
    h, w = out.shape[:2]
    best = (-1.0, out, ref)
    for dy in range(-SHIFT, SHIFT + 1):
        for dx in range(-SHIFT, SHIFT + 1):
            a = out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
            b = ref[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
            score = _psnr(a, b)
            if score > best[0]:
                best = (score, a, b)
    return best[1], best[2]


def score(out: np.ndarray, gt: np.ndarray, fade_params, shift: bool) -> dict[str, float]:
    from dehazekit.data.images import to_uint8
    from dehazekit.metrics.noref import colourfulness

    if shift:
        out, gt = _best_shift(out, gt)
    gain = np.clip((out * gt).sum((0, 1)) / np.maximum((out * out).sum((0, 1)), 1e-8), 0.25, 4.0)
    gained = np.clip(out * gain, 0, 1)
    out8 = to_uint8(out)
    row = {
        "psnr": _psnr(out, gt),
        "ssim": _ssim(out, gt),
        "psnr_gain": _psnr(gained, gt),
        "ssim_gain": _ssim(gained, gt),
        "luma": _luma(out),
        "gt_luma": _luma(gt),
        "clipped": float(((out8 == 0) | (out8 == 255)).mean()),
        "colour": colourfulness(out8),
    }
    if fade_params is not None:
        from dehazekit.metrics.fade import fade

        row["fade"] = float(fade(out8, fade_params))
    return row


@torch.no_grad()
def dehaze(model: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    from dehazekit.backbones import forward_padded

    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    x = x.to(next(model.parameters()).device)
    return forward_padded(model.eval(), x).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()


def evaluate(model, task: tasks_mod.Task, fade_params) -> list[dict]:
    shift = task.family == "BeDDE"
    return [
        {"image": name, **score(dehaze(model, hazy), gt, fade_params, shift)} for name, hazy, gt in task.evals
    ]


# --- methods ------------------------------------------------------------------------------------------
def _write_pngs(images: list[np.ndarray], folder: Path) -> list[Path]:
    from dehazekit.data.images import write_image

    return [write_image(folder / f"{i:03d}.png", img) for i, img in enumerate(images)]


def run_lora(task, objective: str, mode: dict, seed: int) -> dict:
    """BiLaLoRA through the product API; returns shipped (guard) and last-step models and the decision."""
    from dehazekit.adapt import AdaptConfig, adapt
    from dehazekit.models import load_model

    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_pngs(task.adapt, Path(tmp) / "images")
        config = AdaptConfig(
            backbone="gunet-t",
            weights=mode.get("model") or WEIGHTS_SYNTHETIC,
            objective=objective,
            size=mode["size"],
            search_steps=mode["search"],
            finetune_steps=mode["finetune"],
            batch_size=4,
            checkpoint_every=0,
            preview_count=2,
            seed=seed,
            out=str(Path(tmp) / "out"),
            **mode.get("adapt_overrides", {}),
        )
        result = adapt(paths, config=config)
        shipped = load_model(result.out_dir)
        last_dir = result.out_dir / "last"
        last = load_model(last_dir) if last_dir.is_dir() else shipped
    return {
        "shipped": shipped if result.recommended else None,
        "last": last,
        "guard": result.guard,
        "timings": result.timings,
    }


def _paired_batches(task, size: int, batch: int, rng: np.random.Generator, paired: bool):
    while True:
        hs, gs = [], []
        for _ in range(batch):
            k = int(rng.integers(len(task.adapt)))
            h, g = task.adapt[k], task.adapt_gt[k]
            side = min(size, *h.shape[:2])
            y, x = int(rng.integers(h.shape[0] - side + 1)), int(rng.integers(h.shape[1] - side + 1))
            hs.append(h[y : y + side, x : x + side]), gs.append(g[y : y + side, x : x + side])
        side = min(a.shape[0] for a in hs), min(a.shape[1] for a in hs)
        to = [
            torch.from_numpy(np.stack([a[: side[0], : side[1]] for a in arr]))
            .permute(0, 3, 1, 2)
            .contiguous()
            for arr in (hs, gs)
        ]
        yield to[0], to[1] if paired else None


def run_full(task, objective: str | None, mode: dict, seed: int, lr: float = 2e-5) -> torch.nn.Module:
    """Adam on every weight: with an unsupervised objective, or L1 to the GT when ``objective`` is None."""
    from dehazekit.backbones import forward_padded
    from dehazekit.models import load_model
    from dehazekit.objectives import attach_network, create_objective

    torch.manual_seed(seed)
    model = load_model(base_weights(mode), backbone="gunet-t").eval()
    obj = None
    if objective is not None:
        obj = create_objective(objective)
        attach_network(obj, model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = _paired_batches(task, mode["size"], 4, np.random.default_rng(seed), objective is None)
    for _ in range(mode["search"] + mode["finetune"]):
        hazy, gt = next(batches)
        out = forward_padded(model, hazy)
        loss = (out - gt).abs().mean() if obj is None else obj(hazy, out)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def interpolate(base: torch.nn.Module, adapted: torch.nn.Module, alpha: float) -> torch.nn.Module:
    """Weights base + alpha * (adapted - base): the merged adapter scaled by ``alpha`` (WiSE-FT style).

    The product does this with ``dehazekit.lora.scale_lora`` before merging; here the adapter is
    already merged, and scaling the merged weights lets one run score several strengths (the two give
    the same model: benchmarks/README.md, "Adapter strength")."""
    import copy

    start = base.state_dict()
    mixed = {
        k: start[k] + alpha * (v - start[k]) if v.is_floating_point() else v
        for k, v in adapted.state_dict().items()
    }
    model = copy.deepcopy(adapted)
    model.load_state_dict(mixed)
    return model


def run_task(task, mode: dict, methods: list[str], fade_params, seed: int) -> dict:
    from dehazekit.models import load_model

    base = load_model(base_weights(mode), backbone="gunet-t")
    record = {
        "task": task.name,
        "family": task.family,
        "protocol": task.protocol,
        "n_adapt": len(task.adapt),
        "n_eval": len(task.evals),
        "methods": {},
        "previews": {},
    }
    record["methods"]["none"] = evaluate(base, task, fade_params)
    record["previews"]["none"] = dehaze(base, task.evals[0][1])
    for method in methods:
        t0 = time.perf_counter()
        kind, _, obj = method.partition(":")
        if kind == "lora":
            res = run_lora(task, obj, mode, seed)
            last = evaluate(res["last"], task, None)
            record["methods"][f"{method}:last"] = last
            shipped = res["shipped"] or base
            record["methods"][method] = evaluate(shipped, task, fade_params)
            record.setdefault("guard", {})[method] = res["guard"]
            record["previews"][method] = dehaze(shipped, task.evals[0][1])
            for alpha in mode.get("interp", ()):
                scaled = interpolate(base, shipped, alpha)
                record["methods"][f"{method}@{alpha:g}"] = evaluate(scaled, task, None)
        else:
            model = run_full(task, None if kind == "l1" else obj, mode, seed)
            record["methods"][method] = evaluate(model, task, None)  # FADE: base and shipped models only
            record["previews"][method] = dehaze(model, task.evals[0][1])
        record.setdefault("wall_s", {})[method] = time.perf_counter() - t0
        log.info(
            "%s %s: %.1f s, dPSNR %+.2f",
            task.name,
            method,
            time.perf_counter() - t0,
            np.mean([r["psnr"] for r in record["methods"][method]])
            - np.mean([r["psnr"] for r in record["methods"]["none"]]),
        )
    record["previews"]["hazy"], record["previews"]["gt"] = task.evals[0][1], task.evals[0][2]
    return record


def _worker_init() -> None:
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("dehazekit").setLevel(logging.ERROR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="substrings of task names to run")
    ap.add_argument("--methods", nargs="*", help="override the mode's methods, e.g. lora:offline full:dcp l1")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--no-fade", action="store_true")
    ap.add_argument(
        "--from-json", type=Path, nargs="*", help="only re-render the markdown of finished runs' JSON"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, default=None, help="base model folder (default: the bundled one)")
    ap.add_argument(
        "--jobs", type=int, default=1, help="tasks run in parallel processes (1 torch thread each)"
    )
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="mode overrides KEY=JSON, e.g. finetune=40 adapt_overrides='{\"lr_w\": 5e-4}'; "
        "interp='[0.5]' also scores each shipped LoRA model scaled towards the base (method@0.5)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("dehazekit").setLevel(logging.ERROR)
    name = "quick" if args.quick else "default"
    mode = dict(MODES[name])
    for item in args.set:
        key, _, value = item.partition("=")
        mode[key] = json.loads(value)
    mode["model"] = str(args.model.resolve()) if args.model else None
    fade_params = None
    if not args.no_fade and (tasks_mod.SHARED / "metrics" / "fade").is_dir():
        from dehazekit.metrics.fade import FadeParams

        fade_params = FadeParams.load(tasks_mod.SHARED / "metrics" / "fade")
    if args.from_json:  # re-render the tables of finished runs (several: one table, commands listed)
        runs = [json.loads(p.read_text()) for p in args.from_json]
        meta = {**runs[0]["meta"], "command": "\n    ".join(r["meta"]["command"] for r in runs)}
        write_outputs(args.from_json[0].with_suffix(""), [rec for r in runs for rec in r["records"]], meta)
        return
    t0 = time.perf_counter()
    jobs = []
    for task in build_tasks(mode, args.only):
        extra = list(mode["extra_methods"]) if any(k in task.name for k in mode["extra_on"]) else []
        extra += ["full:dcp"] if any(k in task.name for k in mode.get("extra_dcp_on", ())) else []
        jobs.append((task, mode, args.methods or list(mode["methods"]) + extra, fade_params, args.seed))
    jobs.sort(key=lambda job: _priority(job[0].name))
    out = args.out or RESULTS / ("adapt_gt_quick" if args.quick else "adapt_gt")
    command = "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/adapt_gt.py", *sys.argv[1:]])
    records: list[dict] = []

    def write() -> None:  # after every task, so an interrupted run still leaves its finished tasks
        order = {job[0].name: i for i, job in enumerate(jobs)}
        write_outputs(
            out,
            sorted(records, key=lambda r: order[r["task"]]),
            {
                "mode": name,
                **mode,
                "seed": args.seed,
                "command": command,
                "wall_s": time.perf_counter() - t0,
                "tasks_done": f"{len(records)}/{len(jobs)}",
            },
        )

    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs, initializer=_worker_init) as pool:
            for record in pool.imap_unordered(_run_job, jobs, chunksize=1):
                records.append(record)
                write()
    else:
        for job in jobs:
            records.append(run_task(*job))
            write()
    print(f"wrote {out}.json/.md/.png in {time.perf_counter() - t0:.0f} s")


def _run_job(job: tuple) -> dict:
    return run_task(*job)


def _priority(task: str) -> int:
    """The done-when tasks first: O-HAZE leave-one-out, one fold per family, the synthetic domains."""
    for rank, key in enumerate(("ohaze:eval", "fold0", "synth:", "fold1", "transductive", "bedde")):
        if key in task:
            return rank
    return 99


if __name__ == "__main__":
    main()
