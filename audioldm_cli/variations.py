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

from .errors import ModelError
from .runtime import ProgressFn, check_progress, check_seeds, make_generator

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
) -> Tensor:
    """Variations of `wav` [N] (at pipe.sample_rate): waveforms [num_samples, round(duration * rate)].

    Sample i starts from noise seeded `seed + i`. `dtype` and `compile` as in `AudioLDM.denoiser`,
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
    )
    check_compile(compile)
    check_progress(progress)
    check_seeds(seed, num_samples)
    if pipe.config.conditioning != "film":
        raise ModelError(
            "an audio prompt needs a FiLM (CLAP-conditioned) model such as a converted AudioLDM checkpoint"
        )
    embedder = load_audio_embedder(pipe, "an audio prompt")
    n_samples = round(duration * pipe.sample_rate)
    frames = pipe.frames_for(n_samples, pipe.time_factor * pipe.unet_factor)
    shape = (pipe.latent_channels, frames // pipe.time_factor, pipe.mel_config.n_mels // pipe.freq_factor)
    generators = [make_generator(seed + i) for i in range(num_samples)]
    x = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(pipe.device)
    with torch.inference_mode():
        # 1. condition: the prompt sound's CLAP audio vector; unconditional: the empty text's vector
        y = embedder.embed(wav.reshape(1, -1), pipe.sample_rate).to(pipe.device).expand(num_samples, -1)
        guided = guidance_scale != 1.0
        if guided:
            y = torch.cat([pipe.text_encoder.embed([""]).to(pipe.device).expand(num_samples, -1), y])

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
    return pipe.decode_latent(latent.cpu(), n_samples, frame_level_limit=frame_level_limit)


__all__ = ["generate_from_audio", "rank_candidates"]
