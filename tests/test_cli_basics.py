from typer.testing import CliRunner

from audioldm_cli import __version__
from audioldm_cli.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("generate", "reconstruct", "encode", "train", "info"):
        assert name in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unknown_command_is_usage_error():
    result = runner.invoke(app, ["frobnicate"])
    assert result.exit_code == 2
