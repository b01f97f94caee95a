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
        ((wav, "a dog"), {"seed": 2**32}, "seed=4294967296: must lie in [0, 2**32)"),
        ((wav, "a dog"), {"compile": "nope"}, "compile='nope': unknown torch.compile backend"),
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
    with pytest.raises(UsageError, match=r"seed=4294967295: output 1 would take seed 4294967296, beyond"):
        pipe.generate(["a dog", "rain"], duration=0.25, steps=2, seed=2**32 - 1, batch_size=1)


def test_seeds_are_the_32_bit_ones_the_generator_tells_apart(pipe):
    """torch's CPU generator keeps 32 bits of a seed: a wider seed would repeat a smaller one's audio."""
    a, b = (
        torch.Generator().manual_seed(0),
        torch.Generator().manual_seed(2**32),
    )  # what a wider range allowed
    assert torch.equal(torch.randn(4, generator=a), torch.randn(4, generator=b))
    for seed in (2**32, -1):
        with pytest.raises(UsageError, match=rf"seed={seed}: must lie in \[0, 2\*\*32\)"):
            pipe.generate("a dog", duration=0.25, steps=2, seed=seed)
    assert pipe.generate("a dog", duration=0.25, steps=2, seed=2**32 - 1).shape[0] == 1
    from audioldm_cli.variations import generate_from_audio

    with pytest.raises(UsageError, match=r"seed=4294967295: output 1 would take seed 4294967296"):
        generate_from_audio(pipe, torch.zeros(4000), seed=2**32 - 1, num_samples=2)  # before CLAP loads


def test_the_cli_seed_range_is_the_librarys():
    from audioldm_cli import cli
    from audioldm_cli.runtime import SEED_LIMIT

    assert (cli.SEED_MIN, cli.SEED_MAX) == (0, SEED_LIMIT - 1)  # kept apart so that --help loads no torch


def test_flags_compile_and_progress_are_checked_before_any_work(pipe, wav):
    for call, message in (
        (lambda: pipe.reconstruct(wav, vocoder_only="no"), "vocoder_only='no': expected True or False"),
        (lambda: pipe.encode(wav, sample="yes"), "sample='yes': expected True or False"),
        (lambda: pipe.generate("a dog", duration=0.25, steps=2, compile="nope"), "compile='nope': unknown"),
        (
            lambda: pipe.generate("a dog", duration=0.25, steps=2, compile=1),
            "compile=1: expected True, False",
        ),
        (lambda: transfer(pipe, wav, "a dog", steps=2, compile="nope"), "compile='nope': unknown"),
        (
            lambda: pipe.generate("a dog", duration=0.25, steps=2, progress=lambda x: None),
            "progress(done, total)",
        ),
    ):
        with pytest.raises(UsageError) as info:
            call()
        assert message in str(info.value)
    assert torch.equal(pipe.reconstruct(wav, np.bool_(True)), pipe.reconstruct(wav, vocoder_only=True))


def test_a_soundfile_style_array_is_not_taken_for_a_batch(pipe):
    stereo = 0.1 * torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))  # soundfile.read's [N, C]
    for call in (pipe.reconstruct, pipe.encode, lambda w: pipe.mel(w, 4)):
        with pytest.raises(UsageError, match=r"shape \(4000, 2\): 4000 clips of 2 samples; .*wav.mean\(1\)"):
            call(stereo)
    assert pipe.reconstruct(stereo.T.contiguous()).shape == (2, 4000)  # [B, N] as documented


def test_mel_takes_one_waveform_as_a_batch_of_one(pipe, wav):
    assert torch.equal(pipe.mel(wav, 10), pipe.mel(wav[None], 10))
    assert pipe.mel(wav, 10).shape == (1, 1, 10, pipe.mel_config.n_mels)
    with pytest.raises(UsageError, match="frames=0: must be a positive integer"):
        pipe.mel(wav, 0)


