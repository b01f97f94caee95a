"""The Python API refuses bad arguments with an AudioLDMError naming the argument, before any work,
instead of a TypeError or RuntimeError from deep inside torch or transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audioldm_cli import AudioLDM
from audioldm_cli.editing import inpaint, superres, transfer
from audioldm_cli.errors import AudioLDMError, CheckpointError, ModelError, UsageError
from audioldm_cli.training.run import train


@pytest.fixture(scope="module")
def pipe(tiny_model) -> AudioLDM:
    return AudioLDM.from_pretrained(tiny_model)


@pytest.fixture
def wav() -> torch.Tensor:
    return 0.1 * torch.randn(4000, generator=torch.Generator().manual_seed(0))


def test_edits_check_the_waveform_and_prompts_first(pipe, wav, monkeypatch):
    from audioldm_cli import editing

    def no_work(*args, **kwargs):
        raise AssertionError("the input was encoded before its arguments were checked")

    monkeypatch.setattr(editing, "encode_input", no_work)
    bad = [
        ((wav.numpy(), "a dog"), {}, "expected a waveform as a torch.Tensor, got ndarray"),
        (((wav * 3000).short(), "a dog"), {}, "expected float samples in [-1, 1], got a torch.int16"),
        ((torch.full((4000,), float("nan")), "a dog"), {}, "the waveform holds NaN/inf samples"),
        ((wav[None], "a dog"), {}, "expected a mono waveform [N], got shape (1, 4000)"),
        ((wav, ["a dog"]), {}, "prompt: expected a str, got list"),
        ((wav, "a dog"), {"negative_prompt": 3}, "negative_prompt: expected a str, got int"),
        ((wav, "a dog"), {"progress": "x"}, "progress"),
    ]
    for edit, extra in (
        (transfer, {}),
        (inpaint, {"start": 0.05, "end": 0.1}),
        (superres, {"cutoff_hz": 3000}),
    ):
        for args, kwargs, message in bad:
            if edit is not transfer:
                args = (*args, *extra.values())
            with pytest.raises(UsageError) as caught:
                edit(pipe, *args, steps=2, **kwargs)
            assert message in str(caught.value), (edit.__name__, message, str(caught.value))
    with pytest.raises(UsageError, match="prompt is empty: a style transfer needs a text"):
        transfer(pipe, wav, " ", steps=2)
    with pytest.raises(UsageError, match=r"start='0.1', end=0.2: must be numbers"):
        inpaint(pipe, wav, "a", "0.1", 0.2, steps=2)
    with pytest.raises(UsageError, match="start=0.1, end=9: the range must lie inside the input"):
        inpaint(pipe, wav, "a", 0.1, 9, steps=2)
    with pytest.raises(UsageError, match="cutoff_hz='4000'"):
        superres(pipe, wav, "a", "4000", steps=2)


def test_edits_take_numpy_numbers_and_a_none_negative_prompt(pipe, wav):
    a = transfer(pipe, wav, "a dog", strength=np.float32(0.5), steps=4, negative_prompt=None)
    b = transfer(pipe, wav, "a dog", strength=0.5, steps=4, negative_prompt="")
    torch.testing.assert_close(a.wav, b.wav)
    c = inpaint(pipe, wav, "a dog", np.float64(0.05), np.float32(0.15), steps=2)
    assert c.wav.shape == wav.shape


def test_generate_takes_numpy_numbers(pipe):
    a = pipe.generate(["a dog"], duration=np.float32(0.25), steps=2, seed=0)
    b = pipe.generate(["a dog"], duration=0.25, steps=2, seed=0)
    torch.testing.assert_close(a, b)


def test_latent_of_checks_its_mel(pipe, wav):
    mel = pipe.mel(wav[None], pipe.frames_for(4000))
    z = pipe.latent_of(mel)
    torch.testing.assert_close(pipe.latent_of(mel.double()), z)  # cast, not a conv dtype error
    for bad, message in (
        (mel.numpy(), "expected a log-mel as a float torch.Tensor [B, 1, T, F], got ndarray"),
        (mel.long(), "got a torch.int64 tensor"),
        (mel[..., :12], f"expected a log-mel [B, 1, T, {pipe.mel_config.n_mels}]"),
        (mel[0], "got shape"),
    ):
        with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
            pipe.latent_of(bad)


def test_decode_latent_takes_none_as_no_frame_level_limit(pipe, wav):
    z, _ = pipe.encode(wav)
    torch.testing.assert_close(
        pipe.decode_latent(z, 4000, frame_level_limit=None), pipe.decode_latent(z, 4000)
    )
    with pytest.raises(UsageError, match="frame_level_limit='loud': must be a number"):
        pipe.decode_latent(z, 4000, frame_level_limit="loud")


def test_save_pretrained_refuses_a_dtype_that_would_destroy_the_weights(pipe, tmp_path):
    for dtype in (torch.int64, "fp16"):
        with pytest.raises(
            UsageError, match="store weights as torch.float32, torch.float16 or torch.bfloat16"
        ):
            pipe.save_pretrained(tmp_path / "m", dtype=dtype)
    assert not (tmp_path / "m").exists()
    pipe.save_pretrained(tmp_path / "half", dtype=torch.float16)
    AudioLDM.from_pretrained(tmp_path / "half")


def test_unreadable_model_files_are_audioldm_errors(tiny_model, tmp_path, wav):
    """`except AudioLDMError` catches every user error of the library, checkpoint errors included (and
    `except CheckpointError` still catches those)."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = broken / "vae" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    fake = tmp_path / "fake.ckpt"
    fake.write_bytes(b"not a checkpoint")
    for source in (broken, fake):
        with pytest.raises(AudioLDMError) as caught:
            AudioLDM.from_pretrained(source)
        assert isinstance(caught.value, (ModelError, UsageError)), type(caught.value)
    with pytest.raises(CheckpointError):
        AudioLDM.from_pretrained(broken)
    with pytest.raises(UsageError, match="folder: expected a path, got int"):
        AudioLDM.from_pretrained(3)


def test_train_checks_its_arguments_before_any_work(tmp_path):
    for kwargs, message in (
        ({"progress": 3}, "progress"),
        ({"overrides": [("max_steps", 1)]}, "overrides: expected a mapping of train keys, got list"),
    ):
        with pytest.raises(UsageError, match=message):
            train("vae", tmp_path / "data.jsonl", tmp_path / "run", **kwargs)
    with pytest.raises(UsageError, match="data: expected a path, got NoneType"):
        train("vae", None, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_generate_checks_the_sampler_type_and_every_outputs_seed_first(pipe):
    with pytest.raises(UsageError, match=r"sampler=\['ddim'\]: choose one of"):
        pipe.generate(["a dog"], duration=0.25, steps=2, sampler=["ddim"])
    with pytest.raises(UsageError, match=r"output 1 would take seed 18446744073709551616"):
        pipe.generate(["a dog", "rain"], duration=0.25, steps=2, seed=2**64 - 1, batch_size=1)
