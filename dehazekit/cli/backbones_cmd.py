"""`dehazekit backbones`: list registered backbones with parameter counts and deploy facts."""

from __future__ import annotations

import typer

from dehazekit.cli.console import cli_errors, console, print_line


def register(app: typer.Typer) -> None:
    app.command("backbones")(backbones)


@cli_errors
def backbones(
    tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Also list the tiny test configs."),
    notes: bool = typer.Option(False, "--notes", help="Also print each backbone's export notes."),
) -> None:
    """List backbones: parameters, pad multiple, minimum size, ONNX export, the family name that picks it."""
    from rich.table import Table

    from dehazekit.backbones import count_parameters, get_spec, list_backbones
    from dehazekit.catalog import FAMILIES

    default_of = {fam.default: ", ".join(fam.aliases) for fam in FAMILIES.values()}
    # Fits 80 columns: short facts only; the long notes go below as plain lines (never wrapped mid-word).
    table = Table(title="dehazekit backbones")
    table.add_column("name", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("pad", justify="right", no_wrap=True)
    table.add_column("min", justify="right", no_wrap=True)
    table.add_column("ONNX", no_wrap=True)
    table.add_column("--backbone alias", no_wrap=True)
    names = list_backbones(include_tiny=tiny)
    for name in names:
        spec = get_spec(name)
        table.add_row(
            name,
            f"{count_parameters(name):,}",
            str(spec.pad_multiple),
            str(spec.min_size),
            "yes" if spec.exportable else "no",
            default_of.get(name, ""),
        )
    console.print(table)
    print_line("A family name (e.g. --backbone convir) picks the smallest released variant.")
    if notes:
        for name in names:
            spec = get_spec(name)
            print_line(f"{name}: {spec.export_note or spec.description}")
