"""`dehazekit adapt`: adapt a backbone to unlabeled real hazy images or video (BiLaLoRA).

The options are generated from AdaptConfig's fields (type, default and help live there only); this
module adds what is not a config field (--images, --prompt) and checks arguments before torch loads.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import typing
from pathlib import Path
from typing import Any

import typer

from dehazekit.cli.console import cli_errors, console, is_terminal, print_line

# Config fields typed differently on the command line (AdaptConfig converts them in __post_init__).
_CLI_TYPES: dict[str, type] = {"weights": str, "clip_weights": Path, "time_budget": str, "out": Path}
_REQUIRED = ("backbone",)


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
    app.command("adapt")(_build_command())


def _option_type(name: str, hint: Any) -> Any:
    if name in _CLI_TYPES:
        return _CLI_TYPES[name] | None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    return bool if base is bool else base | None


def _config_parameters() -> list[inspect.Parameter]:
    """One typer option per AdaptConfig field; defaults are shown from the config, not repeated."""
    from dehazekit.adapt.config import AdaptConfig

    hints = typing.get_type_hints(AdaptConfig)
    params = []
    for f in dataclasses.fields(AdaptConfig):
        if not f.metadata.get("cli", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _option_type(f.name, hints[f.name])
        default = ... if f.name in _REQUIRED else f.default
        option = typer.Option(default, flag, help=f.metadata["help"], show_default=f.default is not None)
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        )
    return params


def _build_command() -> Any:
    extra = [
        inspect.Parameter(
            "images",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Path,
            default=typer.Option(..., "--images", help="Folder of real hazy images, or a video file."),
        ),
        inspect.Parameter(
            "prompt",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=list[str] | None,
            default=typer.Option(None, "--prompt", help='H2C prompt pair "hazy|clear" (repeat).'),
        ),
        inspect.Parameter(
            "prompts",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=str | None,
            default=typer.Option(None, "--prompts", help="H2C prompt preset: default, day, night."),
        ),
        inspect.Parameter(
            "nproc",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=int,
            default=typer.Option(
                1,
                "--nproc",
                min=1,
                help="Processes (torchrun, gloo/nccl); each takes 1/N of every batch (--batch-size must "
                "divide by N).",
            ),
        ),
    ]
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    params = [context, *extra[:1], *_config_parameters(), *extra[1:]]

    @cli_errors
    def adapt(**values: Any) -> None:
        """Adapt BACKBONE to your real haze: search LoRA layers, fine-tune the top-K, merge, report."""
        ctx = values.pop("ctx")
        nproc = values.pop("nproc")
        from dehazekit.cli.launch import relaunch, under_torchrun

        if nproc > 1 and not under_torchrun():
            relaunch(ctx, nproc, "adapt")
            return
        # Only what the user typed goes into the config: everything else keeps AdaptConfig's default.
        given = {k: v for k, v in values.items() if ctx.get_parameter_source(k).name != "DEFAULT"}
        _run(Path(values["images"]), given)

    adapt.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    adapt.__annotations__ = {p.name: p.annotation for p in params}
    return adapt


def _prompt_pairs(preset: str | None, pairs: list[str] | None) -> Any:
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


def make_config(given: dict[str, Any]) -> Any:
    """AdaptConfig from the options the user gave; the others keep the config's own defaults."""
    from dehazekit.adapt.config import AdaptConfig

    given = dict(given)
    given.pop("images", None)
    prompts = _prompt_pairs(given.pop("prompts", None), given.pop("prompt", None))
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in given.items()}
    if prompts is not None:
        given["prompts"] = prompts
    if str(given.get("clip_pretrained", "openai")).lower() in ("none", ""):
        given["clip_pretrained"] = None
    if given.get("gate_threshold") is not None and "top_k" not in given:
        given["top_k"] = None  # only a threshold: no cap on the number of blocks
    return AdaptConfig(**given)


def check_arguments(images: Path, config: Any) -> None:
    """Cheap checks that must fail before torch loads or CLIP is touched (a second, not 15)."""
    from dehazekit.catalog import BUNDLED_MODELS, WEIGHTS_RANDOM, check_bundled_weights, missing_weights_error
    from dehazekit.runtimes.errors import InputError, ModelFileError

    if not images.exists():
        raise InputError.build(
            "--images does not exist",
            got=str(images),
            expected="a folder of hazy images or a video file",
            fix="check the path",
        )
    weights = config.weights
    if weights is None:
        raise missing_weights_error(config.backbone)
    if weights in BUNDLED_MODELS:
        check_bundled_weights(weights, config.backbone)
    elif weights != WEIGHTS_RANDOM and not Path(weights).exists():
        raise ModelFileError.build(
            "--weights does not exist",
            got=weights,
            expected=f"a model folder, a checkpoint file, {', '.join(map(repr, BUNDLED_MODELS))} or 'random'",
        )
    _check_clip(config)


