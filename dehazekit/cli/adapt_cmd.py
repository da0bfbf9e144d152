"""`dehazekit adapt`: adapt a backbone to unlabeled real hazy images or video (BiLaLoRA)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from dehazekit.cli.console import cli_errors, console


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
    app.command("adapt")(adapt)


def _prompt_pairs(preset: Optional[str], pairs: Optional[list[str]]) -> Any:
    from dehazekit.runtimes.errors import ConfigError

    if not pairs:
        return preset
    parsed = []
    for pair in pairs:
        hazy, sep, clear = pair.partition("|")
        if not sep or not hazy.strip() or not clear.strip():
            raise ConfigError.build("bad --prompt", got=pair, expected='"hazy text|clear text"')
        parsed.append((hazy.strip(), clear.strip()))
    return parsed


class _ProgressBar:
    """Rich progress bar per stage with loss, step/s and ETA; fed by adapt()'s progress callback."""

    def __init__(self, progress: Any) -> None:
        self.progress, self.tasks, self.started = progress, {}, {}

    def __call__(self, event: dict[str, Any]) -> None:
        stage, step, total = event["stage"], int(event["step"]), int(event["total"])
        if stage not in self.tasks:
            label = "search (gates + LoRA)" if stage == "search" else "fine-tune (top-K LoRA)"
            self.tasks[stage] = self.progress.add_task(label, total=total, completed=step - 1, loss="",
                                                       rate="")
            self.started[stage] = (time.perf_counter(), step - 1)
        start, first = self.started[stage]
        rate = (step - first) / max(time.perf_counter() - start, 1e-9)
        loss = event.get("loss", event.get("lower_loss"))
        upper = event.get("upper_loss")
        text = f"loss {loss:.4f}" + (f" | F {upper:.4f}" if upper is not None else "")
        self.progress.update(self.tasks[stage], completed=step, loss=text, rate=f"{rate:.2f} step/s")


def _summary_table(result: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"adapted {result.backbone}", show_header=True)
    table.add_column("block", no_wrap=True)
    table.add_column("gate", justify="right")
    table.add_column("selected", justify="center")
    for block in sorted(result.gates, key=lambda b: (-result.gates[b], b)):
        table.add_row(block, f"{result.gates[block]:.6f}", "yes" if block in result.selected_blocks else "")
    return table


def _print_result(result: Any) -> None:
    console.print(_summary_table(result))
    t = result.timings
    console.print(f"time: load {t['load']:.1f} s, search {t['search']:.1f} s, "
                  f"fine-tune {t['finetune']:.1f} s, total {t['total']:.1f} s;  "
                  f"merged == unmerged (max |diff| {result.merge_max_abs_diff:.2e})")
    if result.skipped:
        console.print(f"[yellow]skipped {len(result.skipped)} file(s)[/]: "
                      + ", ".join(Path(s["path"]).name for s in result.skipped[:8]), highlight=False)
    if result.upscaled:
        console.print(f"[yellow]upscaled {len(result.upscaled)} image(s) smaller than the crop size[/]: "
                      + ", ".join(result.upscaled[:8]), highlight=False)
    console.print(f"outputs in {result.out_dir}: adapter.json, adapter.safetensors, model.safetensors, "
                  "model.json, report/", highlight=False)


