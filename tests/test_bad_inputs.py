"""The bad-input matrix (issue 10): every bad file, option or model gives one `error:` line, the right
exit code (2 usage, 1 runtime), no traceback and no output or temp file left; odd-but-valid inputs
(silence, 8 channels, 8 and 96 kHz, a 10,000-character prompt) succeed.

Commands run through CliRunner, plus a few real runs of the `audioldm` console script.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from audioldm_cli.cli import app
from audioldm_cli.testing import make_tiny_model

runner = CliRunner()
SR = 16000
LOG_PREFIXES = ("INFO:", "WARNING:", "DEBUG:")


@pytest.fixture(scope="module")
def recon_model(tmp_path_factory) -> Path:
    """A tiny reconstruct-only model (no UNet, no text encoder): loads in a fraction of a second."""
    return make_tiny_model(tmp_path_factory.mktemp("bad_inputs") / "model", with_unet=False)


def tone(n: int, rate: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave * (c + 1) / channels for c in range(channels)], 1)


def wav_bytes(n: int = 4000, subtype: str = "PCM_16") -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, tone(n), SR, format="WAV", subtype=subtype)
    return buf.getvalue()


def error_lines(result) -> list[str]:
    """stderr lines that are not log records (those are INFO:/WARNING:/DEBUG: lines)."""
    return [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith(LOG_PREFIXES)]


def assert_clean_failure(result, code: int, message: str) -> None:
    """Exit `code`, `error: ...` lines only (the first naming `message`), no traceback, nothing on stdout."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert lines, result.output
    assert all(ln.startswith("error: ") for ln in lines), lines
    assert message in lines[0], lines
    assert result.stdout == ""  # no path reported as written


