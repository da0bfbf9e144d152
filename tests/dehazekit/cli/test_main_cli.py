from typer.testing import CliRunner

from dehazekit.cli.main import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "backbones" in result.output


def test_backbones_lists_registered_names_with_params():
    from dehazekit.backbones import count_parameters, list_backbones

    result = runner.invoke(app, ["backbones"])
    assert result.exit_code == 0, result.output
    for name in list_backbones(include_tiny=False):
        assert name in result.output
        assert f"{count_parameters(name):,}" in result.output


def test_error_messages_keep_square_brackets():
    import typer

    from dehazekit.cli.console import cli_errors
    from dehazekit.runtimes.errors import missing_dependency

    app_ = typer.Typer()

    @app_.command()
    @cli_errors
    def boom() -> None:
        raise missing_dependency("tensorrt", "trt", "building engines")

    result = runner.invoke(app_, [])
    assert result.exit_code == 2
    assert "pip install 'dehazekit[trt]'" in result.output
