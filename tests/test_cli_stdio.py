"""`-` as a file, as in sox and ffmpeg: `-o -` writes the audio to standard output, an input of `-` reads
it from standard input, so that commands pipe into each other and into players."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from audioldm_cli.cli import app

FAST = ["--device", "cpu", "--steps", "2", "--seed", "3"]


def run(*args, stdin: bytes | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


@pytest.fixture(scope="module")
def clip() -> bytes:
    """0.5 s of a 16 kHz WAV, as bytes."""
    t = np.arange(8000) / 16000
    data = io.BytesIO()
    sf.write(data, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16000, format="WAV")
    return data.getvalue()


def test_generate_writes_the_audio_to_stdout_in_the_format_asked(tiny_model, tmp_path):
    args = ["generate", "rain", "--model", tiny_model, "--duration", "0.4", *FAST]
    piped = run(*args, "-o", "-", "--format", "flac")
    assert piped.exit_code == 0, piped.stderr
    audio, rate = sf.read(io.BytesIO(piped.stdout_bytes))  # stdout holds the FLAC file and nothing else
    assert piped.stdout_bytes[:4] == b"fLaC" and rate == 16000 and audio.shape == (6400,)
    saved = run(*args, "-o", tmp_path / "rain.flac")
    assert saved.exit_code == 0 and saved.stdout.strip() == str(tmp_path / "rain.flac")
    np.testing.assert_array_equal(audio, sf.read(tmp_path / "rain.flac")[0])  # the same samples
    assert not (tmp_path / "-").exists() and not os.path.exists("-")


def test_reconstruct_and_edits_read_stdin(tiny_model, tmp_path, clip):
    result = run("reconstruct", "-", "-o", "-", "--model", tiny_model, "--device", "cpu", stdin=clip)
    assert result.exit_code == 0, result.stderr
    audio, rate = sf.read(io.BytesIO(result.stdout_bytes))
    assert result.stdout_bytes[:4] == b"RIFF" and rate == 16000 and audio.shape == (8000,)
    out = tmp_path / "fixed.wav"
    result = run("inpaint", "-", "a bell", "--start", "0.1", "--end", "0.3", "--model", tiny_model, *FAST,
                 "-o", out, stdin=clip)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out) and sf.info(out).frames == 8000
    result = run("transfer", "-", "a bell", "--model", tiny_model, *FAST, "-o", "-", stdin=clip)
    assert result.exit_code == 0 and sf.read(io.BytesIO(result.stdout_bytes))[0].shape == (8000,)


def test_edits_take_format_for_their_default_name_and_stdout(tiny_model, tmp_path, clip):
    src = tmp_path / "in.wav"
    src.write_bytes(clip)
    result = run("transfer", src, "rain", "--model", tiny_model, *FAST, "--format", "flac")
    assert result.exit_code == 0 and result.stdout.strip() == str(tmp_path / "in_transfer.flac"), (
        result.output
    )
    assert sf.info(tmp_path / "in_transfer.flac").format == "FLAC"
    result = run("inpaint", src, "x", "--start", "0.1", "--end", "0.2", "--model", tiny_model, *FAST,
                 "-o", "-", "--format", "ogg")  # fmt: skip
    assert result.exit_code == 0 and result.stdout_bytes[:4] == b"OggS"
    assert sf.info(io.BytesIO(result.stdout_bytes)).frames == 8000
    result = run(
        "superres",
        src,
        "--cutoff",
        "3000",
        "--model",
        tiny_model,
        "-o",
        tmp_path / "x.wav",
        "--format",
        "flac",
    )
    assert result.exit_code == 2 and "with -o FILE its extension decides" in result.stderr


def test_superres_from_stdin_takes_its_nyquist_frequency_as_the_cutoff(tiny_model, tmp_path):
    t = np.arange(4000) / 8000
    data = io.BytesIO()
    sf.write(data, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, format="WAV")
    out = tmp_path / "sr.wav"
    result = run("superres", "-", "--model", tiny_model, *FAST, "-o", out, stdin=data.getvalue())
    assert result.exit_code == 0, result.stderr
    assert "--cutoff 4000 Hz (the input's Nyquist frequency)" in result.stderr
    assert sf.info(out).samplerate == 16000 and sf.info(out).frames == 8000


def test_an_unknown_length_stream_is_one_clear_error(tiny_model, tmp_path):
    """FLAC written to a pipe states no length (libsndfile reports 2**63 - 1 frames and cannot read it)."""
    data = io.BytesIO()
    sf.write(data, np.zeros(1600, np.float32), 16000, format="FLAC")
    flac = bytearray(data.getvalue())
    info = int.from_bytes(flac[8:26], "big") & ~((1 << 36) - 1)  # STREAMINFO's total samples: 0, unknown
    flac[8:26] = info.to_bytes(18, "big")
    result = run("reconstruct", "-", "-o", tmp_path / "x.wav", "--model", tiny_model, stdin=bytes(flac))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: standard input: the stream does not state its length" in result.stderr
    assert not (tmp_path / "x.wav").exists()


def test_a_closed_pipe_on_stdout_ends_quietly(tiny_model):
    """The reader went away (`... -o - | head -c 0`): exit 141 like other Unix tools, no error lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "audioldm_cli", "generate", "rain", "--model", str(tiny_model), "--device", "cpu",
         "--duration", "2", "--steps", "2", "-o", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.stdout.close()  # nobody reads the audio
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 141, err.decode()
    assert b"error:" not in err, err.decode()


