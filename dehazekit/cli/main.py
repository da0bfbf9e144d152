"""Typer app. Commands live one module each and register themselves; heavy imports stay inside them."""

from __future__ import annotations

import typer

from dehazekit.cli import adapt_cmd, backbones_cmd, bank_cmd, data_cmd, export_cmd, run_cmd
from dehazekit.cli.console import setup_logging
from dehazekit.cli.suggest import group_class

app = typer.Typer(
    name="dehazekit",
    help="Adapt dehazing networks to your real haze (BiLaLoRA), export ONNX/TensorRT, "
    "dehaze images and video.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=group_class(),
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    setup_logging(verbose)


@app.command("version")
def version() -> None:
    """Print the dehazekit version."""
    from dehazekit.runtimes import __version__

    typer.echo(__version__)


for _module in (backbones_cmd, adapt_cmd, export_cmd, run_cmd, data_cmd, bank_cmd):
    _module.register(app)

if __name__ == "__main__":
    app()
