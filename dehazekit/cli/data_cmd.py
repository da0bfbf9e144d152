"""`dehazekit synth`, `dehazekit pretrain`, `dehazekit eval`: synthetic data, pretraining, evaluation."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dehazekit.cli.console import cli_errors, console


def synth(
    clear: Path = typer.Option(..., "--clear", help="Folder of clean images (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Output folder: hazy/, clear/, params.json."),
    preset: str = typer.Option("homogeneous", "--preset", help="homogeneous, realistic, patchy, dust, bluegrey, dense or depth (with --depth)."),
    count: int = typer.Option(16, "--count", help="Number of pairs (images are cycled)."),
    seed: int = typer.Option(0, "--seed"),
    size: int = typer.Option(256, "--size", help="Downscale to this side and centre-crop a square; 0 = full image."),
    depth: Optional[Path] = typer.Option(None, "--depth", help="Folder of Make3D depth .mat files."),
) -> None:
    """Write a fixed, seeded synthetic-haze evaluation set."""
    from dehazekit.data.datasets import write_eval_set

    path = write_eval_set(clear, out, preset, count, seed=seed, size=size or None, depth_dir=depth)
    console.print(f"wrote {count} pairs ({preset}) to {path}")


def pretrain_cmd(
    clear: Path = typer.Option(..., "--clear", help="Folder of clean images (searched recursively)."),
    backbone: str = typer.Option(..., "--backbone", help="Registered backbone name."),
    out: Path = typer.Option(Path("runs/pretrain"), "--out"),
    preset: str = typer.Option("homogeneous", "--preset", help="Preset(s): homogeneous, realistic, homogeneous+realistic."),
    depth: Optional[Path] = typer.Option(None, "--depth", help="Folder of Make3D depth .mat files."),
    steps: int = typer.Option(2000, "--steps"),
    crop: int = typer.Option(256, "--crop"),
    batch_size: int = typer.Option(4, "--batch-size"),
    lr: float = typer.Option(5e-4, "--lr"),
    ssim_weight: float = typer.Option(0.0, "--ssim-weight", help="Weight of the 1 - SSIM term (0 = L1 only)."),
    reweight: str = typer.Option("none", "--reweight", help="none or bild (bi-level patch reweighting)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    seed: int = typer.Option(0, "--seed"),
    val_every: int = typer.Option(200, "--val-every"),
    ckpt_every: int = typer.Option(100, "--ckpt-every"),
    val_count: int = typer.Option(16, "--val-count", help="Held-out synthetic pairs per preset."),
    val_size: int = typer.Option(128, "--val-size"),
    max_side: int = typer.Option(512, "--max-side", help="Clean images are cached downscaled to this side."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Pretrain a backbone on synthetic haze; writes OUT/model.safetensors + model.json (best on validation)."""
    from dehazekit.train.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(clear=clear, backbone=backbone, out=out, presets=preset, depth=depth, steps=steps,
                         crop=crop, batch_size=batch_size, lr=lr, ssim_weight=ssim_weight, reweight=reweight,
                         resume=resume, seed=seed, val_every=val_every, ckpt_every=ckpt_every,
                         val_count=val_count, val_size=val_size, max_side=max_side, progress=progress)
    result = pretrain(cfg)
    best = result.best.get("val", {})
    for name, s in best.items():
        base = result.hazy_baseline[name]
        console.print(f"{name}: {s['psnr']:.2f} dB / SSIM {s['ssim']:.4f}  (hazy input {base['psnr']:.2f} dB / "
                      f"{base['ssim']:.4f})")
    console.print(f"best step {result.best.get('step')} -> {result.out}")


def eval_cmd(
    hazy: Path = typer.Option(..., "--hazy", help="Folder of hazy images."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model folder/file; default: the bundled model."),
    clear: Optional[Path] = typer.Option(None, "--clear", help="Ground truth with matching file stems."),
    metrics: str = typer.Option("fade,dark_channel,colourfulness,entropy,naturalness", "--metrics",
                                help="Comma list of no-reference metrics (psnr,ssim are added when --clear is given)."),
    fade_params: Optional[Path] = typer.Option(None, "--fade-params", help="Folder with FADE's .mat files."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write report.json and contact_sheet.png here."),
    max_side: int = typer.Option(1024, "--max-side", help="Downscale larger images to this side (0 = never)."),
) -> None:
    """Dehaze a folder and report before/after metrics (table, JSON, contact sheet)."""
    from dehazekit.metrics.eval import EvalConfig, evaluate, print_report

    cfg = EvalConfig(hazy=hazy, model=model, clear=clear, metrics=metrics, fade_params=fade_params, out=out,
                     max_side=max_side or None)
    report = evaluate(cfg)
    print_report(report, console)


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
    app.command("synth")(cli_errors(synth))
    app.command("pretrain")(cli_errors(pretrain_cmd))
    app.command("eval")(cli_errors(eval_cmd))
