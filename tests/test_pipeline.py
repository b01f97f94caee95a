"""The AudioLDM pipeline on tiny random models: exact lengths, chunking, encode/decode, generation."""

from __future__ import annotations

import math

import pytest
import torch

from audioldm_cli.errors import ModelError, UsageError
from audioldm_cli.pipeline import AudioLDM
from audioldm_cli.testing import make_tiny_model


@pytest.fixture(scope="module")
def recon(tmp_path_factory) -> AudioLDM:
    return AudioLDM.from_pretrained(make_tiny_model(tmp_path_factory.mktemp("p") / "m", with_unet=False))


@pytest.fixture(scope="module")
def pipe(tiny_model) -> AudioLDM:
    return AudioLDM.from_pretrained(tiny_model)


def _signal(n: int, rate: int = 16000, seed: int = 0) -> torch.Tensor:
    t = torch.arange(n) / rate
    noise = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    return 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.05 * noise


@pytest.mark.parametrize("n", [1, 159, 2345])
def test_reconstruct_keeps_the_exact_length(recon, n):
    out = recon.reconstruct(_signal(n))
    assert out.shape == (n,) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_reconstruct_batch(recon):
    batch = recon.reconstruct(torch.stack([_signal(700, seed=1), _signal(700, seed=2)]))
    assert batch.shape == (2, 700)
    torch.testing.assert_close(batch[1], recon.reconstruct(_signal(700, seed=2)), rtol=1e-4, atol=1e-5)


def test_reconstruct_22k_preset(tmp_path):
    pipe = AudioLDM.from_pretrained(make_tiny_model(tmp_path / "m22", preset="hifigan-22k", with_unet=False))
    assert (pipe.sample_rate, pipe.hop_length, pipe.preset) == (22050, 256, "hifigan-22k")
    assert pipe.reconstruct(_signal(3000, 22050)).shape == (3000,)


def test_vocoder_only_chunked_equals_unchunked_everywhere(recon):
    """The vocoder is convolutional: with enough context the chunked result is the same signal."""
    wav = _signal(8000)
    whole = recon.reconstruct(wav, vocoder_only=True)
    chunked = recon.reconstruct(wav, vocoder_only=True, chunk_frames=16, overlap_frames=16)
    assert whole.abs().max() > 0.05  # the tiny vocoder really makes sound
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)


def test_vae_chunked_is_close_to_unchunked_and_has_no_clicks(recon):
    """GroupNorm statistics depend on the chunk, so the VAE path is close rather than equal; the
    cross-fade must not add a step at the chunk borders (frames 16 and 32 of 52)."""
    wav = _signal(8000)
    whole = recon.reconstruct(wav)
    chunked = recon.reconstruct(wav, chunk_frames=16, overlap_frames=16)
    assert torch.corrcoef(torch.stack([whole, chunked]))[0, 1] > 0.9
    largest_step = whole.diff().abs().max()
    for border in (16, 32):
        s = border * recon.hop_length
        assert chunked[s - 80 : s + 80].diff().abs().max() <= largest_step