def files_in(folder: Path) -> list[str]:
    """Every entry under `folder`, hidden temp files included."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# ----------------------------------------------------------------------------------------------
# 1. bad audio inputs, through `mel` and `reconstruct`


def _missing(d: Path) -> Path:
    return d / "absent.wav"


def _directory(d: Path) -> Path:
    (d / "folder.wav").mkdir()
    return d / "folder.wav"


def _empty_folder(d: Path) -> Path:
    (d / "nothing").mkdir()
    return d / "nothing"


def _empty(d: Path) -> Path:
    (d / "empty.wav").write_bytes(b"")
    return d / "empty.wav"


def _truncated_header(d: Path) -> Path:
    (d / "head.wav").write_bytes(wav_bytes()[:30])
    return d / "head.wav"


def _truncated_data(d: Path) -> Path:
    (d / "half.wav").write_bytes(wav_bytes()[:3000])
    return d / "half.wav"


def _random_bytes(d: Path) -> Path:
    (d / "noise.wav").write_bytes(np.random.default_rng(1).bytes(5000))
    return d / "noise.wav"


def _text_file(d: Path) -> Path:
    (d / "notes.wav").write_text("this is not audio\n" * 50)
    return d / "notes.wav"


def _text_txt(d: Path) -> Path:
    (d / "notes.txt").write_text("this is not audio either\n" * 50)
    return d / "notes.txt"


def _zero_length(d: Path) -> Path:
    sf.write(d / "zero.wav", np.zeros(0, np.float32), SR)
    return d / "zero.wav"


def _nan(d: Path) -> Path:
    wave = tone(4000)
    wave[1234] = np.nan
    sf.write(d / "nan.wav", wave, SR, subtype="FLOAT")
    return d / "nan.wav"


def _inf(d: Path) -> Path:
    wave = tone(4000)
    wave[10:12] = np.inf
    sf.write(d / "inf.wav", wave, SR, subtype="FLOAT")
    return d / "inf.wav"


BAD_AUDIO = {
    "missing file": (_missing, "no such file"),
    "directory named .wav": (_directory, "folder holds no audio files"),
    "folder without audio": (_empty_folder, "folder holds no audio files"),
    "empty file": (_empty, "empty file (0 bytes)"),
    "truncated WAV header": (_truncated_header, "not a readable audio file"),
    "truncated WAV data": (_truncated_data, "truncated WAV file"),
    "random bytes .wav": (_random_bytes, "not a readable audio file"),
    "text file .wav": (_text_file, "not a readable audio file"),
    "text file .txt": (_text_txt, "not a readable audio file"),
    "zero-length audio": (_zero_length, "holds no audio samples"),
    "NaN samples": (_nan, "NaN/inf samples (first at sample 1234)"),
    "inf samples": (_inf, "2 NaN/inf samples (first at sample 10)"),
}


@pytest.mark.parametrize("command", ["mel", "reconstruct"])
@pytest.mark.parametrize("case", list(BAD_AUDIO))
def test_bad_audio_file(case, command, recon_model, tmp_path):
    make, message = BAD_AUDIO[case]
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir(), out_dir.mkdir()
    src = make(src_dir)
    before = files_in(src_dir)
    if command == "mel":
        args = ["mel", str(src), "-o", str(out_dir / "x.npy")]
    else:
        args = [
            "reconstruct",
            str(src),
            "-o",
            str(out_dir / "x.wav"),
            "--model",
            str(recon_model),
            "--device",
            "cpu",
        ]
    result = runner.invoke(app, args)
    assert_clean_failure(result, 1, message)
    assert files_in(out_dir) == [] and files_in(src_dir) == before  # no output, no temp file


def test_bad_items_in_a_batch_are_skipped(recon_model, tmp_path):
    """Every bad file of a batch is reported on its own line; the good ones are written; exit 1."""
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir(), out_dir.mkdir()
    bad = [
        make(src_dir)
        for make, _ in (BAD_AUDIO[k] for k in ("empty file", "random bytes .wav", "NaN samples"))
    ]
    sf.write(src_dir / "a_good.wav", tone(3200), SR)
    sf.write(src_dir / "z_good.wav", tone(1600), SR)
    for command, suffix in (("mel", ".npy"), ("reconstruct", "_recon.wav")):
        extra = ["--model", str(recon_model), "--device", "cpu"] if command == "reconstruct" else []
        result = runner.invoke(app, [command, str(src_dir), "--out-dir", str(out_dir), *extra])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        lines = error_lines(result)
        assert len(lines) == len(bad) + 1 and all(ln.startswith("error: ") for ln in lines)
        for path in bad:
            assert sum(str(path) in ln for ln in lines) == 1, (path, lines)
        assert "3 of 5 input" in lines[-1]
        written = sorted(p.name for p in out_dir.iterdir())
        assert written == sorted(n for n in written if n.startswith(("a_good", "z_good")))  # no temp files
        assert [n for n in written if n.endswith(suffix)] == [f"a_good{suffix}", f"z_good{suffix}"]
    assert sf.info(out_dir / "a_good_recon.wav").frames == 3200
    assert sf.info(out_dir / "z_good_recon.wav").frames == 1600


# ----------------------------------------------------------------------------------------------
# 2. odd but valid audio: must succeed, output as long as the input at the model rate


@pytest.mark.parametrize(
    "name, data, rate, seconds",
    [
        ("silent", np.zeros(8000, np.float32), SR, 0.5),
        ("eight_channels", tone(4000, SR, channels=8), SR, 0.25),
        ("rate_8k", tone(4000, 8000), 8000, 0.5),
        ("rate_96k", tone(24000, 96000), 96000, 0.25),
    ],
)
def test_odd_but_valid_audio_is_reconstructed(name, data, rate, seconds, recon_model, tmp_path):
    src = tmp_path / f"{name}.wav"
    sf.write(src, data, rate)
    out = tmp_path / "out.wav"
    result = runner.invoke(
        app, ["reconstruct", str(src), "-o", str(out), "--model", str(recon_model), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out)]
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames) == (SR, 1, round(seconds * SR))
    wav, _ = sf.read(out, dtype="float32")
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0
    mel = runner.invoke(app, ["mel", str(src), "-o", str(tmp_path / "m.npy")])
    assert mel.exit_code == 0, mel.output
    spec = np.load(tmp_path / "m.npy")
    assert spec.shape == (round(seconds * SR) // 160 + 1, 64) and np.isfinite(spec).all()
    if name == "silent":  # log(clamp(0, 1e-5)) everywhere
        np.testing.assert_allclose(spec, math.log(1e-5), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# 3. outputs: unwritable folder, existing file, missing folder


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores modes: use /proc then)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # running as root
        return Path("/proc")
    return folder


def test_unwritable_output_folder(recon_model, tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone(3200), SR)
    folder = unwritable_folder(tmp_path)
    for args in (
        [
            "reconstruct",
            str(src),
            "-o",
            str(folder / "out.wav"),
            "--model",
            str(recon_model),
            "--device",
            "cpu",
        ],
        ["reconstruct", str(src), "--out-dir", str(folder), "--model", str(recon_model), "--device", "cpu"],
        ["mel", str(src), "-o", str(folder / "out.npy")],
        ["mel", str(src), "--out-dir", str(folder)],
    ):
        result = runner.invoke(app, args)
        assert_clean_failure(result, 2, f"{folder}")
        assert "writable" in result.stderr, result.stderr
        assert not (folder / "out.wav").exists() and not (folder / "a_recon.wav").exists()


def test_unwritable_folder_for_generate(tiny_model, tmp_path):
    folder = unwritable_folder(tmp_path)
    for args in (["-o", str(folder / "x.wav")], ["--out-dir", str(folder)]):
        result = runner.invoke(
            app,
            [
                "generate",
                "x",
                *args,
                "--model",
                str(tiny_model),
                "--device",
                "cpu",
                "--steps",
                "1",
                "--duration",
                "0.05",
            ],
        )
        assert_clean_failure(result, 2, f"{folder}")
        assert "writable" in result.stderr


def test_an_unwritable_folder_beside_inputs_fails_its_items_before_their_work(
    recon_model, tmp_path, monkeypatch
):
    from audioldm_cli import cli
    from audioldm_cli.errors import UsageError

    for sub in ("locked", "open"):
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "a.wav", tone(3200), SR)
    real = cli.check_writable_folder

    def check(folder, label="--out-dir"):  # as for a read-only mount (root ignores file modes)
        if folder.name == "locked":
            raise UsageError(f"{label} {folder} is not writable (Read-only file system)")
        return real(folder, label)

    monkeypatch.setattr(cli, "check_writable_folder", check)
    calls = []
    from audioldm_cli.pipeline import AudioLDM

    original = AudioLDM.reconstruct
    monkeypatch.setattr(
        AudioLDM, "reconstruct", lambda self, wav, **kw: calls.append(1) or original(self, wav, **kw)
    )
    args = [str(tmp_path / "locked" / "a.wav"), str(tmp_path / "open" / "a.wav"), "--model", str(recon_model)]
    result = runner.invoke(app, ["reconstruct", *args, "--refine-steps", "0"])
    assert result.exit_code == 1, result.output
    assert error_lines(result)[0].startswith(f"error: {tmp_path / 'locked' / 'a.wav'}: output folder")
    assert len(calls) == 1 and (tmp_path / "open" / "a_recon.wav").is_file()  # the locked one never computed


def test_existing_output_is_kept_without_overwrite(recon_model, tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone(3200), SR)
    for command, out in (("reconstruct", tmp_path / "a_recon.wav"), ("mel", tmp_path / "a.npy")):
        out.write_bytes(b"keep me")
        extra = ["--model", str(recon_model), "--device", "cpu"] if command == "reconstruct" else []
        result = runner.invoke(app, [command, str(src), "-o", str(out), *extra])
        assert_clean_failure(result, 2, f"output {out} already exists; pass -y/--overwrite")
        assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "a.wav", "a_recon.wav"]


def test_symlink_loops_are_one_item_errors_and_the_batch_goes_on(recon_model, tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone(3200), SR)
    loop = tmp_path / "loop.wav"
    loop.symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(loop)
    out = tmp_path / "out"
    model = ["--model", str(recon_model), "--device", "cpu", "--refine-steps", "0"]
    result = runner.invoke(app, ["reconstruct", str(loop), str(src), "--out-dir", str(out), *model])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert [ln for ln in error_lines(result) if str(loop) in ln] and (out / "a_recon.wav").is_file()
    result = runner.invoke(app, ["reconstruct", str(src), "-o", str(loop), *model])  # the output a loop
    assert result.exit_code in (1, 2) and "Traceback" not in result.output, result.output


def test_a_dangling_link_as_output_is_refused_before_any_work(tiny_model, tmp_path):
    link = tmp_path / "x.wav"
    link.symlink_to(tmp_path / "nowhere.wav")
    args = [
        "generate",
        "x",
        "-o",
        str(link),
        "--model",
        str(tiny_model),
        "--steps",
        "1",
        "--duration",
        "0.05",
    ]
    assert_clean_failure(runner.invoke(app, args), 2, f"output {link} already exists")


def test_an_empty_folder_among_the_inputs_fails_alone(recon_model, tmp_path):
    sf.write(tmp_path / "a.wav", tone(3200), SR)
    (tmp_path / "empty").mkdir()
    for command in ("reconstruct", "mel", "encode"):
        out = tmp_path / f"out_{command}"
        extra = ["--model", str(recon_model), "--device", "cpu"] if command != "mel" else []
        dest = ["-o" if command == "encode" else "--out-dir", str(out)]
        result = runner.invoke(
            app, [command, str(tmp_path / "empty"), str(tmp_path / "a.wav"), *dest, *extra]
        )
        assert result.exit_code == 1, result.output
        assert error_lines(result)[0] == f"error: {tmp_path / 'empty'}: folder holds no audio files " + (
            "(.wav, .flac, .ogg, .oga, .opus, .mp3, .aif, .aiff, .au, .w64, .caf)"
        )
        assert len(list(out.iterdir())) == 1  # a.wav's output, written


def test_hidden_files_and_folders_are_left_out_of_folder_scans(recon_model, tmp_path):
    scan = tmp_path / "scan"
    (scan / ".hidden").mkdir(parents=True)
    sf.write(scan / "a.wav", tone(3200), SR)
    sf.write(scan / ".hidden" / "h.wav", tone(3200), SR)
    (scan / "._a.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    result = runner.invoke(app, ["mel", str(scan), "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "out") == ["a.npy"]
    named = runner.invoke(app, ["mel", str(scan / ".hidden" / "h.wav"), "-o", str(tmp_path / "h.npy")])
    assert named.exit_code == 0, named.output  # a hidden file named on its own is read


def test_generate_refused_before_sampling_creates_no_out_dir(tiny_model, tmp_path):
    for bad in (["--num-samples", "0"], ["--seed", str(2**32 - 1), "--num-samples", "2"]):
        out = tmp_path / "fresh" / "nested"
        args = [
            "generate",
            "x",
            "--out-dir",
            str(out),
            "--model",
            str(tiny_model),
            "--duration",
            "0.05",
            *bad,
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and not (tmp_path / "fresh").exists(), result.output
    folder = tmp_path / "existing"
    folder.mkdir()
    result = runner.invoke(app, ["generate", "x", "-o", str(folder), "--model", str(tiny_model)])
    assert_clean_failure(result, 2, f"output {folder} is a folder; give a file name, or --out-dir")


def test_encode_refuses_a_file_name_as_its_folder(recon_model, tmp_path):
    sf.write(tmp_path / "a.wav", tone(3200), SR)
    out = tmp_path / "a.latent.safetensors"
    result = runner.invoke(
        app, ["encode", str(tmp_path / "a.wav"), "-o", str(out), "--model", str(recon_model)]
    )
    assert_clean_failure(result, 2, "encode writes a folder of latent files")
    assert not out.exists()


def test_json_implies_report(recon_model, tmp_path):
    sf.write(tmp_path / "a.wav", tone(3200), SR)
    args = [
        "reconstruct",
        str(tmp_path / "a.wav"),
        "-o",
        str(tmp_path / "b.wav"),
        "--model",
        str(recon_model),
    ]
    result = runner.invoke(app, [*args, "--json", "--refine-steps", "0"])
    assert result.exit_code == 0, result.output
    assert "mel_l1" in json.dumps(json.loads(result.stdout))


# ----------------------------------------------------------------------------------------------
# 4. generate: prompts and sampling options


def generate(model: Path, tmp_path: Path, *args: str):
    """`generate` with small defaults placed first, so that options in `args` override them."""
    return runner.invoke(
        app,
        ["generate", "--model", str(model), "--device", "cpu", "--steps", "2", "--duration", "0.1", *args],
    )


BAD_GENERATE = [
    ("empty prompt", [""], "prompt '' is empty"),
    ("blank prompt", ["   "], "prompt '   ' is empty"),
    ("negative duration", ["x", "--duration", "-1"], "--duration -1.0: must be > 0"),
    ("zero duration", ["x", "--duration", "0"], "--duration 0.0: must be > 0"),
    ("NaN duration", ["x", "--duration", "nan"], "--duration nan: must be > 0"),
    ("inf duration", ["x", "--duration", "inf"], "--duration inf: must be > 0"),
    ("zero steps", ["x", "--steps", "0"], "--steps 0: must be between 1 and 999"),
    ("negative steps", ["x", "--steps", "-5"], "--steps -5: must be between 1 and 999"),
    ("as many steps as timesteps", ["x", "--steps", "1000"], "--steps 1000: must be between 1 and 999"),
    (
        "negative guidance",
        ["x", "--guidance-scale", "-0.5"],
        "--guidance-scale -0.5: must be a finite number >= 0",
    ),
    ("NaN guidance", ["x", "--guidance-scale", "nan"], "--guidance-scale nan: must be a finite number >= 0"),
    ("unknown sampler", ["x", "--sampler", "euler-a"], "--sampler 'euler-a': choose one of"),
    ("zero samples", ["x", "--num-samples", "0"], "--num-samples 0: must be >= 1"),
    ("unknown device", ["x", "--device", "tpu"], "--device tpu: unknown device"),
    ("no prompt", [], "no prompt given"),
    ("non-numeric duration", ["x", "--duration", "five"], "Invalid value for '--duration'"),
]


@pytest.mark.parametrize("case", [c[0] for c in BAD_GENERATE])
def test_bad_generate_option(case, tiny_model, tmp_path):
    args, message = next((a, m) for c, a, m in BAD_GENERATE if c == case)
    out = tmp_path / "out"
    out.mkdir()
    result = generate(tiny_model, tmp_path, *args, "--out-dir", str(out))
    if case == "non-numeric duration":  # click's own parser: exit 2, its usage box, no traceback
        assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output
    else:
        assert_clean_failure(result, 2, message)
    assert files_in(out) == []


def test_cuda_without_gpu_is_a_usage_error(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    src = tmp_path / "a.wav"
    sf.write(src, tone(3200), SR)
    for args in (
        ["generate", "x", "-o", str(tmp_path / "g.wav"), "--model", str(tiny_model)],
        ["reconstruct", str(src), "-o", str(tmp_path / "r.wav"), "--model", str(tiny_model)],
        ["mel", str(src), "-o", str(tmp_path / "m.npy")],
    ):
        result = runner.invoke(app, [*args, "--device", "cuda"])
        assert_clean_failure(result, 2, "--device cuda: no CUDA GPU is available")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


def test_non_utf8_prompts_file(tiny_model, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"un chien qui aboie\n" + b"caf\xe9 ambience\n")
    out = tmp_path / "out"
    out.mkdir()
    result = generate(tiny_model, tmp_path, "--prompts-file", str(prompts), "--out-dir", str(out))
    assert_clean_failure(result, 2, f"--prompts-file {prompts}: cannot read it as UTF-8 text")
    assert files_in(out) == []


def test_ten_thousand_character_prompt_is_truncated_with_a_warning(tiny_model, tmp_path):
    prompt = ("a dog barks in the rain " * 500)[:10_000]
    out = tmp_path / "long.wav"
    result = generate(tiny_model, tmp_path, prompt, "-o", str(out), "--seed", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out)]
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("WARNING:")]
    assert len(warnings) == 1 and "truncated to the text encoder's max_length=32" in warnings[0]
    assert len(warnings[0]) < 300  # the warning quotes the prompt, shortened
    assert sf.info(out).frames == 1600
    # truncation means the tail of the prompt is ignored: the first 32 tokens decide the conditioning
    from audioldm_cli.pipeline import AudioLDM

    encoder = AudioLDM.from_pretrained(tiny_model).text_encoder
    (long_states, long_mask), (short_states, short_mask) = encoder([prompt]), encoder([prompt[:2000]])
    assert long_mask.shape[1] == 32 and bool(long_mask.all())
    torch.testing.assert_close(long_states, short_states, rtol=0, atol=1e-6)
    assert torch.equal(long_mask, short_mask)


MISC = [
    # (command line with {d} = a scratch folder holding a.wav, garbage latents and a sub-folder; code; message)
    (["reconstruct", "{d}/bad.latent.safetensors", "-o", "{d}/x.wav"], 1, "{d}/bad.latent.safetensors"),
    (["reconstruct", "{d}/empty.latent.safetensors", "-o", "{d}/x.wav"], 1, "{d}/empty.latent.safetensors"),
    (["reconstruct", "{d}/a.wav", "-o", "{d}/sub"], 2, "output {d}/sub"),
    (["reconstruct", "{d}/a.wav", "-o", "{d}/x.m4a"], 2, "unknown audio extension '.m4a'"),
    (
        ["reconstruct", "{d}/a.wav", "--out-dir", "{d}/a.wav"],
        2,
        "--out-dir {d}/a.wav exists and is not a folder",
    ),
    (["encode", "{d}/a.wav", "-o", "{d}/a.wav"], 2, "--out-dir {d}/a.wav exists and is not a folder"),
    (["mel", "{d}/a.wav", "-o", "{d}/x.png"], 2, "extension must be .npy or .safetensors"),
    (["mel", "{d}/a.wav", "--preset", "nope", "-o", "{d}/x.npy"], 2, "unknown mel preset 'nope'"),
    (
        ["generate", "--prompts-file", "{d}/sub", "-o", "{d}/x.wav"],
        2,
        "--prompts-file {d}/sub: cannot read it",
    ),
    (["train", "vae", "--data", "{d}/a.wav", "--out", "{d}/run"], 2, "--data {d}/a.wav"),
    (["train", "vae", "--data", "{d}/sub", "--out", "{d}/run"], 2, "--data {d}/sub: no usable rows"),
    (["train", "vae", "--data", "{d}/sub", "--out", "{d}/run", "--precision", "fp8"], 2, "--precision 'fp8'"),
]


@pytest.mark.parametrize(
    "args, code, message", MISC, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _, _) in enumerate(MISC)]
)
def test_misc_bad_arguments(args, code, message, recon_model, tmp_path):
    d = tmp_path
    sf.write(d / "a.wav", tone(3200), SR)
    (d / "bad.latent.safetensors").write_bytes(np.random.default_rng(0).bytes(300))
    (d / "empty.latent.safetensors").write_bytes(b"")
    (d / "sub").mkdir()
    before = files_in(d)
    args = [a.format(d=d) for a in args]
    if args[0] in ("reconstruct", "encode"):
        args += ["--model", str(recon_model), "--device", "cpu"]
    result = runner.invoke(app, args)
    assert_clean_failure(result, code, message.format(d=d))
    assert files_in(d) == before


# ----------------------------------------------------------------------------------------------
# 5. bad models


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class WritesMarker:
    """Unpickling this runs `Path.touch(marker)`: a checkpoint that holds code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def evil_ckpt(folder: Path) -> tuple[Path, Path]:
    marker = folder / "PWNED"
    ckpt = folder / "evil.ckpt"
    torch.save({"state_dict": {"first_stage_model.x": torch.zeros(1)}, "payload": WritesMarker(marker)}, ckpt)
    assert not marker.exists()
    return ckpt, marker


