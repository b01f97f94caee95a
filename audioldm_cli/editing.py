"""Audio editing with a text-to-audio model: style transfer, inpainting and super-resolution.

    transfer:  wav -> latent x0 -> noised to DDIM index int(strength * steps) -> denoised with the text
    inpaint:   wav -> latent x0 -> sampled from noise, the latent outside [start, end) pasted in at every
               step (re-noised to that step) and exactly at the end (DDIM-style latent masking)
    superres:  the same with a frequency mask: latent rows below the cutoff are kept, the upper mel
               bands regenerated

Every function returns an `EditResult`: the waveform (exactly as long as the input), the edited latent,
the input's latent and the keep-mask (1 = kept), so callers can check what was kept. `seed` is an
integer in [0, 2**32), as for `AudioLDM.generate`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import UsageError
from .precision import check_compile
from .runtime import ProgressFn, check_progress, check_seed, is_integer, is_real, make_generator
from .samplers import SAMPLERS, randn_like, sample_ddim, stochastic_encode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditResult:
    wav: Tensor  # [N] float32, N = the input's length
    latent: Tensor  # [1, C, T', F'] edited latent (scaled by scale_factor)
    original: Tensor  # [1, C, T', F'] the input's latent
    mask: Tensor | None  # broadcastable to the latent, 1 = kept from the input; None for transfer


def transfer_start(strength: float, steps: int) -> int:
    """The DDIM index the input is noised to: int(strength * steps), as the reference (at most steps - 1)."""
    if not (is_real(strength) and math.isfinite(strength) and 0.0 < strength <= 1.0):
        raise UsageError("must be in (0, 1]", strength=strength)
    t_enc = min(int(strength * steps), steps - 1)
    if t_enc < 1:
        raise UsageError("their product is below one step; raise either", strength=strength, steps=steps)
    return t_enc


def transfer_latent(
    model_fn: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    timesteps: Tensor,
    alphas_cumprod: Tensor,
    strength: float,
    *,
    prediction_type: str = "eps",
    noise: Tensor | None = None,
    generator=None,
    callback: ProgressFn | None = None,
) -> Tensor:
    """SDEdit-style transfer (Meng et al. 2022) as the reference: `stochastic_encode` to DDIM index
    t_enc, then DDIM over `timesteps[:t_enc]` in reverse."""
    t_enc = transfer_start(strength, len(timesteps))
    z = stochastic_encode(x0, timesteps, alphas_cumprod, t_enc, noise=noise, generator=generator)
    return sample_ddim(
        model_fn, z, timesteps[:t_enc], alphas_cumprod, prediction_type=prediction_type, callback=callback
    )


# ----------------------------------------------------------------------------------------------
# masks


def time_mask(pipe, latent: Tensor, start: float, end: float, n_samples: int) -> Tensor:
    """Keep-mask [1, 1, T', 1]: 0 on the latent frames covering [start, end) seconds, 1 elsewhere.

    Times are rounded to samples first, so a range that starts or ends on a latent frame's edge takes
    no extra frame (0.2 s is frame 5 exactly, not 4.999...). An `end` past the input by less than one
    latent frame (--end 1 on a clip of 0.9998 s) is read as the input's end."""
    if not (is_real(start) and is_real(end)):
        raise UsageError("must be numbers (seconds)", start=start, end=end)
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise UsageError("need finite seconds with 0 <= start < end", start=start, end=end)
    per_frame = pipe.hop_length * pipe.time_factor  # samples per latent frame
    first, last = round(start * pipe.sample_rate), round(end * pipe.sample_rate)
    if first >= n_samples or last >= n_samples + per_frame:
        duration = n_samples / pipe.sample_rate
        raise UsageError(f"the range must lie inside the input ({duration:.6g} s)", start=start, end=end)
    lo, hi = first // per_frame, -(-min(last, n_samples) // per_frame)
    mask = torch.ones(1, 1, latent.shape[2], 1)
    mask[:, :, lo : max(hi, lo + 1)] = 0.0
    return mask


# Fade-in / fade-out of a regenerated range spliced into its input (`splice_into_input`), in seconds.
SPLICE_FADE_SECONDS = 0.05


def splice_into_input(pipe, wav: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """`edited` [N] on the samples of the latent frames `mask` [1, 1, T', 1] regenerates, `wav` [N]
    elsewhere, with raised-cosine crossfades of SPLICE_FADE_SECONDS just outside the regenerated range
    (there the edit's decode still carries the input, shaped by its new neighbour)."""
    per_frame = pipe.hop_length * pipe.time_factor
    frames = (mask.reshape(-1) < 1).nonzero().reshape(-1)
    n = wav.shape[-1]
    s0, s1 = min(int(frames[0]) * per_frame, n), min((int(frames[-1]) + 1) * per_frame, n)
    fade = max(1, round(SPLICE_FADE_SECONDS * pipe.sample_rate))
    weight = torch.zeros(n, dtype=edited.dtype)
    weight[s0:s1] = 1.0
    ramp = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(1, fade + 1, dtype=edited.dtype) / (fade + 1)))
    a = max(0, s0 - fade)
    weight[a:s0] = ramp[fade - (s0 - a) :]  # rising towards the range
    b = min(n, s1 + fade)
    weight[s1:b] = ramp.flip(0)[: b - s1]  # falling after it
    return weight * edited + (1 - weight) * wav.to(edited.device, edited.dtype)