def test_encode_decode_round_trip(recon):
    wav = _signal(3000)
    latent, meta = recon.encode(wav)
    frames = math.ceil(3000 / 160 / 4) * 4  # mel frames padded to the VAE time factor 4
    assert latent.shape == (1, 8, frames // 4, 64 // 4)
    assert meta["n_samples"] == 3000 and meta["sample_rate"] == 16000 and meta["preset"] == "audioldm-16k"
    decoded = recon.decode_latent(latent, meta["n_samples"])
    assert decoded.shape == (1, 3000)
    # decoding the posterior mean is what reconstruct does
    torch.testing.assert_close(decoded[0], recon.reconstruct(wav), rtol=1e-5, atol=1e-5)


def test_refined_encode_decodes_closer_and_reconstruct_uses_it(recon):
    wav = _signal(3000)
    plain, meta = recon.encode(wav)
    refined, meta_refined = recon.encode(wav, refine_steps=15)
    assert refined.shape == plain.shape and meta_refined == meta
    frames = math.ceil(3000 / 160 / 4) * 4
    with torch.inference_mode():
        mel = recon.mel(wav.reshape(1, -1), frames)
        errors = [(recon.vae.decode(z / recon.scale_factor) - mel).abs().mean() for z in (plain, refined)]
    assert errors[1] < 0.99 * errors[0], errors  # random weights: the mel is mostly out of reach
    # reconstruct with the same steps decodes the same latent
    torch.testing.assert_close(
        recon.decode_latent(refined, 3000)[0], recon.reconstruct(wav, refine_steps=15), rtol=1e-4, atol=1e-4
    )


def test_refine_steps_refuses_what_it_cannot_mean(recon):
    with pytest.raises(UsageError, match="cannot be combined with sample=True"):
        recon.encode(_signal(1000), sample=True, refine_steps=3)
    with pytest.raises(UsageError, match="vocoder_only skips the VAE"):
        recon.reconstruct(_signal(1000), vocoder_only=True, refine_steps=3)
    with pytest.raises(UsageError, match="refine_steps=-1: must be an integer >= 0"):
        recon.reconstruct(_signal(1000), refine_steps=-1)
    for call in (recon.reconstruct, recon.encode):
        with pytest.raises(UsageError, match="refine_steps=1.5: must be an integer >= 0"):
            call(_signal(1000), refine_steps=1.5)


def test_long_latents_decode_in_chunks(recon):
    latent, meta = recon.encode(_signal(8000))
    whole = recon.decode_latent(latent, 8000)
    chunked = recon.decode_latent(latent, 8000, chunk_frames=16, overlap_frames=16)
    assert chunked.shape == whole.shape == (1, 8000)
    assert torch.corrcoef(torch.cat([whole, chunked]))[0, 1] > 0.9


def test_long_inputs_encode_in_bounded_chunks(recon, monkeypatch):
    """The encoder sees no more than a chunk and its overlaps at a time (memory stays bounded), and the
    cross-faded latent stays close to the one-piece latent (GroupNorm statistics depend on the chunk)."""
    wav = _signal(32000)  # 200 mel frames, 50 latent frames
    whole, _ = recon.encode(wav, chunk_frames=10**6)
    real, seen = recon.vae.encode, []

    def recording(mel):
        seen.append(mel.shape[2])
        return real(mel)

    monkeypatch.setattr(recon.vae, "encode", recording)
    chunked, _ = recon.encode(wav, chunk_frames=64, overlap_frames=16)
    assert chunked.shape == whole.shape and torch.isfinite(chunked).all()
    assert len(seen) == 4 and max(seen) <= 64 + 2 * 16, seen
    assert torch.corrcoef(torch.stack([whole.flatten(), chunked.flatten()]))[0, 1] > 0.9
    # each chunk's mel, computed from the samples around it, is the whole file's mel
    mel = recon.mel(wav.reshape(1, -1), 200)
    from_mel = recon.latent_of(mel, chunk_frames=64, overlap_frames=16) * recon.scale_factor
    torch.testing.assert_close(chunked, from_mel, rtol=1e-4, atol=1e-5)
    seen.clear()
    sampled, _ = recon.encode(wav, sample=True, generator=torch.Generator().manual_seed(0), chunk_frames=64)
    assert sampled.shape == whole.shape and max(seen) <= 64 + 2 * 32
    refined, _ = recon.encode(wav, refine_steps=2, chunk_frames=64, overlap_frames=16)
    assert refined.shape == whole.shape and not torch.equal(refined, chunked)
    seen.clear()
    short, _ = recon.encode(_signal(8000), chunk_frames=64, overlap_frames=16)  # 52 frames: one piece
    assert seen == [52] and torch.equal(short, recon.encode(_signal(8000), chunk_frames=10**6)[0])
    with pytest.raises(UsageError, match="overlap_frames=-1: must be an integer >= 0"):
        recon.encode(wav, overlap_frames=-1)


def test_encode_sample_is_seeded_per_item(recon):
    wav = torch.stack([_signal(2000, seed=1), _signal(2000, seed=2)])
    gens = lambda: [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
    a, _ = recon.encode(wav, sample=True, generator=gens())
    b, _ = recon.encode(wav[1:], sample=True, generator=[torch.Generator().manual_seed(6)])
    mean, _ = recon.encode(wav)
    torch.testing.assert_close(a[1:], b, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a, mean)


def test_latent_from_another_vae_is_refused(recon):
    _, meta = recon.encode(_signal(1000))
    with pytest.raises(ModelError, match="encoded by another VAE"):
        recon.check_latent_metadata({**meta, "vae_config_hash": "0" * 16}, "x.latent.safetensors")


def test_latent_from_same_config_other_weights_is_refused(recon, tmp_path):
    from audioldm_cli.checkpoint import load_latent, save_latent

    latent, meta = recon.encode(_signal(1000))
    save_latent(tmp_path / "a.latent.safetensors", latent[0], meta)
    _, read_back = load_latent(tmp_path / "a.latent.safetensors")
    recon.check_latent_metadata(read_back, "a.latent.safetensors")  # its own latents pass
    old_hash = recon.vae_weights_hash()
    with torch.no_grad():
        next(recon.vae.parameters()).add_(1e-3)  # the same config, retrained
    recon._vae_hash = None  # the cache is per VAE object; this test changed the weights in place
    assert recon.vae_weights_hash() != old_hash
    with pytest.raises(ModelError, match="same config but other weights"):
        recon.check_latent_metadata(read_back, "a.latent.safetensors")
    legacy = {k: v for k, v in read_back.items() if k != "vae_weights_hash"}  # files from before the hash
    recon.check_latent_metadata(legacy, "a.latent.safetensors")


def test_empty_waveform_is_refused(recon):
    with pytest.raises(UsageError, match="empty waveform"):
        recon.reconstruct(torch.zeros(0))


def test_generate_without_unet_is_refused(recon):
    with pytest.raises(ModelError, match="no UNet"):
        recon.generate("rain", duration=0.1, steps=1)


# ---------------------------------------------------------------------------------------------- generate


def test_generate_exact_duration_and_determinism_per_seed(pipe):
    kw = {"duration": 0.337, "steps": 2, "sampler": "dpmpp-2m"}
    a = pipe.generate("rain on a roof", seed=3, **kw)
    assert a.shape == (1, round(0.337 * 16000)) and torch.isfinite(a).all() and a.abs().max() > 0
    b = pipe.generate("rain on a roof", seed=3, **kw)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_batch_item_equals_lone_run_with_seed_plus_i(pipe):
    kw = {"duration": 0.1, "steps": 2, "guidance_scale": 2.0}
    # two batches (3 + 1 items): item 3 (prompt "birds", sample 1) is alone in the second one
    batch = pipe.generate(["wind", "birds"], num_samples=2, seed=10, batch_size=3, **kw)
    assert batch.shape == (4, 1600)
    lone = pipe.generate("birds", seed=12, **kw)  # item 2 = prompt 1, sample 0, inside the first batch
    torch.testing.assert_close(batch[2], lone[0], rtol=1e-4, atol=1e-4)
    assert (batch[2] - batch[3]).abs().max() > 1e-3  # same prompt, seeds 12 and 13


def test_negative_prompt_changes_the_result(pipe):
    kw = {"duration": 0.1, "steps": 2, "seed": 1, "guidance_scale": 3.0}
    plain = pipe.generate("engine", **kw)
    negative = pipe.generate("engine", negative_prompt="music", **kw)
    assert (plain - negative).abs().max() > 1e-4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompts": [""]}, "empty"),
        ({"prompts": []}, "no prompt"),
        ({"duration": -1.0}, "must be > 0"),
        ({"duration": 0.0}, "must be > 0"),
        ({"duration": float("nan")}, "must be > 0"),
        ({"steps": 0}, "steps=0: must be between 1 and 999"),
        ({"sampler": "euler"}, "choose one of ddim, dpmpp-2m"),
        ({"guidance_scale": -0.5}, ">= 0"),
        ({"num_samples": 0}, "num_samples=0: must be >= 1"),
    ],
)
def test_bad_generate_arguments(pipe, kwargs, message):
    args = {"prompts": ["x"], "duration": 0.1, "steps": 2, **kwargs}
    with pytest.raises(UsageError, match=message):
        pipe.generate(args.pop("prompts"), **args)


