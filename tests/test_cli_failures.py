"""How commands fail: click's usage errors as one line, SIGTERM cleaned up like Ctrl-C, an output
name taken while an edit runs, and a batch going on past an output it cannot write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from audioldm_cli.cli import app, cli_command

runner = CliRunner()


def tone(path: Path, n: int = 1600, rate: int = 16000) -> Path:
    sf.write(path, (0.3 * np.sin(2 * np.pi * 330 * np.arange(n) / rate)).astype(np.float32), rate)
    return path


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "args, message",
    [
        (["reconstruct"], "error: Missing argument 'inputs'. (see 'audioldm reconstruct -h')"),
        (["mel", "x.wav", "--bogus"], "error: No such option: --bogus (see 'audioldm mel -h')"),
        (["generate", "rain", "--steps", "abc"], "error: Invalid value for '--steps': "),
        (["transfer", "in.wav", "jazz", "--seed", "-1"], "error: Invalid value for '--seed': "),
        (["train", "vae"], "error: Missing option '--data'. (see 'audioldm train vae -h')"),
        (["frobnicate"], "error: No such command 'frobnicate'."),
    ],
)
def test_usage_errors_of_the_parser_are_one_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = error_lines(result.output)
    assert len(lines) == 1 and lines[0].startswith(message), result.output


@pytest.mark.parametrize("args", [[], ["train"]])
def test_a_bare_group_still_shows_its_help(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Usage" in result.output and "error:" not in result.output


def test_sigterm_runs_the_cleanup_then_exits_143(tmp_path):
    """SIGTERM raises inside the command, so that a claimed output and its temp file are removed."""
    from audioldm_cli.audio import write_audio
    from audioldm_cli.batch import claim_output

    target = tmp_path / "out.wav"

    def slow_writer(path, wav, rate):
        write_audio(path, wav, rate)  # a complete file, then the signal before the rename would happen
        os.kill(os.getpid(), signal.SIGTERM)

    @cli_command
    def command():
        import torch

        with claim_output(target, overwrite=False) as path:
            from vocoder.checkpoint import atomic_path

            with atomic_path(path) as tmp:
                slow_writer(tmp, torch.zeros(1600), 16000)

    def unhandled(signum, frame):  # what runs if the command installed no handler: fail, do not die
        raise RuntimeError("SIGTERM reached the test's own handler")

    original = signal.signal(signal.SIGTERM, unhandled)
    try:
        with pytest.raises(typer.Exit) as caught:
            command()
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the command's handler is its own only
    finally:
        signal.signal(signal.SIGTERM, original)
    assert caught.value.exit_code == 143
    assert list(tmp_path.iterdir()) == []  # neither the claimed name nor a temp file is left


def test_sigterm_stops_a_real_command(tiny_model, tmp_path):
    """`audioldm generate` killed with SIGTERM while sampling: exit 143, one line, no output."""
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "audioldm_cli", "generate", "rain", "--model", str(tiny_model), "--device",
           "cpu", "--steps", "900", "--duration", "20", "--out-dir", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # the handler is in place once the model has loaded
        seen.append(line)
        if line.startswith("INFO: loaded"):
            break
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, "".join(seen) + stderr
    assert stderr.strip().splitlines()[-1] == "error: terminated"
    assert "Traceback" not in stderr and stdout == ""
    assert list(out.iterdir()) == []


def test_an_edit_does_not_replace_a_file_that_appeared_meanwhile(tiny_model, tmp_path, monkeypatch):
    from audioldm_cli import editing

    src = tone(tmp_path / "in.wav")
    target = tmp_path / "in_transfer.wav"
    real = editing.transfer

    def transfer_while_another_process_writes(*args, **kwargs):
        target.write_text("someone else's file")
        return real(*args, **kwargs)

    monkeypatch.setattr(editing, "transfer", transfer_while_another_process_writes)
    args = ["transfer", str(src), "jazz", "--model", str(tiny_model), "--steps", "3", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert (
        error_lines(result.output)[-1]
        == f"error: {target} appeared while running (another process?); not overwritten"
    )
    assert target.read_text() == "someone else's file"


def _blocked(folder: Path, name: str) -> Path:
    """An output name taken by a folder: writing it fails with an OSError (-y passes the up-front check)."""
    (folder / name).mkdir(parents=True)
    return folder / name


@pytest.mark.parametrize(
    "command, blocked, written",
    [
        ("reconstruct", "a_recon.wav", "b_recon.wav"),
        ("encode", "a.latent.safetensors", "b.latent.safetensors"),
        ("mel", "a.npy", "b.npy"),
    ],
)
def test_a_batch_goes_on_past_an_output_it_cannot_write(tiny_model, tmp_path, command, blocked, written):
    a, b = tone(tmp_path / "a.wav"), tone(tmp_path / "b.wav", 2000)
    out = tmp_path / "out"
    bad = _blocked(out, blocked)
    dest = ["-o", str(out)] if command == "encode" else ["--out-dir", str(out)]
    model = [] if command == "mel" else ["--model", str(tiny_model), "--device", "cpu"]
    result = runner.invoke(app, [command, str(a), str(b), *dest, "-y", *model])
    assert result.exit_code == 1, result.output
    assert f"error: {bad}: cannot write it (Is a directory)" in result.output
    assert ".tmp" not in result.output  # the output is named, not the temp file the write failed on
    assert (out / written).is_file() and bad.is_dir()
    assert sorted(p.name for p in out.iterdir()) == sorted([blocked, written])  # no temp file left


def test_one_failed_input_is_one_error_line(tiny_model, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    for command, dest in (("reconstruct", []), ("encode", ["-o", str(tmp_path / "latents")])):
        result = runner.invoke(app, [command, str(bad), *dest, "--model", str(tiny_model), "--device", "cpu"])
        assert result.exit_code == 1
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "bad.wav" in errors[0], result.output


def test_an_empty_output_left_by_a_killed_run_is_named_as_such(tiny_model, tmp_path):
    """A run killed hard (SIGKILL) cannot remove the name it claimed; the next run says what it likely is."""
    src = tone(tmp_path / "a.wav")
    args = ["reconstruct", str(src), "--model", str(tiny_model), "--device", "cpu", "-o"]
    (tmp_path / "left.wav").touch()
    result = runner.invoke(app, [*args, str(tmp_path / "left.wav")])
    assert result.exit_code == 2
    assert "already exists (an empty file: perhaps left by a run that was killed)" in result.output
    tone(tmp_path / "real.wav")
    result = runner.invoke(app, [*args, str(tmp_path / "real.wav")])
    assert result.exit_code == 2 and "real.wav already exists; pass -y/--overwrite" in result.output
    result = runner.invoke(app, [*args, str(tmp_path / "left.wav"), "-y"])
    assert result.exit_code == 0 and sf.info(tmp_path / "left.wav").frames == 1600


def test_format_names_the_outputs_of_out_dir(tiny_model, tmp_path):
    a, b = tone(tmp_path / "a.wav"), tone(tmp_path / "b.wav", 2000)
    model = ["--model", str(tiny_model), "--device", "cpu"]
    result = runner.invoke(
        app, ["reconstruct", str(a), str(b), "--out-dir", str(tmp_path / "r"), "--format", "flac", *model]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["a_recon.flac", "b_recon.flac"]
    assert sf.info(tmp_path / "r" / "b_recon.flac").frames == 2000
    gen = [
        "generate",
        "rain",
        "--out-dir",
        str(tmp_path / "g"),
        "--steps",
        "2",
        "--duration",
        "0.3",
        "--seed",
        "0",
    ]
    result = runner.invoke(app, [*gen, "--format", "OGG", *model])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["rain_0.ogg"]
    for args, message in (
        (
            ["reconstruct", str(a), "-o", str(tmp_path / "x.wav"), "--format", "flac"],
            "with -o FILE its extension decides",
        ),
        (["reconstruct", str(a), "--format", "aac"], "--format 'aac': choose one of wav, flac, ogg"),
    ):
        result = runner.invoke(app, [*args, *model])
        assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize("command, failing, written", [
    ("reconstruct", "a_recon.wav", "b_recon.wav"),
    ("encode", "a.latent.safetensors", "b.latent.safetensors"),
])  # fmt: skip
def test_a_full_disk_is_one_error_line_per_item(tiny_model, tmp_path, monkeypatch, command, failing, written):
    """libsndfile says only "System error" and safetensors raises its own error type when the disk is
    full: each is an OSError naming the output and the reason, and the batch goes on."""
    import shutil

    import safetensors.torch
    from safetensors import SafetensorError

    real_write, real_save = sf.SoundFile.write, safetensors.torch.save_file

    def fails(name) -> bool:  # the atomic write's temp file for the failing output: .<stem>.<random>.tmp<ext>
        return Path(name).name.startswith(f".{Path(failing).stem}.")

    def write(self, data):
        if fails(self.name):
            raise sf.LibsndfileError(2)  # SF_ERR_SYSTEM, what a full disk gives
        return real_write(self, data)

    def save_file(tensors, filename, metadata=None):
        if fails(filename):
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(sf.SoundFile, "write", write)
    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 0))
    a, b = tone(tmp_path / "a.wav"), tone(tmp_path / "b.wav", 2000)
    out = tmp_path / "out"
    dest = ["-o", str(out)] if command == "encode" else ["--out-dir", str(out)]
    result = runner.invoke(
        app, [command, str(a), str(b), *dest, "--model", str(tiny_model), "--device", "cpu"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"error: {out / failing}: cannot write it (No space left on device)" in error_lines(result.output)
    assert sorted(p.name for p in out.iterdir()) == [written]  # no partial or temp file left