def _check_clip(config: Any) -> None:
    from dehazekit.preflight import clip_unavailable
    from dehazekit.runtimes.errors import ModelFileError

    terms = [t.rpartition("*")[2] for t in config.objective.replace(" ", "").split("+")]
    if "h2c" not in terms:
        return
    if config.clip_weights is not None:
        if not Path(config.clip_weights).is_file():
            raise ModelFileError.build(
                "--clip-weights does not exist",
                got=config.clip_weights,
                expected="a local open_clip or OpenAI checkpoint file",
            )
        return
    error = clip_unavailable(config.clip, config.clip_pretrained)
    if error is not None:
        raise error


class _ProgressBar:
    """Rich progress bar per stage (terminals), rate and ETA from the shared ProgressReporter."""

    def __init__(self, progress: Any) -> None:
        from dehazekit.runtimes.progress import StageProgress

        self.progress, self.tasks = progress, {}
        self.stages = StageProgress(emit=lambda line: None, metrics=("loss", "lower_loss", "upper_loss"))

    def __call__(self, event: dict[str, Any]) -> None:
        from dehazekit.runtimes.progress import format_seconds

        self.stages(event)
        rep = self.stages.reporter(event)
        stage, step, total = event["stage"], int(event["step"]), int(event["total"])
        if stage not in self.tasks:
            label = "search (gates + LoRA)" if stage == "search" else "fine-tune (top-K LoRA)"
            self.tasks[stage] = self.progress.add_task(
                label, total=total, completed=step - 1, loss="", rate="", eta=""
            )
        loss = event.get("loss", event.get("lower_loss"))
        upper = event.get("upper_loss")
        text = f"loss {loss:.4f}" + (f" | F {upper:.4f}" if upper is not None else "")
        rate = f"{rep.rate:.2f} step/s" if rep.rate else ""
        self.progress.update(
            self.tasks[stage], completed=step, loss=text, rate=rate, eta=f"ETA {format_seconds(rep.eta_s)}"
        )


def _summary_table(result: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"adapted {result.backbone}", show_header=True)
    table.add_column("block", overflow="fold")
    table.add_column("gate", justify="right", no_wrap=True)
    table.add_column("selected", justify="center", no_wrap=True)
    for block in sorted(result.gates, key=lambda b: (-result.gates[b], b)):
        table.add_row(block, f"{result.gates[block]:.6f}", "yes" if block in result.selected_blocks else "")
    return table


def _print_result(result: Any) -> None:
    console.print(_summary_table(result))
    t = result.timings
    print_line(
        f"time: load {t['load']:.1f} s, search {t['search']:.1f} s, fine-tune {t['finetune']:.1f} s, "
        f"total {t['total']:.1f} s; merged == unmerged (max |diff| {result.merge_max_abs_diff:.2e})"
    )
    if result.skipped:
        print_line(
            f"skipped {len(result.skipped)} file(s): "
            + ", ".join(Path(s["path"]).name for s in result.skipped[:8])
        )
    if result.upscaled:
        print_line(
            f"upscaled {len(result.upscaled)} image(s) smaller than the crop size: "
            + ", ".join(result.upscaled[:8])
        )
    print_line(
        f"outputs in {result.out_dir}: adapter.json, adapter.safetensors, model.safetensors, "
        "model.json, report/"
    )


def _guard_outputs(images: Path, config: Any) -> None:
    """Refuse an --out whose files would replace the input images or the weights adapted from."""
    from dehazekit.catalog import weights_source
    from dehazekit.cli.guard import clean_stale_temporaries, guard_outputs, model_files

    out = Path(config.out)
    written = ("model.safetensors", "model.json", "adapter.safetensors", "adapter.json")
    source = weights_source(config.weights)
    guard_outputs([out / name for name in written], [images, *model_files(source)], folders=[out / "report"])
    clean_stale_temporaries(out, recursive=True)


def _run(images: Path, given: dict[str, Any]) -> None:
    config = make_config(given)
    check_arguments(images, config)
    _guard_outputs(images, config)
    from dehazekit.adapt import adapt as run_adapt  # torch loads here, after the cheap checks

    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 draws and prints
        run_adapt(str(images), config=config)
        return
    if is_terminal():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            result = run_adapt(str(images), config=config, progress=_ProgressBar(progress))
    else:  # logs, pipes, CI, nohup: one plain line at a steady interval
        from dehazekit.runtimes.progress import StageProgress

        lines = StageProgress(emit=print_line, metrics=("loss", "lower_loss", "upper_loss"))
        result = run_adapt(str(images), config=config, progress=lines)
    _print_result(result)
    _print_guard(result, config.strength)


def _print_guard(result: Any, strength: float) -> None:
    """The do-no-harm guard's verdict; exit code 3 when no checkpoint passed (model NOT recommended)."""
    from dehazekit.adapt.guard import NOT_RECOMMENDED_EXIT

    guard = result.guard
    if guard is None:
        return
    if guard["recommended"]:
        print_line(
            f"guard: kept fine-tune step {guard['chosen_step']} (checked on {guard['holdout']}); "
            f"merged at strength {strength:g}"
        )
        return
    failures = next((c["failures"] for c in reversed(guard["checks"]) if c["failures"]), [])
    print_line(
        f"guard: no checkpoint passed ({'; '.join(failures)}); model.safetensors is NOT "
        "recommended (adapter kept for inspection)"
    )
    raise typer.Exit(NOT_RECOMMENDED_EXIT)