def test_text_width_must_match_the_unet(tiny_model, tmp_path):
    import json
    import shutil

    folder = shutil.copytree(tiny_model, tmp_path / "m")
    path = folder / "unet" / "config.json"
    meta = json.loads(path.read_text())
    assert meta["config"]["context_dim"] == 384
    (folder / "pipeline.json").write_text(
        (folder / "pipeline.json")
        .read_text()
        .replace('"conditioning": "crossattn"', '"conditioning": "film"')
    )
    with pytest.raises(
        ModelError, match="extra_film_condition_dim None differs from the text encoder width 384"
    ):
        AudioLDM.from_pretrained(folder).generate("x", duration=0.1, steps=1)


def test_reconfigure_rederives_the_schedule_and_keeps_the_frontend(tiny_model):
    import dataclasses

    pipe = AudioLDM.from_pretrained(tiny_model)
    pipe.reconfigure(
        dataclasses.replace(pipe.config, schedule={**pipe.config.schedule, "prediction_type": "v"})
    )
    assert pipe.schedule.prediction_type == "v" and pipe.config.schedule["prediction_type"] == "v"
    with pytest.raises(ModelError, match="pipeline.json: schedule prediction_type"):
        pipe.reconfigure(dataclasses.replace(pipe.config, schedule={"prediction_type": "x0"}))
    with pytest.raises(ModelError, match="cannot change the frontend"):
        pipe.reconfigure(dataclasses.replace(pipe.config, frontend={**pipe.config.frontend, "n_mels": 80}))
    assert pipe.schedule.prediction_type == "v"  # a refused config leaves the pipeline as it was


