"""Help and error polish shared by every command: real suggestions for mistyped options, plain flags.

click suggests options by spelling alone, so ``--half`` became "Possible options: --help". Here a
mistyped option is matched against the command's own options, through a table of names users bring
from other tools, then by spelling; renamed options say what they are called now.
"""

from __future__ import annotations

import difflib
from typing import Any

try:  # typer >= 0.2x vendors its own click: its exceptions are the ones raised here
    from typer._click.exceptions import NoSuchOption, UsageError
except ImportError:  # pragma: no cover - older typer on plain click
    from click.exceptions import NoSuchOption, UsageError  # type: ignore[no-redef]

# What users type -> what dehazekit calls it (used only when the command has that option).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "--half": ("--fp16",),
    "--fp-16": ("--fp16",),
    "--float16": ("--fp16",),
    "--tensorrt": ("--trt",),
    "--output": ("--out",),
    "--output-dir": ("--out",),
    "--outdir": ("--out",),
    "--dst": ("--out",),
    "--input": ("--images",),
    "--image": ("--images",),
    "--video": ("--images",),
    "--data": ("--images",),
    "--model": ("--weights",),
    "--checkpoint": ("--weights",),
    "--ckpt": ("--weights",),
    "--preset": ("--haze-preset",),
    "--iters": ("--steps",),
    "--epochs": ("--steps",),
    "--budget": ("--time-budget",),
    "--max-time": ("--time-budget",),
    "--bs": ("--batch-size",),
    "--batch": ("--batch-size",),
    "--gpu": ("--device",),
    "--cuda": ("--device",),
}
RENAMED = {"--preset": "the haze preset of synth/pretrain is --haze-preset (--preset is x264's in run)"}


def _long_options(command: Any, ctx: Any | None) -> list[str]:
    names: list[str] = []
    for param in command.get_params(ctx) if ctx is not None else command.params:
        names += [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
    return names


def suggest_options(typed: str, available: list[str]) -> list[str]:
    """Close option names for ``typed``: synonyms first, then spelling (never --help for a value flag)."""
    found = [name for name in SYNONYMS.get(typed, ()) if name in available]
    candidates = [a for a in available if a != "--help"]
    found += [m for m in difflib.get_close_matches(typed, candidates, n=3, cutoff=0.6) if m not in found]
    # A prefix the user stopped typing early: --finetune -> --finetune-steps
    found += [a for a in candidates if a.startswith(typed) and a not in found][:2]
    return found[:3]


def no_such_option(exc: NoSuchOption, command: Any, ctx: Any | None) -> UsageError:
    suggestions = suggest_options(exc.option_name, _long_options(command, ctx))
    message = f"No such option: {exc.option_name}."
    if exc.option_name in RENAMED and suggestions:
        message += f" Renamed: {RENAMED[exc.option_name]}."
    if suggestions:
        message += f" Did you mean {' or '.join(suggestions)}?"
    else:
        message += " See --help for the options."
    return UsageError(message, ctx=exc.ctx)


def plain_flags(command: Any, ctx: Any) -> None:
    """Boolean flags show no type column (typer 0.2x renders them as <bool>)."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


def group_class() -> type:
    """A TyperGroup whose commands get the suggestions and plain flags above."""
    from typer.core import TyperGroup

    class _Group(TyperGroup):
        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            plain_flags(self, ctx)  # the root's own flags (--verbose, completion) too
            return super().parse_args(ctx, args)

        def get_command(self, ctx: Any, cmd_name: str) -> Any | None:
            command = super().get_command(ctx, cmd_name)
            if command is not None and not getattr(command, "_dehazekit_polished", False):
                _polish(command)
            return command

    return _Group


def _polish(command: Any) -> None:
    parse_args = command.parse_args

    def parse(ctx: Any, args: list[str]) -> list[str]:
        plain_flags(command, ctx)
        try:
            return parse_args(ctx, args)
        except NoSuchOption as exc:
            raise no_such_option(exc, command, ctx) from None

    command.parse_args = parse  # type: ignore[method-assign]
    command._dehazekit_polished = True  # type: ignore[attr-defined]
