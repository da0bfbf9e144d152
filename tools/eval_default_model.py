"""Measure a default-model candidate against ground truth and on real photos; writes JSON.

    OMP_NUM_THREADS=1 python tools/eval_default_model.py [--model dehazekit/assets/default] [--max-side 768]

Sets (all read from ../shared/data, never trained on):
- ``ohaze``: O-HAZE 27 and 35, downscaled to --max-side (Lanczos), GT resized to match.
- ``crops``: the 42 figure-crop pairs at native size, per haze family (O-HAZE, I-HAZE, Dense-HAZE,
  NH-HAZE-2020).
- ``synth``: the pretraining validation set (hash-held-out clean photos, 24 crops of 128 px per preset,
  the same seeds as ``dehazekit pretrain``'s validation).
- ``real``: every photo of ../shared/data/real_hazy (no GT): luma, clipping, colour cast, FADE.
- ``video``: 8 evenly spaced frames of each real fog clip in ../shared/data/video (no GT; no model
  was trained or recalibrated on them), at --real-max-side: luma, clipping, colour cast, FADE.
Per image: PSNR, SSIM, mean luma (Rec.601, 0-255), clipped fraction (channel values at 0 / 255),
blue - red (channel means, 0-255), FADE; for the input, the output and (when paired) the GT.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# ../shared from the main checkout; ../../shared from a worktree under /work/wt.
SHARED = next(
    (p / "shared" for p in REPO.parents if (p / "shared" / "data").is_dir()), REPO.parent / "shared"
)
FAMILIES = ("O-HAZE", "I-HAZE", "Dense-HAZE", "NH-HAZE-2020")


def colour_stats(img: np.ndarray) -> dict[str, float]:
    """Luma, clipped fractions and blue - red of an (H, W, 3) uint8 image."""
    rgb = img.astype(np.float64)
    return {
        "luma": float((rgb @ np.array([0.299, 0.587, 0.114])).mean()),
        "clip_lo": float((img == 0).mean()),
        "clip_hi": float((img == 255).mean()),
        "blue_red": float(rgb[..., 2].mean() - rgb[..., 0].mean()),
    }


def _score(img: np.ndarray, gt: np.ndarray | None, fade_params) -> dict[str, float]:
    from dehazekit.metrics.fade import fade
    from dehazekit.metrics.psnr_ssim import psnr, ssim

    out = colour_stats(img)
    if gt is not None:
        out["psnr"], out["ssim"] = psnr(img, gt), ssim(img, gt)
    if fade_params is not None:
        out["fade"] = float(fade(img, fade_params))
    return out


def _record(
    model, name: str, hazy: np.ndarray, gt: np.ndarray | None, fade_params, input_fade: bool = True
) -> dict:
    from dehazekit.metrics.eval import dehaze_uint8

    out = dehaze_uint8(model, hazy)
    rec = {
        "name": name,
        "input": _score(hazy, gt, fade_params if input_fade else None),
        "output": _score(out, gt, fade_params),
    }
    if gt is not None:
        rec["gt"] = _score(gt, None, fade_params)
    return rec


def _read_pair(hazy_path: Path, gt_path: Path, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from dehazekit.data.images import read_rgb_uint8

    hazy = read_rgb_uint8(hazy_path, max_side)
    gt = Image.open(gt_path).convert("RGB").resize((hazy.shape[1], hazy.shape[0]), Image.Resampling.LANCZOS)
    return hazy, np.asarray(gt, dtype=np.uint8)


def eval_ohaze(model, max_side: int, fade_params) -> list[dict]:
    recs = []
    for p in sorted((SHARED / "data" / "paired_real" / "ohaze").glob("*_outdoor_hazy.jpg")):
        hazy, gt = _read_pair(p, p.with_name(p.name.replace("_hazy", "_GT")), max_side)
        recs.append(_record(model, p.name, hazy, gt, fade_params))
    return recs


def eval_crops(model) -> dict[str, list[dict]]:
    out = {}
    for fam in FAMILIES:
        recs = []
        for p in sorted((SHARED / "data" / "paired_real" / "figure_crops" / fam).rglob("*_hazy.png")):
            hazy, gt = _read_pair(p, p.with_name(p.name.replace("_hazy", "_GT")), None)
            recs.append(_record(model, f"{p.parent.name}/{p.name}", hazy, gt, None))
        out[fam] = recs
    return out


def eval_synth(model, presets: list[str]) -> dict[str, list[dict]]:
    """The pretraining validation crops: same split (10 % hash) and seeds as PretrainConfig's defaults."""
    from dehazekit.data.datasets import fixed_pairs, split_holdout
    from dehazekit.data.images import list_images, to_uint8

    _, val_files = split_holdout(list_images(SHARED / "data" / "clear"), 0.1)
    out = {}
    for i, preset in enumerate(presets):
        pairs = fixed_pairs(val_files, preset, 24, seed=1000 + i, size=128)
        out[preset] = [_record(model, n, to_uint8(h), to_uint8(c), None) for n, h, c, _ in pairs]
    return out