def _bad_model(kind: str, model: Path, tmp_path: Path) -> tuple[Path, str]:
    if kind == "missing folder":
        return tmp_path / "no_such_model", "not found"
    if kind == "a file, not a folder":
        (tmp_path / "model.bin").write_bytes(b"\0" * 64)
        return tmp_path / "model.bin", "model.bin"
    if kind == "folder without pipeline.json":
        (tmp_path / "empty_model").mkdir()
        return tmp_path / "empty_model", "pipeline.json"
    bad = copy_model(model, tmp_path / "m")
    if kind == "pipeline.json not JSON":
        (bad / "pipeline.json").write_text("{not json")
        return bad, "pipeline.json"
    if kind == "truncated safetensors":
        weights = bad / "vae" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        return bad, "truncated or not a safetensors file"
    if kind == "safetensors of random bytes":
        (bad / "vocoder" / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))
        return bad, "vocoder"
    if kind == "component folder missing":  # a model copied in part
        shutil.rmtree(bad / "vae")
        return bad, "incomplete: its pipeline.json keeps the vae in vae/, which is missing"
    if kind == "missing weights file":
        (bad / "vae" / "model.safetensors").unlink()
        return bad, "weights file not found"
    if kind == "another architecture":  # the vocoder's weights where the VAE's should be
        shutil.copy(bad / "vocoder" / "model.safetensors", bad / "vae" / "model.safetensors")
        return bad, "vae"
    if kind == "config of another size":
        cfg = json.loads((bad / "vae" / "config.json").read_text())
        cfg["config"]["ddconfig"]["ch"] *= 2
        (bad / "vae" / "config.json").write_text(json.dumps(cfg))
        return bad, "vae"
    if kind == "pickle holding code":
        ckpt, _ = evil_ckpt(tmp_path)
        return ckpt, "refusing to load"
    raise AssertionError(kind)