def test_latent_fitting_works_inside_inference_mode(pipe, wav):
    """`torch.inference_mode()` is the usual wrapper of inference code; the fit needs gradients inside it."""
    plain = pipe.reconstruct(wav, refine_steps=3)
    z_plain, _ = pipe.encode(wav, refine_steps=2)
    with torch.inference_mode():
        assert torch.equal(pipe.reconstruct(wav, refine_steps=3), plain)
        assert torch.equal(pipe.encode(wav, refine_steps=2)[0], z_plain)


def test_library_calls_leave_the_callers_rng_and_tensors_usable(tiny_model, pipe, wav):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    AudioLDM.from_pretrained(tiny_model)  # builds modules, whose initial draws are then overwritten
    assert torch.equal(torch.get_rng_state(), state)
    latent = transfer(pipe, wav, "a dog", steps=2).latent
    assert not latent.is_inference()
    latent.mul_(0.5)  # an inference tensor would refuse this


def test_save_latent_refuses_what_load_latent_could_not_read(pipe, wav, tmp_path):
    from audioldm_cli.checkpoint import load_latent, save_latent

    z, meta = pipe.encode(wav)
    for path in (tmp_path / "a.latent.safetensors", tmp_path / "a.latent.npy"):
        with pytest.raises(
            UsageError, match=r"expected a float tensor \[channels, frames, bins\], got shape .* latent\[0\]"
        ):
            save_latent(path, z, meta)
        assert not path.exists()
        save_latent(path, z[0], meta)
        assert torch.equal(load_latent(path)[0], z[0])


def test_write_audio_refuses_integer_pcm_and_a_missing_folder(tmp_path):
    from audioldm_cli.audio import write_audio

    pcm = (np.sin(np.arange(1000) / 10) * 16000).astype(np.int16)
    for data in (pcm, torch.from_numpy(pcm), np.ones(10, bool), np.ones(10, complex)):
        with pytest.raises(UsageError, match="expected float samples in \\[-1, 1\\], got .*integer PCM"):
            write_audio(tmp_path / "a.wav", data, 16000)
    with pytest.raises(UsageError, match=f"folder {tmp_path / 'nodir'} does not exist"):
        write_audio(tmp_path / "nodir" / "a.wav", np.zeros(10, np.float32), 16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no temp file left


def test_a_bad_text_encoder_entry_is_the_models_fault(tiny_model, tmp_path):
    import json
    import shutil

    folder = shutil.copytree(tiny_model, tmp_path / "model")
    doc = json.loads((folder / "pipeline.json").read_text())
    doc["text_encoder"]["max_length"] = 1
    (folder / "pipeline.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="pipeline.json text_encoder: text encoder max_length=1: must be"):
        AudioLDM.from_pretrained(folder).generate("a dog", duration=0.25, steps=2)


def test_a_frame_level_limit_below_silence_is_refused(pipe, wav):
    """Below log(log_floor) every frame would be pushed under silence: the vocoder made full-scale DC."""
    z, _ = pipe.encode(wav)
    for call in (
        lambda limit: pipe.generate("a dog", duration=0.25, steps=2, frame_level_limit=limit),
        lambda limit: transfer(pipe, wav, "a dog", steps=2, frame_level_limit=limit),
        lambda limit: pipe.decode_latent(z, frame_level_limit=limit),
    ):
        for limit in (-1e30, -11.6, float("-inf")):
            with pytest.raises(UsageError, match=r"must be a number >= -11.51, the level of silence"):
                call(limit)
    assert torch.isfinite(pipe.decode_latent(z, frame_level_limit=-11.5)).all()  # at silence: allowed


def test_a_unet_with_nan_weights_is_the_models_fault(tiny_model):
    broken = AudioLDM.from_pretrained(tiny_model)
    with torch.no_grad():
        next(broken.unet.parameters()).fill_(float("nan"))
    with pytest.raises(ModelError, match="the UNet's weights hold NaN/inf: a broken model"):
        broken.generate("a dog", duration=0.25, steps=2)
    with pytest.raises(
        AudioLDMError, match="sampling gave non-finite latents; lower the guidance scale"
    ) as info:
        pipe = AudioLDM.from_pretrained(tiny_model)  # a sound model, guided into overflow
        pipe.generate("a dog", duration=0.25, steps=2, guidance_scale=1e300)
    assert not isinstance(info.value, ModelError)
