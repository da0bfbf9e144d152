"""``python -m dehazekit`` (and ``torchrun -m dehazekit adapt ...``): the same CLI as ``dehazekit``."""

from dehazekit.cli.main import app

if __name__ == "__main__":
    app(prog_name="dehazekit")