def test_waveforms_that_would_give_garbage_are_refused(recon):
    """NaN/inf samples, integer PCM, numpy arrays and empty input: a UsageError naming the problem, never
    NaN audio or a latent of an empty input."""
    import numpy as np

    nan = torch.zeros(2000)
    nan[100] = float("nan")
    cases = [
        (nan, "NaN/inf"),
        (torch.full((2000,), float("inf")), "NaN/inf"),
        (torch.zeros(2000, dtype=torch.int16), "got a torch.int16 tensor"),
        (np.zeros(2000, np.float32), "got ndarray"),
        (torch.zeros(1, 0), "empty waveform"),
    ]
    for wav, message in cases:
        for call in (recon.reconstruct, recon.encode):
            with pytest.raises(UsageError, match=message):
                call(wav)


def test_decode_latent_refuses_what_it_cannot_decode_faithfully(recon):
    z, meta = recon.encode(0.1 * torch.randn(3000, generator=torch.Generator().manual_seed(0)))
    assert recon.decode_latent(z, meta["n_samples"]).shape == (1, 3000)
    bad = z.clone()
    bad[0, 0, 0, 0] = float("nan")
    for latent, kwargs, message in (
        (bad, {}, "NaN/inf"),
        (z, {"n_samples": 0}, r"n_samples=0: must lie in \[1, 3200\]: the latent's"),
        (z, {"n_samples": 1.5}, "n_samples=1.5: must be an integer"),
        (z, {"frame_level_limit": float("nan")}, "frame_level_limit=nan"),
        (z[0, 0, 0], {}, "expected a latent"),
        (z.numpy(), {}, "as a torch.Tensor"),
    ):
        with pytest.raises((UsageError, ModelError), match=message):
            recon.decode_latent(latent, **kwargs)


