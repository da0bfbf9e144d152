"""`dehazekit synth`, `dehazekit pretrain`, `dehazekit eval`: synthetic data, pretraining, evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dehazekit.cli.console import cli_errors, console, is_terminal, print_line


def synth(
    clear: Path = typer.Option(..., "--clear", help="Folder of clean images (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Output folder: hazy/, clear/, params.json."),
    preset: str = typer.Option(
        "homogeneous",
        "--haze-preset",
        help="homogeneous, realistic, outdoor, patchy, dust, bluegrey, dense or depth (with --depth).",
    ),
    count: int = typer.Option(16, "--count", help="Number of pairs (images are cycled)."),
    seed: int = typer.Option(0, "--seed"),
    size: int = typer.Option(
        256, "--size", help="Downscale to this side and centre-crop a square; 0 = full image."
    ),
    depth: Path | None = typer.Option(None, "--depth", help="Folder of Make3D depth .mat files."),
) -> None:
    """Write a fixed, seeded synthetic-haze evaluation set."""
    _must_exist(clear=clear, depth=depth)
    from dehazekit.cli.guard import guard_outputs
    from dehazekit.data.datasets import write_eval_set

    guard_outputs([out / "params.json"], [clear, depth], folders=[out / "hazy", out / "clear"])
    path = write_eval_set(clear, out, preset, count, seed=seed, size=size or None, depth_dir=depth)
    print_line(f"wrote {count} pairs ({preset}) to {path}")


def _must_exist(**paths: Path | None) -> None:
    """Missing inputs fail in a second, before torch loads."""
    from dehazekit.runtimes.errors import InputError

    for name, path in paths.items():
        if path is not None and not Path(path).exists():
            raise InputError.build(
                f"--{name.replace('_', '-')} does not exist", got=str(path), fix="check the path"
            )


def _pretrain_with_progress(cfg: Any) -> Any:
    """pretrain() with a rich bar on a terminal and steady plain lines elsewhere (logs, pipes, nohup)."""
    from dehazekit.runtimes.progress import StageProgress, format_seconds
    from dehazekit.train.pretrain import pretrain

    if not cfg.progress:
        return pretrain(cfg)
    if not is_terminal():
        return pretrain(cfg, progress=StageProgress(emit=print_line, metrics=("loss", "lr")))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    stages = StageProgress(emit=lambda line: None, metrics=("loss",))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[eta]}"),
        console=console,
    ) as bar:
        task = bar.add_task("pretrain", total=cfg.steps, eta="")

        def on_step(event: dict[str, Any]) -> None:
            stages(event)
            rep = stages.reporter(event)
            bar.update(
                task,
                completed=event["step"],
                description=f"pretrain loss {event['loss']:.4f}",
                eta=f"ETA {format_seconds(rep.eta_s)}",
            )

        return pretrain(cfg, progress=on_step)


def pretrain_cmd(
    clear: Path = typer.Option(..., "--clear", help="Folder of clean images (searched recursively)."),
    backbone: str = typer.Option(..., "--backbone", help="Registered backbone name."),
    out: Path = typer.Option(Path("runs/pretrain"), "--out"),
    preset: str = typer.Option(
        "homogeneous", "--haze-preset", help="Haze preset(s): homogeneous, realistic, homogeneous+realistic."
    ),
    depth: Path | None = typer.Option(None, "--depth", help="Folder of Make3D depth .mat files."),
    steps: int = typer.Option(2000, "--steps"),
    crop: int = typer.Option(256, "--crop"),
    batch_size: int = typer.Option(4, "--batch-size"),
    lr: float = typer.Option(5e-4, "--lr"),
    ssim_weight: float = typer.Option(
        0.0, "--ssim-weight", help="Weight of the 1 - SSIM term (0 = L1 only)."
    ),
    colour_weight: float = typer.Option(
        0.0, "--colour-weight", help="Weight of the L1 on 8x8-pooled images (brightness, colour cast)."
    ),
    init: Path | None = typer.Option(None, "--init", help="Start from this model folder's weights."),
    real_images: Path | None = typer.Option(
        None,
        "--real-images",
        help="Unlabeled real hazy photos (needs --init): adds the offline objective on them to the L1.",
    ),
    real_weight: float = typer.Option(1.0, "--real-weight", help="Weight of the --real-images term."),
    rotate: bool = typer.Option(
        False, "--rotate/--no-rotate", help="Random quarter turns of each training pair."
    ),
    reweight: str = typer.Option("none", "--reweight", help="none or bild (bi-level patch reweighting)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    seed: int = typer.Option(0, "--seed"),
    val_every: int = typer.Option(200, "--val-every"),
    ckpt_every: int = typer.Option(100, "--ckpt-every"),
    val_count: int = typer.Option(16, "--val-count", help="Held-out synthetic pairs per preset."),
    val_size: int = typer.Option(128, "--val-size"),
    max_side: int = typer.Option(512, "--max-side", help="Clean images are cached downscaled to this side."),
    progress: bool = typer.Option(
        True,
        "--progress/--no-progress",
        help="Per-step progress (bar on a terminal, a line every few seconds otherwise).",
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 autocast on CUDA), fp32 or bf16."),
    workers: int | None = typer.Option(
        None, "--workers", help="Haze-synthesis processes (default: 0 on CPU, half the cores on a GPU)."
    ),
    time_budget: str | None = typer.Option(
        None, "--time-budget", help="Whole-run wall time, e.g. 20m: fits the steps and the lr schedule."
    ),
) -> None:
    """Pretrain a backbone on synthetic haze; writes OUT/model.safetensors + model.json (best on
    validation)."""
    from dehazekit.catalog import resolve_backbone
    from dehazekit.cli.guard import guard_outputs

    _must_exist(clear=clear, depth=depth, init=init, real_images=real_images)
    backbone = resolve_backbone(backbone)  # before torch loads: unknown names fail in a second
    guard_outputs(
        [out / "model.safetensors", out / "model.json", out / "checkpoint.pt"], [clear, depth, real_images]
    )
    from dehazekit.train.pretrain import PretrainConfig

    cfg = PretrainConfig(
        clear=clear,
        backbone=backbone,
        out=out,
        presets=preset,
        depth=depth,
        steps=steps,
        crop=crop,
        batch_size=batch_size,
        lr=lr,
        ssim_weight=ssim_weight,
        colour_weight=colour_weight,
        init=init,
        real_images=real_images,
        real_weight=real_weight,
        rotate=rotate,
        reweight=reweight,
        resume=resume,
        seed=seed,
        val_every=val_every,
        ckpt_every=ckpt_every,
        val_count=val_count,
        val_size=val_size,
        max_side=max_side,
        progress=progress,
        device=device,
        precision=precision,
        workers=workers,
        time_budget_s=time_budget,
    )
    result = _pretrain_with_progress(cfg)
    best = result.best.get("val", {})
    for name, s in best.items():
        base = result.hazy_baseline[name]
        print_line(
            f"{name}: {s['psnr']:.2f} dB / SSIM {s['ssim']:.4f}  (hazy input {base['psnr']:.2f} dB / "
            f"{base['ssim']:.4f})"
        )
    print_line(f"best step {result.best.get('step')} -> {result.out}")


def eval_cmd(
    hazy: Path | None = typer.Option(None, "--hazy", help="Folder of hazy images."),
    model: Path | None = typer.Option(None, "--model", help="Model folder/file; default: the bundled model."),
    clear: Path | None = typer.Option(None, "--clear", help="Ground truth with matching file stems."),
    metrics: str = typer.Option(
        "fade,dark_channel,colourfulness,entropy,naturalness",
        "--metrics",
        help="Comma list of no-reference metrics (psnr,ssim are added when --clear is given).",
    ),
    fade_params: Path | None = typer.Option(None, "--fade-params", help="Folder with FADE's .mat files."),
    out: Path | None = typer.Option(None, "--out", help="Write report.json and contact_sheet.png here."),
    max_side: int = typer.Option(
        1024, "--max-side", help="Downscale larger images to this side (0 = never)."
    ),
    video: Path | None = typer.Option(
        None, "--video", help="Score a video instead: flicker (+ FADE per frame)."
    ),
    stabilize: bool = typer.Option(
        False, "--stabilize", help="With --video: also score the stabilised output."
    ),
    max_frames: int | None = typer.Option(None, "--max-frames", help="With --video: first N frames only."),
) -> None:
    """Dehaze a folder (or a --video) and report before/after metrics (table, JSON, contact sheet)."""
    from dehazekit.cli.guard import guard_outputs, model_files

    _must_exist(hazy=hazy, model=model, clear=clear, fade_params=fade_params, video=video)
    if video is not None:
        if out is not None:
            guard_outputs([out / "video_report.json"], [video, *model_files(model), fade_params])
        _eval_video(video, model, fade_params, out, max_side, stabilize, max_frames)
        return
    if hazy is None:
        from dehazekit.runtimes.errors import ConfigError

        raise ConfigError.build("nothing to evaluate", expected="--hazy FOLDER or --video FILE")
    if out is not None:
        inputs = [hazy, clear, *model_files(model), fade_params]
        guard_outputs([out / "report.json", out / "contact_sheet.png"], inputs)
    from dehazekit.metrics.eval import EvalConfig, evaluate, print_report

    cfg = EvalConfig(
        hazy=hazy,
        model=model,
        clear=clear,
        metrics=metrics,
        fade_params=fade_params,
        out=out,
        max_side=max_side or None,
    )
    report = evaluate(cfg)
    print_report(report, console)


def _eval_video(
    video: Path,
    model: Path | None,
    fade_params: Path | None,
    out: Path | None,
    max_side: int,
    stabilize: bool,
    max_frames: int | None,
) -> None:
    """`eval --video`: flicker (JSON key ``flicker``) and mean FADE, raw and optionally stabilised."""
    import os

    from dehazekit.metrics.video_eval import VideoEvalConfig, evaluate_video, print_video_report

    if fade_params is None and os.environ.get("DEHAZEKIT_FADE_PARAMS"):
        fade_params = Path(os.environ["DEHAZEKIT_FADE_PARAMS"])
    cfg = VideoEvalConfig(
        video=video,
        model=model,
        max_frames=max_frames,
        max_side=max_side or None,
        stabilize=stabilize,
        fade_params=fade_params,
        out=out,
    )
    print_video_report(evaluate_video(cfg), console)


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
    app.command("synth")(cli_errors(synth))
    app.command("pretrain")(cli_errors(pretrain_cmd))
    app.command("eval")(cli_errors(eval_cmd))
