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


def test_importing_the_cli_loads_neither_torch_nor_numpy():
    """`audioldm --help` stays fast, and Ctrl-C while torch loads meets the CLI's handler, not a traceback."""
    import subprocess
    import sys

    code = "import sys, audioldm_cli.cli; print(*(m for m in ('torch', 'numpy') if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


def test_closed_stdout_stops_quietly(tiny_model):
    """`audioldm info M | head -1`: the reader leaving early is not an error (no 'error:' line, no traceback)."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "audioldm_cli", "info", str(tiny_model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.readline()
    proc.stdout.close()  # like `head -1` exiting
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "error" not in stderr.lower() and "Traceback" not in stderr
    assert proc.returncode in (0, 141)


def test_quiet_and_verbose_also_follow_the_command(tiny_model):
    """`audioldm info M -q` works like `audioldm -q info M`; after `--` a "-q" is an argument, not the flag."""
    import logging

    log = logging.getLogger("audioldm_cli")
    for args, level in (
        (["info", str(tiny_model), "-q"], logging.ERROR),
        (["info", "--quiet", str(tiny_model)], logging.ERROR),
        (["info", str(tiny_model), "-v"], logging.DEBUG),
        (["-q", "info", str(tiny_model), "--verbose"], logging.ERROR),  # quiet wins, as before the command
        (["info", str(tiny_model)], logging.INFO),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert log.level == level, args
    result = runner.invoke(app, ["info", str(tiny_model), "--", "-q"])
    assert result.exit_code == 2 and "-q" in result.output  # an extra argument, refused by `info`
    assert runner.invoke(app, ["info", str(tiny_model), "-x"]).exit_code == 2