def test_generate_arguments_of_the_wrong_type_are_usage_errors(pipe):
    fast = {"duration": 0.2, "steps": 2}
    for kwargs, message in (
        ({"prompts": None}, "expected a string or a list of strings"),
        ({"prompts": {"rain": 1}}, "got dict"),
        ({"prompts": [5]}, "prompt 5: must be a string"),
        ({"prompts": ["rain"], "negative_prompt": 0}, "negative_prompt=0: must be a string"),
        ({"prompts": ["rain"], "steps": 2.0}, "steps=2.0: must be an integer"),
        ({"prompts": ["rain"], "num_samples": 1.5}, "num_samples=1.5: must be an integer"),
        ({"prompts": ["rain"], "guidance_scale": "3"}, "guidance_scale='3': must be a number"),
        ({"prompts": ["rain"], "seed": 1.5}, "seed=1.5: must be an integer"),
        ({"prompts": ["rain"], "seed": [0, 1]}, r"seed=\[0, 1\]: must be an integer"),
        ({"prompts": ["rain"], "seed": 2**64}, "must lie in"),
    ):
        with pytest.raises(UsageError, match=message):
            pipe.generate(**{**fast, **kwargs})
    import numpy as np

    a = pipe.generate(["rain"], seed=np.int64(3), **fast)  # numpy integers are integers
    assert torch.equal(a, pipe.generate(["rain"], seed=3, **fast))


def test_devices_are_checked_whatever_their_type():
    from audioldm_cli.runtime import resolve_device

    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(UsageError, match="device=5: give a string"):
        resolve_device(5)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU"):
            resolve_device(torch.device("cuda"))
    with pytest.raises(UsageError):
        resolve_device(f"cuda:{torch.cuda.device_count()}")  # one past the last GPU (or no GPU at all)


def test_generators_chunks_and_progress_are_checked_before_any_work(recon, pipe):
    """A generator list of the wrong length, chunk_frames < 1, a negative overlap and a progress that
    cannot be called are UsageErrors naming the argument (they used to be a plain ValueError, a run in
    4-frame chunks, or a TypeError only when the first step finished)."""
    wav = 0.1 * torch.randn(2, 2000, generator=torch.Generator().manual_seed(0))
    one = [torch.Generator().manual_seed(1)]
    with pytest.raises(UsageError, match="got 1 generators for a batch of 2"):
        recon.encode(wav, sample=True, generator=one)
    with pytest.raises(UsageError, match="generator: must be a torch.Generator"):
        recon.encode(wav, sample=True, generator=[1, 2])
    z, _ = recon.encode(wav[0])
    for call in (lambda **kw: recon.reconstruct(wav[0], **kw), lambda **kw: recon.decode_latent(z, **kw)):
        for kwargs, message in (
            ({"chunk_frames": 0}, "chunk_frames=0: must be an integer >= 1"),
            ({"chunk_frames": 8.5}, "chunk_frames=8.5"),
            ({"overlap_frames": -1}, "overlap_frames=-1: must be an integer >= 0"),
            ({"progress": "bar"}, "progress: expected a callable"),
        ):
            with pytest.raises(UsageError, match=message):
                call(**kwargs)
    with pytest.raises(UsageError, match="progress: expected a callable"):
        pipe.generate(["rain"], duration=0.2, steps=2, progress=5)
    calls = []
    pipe.generate(["rain"], duration=0.2, steps=2, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (2, 2)


def test_non_finite_latents_blame_fp16_only():
    from audioldm_cli.errors import AudioLDMError
    from audioldm_cli.pipeline import check_finite_latent

    bad = torch.tensor([float("nan")])
    with pytest.raises(AudioLDMError, match="lower the guidance scale"):
        check_finite_latent(bad, "bf16")  # bf16 has fp32's range: the sampling ran away
    with pytest.raises(AudioLDMError, match="the UNet overflowed"):
        check_finite_latent(bad, "fp16")