BAD_MODELS = [
    "missing folder",
    "a file, not a folder",
    "folder without pipeline.json",
    "pipeline.json not JSON",
    "truncated safetensors",
    "safetensors of random bytes",
    "component folder missing",
    "missing weights file",
    "another architecture",
    "config of another size",
    "pickle holding code",
]


@pytest.mark.parametrize("kind", BAD_MODELS)
def test_bad_model(kind, recon_model, tmp_path):
    bad, message = _bad_model(kind, recon_model, tmp_path)
    src = tmp_path / "a.wav"
    sf.write(src, tone(3200), SR)
    out = tmp_path / "out"
    out.mkdir()
    for args in (
        ["reconstruct", str(src), "--out-dir", str(out), "--model", str(bad), "--device", "cpu"],
        ["encode", str(src), "-o", str(out), "--model", str(bad), "--device", "cpu"],
        ["info", str(bad)],
    ):
        result = runner.invoke(app, args)
        assert_clean_failure(result, 2 if kind == "missing folder" else 1, message)  # a mistyped path: usage
    assert files_in(out) == []
    assert not (tmp_path / "PWNED").exists()


def test_pickle_with_code_is_refused_everywhere(tmp_path):
    """No loader unpickles code: the marker file the pickle would write never appears."""
    from audioldm_cli.checkpoint import read_official_state
    from audioldm_cli.errors import USER_ERRORS
    from vocoder.checkpoint import torch_load_safe
    from vocoder.pretrained import load_vocoder

    ckpt, marker = evil_ckpt(tmp_path)
    for load in (torch_load_safe, lambda p: read_official_state(p, "vae"), load_vocoder):
        with pytest.raises(USER_ERRORS, match="refusing to load") as err:
            load(ckpt)
        assert not marker.exists()
        # the reason is what was refused, not torch's boilerplate about its weights_only default
        assert "unsupported global" in str(err.value).lower() and "PyTorch 2.6" not in str(err.value), (
            err.value
        )
    # also under the names the vocoder loader accepts for release files
    for name in ("generator_v1", "g_02500000", "vocoder.pt"):
        shutil.copy(ckpt, tmp_path / name)
        with pytest.raises(USER_ERRORS):
            load_vocoder(tmp_path / name)
        assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # proof that the file does hold code
        torch.load(ckpt, weights_only=True)