def hz_to_mel(freq: float) -> float:
    """Slaney mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    if freq < 1000.0:
        return freq * 3.0 / 200.0
    return 15.0 + math.log(freq / 1000.0) / (math.log(6.4) / 27.0)


def band_mask(pipe, latent: Tensor, cutoff_hz: float) -> Tensor:
    """Keep-mask [1, 1, 1, F']: 1 on the latent rows wholly below `cutoff_hz`, 0 above (regenerated)."""
    mel = pipe.mel_config
    fmin, fmax = mel.f_min, mel.f_max or mel.sample_rate / 2
    if not (is_real(cutoff_hz) and math.isfinite(cutoff_hz) and fmin < cutoff_hz < fmax):
        raise UsageError(f"must lie strictly between {fmin:g} and {fmax:g} Hz", cutoff_hz=cutoff_hz)
    # triangle i spans mel edge points i .. i + 2 of n_mels + 2 evenly spaced ones: count the bins
    # whose upper edge lies at or below the cutoff, then the latent rows made only of such bins
    frac = (hz_to_mel(cutoff_hz) - hz_to_mel(fmin)) / (hz_to_mel(fmax) - hz_to_mel(fmin))
    bins = max(0, math.floor((mel.n_mels + 1) * frac + 1e-9) - 1)
    rows = bins // pipe.freq_factor
    if rows < 1:
        raise UsageError("keeps no latent row; raise it", cutoff_hz=cutoff_hz)
    mask = torch.zeros(1, 1, 1, latent.shape[3])
    mask[..., :rows] = 1.0
    return mask


# ----------------------------------------------------------------------------------------------
# the pipeline-level edits


def encode_input(pipe, wav: Tensor, refine_steps: int = 0) -> Tensor:
    """wav [N] -> latent [1, C, T', F'] (posterior mean, scaled), T' padded to the UNet's multiple;
    `refine_steps` > 0 fits it to the mel first (`AudioLDM.latent_of`)."""
    frames = pipe.frames_for(wav.shape[-1], pipe.time_factor * pipe.unet_factor)
    with torch.inference_mode():
        mel = pipe.mel(wav.reshape(1, -1), frames)
    return (pipe.latent_of(mel, refine_steps) * pipe.scale_factor).float().cpu()


# The guidance of an edit with a model that recommends none: the reference's default for its edits.
EDIT_GUIDANCE_SCALE = 2.5

# Seconds of the input on each side of a regenerated time range that the UNet sees (`masked_edit`).
EDIT_CONTEXT_SECONDS = 10.0


def edited_span(mask: Tensor, frames: int, multiple: int, context: int | None) -> tuple[int, int]:
    """The latent frames [lo, hi) an edit runs the UNet on: those that `mask` (broadcastable to the
    latent [1, C, T', F'], 1 = kept) regenerates anywhere, with `context` frames of the input on each side (None: every frame),
    widened to the UNet's `multiple` (of which `frames` is one)."""
    regenerated = (mask < 1).reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))  # as [1, C, T', F']
    regenerated = (regenerated.sum(dim=(0, 1, 3)) > 0).expand(frames).nonzero()
    if context is None or len(regenerated) == 0:
        return 0, frames
    first, last = int(regenerated[0]), int(regenerated[-1])
    lo = max(0, first - context) // multiple * multiple
    hi = min(frames, -(-(last + 1 + context) // multiple) * multiple)
    return lo, hi


@dataclass(frozen=True)
class EditSampling:
    """The guidance, guidance rescale and mel frame level limit (inf: none) of an edit."""

    guidance_scale: float
    guidance_rescale: float
    frame_level_limit: float


def edit_sampling(
    pipe,
    guidance_scale: float | None = None,
    guidance_rescale: float | None = None,
    frame_level_limit: float | None = None,
) -> EditSampling:
    """Each value as given; else the guidance scale and rescale the model recommends for `generate`
    (`audioldm info`), or guidance 2.5 (AudioLDM's edits) and no rescale; and no frame level limit.

    A model trained to need strong guidance needs it to edit too: the default model's style transfer
    reaches the prompt's category about three times as often with its recommendation as with plain
    guidance 2.5 (`benchmarks/RESULTS.md`, `## Editing`). The model's frame level limit (the loudest
    frame of its corpus) is not applied unless asked for: an edit keeps (part of) an input that may be
    louder than that corpus, and the limit would turn it down (it made no difference to the measure)."""
    return _validated_sampling(pipe, 1, "ddim", "fp32", guidance_scale, guidance_rescale, frame_level_limit)


def _validated_sampling(
    pipe,
    steps: int,
    sampler: str,
    dtype: str,
    guidance_scale: float | None,
    guidance_rescale: float | None,
    frame_level_limit: float | None,
) -> EditSampling:
    """Check an edit's sampling arguments by generate's rules (each error naming the value), once, then
    resolve the guidance values as `edit_sampling` documents."""
    pipe.check_generate_inputs(
        ["x"],
        1.0,
        steps,
        sampler,
        EDIT_GUIDANCE_SCALE if guidance_scale is None else guidance_scale,
        dtype=dtype,
        guidance_rescale=guidance_rescale,
        frame_level_limit=frame_level_limit,
    )
    rec = pipe.config.sampling
    return EditSampling(
        float(rec.get("guidance_scale", EDIT_GUIDANCE_SCALE) if guidance_scale is None else guidance_scale),
        float(pipe.default_guidance_rescale if guidance_rescale is None else guidance_rescale),
        math.inf if frame_level_limit is None else float(frame_level_limit),
    )


def _model_fn(pipe, prompt: str, negative: str, sampling: EditSampling, dtype: str, compile: bool | str):
    guided = sampling.guidance_scale != 1.0
    cond = pipe._condition([negative, prompt] if guided else [prompt])
    model_fn = pipe.denoiser(cond, dtype=dtype, compile=compile)
    return pipe.guide(model_fn, sampling.guidance_scale, sampling.guidance_rescale) if guided else model_fn


def _check(
    pipe,
    wav: Tensor,
    prompt: str,
    negative_prompt: str | None,
    steps: int | None,
    sampler: str,
    guidance_scale: float | None,
    dtype: str,
    guidance_rescale: float | None,
    frame_level_limit: float | None,
    progress: ProgressFn | None,
) -> tuple[Tensor, str, int, EditSampling]:
    """Validate an edit's arguments (as `generate`'s), before any work; returns the waveform, the negative
    prompt (None: ""), the steps (None: the model's recommendation for `generate`,
    `AudioLDM.default_steps`) and the sampling."""
    from .pipeline import _as_batch

    batch = _as_batch(wav)  # a float tensor of finite samples, or a UsageError
    if wav.dim() != 1:
        raise UsageError(f"expected a mono waveform [N], got shape {tuple(wav.shape)}")
    negative_prompt = "" if negative_prompt is None else negative_prompt
    for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        if not isinstance(text, str):
            raise UsageError(f"{name}: expected a str, got {type(text).__name__}")
    check_progress(progress)
    steps = pipe.default_steps if steps is None else steps
    if not is_integer(steps):
        raise UsageError("must be an integer", steps=steps)
    sampling = _validated_sampling(
        pipe, steps, sampler, dtype, guidance_scale, guidance_rescale, frame_level_limit
    )
    return batch[0], negative_prompt, int(steps), sampling


def transfer(
    pipe,
    wav: Tensor,
    prompt: str,
    *,
    strength: float = 0.5,
    steps: int | None = None,
    guidance_scale: float | None = None,
    negative_prompt: str | None = "",
    seed: int = 0,
    dtype: str = "fp32",
    compile: bool | str = False,
    progress: ProgressFn | None = None,
    guidance_rescale: float | None = None,
    frame_level_limit: float | None = None,
) -> EditResult:
    """Text-guided style transfer of `wav` [N] (at `pipe.sample_rate`); output [N].

    `steps`, `guidance_scale`, `guidance_rescale`: None takes the model's recommendation for `generate`
    (steps: else 50); `frame_level_limit` None: no limit (`edit_sampling`). `dtype` and `compile` speed
    up the UNet as in `AudioLDM.denoiser`.
    """
    from .pipeline import check_finite_latent
    from .schedule import alphas_cumprod, ddim_timesteps

    wav, negative_prompt, steps, sampling = _check(
        pipe, wav, prompt, negative_prompt, steps, "ddim", guidance_scale, dtype, guidance_rescale,
        frame_level_limit, progress,
    )  # fmt: skip
    check_compile(compile)
    check_seed(seed)
    if not prompt.strip():
        raise UsageError("prompt is empty: a style transfer needs a text to move towards")
    transfer_start(strength, steps)  # fail before encoding
    x0 = encode_input(pipe, wav)
    with torch.inference_mode():
        latent = transfer_latent(
            _model_fn(pipe, prompt, negative_prompt, sampling, dtype, compile),
            x0.to(pipe.device),
            ddim_timesteps(steps, pipe.schedule.timesteps),
            alphas_cumprod(pipe.schedule).to(pipe.device),
            strength,
            prediction_type=pipe.schedule.prediction_type,
            generator=make_generator(seed),
            callback=progress,
        ).cpu()
    latent = latent.clone()  # a normal tensor, as the other edits return (not an inference one)
    check_finite_latent(latent, dtype, pipe.unet)
    wav_out = pipe.decode_latent(latent, wav.shape[-1], frame_level_limit=sampling.frame_level_limit)[0]
    return EditResult(wav_out, latent, x0, None)


def masked_edit(
    pipe,
    wav: Tensor,
    prompt: str,
    mask_fn: Callable[[Tensor], Tensor],
    *,
    steps: int | None = None,
    sampler: str = "ddim",
    guidance_scale: float | None = None,
    negative_prompt: str | None = "",
    seed: int = 0,
    dtype: str = "fp32",
    compile: bool | str = False,
    progress: ProgressFn | None = None,
    refine_steps: int = 0,
    guidance_rescale: float | None = None,
    frame_level_limit: float | None = None,
    context_seconds: float | None = EDIT_CONTEXT_SECONDS,
) -> EditResult:
    """Regenerate where `mask_fn(x0)` is 0, keeping the input's latent exactly where it is 1.

    `refine_steps` > 0 fits the input's latent to its mel first, so the kept part decodes closer to
    the input (`AutoencoderKL.refine`). `steps`, `guidance_scale`, `guidance_rescale`: None takes the
    model's recommendation for `generate` (steps: else 50); `frame_level_limit` None: no limit
    (`edit_sampling`). The UNet sees the frames the mask regenerates and `context_seconds` of the input
    on each side (None: the whole input), so a short range of a long input costs what a short input does
    (`edited_span`); the rest of the latent is the input's."""
    from .pipeline import check_finite_latent
    from .schedule import alphas_cumprod, ddim_timesteps

    wav, negative_prompt, steps, sampling = _check(
        pipe, wav, prompt, negative_prompt, steps, sampler, guidance_scale, dtype, guidance_rescale,
        frame_level_limit, progress,
    )  # fmt: skip
    check_compile(compile)
    check_seed(seed)
    frames = pipe.frames_for(wav.shape[-1], pipe.time_factor * pipe.unet_factor)  # as encode_input
    shape = (1, pipe.latent_channels, frames // pipe.time_factor, pipe.mel_config.n_mels // pipe.freq_factor)
    mask = mask_fn(torch.zeros(shape))  # the range is checked before any work
    if context_seconds is not None and not (is_real(context_seconds) and 0 <= context_seconds < math.inf):
        raise UsageError(
            "must be a number of seconds >= 0 (None: the whole input)", context_seconds=context_seconds
        )
    per_second = pipe.sample_rate / (pipe.hop_length * pipe.time_factor)  # latent frames
    context = None if context_seconds is None else math.ceil(context_seconds * per_second)
    lo, hi = edited_span(mask, shape[2], pipe.unet_factor, context)
    x0 = encode_input(pipe, wav, refine_steps)
    if not prompt:  # both halves would be the empty prompt
        if guidance_scale is not None or guidance_rescale is not None:
            logger.warning("no prompt: the edit is unconditional, so guidance and its rescale do nothing")
        sampling = EditSampling(1.0, 0.0, sampling.frame_level_limit)
    generator = make_generator(seed)
    with torch.inference_mode():
        x = randn_like(x0, generator)[:, :, lo:hi].to(pipe.device)
        edited = SAMPLERS[sampler](
            _model_fn(pipe, prompt, negative_prompt, sampling, dtype, compile),
            x,
            ddim_timesteps(steps, pipe.schedule.timesteps),
            alphas_cumprod(pipe.schedule).to(pipe.device),
            prediction_type=pipe.schedule.prediction_type,
            generator=generator,
            callback=progress,
            x0=x0[:, :, lo:hi].to(pipe.device),
            mask=mask.expand(shape)[:, :, lo:hi].to(pipe.device),
        ).cpu()
    check_finite_latent(edited, dtype, pipe.unet)
    latent = x0.clone()
    latent[:, :, lo:hi] = edited
    wav_out = pipe.decode_latent(latent, wav.shape[-1], frame_level_limit=sampling.frame_level_limit)[0]
    return EditResult(wav_out, latent, x0, mask)


def inpaint(
    pipe, wav: Tensor, prompt: str, start: float, end: float, *, splice: bool = True, **kwargs
) -> EditResult:
    """Regenerate the time range [start, end) seconds of `wav` [N], keeping the rest; output [N].

    `splice` (the default) returns the input itself outside the regenerated latent frames, crossfaded
    over SPLICE_FADE_SECONDS into the edit (`splice_into_input`); `splice=False` returns the whole edited
    latent decoded, as AudioLDM does, where the kept part is a VAE round trip of the input and the new
    range's influence reaches about half a second beyond it."""
    if not isinstance(splice, bool):
        raise UsageError(f"splice: expected True or False, got {splice!r}")
    result = masked_edit(
        pipe, wav, prompt, lambda x0: time_mask(pipe, x0, start, end, wav.shape[-1]), **kwargs
    )
    if not splice:
        return result
    spliced = splice_into_input(pipe, wav, result.wav, result.mask)
    return EditResult(spliced, result.latent, result.original, result.mask)


def superres(pipe, wav: Tensor, prompt: str, cutoff_hz: float, **kwargs) -> EditResult:
    """Regenerate the mel bands above `cutoff_hz` of `wav` [N], keeping those below; output [N]."""
    return masked_edit(pipe, wav, prompt, lambda x0: band_mask(pipe, x0, cutoff_hz), **kwargs)


__all__ = [
    "EDIT_GUIDANCE_SCALE",
    "EditResult",
    "EditSampling",
    "band_mask",
    "edit_sampling",
    "edited_span",
    "encode_input",
    "inpaint",
    "masked_edit",
    "splice_into_input",
    "superres",
    "time_mask",
    "transfer",
    "transfer_latent",
    "transfer_start",
]