def eval_real(model, max_side: int, fade_params) -> list[dict]:
    """FADE of the outputs only: the inputs' FADE does not depend on the model (and costs as much)."""
    from dehazekit.data.images import list_images, read_rgb_uint8

    return [
        _record(model, p.name, read_rgb_uint8(p, max_side), None, fade_params, input_fade=False)
        for p in list_images(SHARED / "data" / "real_hazy")
    ]


def eval_video(model, max_side: int, fade_params, per_clip: int = 8) -> list[dict]:
    """``per_clip`` evenly spaced frames of each clip (the frames `adapt` would take), at ``max_side``."""
    from PIL import Image

    from dehazekit.adapt.data import load_video_frames

    recs = []
    for clip in sorted((SHARED / "data" / "video").glob("*.mp4")):
        for item in load_video_frames(clip, per_clip):
            frame = Image.fromarray(np.asarray(item.pixels))
            frame.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            recs.append(_record(model, item.name, np.asarray(frame, dtype=np.uint8), None, fade_params))
    return recs


def streak_probe(model) -> dict[str, float]:
    """Flat sky (0.8) with a dark tower (0.35, 16 px wide) rising from the bottom to row 120 of 256.

    ``halo``: output above the tower top (rows 100-119) minus the same rows of open sky; ``streak``:
    the same for the sky far above (rows 20-99); ``*_turned``: the scene turned 90 degrees (tower
    lying on its side) and 180 degrees (hanging), measured in the scene's own frame. An isotropic
    dehazer gives the same numbers in every orientation; a vertical prior does not.
    """
    import torch

    from dehazekit.backbones import forward_padded

    scene = np.full((256, 256, 3), 0.8, np.float32)
    scene[120:, 120:136] = 0.35

    def run(img: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
        with torch.no_grad():
            return forward_padded(model, x)[0].mean(0).numpy()

    def diffs(y: np.ndarray) -> tuple[float, float]:
        side = y[:, 40:80]
        above = y[:, 124:132]
        return (
            float(above[100:120].mean() - side[100:120].mean()),
            float(above[20:100].mean() - side[20:100].mean()),
        )

    out = {}
    for name, fwd, back in (
        ("", lambda a: a, lambda y: y),
        ("_turned90", lambda a: a.transpose(1, 0, 2), lambda y: y.T),
        ("_turned180", lambda a: a[::-1], lambda y: y[::-1]),
    ):
        out[f"halo{name}"], out[f"streak{name}"] = diffs(back(run(fwd(scene))))
    return out


def mean(recs: list[dict]) -> dict[str, dict[str, float]]:
    keys = [k for k in ("input", "output", "gt") if k in recs[0]]
    return {k: {m: float(np.mean([r[k][m] for r in recs])) for m in recs[0][k]} for k in keys}


def main() -> None:
    from dehazekit.metrics.eval import resolve_model_path
    from dehazekit.metrics.fade import FadeParams
    from dehazekit.models import load_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    ap.add_argument("--max-side", type=int, default=768, help="O-HAZE pairs")
    ap.add_argument("--real-max-side", type=int, default=512, help="real_hazy photos (FADE is the cost)")
    ap.add_argument("--sets", default="probe,ohaze,crops,synth,real")
    ap.add_argument("--synth-presets", default="homogeneous,realistic")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "default_model_gt.json")
    ap.add_argument(
        "--table",
        nargs=2,
        type=Path,
        metavar=("BEFORE", "AFTER"),
        help="print a markdown before/after table of two result JSONs and exit",
    )
    args = ap.parse_args()
    if args.table:
        print(markdown_table(*(json.loads(p.read_text()) for p in args.table)))
        return
    sets = args.sets.split(",")
    model = load_model(args.model).eval()
    fade_dir = SHARED / "metrics" / "fade"
    fade_params = FadeParams.load(fade_dir) if fade_dir.is_dir() else None  # FADE columns left out
    result: dict = {
        "model": str(resolve_model_path(args.model)),
        "max_side": args.max_side,
        "real_max_side": args.real_max_side,
    }
    t0 = time.perf_counter()
    if "probe" in sets:
        result["probe"] = streak_probe(model)
    if "ohaze" in sets:
        recs = eval_ohaze(model, args.max_side, fade_params)
        result["ohaze"] = {"images": recs, "mean": mean(recs)}
    if "crops" in sets:
        result["crops"] = {fam: {"images": r, "mean": mean(r)} for fam, r in eval_crops(model).items()}
    if "synth" in sets:
        synth = eval_synth(model, args.synth_presets.split(","))
        result["synth"] = {p: {"images": r, "mean": mean(r)} for p, r in synth.items()}
    if "real" in sets:
        recs = eval_real(model, args.real_max_side, fade_params)
        result["real"] = {"images": recs, "mean": mean(recs)}
    if "video" in sets:
        recs = eval_video(model, args.real_max_side, fade_params)
        result["video"] = {"images": recs, "mean": mean(recs)}
    result["wall_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))


def _blocks(result: dict) -> list[tuple[str, dict]]:
    blocks = [("O-HAZE 27+35", result.get("ohaze"))]
    blocks += [(f"crops {f}", b) for f, b in result.get("crops", {}).items()]
    blocks += [(f"synthetic {p}", b) for p, b in result.get("synth", {}).items()]
    blocks += [("real_hazy (no GT)", result.get("real"))]
    blocks += [("real fog video frames (no GT)", result.get("video"))]
    return [(n, b) for n, b in blocks if b]


def markdown_table(before: dict, after: dict) -> str:
    """Before/after rows per set: PSNR, SSIM, luma (GT), clipped %, blue - red (GT), FADE (GT)."""
    head = (
        "| set | PSNR dB | SSIM | mean luma (GT) | clipped % (GT) | blue - red (GT) | FADE (GT) |\n"
        "|---|---|---|---|---|---|---|"
    )
    rows = [head]
    old = dict(_blocks(before))
    for name, block in _blocks(after):
        cells = []
        for key, fmt in (
            ("psnr", "{:.2f}"),
            ("ssim", "{:.3f}"),
            ("luma", "{:.1f}"),
            ("clip", "{:.2f}"),
            ("blue_red", "{:+.1f}"),
            ("fade", "{:.3f}"),
        ):
            vals = []
            for res in (old.get(name), block):
                o = res["mean"]["output"] if res else {}
                v = o["clip_lo"] + o["clip_hi"] if key == "clip" and o else o.get(key)
                vals.append("-" if v is None else fmt.format(100 * v if key == "clip" else v))
            g = block["mean"].get("gt", {})
            gv = g["clip_lo"] + g["clip_hi"] if key == "clip" and g else g.get(key)
            gt = (
                ""
                if gv is None or key in ("psnr", "ssim")
                else f" ({fmt.format(100 * gv if key == 'clip' else gv)})"
            )
            cells.append(f"{vals[0]} -> {vals[1]}{gt}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def summary(result: dict) -> str:
    rows = [f"probe {k} {v:+.4f}" for k, v in result.get("probe", {}).items()]
    blocks = [("ohaze", result.get("ohaze"))]
    blocks += [(f"crops/{f}", b) for f, b in result.get("crops", {}).items()]
    blocks += [(f"synth/{p}", b) for p, b in result.get("synth", {}).items()]
    blocks += [("real", result.get("real"))]
    for name, block in blocks:
        if not block:
            continue
        m = block["mean"]
        o, g, nan = m["output"], m.get("gt", {}), float("nan")
        fmt = (
            f"{name:22s} psnr {o.get('psnr', nan):6.2f} (in {m['input'].get('psnr', nan):5.2f})"
            f" ssim {o.get('ssim', nan):.3f} luma {o['luma']:6.1f} (gt {g.get('luma', nan):6.1f},"
            f" in {m['input']['luma']:6.1f}) clip {100 * (o['clip_lo'] + o['clip_hi']):5.2f}%"
            f" (gt {100 * (g.get('clip_lo', 0) + g.get('clip_hi', 0)):4.2f}%)"
            f" b-r {o['blue_red']:+6.1f} (gt {g.get('blue_red', nan):+6.1f})"
        )
        if "fade" in o:
            fmt += f" fade {o['fade']:.3f} (gt {g.get('fade', nan):.3f})"
        rows.append(fmt)
    return "\n".join(rows)


if __name__ == "__main__":
    main()
