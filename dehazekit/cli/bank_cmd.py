"""`dehazekit bank build` / `bank info`: one base model plus a bank of scene adapters."""

from __future__ import annotations

from pathlib import Path

import typer

from dehazekit.catalog import WEIGHTS_SYNTHETIC
from dehazekit.cli.console import cli_errors, console

bank_app = typer.Typer(
    help="Adapter banks: one base network, scene adapters switched live.", no_args_is_help=True
)


def _parse_haze(values: list[str]) -> dict[str, float]:
    from dehazekit.runtimes.errors import ConfigError

    out = {}
    for text in values:
        name, sep, value = text.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError.build("bad --haze value", got=text, expected="NAME=SCORE, e.g. dense=0.55")
    return out


@bank_app.command("build")
@cli_errors
def build(
    adapters: list[str] = typer.Argument(
        ..., help="Adapter folders from `dehazekit adapt` (NAME=DIR to name one)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Bank folder to write."),
    base: str = typer.Option(
        WEIGHTS_SYNTHETIC,
        "--base",
        help="The base model the adapters were made from: a model folder, or a bundled model "
        "(synthetic, where adapt starts; default).",
    ),
    haze: list[str] = typer.Option(
        [],
        "--haze",
        help="NAME=SCORE haze signature for --route auto (default: measured on the adapter's own images).",
    ),
    trt: bool = typer.Option(
        False, "--trt", help="Also build a refittable TensorRT engine (dehazekit[trt])."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing bank folder."),
) -> None:
    """Check the adapters share one base, write base.onnx + each adapter's K-block weights + bank.json."""
    from dehazekit.exporters.bank import build_bank, build_bank_engine

    path = build_bank(adapters, out, base=base, haze=_parse_haze(haze), force=force)
    _print_info(path)
    if trt:
        console.print(f"wrote {build_bank_engine(path)}")


@bank_app.command("info")
@cli_errors
def info(bank: Path = typer.Argument(..., help="Bank folder.")) -> None:
    """List a bank's adapters, their blocks, sizes and haze signatures."""
    _print_info(bank)


def _print_info(folder: Path) -> None:
    from rich.table import Table

    from dehazekit.runtimes.bank import Bank

    bank = Bank(folder)
    m = bank.manifest
    table = Table(title=f"{folder} ({m['backbone']}; base.onnx {m['base_onnx_bytes'] / 1e6:.2f} MB)")
    for column in ("adapter", "blocks", "initializers", "KB", "haze"):
        table.add_column(column, justify="left" if column in ("adapter", "blocks") else "right")
    for name, e in m["adapters"].items():
        haze: float | None = e.get("haze")
        table.add_row(
            name,
            ", ".join(e["blocks"]) or "-",
            str(len(e["initializers"])),
            f"{e['bytes'] / 1e3:.1f}",
            "-" if haze is None else f"{haze:.3f}",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Register the `bank` command group on the root app."""
    app.add_typer(bank_app, name="bank")