@pytest.mark.parametrize(
    "args,stdin,code,message",
    [
        (["reconstruct", "-"], b"", 2, "input - (standard input) is read alone and has no name to derive"),
        (["superres", "-", "--cutoff", "3000"], b"", 2, "give -o OUT (or -o -)"),
        (["reconstruct", "-", "-o", "-", "--report"], b"", 2, "--report prints to standard output"),
        (["encode", "-", "-o", "{tmp}/lat"], b"", 2, "encode reads files, not standard input (-)"),
        (["mel", "-", "-o", "{tmp}/m.npy"], b"", 2, "mel reads files, not standard input (-)"),
        (["reconstruct", "-", "-o", "{tmp}/r.wav"], b"", 1, "standard input: empty (0 bytes)"),
        (
            ["reconstruct", "-", "-o", "{tmp}/r.wav"],
            b"not audio at all",
            1,
            "standard input: not readable audio",
        ),
        (
            ["generate", "x", "-o", "{tmp}/x.wav", "--format", "flac"],
            None,
            2,
            "with -o FILE its extension decides",
        ),
        (["generate", "x", "-o", "-", "--format", "aac"], None, 2, "--format 'aac': choose one of"),
        (["generate", "x", "--out-dir", "-"], None, 2, "--out-dir -: standard output takes one audio file"),
        (["encode", "{tmp}/a.wav", "-o", "-"], None, 2, "--out-dir -: standard output takes one audio file"),
        (["reconstruct", "-", "{tmp}/a.wav", "--out-dir", "{tmp}/o"], b"", 2, "give it as the only input"),
        (["generate", "--audio-prompt", "-"], b"", 2, "--audio-prompt - (standard input) has no name"),
    ],
)
def test_stdio_misuse_is_one_error_line(tiny_model, tmp_path, args, stdin, code, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args] + (
        [] if args[0] == "mel" else ["--model", tiny_model]
    )
    result = run(*args, stdin=stdin)
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.output and not result.stdout_bytes
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_terminal_is_never_read_or_written_as_audio(monkeypatch):
    from audioldm_cli.audio import check_stdin_audio, check_stdout_audio, read_audio, write_audio
    from audioldm_cli.errors import UsageError

    class Terminal(io.BytesIO):
        buffer = property(lambda self: self)

        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", io.StringIO())  # a notebook's: text only
    with pytest.raises(UsageError, match="standard output is closed or takes no bytes here"):
        write_audio("-", torch.zeros(100), 16000)
    monkeypatch.setattr(sys, "stdout", Terminal())
    monkeypatch.setattr(sys, "stdin", Terminal(b"RIFF"))
    with pytest.raises(UsageError, match="standard output is a terminal"):
        check_stdout_audio()
    with pytest.raises(UsageError, match="standard output is a terminal"):
        write_audio("-", torch.zeros(100), 16000)
    assert sys.stdout.getvalue() == b""
    with pytest.raises(UsageError, match="standard input is a terminal"):
        check_stdin_audio()
    with pytest.raises(UsageError, match="standard input is a terminal"):
        read_audio("-")


