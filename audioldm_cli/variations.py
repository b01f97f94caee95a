"""CLAP-powered generation extras: audio prompts (variations of a sound) and best-of-K candidate ranking.

Both need the CLAP model of an official AudioLDM checkpoint (`audioldm convert --clap-tokenizer`):
- `generate_from_audio`: the FiLM vector is the CLAP *audio* embedding of the prompt sound; the
  unconditional input stays the empty-text embedding, as the reference does;
- `rank_candidates`: cosine similarity between the CLAP text and audio embeddings (both unit vectors).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from .errors import ModelError, UsageError
from .runtime import ProgressFn, check_progress, check_seeds, is_integer, make_generator

logger = logging.getLogger(__name__)


def rank_candidates(pipe, prompt: str, wavs: Tensor, audio_embedder=None) -> Tensor:
    """CLAP text-audio similarity [K] of candidate waveforms [K, N] (at pipe.sample_rate) to `prompt`."""
    from .clap import load_audio_embedder

    audio_embedder = audio_embedder or load_audio_embedder(pipe, "ranking candidates")
    text = pipe.text_encoder
    if not hasattr(text, "embed"):
        raise ModelError(
            "ranking candidates needs a CLAP text encoder; this model's text encoder is not CLAP"
        )
    t = text.embed([prompt]).cpu()  # [1, D]
    a = audio_embedder.embed(wavs, pipe.sample_rate).cpu()  # [K, D]
    return (a @ t.T).squeeze(-1)


def generate_from_audio(
    pipe,
    wav: Tensor,
    *,
    duration: float = 5.0,
    steps: int | None = None,
    sampler: str = "ddim",
    guidance_scale: float = 2.5,
    seed: int = 0,
    num_samples: int = 1,
    dtype: str = "fp32",
    compile: bool | str = False,
    frame_level_limit: float | None = None,
    guidance_rescale: float | None = None,
    progress: ProgressFn | None = None,
    negative_prompt: str | None = None,
    batch_size: int | None = None,
) -> Tensor:
    """Variations of `wav` [N] (at pipe.sample_rate): waveforms [num_samples, round(duration * rate)].

    Sample i starts from noise seeded `seed + i`, whatever `batch_size` (samples denoised together;
    None: all). Guidance steers away from the CLAP text embedding of `negative_prompt` (None: the
    empty text, as the reference). `dtype` and `compile` as in `AudioLDM.denoiser`,
    `frame_level_limit` and `guidance_rescale` as in `AudioLDM.generate`.
    """
    from . import samplers
    from .clap import load_audio_embedder
    from .pipeline import check_finite_latent
    from .precision import check_compile
    from .schedule import alphas_cumprod, ddim_timesteps

    if frame_level_limit is None:
        frame_level_limit = pipe.default_frame_level_limit
    steps = pipe.default_steps if steps is None else steps
    if guidance_rescale is None:
        guidance_rescale = pipe.default_guidance_rescale
    limit = frame_level_limit
    pipe.check_generate_inputs(
        ["audio"],
        duration,
        steps,
        sampler,
        guidance_scale,
        num_samples,
        dtype=dtype,
        frame_level_limit=limit,
        guidance_rescale=guidance_rescale,
        text=False,
    )
    check_compile(compile)
    check_progress(progress)
    check_seeds(seed, num_samples)
    from .pipeline import _as_batch

    if _as_batch(wav).shape[0] != 1 or wav.dim() != 1:  # a float tensor of finite samples, else UsageError
        raise UsageError(f"expected a mono waveform [N], got shape {tuple(wav.shape)}")
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise UsageError(f"negative_prompt: expected a str, got {type(negative_prompt).__name__}")
    batch_size = num_samples if batch_size is None else batch_size
    if not is_integer(batch_size) or batch_size < 1:
        raise UsageError("must be an integer >= 1", batch_size=batch_size)
    if pipe.config.conditioning != "film":
        raise ModelError(
            "an audio prompt needs a FiLM (CLAP-conditioned) model such as a converted AudioLDM checkpoint"
        )
    embedder = load_audio_embedder(pipe, "an audio prompt")
    n_samples = round(duration * pipe.sample_rate)
    frames = pipe.frames_for(n_samples, pipe.time_factor * pipe.unet_factor)
    shape = (pipe.latent_channels, frames // pipe.time_factor, pipe.mel_config.n_mels // pipe.freq_factor)
    with torch.inference_mode():
        # 1. condition: the prompt sound's CLAP audio vector; unconditional: the (negative) text's vector
        audio_vec = embedder.embed(wav.reshape(1, -1), pipe.sample_rate).to(pipe.device)
        guided = guidance_scale != 1.0
        uncond = pipe.text_encoder.embed([negative_prompt or ""]).to(pipe.device) if guided else None
    outputs = []
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        generators = [make_generator(seed + i) for i in range(start, start + count)]
        x = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(pipe.device)
        with torch.inference_mode():
            y = audio_vec.expand(count, -1)
            if guided:
                y = torch.cat([uncond.expand(count, -1), y])
            model_fn = pipe.denoiser({"y": y}, dtype=dtype, compile=compile)
            if guided:
                model_fn = pipe.guide(model_fn, guidance_scale, guidance_rescale)
            # 2. denoise
            latent = samplers.SAMPLERS[sampler](
                model_fn,
                x,
                ddim_timesteps(steps, pipe.schedule.timesteps),
                alphas_cumprod(pipe.schedule).to(pipe.device),
                prediction_type=pipe.schedule.prediction_type,
                generator=generators,
                callback=progress,
            )
        check_finite_latent(latent, dtype, pipe.unet)
        # 3. decode and vocode
        outputs.append(pipe.decode_latent(latent.cpu(), n_samples, frame_level_limit=frame_level_limit))
    return torch.cat(outputs)


__all__ = ["generate_from_audio", "rank_candidates"]