@cli_errors
def adapt(
    images: Path = typer.Option(..., "--images", help="Folder of real hazy images, or a video file."),
    backbone: str = typer.Option(..., "--backbone", help="Backbone name (see `dehazekit backbones`)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Model folder, official checkpoint, or "
                                           "'default' (the bundled model)."),
    objective: str = typer.Option("h2c", "--objective", help="offline (recommended CLIP-free), h2c (CLIP), dcp, rehaze, or a mix like h2c+offline."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Blocks kept after the search (3 by default; "
                                        "no cap when only --gate-threshold is given)."),
    gate_threshold: Optional[float] = typer.Option(None, "--gate-threshold",
                                                   help="Keep blocks with gate >= this (capped by --top-k)."),
    rank: int = typer.Option(8, "--rank", help="LoRA rank."),
    lora_alpha: float = typer.Option(16.0, "--lora-alpha", help="LoRA scaling = lora_alpha / rank."),
    search_steps: int = typer.Option(300, "--search-steps", help="Stage 1 (bilevel search) steps."),
    finetune_steps: int = typer.Option(600, "--finetune-steps", help="Stage 2 (top-K fine-tune) steps."),
    batch_size: int = typer.Option(4, "--batch-size", help="Crops per batch."),
    size: int = typer.Option(224, "--size", help="Crop side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the crops and LoRA init."),
    out: Path = typer.Option(Path("adapt_out"), "--out", help="Output folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint."),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", help="Steps per checkpoint (0: never)."),
    clip: str = typer.Option("ViT-B-32", "--clip", help="open_clip model name (or a model-config JSON)."),
    clip_pretrained: str = typer.Option("openai", "--clip-pretrained", help="open_clip pretrained tag."),
    clip_weights: Optional[Path] = typer.Option(None, "--clip-weights", help="Local CLIP checkpoint file."),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="H2C prompt preset: default, day, night."),
    prompt: Optional[list[str]] = typer.Option(None, "--prompt", help='Prompt pair "hazy|clear" (repeat).'),
    hypergrad: Optional[str] = typer.Option(None, "--hypergrad", help="first-order (default), cg, rank1 (the "
                                            "paper's), unrolled or reference."),
    candidates: str = typer.Option("auto", "--candidates", help="auto, all or a backbone preset."),
    lr_w: float = typer.Option(1e-4, "--lr-w", help="LoRA learning rate (Adam)."),
    lr_alpha: float = typer.Option(3e-4, "--lr-alpha", help="Gate learning rate (AdamW)."),
) -> None:
    """Adapt BACKBONE to your real haze: search LoRA layers, fine-tune the top-K, merge, report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from dehazekit.adapt import AdaptConfig
    from dehazekit.adapt import adapt as run_adapt

    config = AdaptConfig(
        backbone=backbone, weights=str(weights) if weights else None, objective=objective, clip=clip,
        clip_pretrained=None if clip_pretrained.lower() in ("none", "") else clip_pretrained,
        clip_weights=str(clip_weights) if clip_weights else None, prompts=_prompt_pairs(prompts, prompt),
        top_k=3 if top_k is None and gate_threshold is None else top_k, gate_threshold=gate_threshold,
        rank=rank, lora_alpha=lora_alpha, search_steps=search_steps, finetune_steps=finetune_steps,
        batch_size=batch_size, size=size, seed=seed, lr_w=lr_w, lr_alpha=lr_alpha,
        candidates=candidates, checkpoint_every=checkpoint_every, out=str(out), resume=resume,
        **({"hypergrad": hypergrad} if hypergrad else {}))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[loss]}"), TextColumn("{task.fields[rate]}"), TextColumn("ETA"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        result = run_adapt(str(images), config=config, progress=_ProgressBar(progress))
    _print_result(result)
    _print_guard(result)


def _print_guard(result: Any) -> None:
    """The do-no-harm guard's verdict; exit code 3 when no checkpoint passed (model NOT recommended)."""
    from dehazekit.adapt.guard import NOT_RECOMMENDED_EXIT

    guard = result.guard
    if guard is None:
        return
    if guard["recommended"]:
        console.print(f"guard: kept fine-tune step {guard['chosen_step']} (checked on {guard['holdout']})",
                      highlight=False)
        return
    failures = next((c["failures"] for c in reversed(guard["checks"]) if c["failures"]), [])
    console.print(f"[red]guard: no checkpoint passed ({'; '.join(failures)}); model.safetensors is NOT "
                  f"recommended (adapter kept for inspection)[/]", highlight=False)
    raise typer.Exit(NOT_RECOMMENDED_EXIT)