def test_a_raw_protocol_4_pickle_is_refused_as_one_quiet_line(tmp_path, recwarn):
    """A pickle written by pickle.dump (protocol 4, not torch.save's zip), here one that would run code:
    the weights-only loader cannot read its FRAME opcode. It is refused as a raw pickle, not called
    truncated, and torch's warning about the protocol is not shown."""
    from audioldm_cli.errors import USER_ERRORS
    from vocoder.checkpoint import torch_load_safe

    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps({"state_dict": Evil()}, protocol=4))
    with pytest.raises(USER_ERRORS, match=r"refusing to load .*raw.ckpt: a raw pickle \(protocol 4\)") as err:
        torch_load_safe(raw)
    assert "truncated" not in str(err.value) and not marker.exists()
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_text_named_like_a_checkpoint_is_a_clean_error(tmp_path):
    """Text read as pickle opcodes raises KeyError inside torch.load: still a one-line CheckpointError."""
    from audioldm_cli.errors import USER_ERRORS
    from vocoder.checkpoint import torch_load_safe

    fake = tmp_path / "fake.ckpt"
    fake.write_text("hello this is not audio\n")
    with pytest.raises(USER_ERRORS, match="not a PyTorch checkpoint"):
        torch_load_safe(fake)
    # text that torch's weights-only unpickler refuses as an unknown opcode ('#' of a Markdown file)
    markdown = tmp_path / "README.ckpt"
    markdown.write_text("# a heading\n\nsome text\n")
    with pytest.raises(USER_ERRORS, match="not a PyTorch checkpoint") as err:
        torch_load_safe(markdown)
    assert "PyTorch 2.6" not in str(err.value) and "\n" not in str(err.value), err.value
    result = runner.invoke(app, ["convert", str(fake), "-o", str(tmp_path / "conv")])
    assert_clean_failure(result, 1, "not a PyTorch checkpoint")
    assert not (tmp_path / "conv").exists()


