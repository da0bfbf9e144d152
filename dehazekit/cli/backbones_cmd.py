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
    # Names and counts never wrap: users copy them; the notes column absorbs narrow terminals.
    table.add_column("name", no_wrap=True, min_width=14)
    table.add_column("family", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True, min_width=11)
    table.add_column("pad", justify="right", no_wrap=True)
    table.add_column("min size", justify="right", no_wrap=True)
    table.add_column("ONNX", no_wrap=True)
    table.add_column("notes", overflow="fold")
    for name in list_backbones(include_tiny=tiny):
        spec = get_spec(name)
        table.add_row(name, spec.family, f"{count_parameters(name):,}", str(spec.pad_multiple), str(spec.min_size),
                      "yes" if spec.exportable else "no", spec.export_note or spec.description)
    console.print(table)
