"""An error names the arguments it is about as its caller gave them: Python keywords from the library
(`steps=0: ...`), flags from the command line (`--steps 0: ...`)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from audioldm_cli import AudioLDM
from audioldm_cli.cli import app
from audioldm_cli.editing import inpaint, superres, transfer
from audioldm_cli.errors import AudioLDMError, ModelError, UsageError
from audioldm_cli.training.run import train

FLAG = re.compile(r"(^|[\s(])--[a-z]")  # a command-line flag anywhere in a message


def test_an_error_renders_its_arguments_as_keywords_or_as_flags():
    e = UsageError("must be >= 1", num_samples=0)
    assert str(e) == "num_samples=0: must be >= 1"
    assert e.cli_message() == "--num-samples 0: must be >= 1"
    e = UsageError("holds no run", resume=True, out=Path("my runs/a"))
    assert str(e) == "resume=True, out='my runs/a': holds no run"
    assert e.cli_message() == "--resume --out 'my runs/a': holds no run"  # quoted as a shell would need
    e = UsageError("must lie between 0 and 8000 Hz", cutoff_hz=9000.0)
    assert e.cli_message({"cutoff_hz": "--cutoff"}) == "--cutoff 9000.0: must lie between 0 and 8000 Hz"
    assert str(UsageError("choose one", sampler="euler")) == "sampler='euler': choose one"
    assert str(UsageError("plain")) == UsageError("plain").cli_message() == "plain"
    # numpy numbers read as numbers, and the message survives pickling (DataLoader workers re-raise it)
    import numpy as np

    assert str(ModelError("too long", n_samples=np.int64(5))) == "n_samples=5: too long"
    assert str(pickle.loads(pickle.dumps(UsageError("x", steps=2)))) == "steps=2: x"


@pytest.fixture(scope="module")
def pipe(tiny_model) -> AudioLDM:
    return AudioLDM.from_pretrained(tiny_model)


def _library_message(call) -> str:
    with pytest.raises(AudioLDMError) as caught:
        call()
    return str(caught.value)


def test_library_errors_name_keywords_never_flags(pipe, tiny_model, tmp_path):
    wav = 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(0))
    cases = {
        "steps=0": lambda: pipe.generate(["rain"], duration=0.2, steps=0),
        "num_samples=0": lambda: pipe.generate(["rain"], duration=0.2, steps=2, num_samples=0),
        "duration=-1": lambda: pipe.generate(["rain"], duration=-1, steps=2),
        "guidance_scale=-1": lambda: pipe.generate(["rain"], duration=0.2, steps=2, guidance_scale=-1),
        "sampler='euler'": lambda: pipe.generate(["rain"], duration=0.2, steps=2, sampler="euler"),
        "dtype='fp8'": lambda: pipe.generate(["rain"], duration=0.2, steps=2, dtype="fp8"),
        "device='tpu'": lambda: AudioLDM.from_pretrained(tiny_model, device="tpu"),
        "strength=1.5": lambda: transfer(pipe, wav, "a dog", strength=1.5, steps=2),
        "strength=0.1, steps=4": lambda: transfer(pipe, wav, "a dog", strength=0.1, steps=4),
        "start=0.3, end=0.1": lambda: inpaint(pipe, wav, "a dog", 0.3, 0.1, steps=2),
        "cutoff_hz=9000": lambda: superres(pipe, wav, "a dog", 9000, steps=2),
        "data=": lambda: train("vae", tmp_path / "missing.jsonl", tmp_path / "run"),
        "config=": lambda: train("vae", tmp_path, tmp_path / "run", config=tmp_path / "missing.json"),
        "resume=True": lambda: train("vae", tmp_path, tmp_path / "empty_run", resume=True),
    }
    for names, call in cases.items():
        message = _library_message(call)
        assert message.startswith(names), (names, message)
        assert not FLAG.search(message), message


def test_the_cli_names_the_same_errors_as_flags(tiny_model, tmp_path):
    src = tmp_path / "in.wav"
    import soundfile as sf

    sf.write(src, 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(0)).numpy(), 16000)
    fast = ["--model", str(tiny_model), "--device", "cpu", "--steps", "2"]
    cases = [
        (["generate", "rain", *fast, "--num-samples", "0"], "--num-samples 0: must be >= 1"),
        (
            ["transfer", str(src), "a dog", *fast[:4], "--steps", "4", "--strength", "0.1"],
            "--strength 0.1 --steps 4: their product is below one step",
        ),
        (
            ["superres", str(src), "a dog", *fast, "--cutoff", "9000"],
            "--cutoff 9000.0: must lie strictly between",
        ),
        (
            ["train", "vae", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "run")],
            f"--data {tmp_path / 'missing.jsonl'}: no such file or folder",
        ),
        (
            ["train", "vae", "--data", str(tmp_path), "--out", str(tmp_path / "run2"), "--resume"],
            f"--resume: {tmp_path / 'run2'} holds no run",
        ),
    ]
    for args, expected in cases:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"error: {expected}" in result.output, (args, result.output)
        assert "=" not in result.output.split("error:", 1)[1].split(":", 1)[0], result.output