# ----------------------------------------------------------------------------------------------
# 6. training manifests


TINY_VAE_CONFIG = {
    "frontend": "audioldm-16k",
    "model": {
        "ddconfig": {"ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "z_channels": 4},
        "embed_dim": 4,
    },
    "loss": {"kl_weight": 1e-4, "mel_scales": [1], "disc_start": -1},
    "train": {"max_steps": 1, "batch_size": 2, "segment_seconds": 0.08, "save_every": 0, "cpu": True},
}


def test_manifest_with_missing_files_and_bad_rows(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(data / name, tone(4000), SR)
    rows = [
        json.dumps({"wav": "a.wav", "caption": "first"}),
        json.dumps({"wav": "gone.wav", "caption": "missing file"}),
        "{this is not json",
        json.dumps({"caption": "no path column"}),
        json.dumps(["a", "list"]),
        json.dumps({"wav": "b.wav", "caption": "second"}),
    ]
    manifest = data / "train.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    config = tmp_path / "vae.json"
    config.write_text(json.dumps(TINY_VAE_CONFIG))
    run = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "vae", "--data", str(manifest), "--out", str(run), "--config", str(config)]
    )
    assert result.exit_code == 1, result.output  # trained on the rest, then exit 1 as a batch does
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: 4 data rows skipped (listed above)")
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("WARNING:") and "row skipped" in ln]
    assert sorted(w.split("train.jsonl:")[1].split(":")[0] for w in warnings) == ["2", "3", "4", "5"], (
        warnings
    )
    assert any("train.jsonl:2: file not found" in w for w in warnings)
    assert f"{manifest}: 2 rows (4 skipped)" in result.stderr
    assert result.stdout.strip() == str(run / "export")
    assert (run / "export" / "vae" / "model.safetensors").is_file()

    only_bad = data / "bad.jsonl"
    only_bad.write_text("\n".join(rows[1:5]) + "\n")
    result = runner.invoke(
        app, ["train", "vae", "--data", str(only_bad), "--out", str(tmp_path / "r2"), "--config", str(config)]
    )
    assert_clean_failure(result, 2, f"--data {only_bad}: no usable rows, 4 bad")
    assert not (tmp_path / "r2").exists() or files_in(tmp_path / "r2") == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "no such file or folder"),
        ("latin1.csv", "wav,caption\na.wav,caf\xe9\n".encode("latin-1"), "cannot read it as UTF-8 text"),
        ("manifest.xml", b"<rows/>", "unknown manifest type '.xml'"),
        ("audio.wav", wav_bytes(), "unknown manifest type '.wav'"),
        ("empty.jsonl", b"", "no usable rows, 0 bad"),
    ],
)
def test_unreadable_manifest(name, content, message, tmp_path):
    manifest = tmp_path / name
    if content is not None:
        manifest.write_bytes(content)
    result = runner.invoke(app, ["train", "vae", "--data", str(manifest), "--out", str(tmp_path / "run")])
    assert_clean_failure(result, 2, message)


