"""`dehazekit backbones`: list registered backbones with parameter counts and deploy facts."""
from __future__ import annotations

import typer

from dehazekit.cli.console import cli_errors, console


def register(app: typer.Typer) -> None:
    app.command("backbones")(backbones)


@cli_errors
def backbones(tiny: bool = typer.Option(False, "--tiny", help="Also list the tiny test configs.")) -> None:
    """List registered backbones: parameters, pad multiple, LoRA candidates, ONNX export support."""
    from rich.table import Table

    from dehazekit.backbones import count_parameters, get_spec, list_backbones

    table = Table(title="dehazekit backbones")
    for col in ("name", "family", "params", "pad multiple", "min size", "ONNX", "notes"):
        table.add_column(col, justify="right" if col in ("params", "pad multiple", "min size") else "left")
    for name in list_backbones(include_tiny=tiny):
        spec = get_spec(name)
        table.add_row(name, spec.family, f"{count_parameters(name):,}", str(spec.pad_multiple), str(spec.min_size),
                      "yes" if spec.exportable else "no", spec.export_note or spec.description)
    console.print(table)