def test_commands_pipe_into_each_other(tiny_model, tmp_path):
    """Real pipes between processes: generate | reconstruct | superres, the last one writing a file."""
    cli = [sys.executable, "-m", "audioldm_cli", "-q"]
    model = ["--model", str(tiny_model), "--device", "cpu"]
    out = tmp_path / "out.ogg"
    gen = subprocess.Popen([*cli, "generate", "rain", *model, "--duration", "0.5", "--steps", "2", "--seed", "1",
                            "-o", "-"], stdout=subprocess.PIPE)  # fmt: skip
    rec = subprocess.Popen([*cli, "reconstruct", "-", *model, "--vocoder-only", "-o", "-", "--format", "flac"],
                           stdin=gen.stdout, stdout=subprocess.PIPE)  # fmt: skip
    gen.stdout.close()
    sup = subprocess.run([*cli, "superres", "-", *model, "--steps", "2", "--cutoff", "3000", "-o", str(out)],
                         stdin=rec.stdout, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    rec.stdout.close()
    assert gen.wait(timeout=300) == 0 and rec.wait(timeout=300) == 0
    assert sup.returncode == 0, sup.stderr
    assert sup.stdout.strip() == str(out) and sf.info(out).frames == 8000


def test_dot_slash_dash_is_the_file_named_dash(tiny_model, tmp_path, clip, monkeypatch):
    """pathlib shortens "./-" to "-": the CLI keeps it a file, so a file named "-" is reachable as in sox."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_bytes(clip)
    result = run("reconstruct", "./-", "-o", "./-.out.wav", "--model", tiny_model, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert sf.info(tmp_path / "-.out.wav").frames == 8000
    (tmp_path / "-").unlink()
    args = ["generate", "rain", "--model", tiny_model, "--duration", "0.4", *FAST, "-o", "./-"]
    result = run(*args, "--format", "flac")  # --format is for -o - only: "./-" is a file
    assert result.exit_code == 2 and "with -o FILE its extension decides" in result.stderr
    result = run("transfer", "./-", "a bell", "--model", tiny_model, *FAST, "-o", "x.wav", stdin=clip)
    assert result.exit_code != 0 and str(tmp_path / "-") in result.stderr  # the missing file, not stdin
    assert not (tmp_path / "x.wav").exists()


def test_prompts_file_dash_reads_the_prompts_from_stdin(tiny_model, tmp_path):
    out = tmp_path / "out"
    args = [
        "generate",
        "--prompts-file",
        "-",
        "--out-dir",
        out,
        "--model",
        tiny_model,
        "--duration",
        "0.3",
        *FAST,
    ]
    result = run(*args, stdin=b"rain\n# a comment\ndog\tA dog barks\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == [str(out / "rain_0.wav"), str(out / "dog_0.wav")]
    empty = run(*args, stdin=b"\n")
    assert empty.exit_code == 2 and "--prompts-file - (standard input): holds no prompts" in empty.stderr


def test_prompts_file_dash_refuses_a_terminal(tiny_model, tmp_path, monkeypatch):
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    from audioldm_cli.batch import read_prompts_file
    from audioldm_cli.errors import UsageError

    with pytest.raises(UsageError, match="standard input is a terminal; pipe the prompts in"):
        read_prompts_file("-")


def test_standard_input_from_a_device_is_refused(tmp_path):
    import subprocess
    import sys

    code = "from audioldm_cli.audio import read_audio; read_audio('-')"
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run(
            [sys.executable, "-c", code], stdin=zero, capture_output=True, text=True, timeout=60, check=False
        )
    assert proc.returncode != 0 and "standard input: a device, not audio" in proc.stderr