def test_folder_dataset_skips_unreadable_captions(tmp_path):
    from audioldm_cli.data import read_manifest

    data = tmp_path / "data"
    data.mkdir()
    for name in ("a", "b", "c"):
        sf.write(data / f"{name}.wav", tone(1600), SR)
    (data / "a.txt").write_text("a dog barks\n")
    (data / "b.txt").write_bytes("caf\xe9 noise".encode("latin-1"))
    rows = read_manifest(data)
    assert [(r.path.name, r.caption) for r in rows] == [("a.wav", "a dog barks"), ("c.wav", "")]
    (data / "a.txt").write_bytes(b"\xff\xfe")
    (data / "c.wav").unlink()
    result = runner.invoke(app, ["train", "vae", "--data", str(data), "--out", str(tmp_path / "run")])
    assert_clean_failure(
        result, 2, f"--data {data}: no usable rows, 2 bad (first: a.txt: caption file is not"
    )


# ----------------------------------------------------------------------------------------------
# 7. the real console script: nothing but one line reaches the terminal


def console(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("audioldm")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CI": "true"}
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False
    )


def check_console(args: list[str], cwd: Path, code: int | None, first: str) -> None:
    proc = console(*args, cwd=cwd)
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith(LOG_PREFIXES)]
    assert "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr
    assert lines and lines[0].startswith(first), proc.stderr
    assert all(ln.startswith("error: ") for ln in lines), proc.stderr  # nothing from C libraries either
    assert proc.returncode == code if code is not None else proc.returncode in (1, 2), proc.returncode


