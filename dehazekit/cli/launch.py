"""`dehazekit adapt --nproc N`: start the same command under torchrun with N processes.

The arguments are rebuilt from the parsed options (not sys.argv), so the relaunch sees exactly what this
process parsed, whichever way it was invoked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from dehazekit.runtimes.errors import DehazeKitError


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def command_args(ctx: Any, drop: tuple[str, ...] = ("nproc",)) -> list[str]:
    """The options of ``ctx`` (a click/typer context) with their parsed values, as a command line."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        options = getattr(param, "opts", None) or [""]
        if param.name in drop or value is None or not options[0].startswith("-"):  # options only
            continue
        flag = param.opts[0]
        if param.is_flag:
            if value != param.default:
                args.append(flag if value else (param.secondary_opts or [flag])[0])
        elif param.multiple:
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


def relaunch(ctx: Any, nproc: int, command: str) -> None:
    """Run ``python -m torch.distributed.run --standalone --nproc-per-node N -m dehazekit COMMAND ...``
    and exit with its status."""
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "dehazekit",
        command,
        *command_args(ctx),
    ]
    code = subprocess.call(launcher)
    if code:
        raise DehazeKitError.build(
            f"{nproc}-process {command} failed",
            got=f"exit status {code}",
            fix="the processes' own error lines are printed above",
        )
