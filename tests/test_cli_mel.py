"""`audioldm mel` through the CLI: outputs, naming, formats, and every bad-input case."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open
from test_audio import BAD_INPUTS, tone  # tests/ is on sys.path (rootdir-relative imports)
from typer.testing import CliRunner

from audioldm_cli.audio import read_audio
from audioldm_cli.cli import app
from audioldm_cli.frontend import MelFrontend, load_mel

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["mel", *map(str, args)])


def files_under(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def wav16(tmp_path):
    path = tmp_path / "in" / "tone.wav"
    path.parent.mkdir()
    sf.write(path, tone(440, 16000, 0.5), 16000, subtype="PCM_16")
    return path


def test_single_file_to_npy(tmp_path, wav16):
    out = tmp_path / "tone.npy"
    result = run(wav16, "-o", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out)]
    spec = np.load(out)
    assert spec.shape == (1 + 8000 // 160, 64) and spec.dtype == np.float32
    expected = MelFrontend.from_preset("audioldm-16k")(read_audio(wav16, 16000)[0])
    np.testing.assert_allclose(spec, expected.numpy(), atol=1e-5)


def test_hifigan_preset_resamples_and_writes_safetensors(tmp_path):
    src = tmp_path / "stereo44k.flac"
    sf.write(src, tone(1000, 44100, 1.0, channels=2), 44100, subtype="PCM_24")
    out = tmp_path / "m.safetensors"
    result = run(src, "-o", out, "--preset", "hifigan-22k")
    assert result.exit_code == 0, result.output
    spec, cfg = load_mel(out)
    assert cfg == MelFrontend.from_preset("hifigan-22k").config
    assert spec.shape == (22050 // 256, 80)
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["layout"] == "T,F" and meta["source"] == "stereo44k.flac"
    assert json.loads(meta["mel_config"])["sample_rate"] == 22050
    # 1 kHz lands in mel bin 14 of 80 (slaney scale, 0-8 kHz)
    assert int(spec[10:-10].mean(0).argmax()) == int(
        torch.from_numpy(
            MelFrontend.from_preset("hifigan-22k").log_mel.mel_basis[:, round(1000 / 22050 * 1024)].numpy()
        ).argmax()
    )


def test_out_dir_mirrors_folders_and_keeps_order(tmp_path, wav16):
    tree = tmp_path / "tree"
    for rel in ("b/two.wav", "a/one.flac"):
        (tree / rel).parent.mkdir(parents=True)
        sf.write(tree / rel, tone(300, 8000, 0.3), 8000)
    (tree / "readme.txt").write_text("not audio, not picked up")
    out = tmp_path / "out"
    result = run(wav16, tree, "--out-dir", out, "--format", "safetensors")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        str(out / "tone.safetensors"),
        str(out / "a/one.safetensors"),
        str(out / "b/two.safetensors"),
    ]
    assert files_under(out) == ["a/one.safetensors", "b/two.safetensors", "tone.safetensors"]
    assert load_mel(out / "a/one.safetensors")[0].shape == (1 + 4800 // 160, 64)


def test_existing_output_needs_overwrite(tmp_path, wav16):
    out = tmp_path / "tone.npy"
    out.write_bytes(b"old")
    result = run(wav16, "-o", out)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: output {out} already exists; pass -y/--overwrite to replace it"
    assert out.read_bytes() == b"old"
    assert run(wav16, "-o", out, "-y").exit_code == 0
    assert np.load(out).shape == (51, 64)


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "give either -o OUT (one input) or --out-dir DIR"),
        (["-o", "{tmp}/a.npy", "--out-dir", "{tmp}/d"], "give either -o OUT (one input) or --out-dir DIR"),
        (["-o", "{tmp}/a.wav"], "extension must be .npy or .safetensors"),
        (["-o", "{tmp}/a.npy", "--format", "safetensors"], "does not match --format safetensors"),
        (["-o", "{tmp}/nodir/a.npy"], "output folder {tmp}/nodir does not exist"),
        (["-o", "{wav}/a.npy"], "output {wav}/a.npy: {wav} is a file, not a folder"),
        (
            ["--out-dir", "{tmp}/d", "--preset", "vits"],
            "unknown mel preset 'vits'; choose one of audioldm-16k, hifigan-22k",
        ),
        (["{wav}", "-o", "{tmp}/a.npy"], "-o takes exactly one input file, got 2; use --out-dir DIR"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(tmp_path, wav16, args, message):
    out_tmp = tmp_path / "outputs"
    out_tmp.mkdir()
    fill = {"tmp": out_tmp, "wav": wav16}
    result = run(wav16, *[a.format(**fill) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message.format(**fill) in lines[0]
    assert files_under(out_tmp) == []


def test_duplicate_output_names_are_a_usage_error(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "same.wav", tone(300, 16000, 0.1), 16000)
    result = run(tmp_path / "x" / "same.wav", tmp_path / "y" / "same.wav", "--out-dir", tmp_path / "out")
    assert result.exit_code == 2
    assert "would both write" in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", list(BAD_INPUTS) + ["too_short"])
def test_bad_input_exit_1_one_line_nothing_written(tmp_path, case):
    bad = tmp_path / "bad.wav"
    if case == "too_short":
        sf.write(bad, tone(440, 16000, 0.02), 16000)  # 320 samples < one 1024-sample window
        message = "too short for this mel: need at least 513 samples"
    else:
        make, message = BAD_INPUTS[case]
        make(bad)
        if case == "directory":  # a folder is a valid input kind; this one holds nothing to read
            message = "folder holds no audio files"
    out = tmp_path / "out"
    out.mkdir()
    result = run(bad, "-o", out / "bad.npy")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}") and message in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert files_under(out) == []


def test_batch_continues_past_bad_items(tmp_path, wav16):
    bad = tmp_path / "in" / "broken.wav"
    bad.write_text("not audio")
    missing = tmp_path / "in" / "missing.wav"
    out = tmp_path / "out"
    result = run(missing, bad, wav16, "--out-dir", out)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [str(out / "tone.npy")]
    errors = result.stderr.strip().splitlines()
    assert errors[0] == f"error: {missing}: no such file"
    assert errors[1].startswith(f"error: {bad}: not a readable audio file")
    assert errors[2] == "error: 2 of 3 inputs failed; the others were written"
    assert files_under(out) == ["tone.npy"]