@pytest.mark.slow
def test_console_script_random_bytes_give_one_line(tmp_path):
    noise = _random_bytes(tmp_path)
    check_console(
        ["mel", str(noise), "-o", "x.npy"], tmp_path, 1, f"error: {noise}: not a readable audio file"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.wav"]


@pytest.mark.slow
def test_console_script_prints_one_line_and_no_traceback(recon_model, tmp_path):
    ckpt, marker = evil_ckpt(tmp_path)
    noise = _random_bytes(tmp_path)
    cases = [
        (
            ["reconstruct", str(noise), "-o", "x.wav", "--model", str(ckpt)],
            1,
            f"error: refusing to load {ckpt}",
        ),
        (["generate", "", "-o", "x.wav"], 2, "error: prompt '' is empty"),
        (["reconstruct", str(noise), "--model", str(recon_model), "--device", "cuda:7"], None, "error: "),
        (["info", str(tmp_path / "nowhere")], 1, "error: "),
    ]
    for args, code, first in cases:
        check_console(args, tmp_path, code, first)
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.ckpt", "noise.wav"]


# ----------------------------------------------------------------------------------------------
# 8. a one-hour input streams in bounded memory (slow: about a minute on 2 cores)


def write_long_file(path: Path, seconds: int, rate: int, channels: int) -> None:
    """A tone with a little noise, written block by block (the test itself never holds it whole)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
        for start in range(0, seconds, 60):
            t = np.arange(start * rate, (start + 60) * rate) / rate
            block = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)
            f.write(np.repeat(block[:, None], channels, 1).astype(np.float32))


def mel_max_rss_mb(src: Path, out: Path) -> float:
    """Run the real `audioldm mel` on `src` under /usr/bin/time; its peak resident memory in MB."""
    exe = Path(sys.executable).with_name("audioldm")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CI": "true"}
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kb=%M", str(exe), "mel", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(out)
    return int(proc.stderr.rsplit("maxrss_kb=", 1)[1].split()[0]) / 1024


@pytest.mark.slow
def test_one_hour_input_streams_in_bounded_memory(tmp_path):
    """`mel` on one hour of 44.1 kHz stereo (1.2 GB as float32 samples) needs little more memory than on
    one minute: the growth is the mel itself (92 MB), not the audio."""
    minute, hour = tmp_path / "minute.wav", tmp_path / "hour.wav"
    write_long_file(minute, 60, 44100, 2)
    write_long_file(hour, 3600, 44100, 2)
    base_mb = mel_max_rss_mb(minute, tmp_path / "minute.npy")
    hour_mb = mel_max_rss_mb(hour, tmp_path / "hour.npy")
    spec = np.load(tmp_path / "hour.npy", mmap_mode="r")
    assert spec.shape == (3600 * SR // 160 + 1, 64)
    assert np.isfinite(spec[::997]).all()
    np.testing.assert_allclose(
        spec[:5990], np.load(tmp_path / "minute.npy")[:5990], rtol=0, atol=1e-3
    )  # away from its end
    whole_file_mb = 3600 * 44100 * 2 * 4 / 2**20
    spec_mb = spec.size * 4 / 2**20
    assert hour_mb - base_mb < 5 * spec_mb < whole_file_mb / 2, (base_mb, hour_mb, spec_mb)
    print(
        f"mel max RSS: 1 minute {base_mb:.0f} MB, 1 hour {hour_mb:.0f} MB "
        f"(the decoded hour alone would be {whole_file_mb:.0f} MB; its mel is {spec_mb:.0f} MB)"
    )
