"""Diffusion samplers as pure functions (k-diffusion style) and classifier-free guidance.

Every sampler shares one signature::

    sample_x(model_fn, x, timesteps, alphas_cumprod, *, prediction_type="eps", eta=0.0,
             generator=None, callback=None, x0=None, mask=None) -> Tensor

- `model_fn(x [B, ...], t [B] int64) -> Tensor [B, ...]` is the network output at integer training
  timestep t: the noise for `prediction_type="eps"`, v = sqrt(a) * eps - sqrt(1 - a) * x0 for "v".
  It knows nothing about guidance: wrap it with `classifier_free_guidance` first.
- `x` is the starting latent at the largest timestep (pure noise for text-to-audio).
- `timesteps` is the ascending table of integer timesteps to visit (`schedule.ddim_timesteps`); the
  sampler walks it from the end to the start.
- `alphas_cumprod` is the float32 alpha-bar table [T] (`schedule.alphas_cumprod`).
- `generator` draws the sampler's own noise (DDIM with eta > 0, masks): one CPU `torch.Generator`,
  or a list with one per batch item so that item i does not depend on the batch it is in.
- `callback(done, total)` is called after every step.
- `x0` + `mask` (broadcastable to x, 1 = keep): the known latent is re-noised to the current
  timestep and pasted in before every step, and pasted exactly at the end (inpainting).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .runtime import ProgressFn
from .schedule import PredictionType, add_noise, ddim_table, pred_to_x0_eps, x0_to_pred

logger = logging.getLogger(__name__)

ModelFn = Callable[[Tensor, Tensor], Tensor]
Generators = torch.Generator | Sequence[torch.Generator] | None


def randn_like(x: Tensor, generator: Generators = None) -> Tensor:
    """Standard normal noise shaped like x, drawn on CPU (one generator, or one per batch item)."""
    if generator is None or isinstance(generator, torch.Generator):
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
    else:
        if len(generator) != x.shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {x.shape[0]}")
        noise = torch.stack([torch.randn(x.shape[1:], generator=g, dtype=torch.float32) for g in generator])
    return noise.to(device=x.device, dtype=x.dtype)


def classifier_free_guidance(
    model_fn_2b: ModelFn,
    scale: float,
    *,
    rescale: float = 0.0,
    alphas_cumprod: Tensor | None = None,
    prediction_type: PredictionType = "eps",
) -> ModelFn:
    """Wrap a 2B-batch model into a guided B-batch `model_fn` (Ho & Salimans 2022).

    `model_fn_2b(x [2B], t [2B])` must evaluate the unconditional half first, then the conditional
    half (the pipeline closes over `cat([uncond_context, cond_context])`; a negative prompt simply
    replaces the unconditional context). Output: e_u + scale * (e_c - e_u). At scale 1 call the
    conditional model directly instead: the result is the same for half the work.

    `rescale` = phi in [0, 1] (needs `alphas_cumprod` and the model's `prediction_type`) counters the
    over-saturation of strong guidance in the clean-latent estimate: the guided x0 = x0_u + scale *
    (x0_c - x0_u) is rescaled to the standard deviation of the conditional x0_c (per item) and mixed
    phi : 1 - phi with the plain guided x0, then turned back into the model's output at the same x_t
    (the rescaling of Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed",
    applied to x0; diffusers' `guidance_rescale` applies it to the network output instead). At strong
    guidance the plain x0 drifts to 2-3 times the data's spread, which the decoder renders as peaky,
    tonal spectra (benchmarks/RESULTS.md, `## Default model`).
    """
    if not 0.0 <= rescale <= 1.0:
        raise ValueError(f"guidance rescale {rescale!r}: must be in [0, 1]")
    if rescale and alphas_cumprod is None:
        raise ValueError("guidance rescale needs alphas_cumprod")

    def guided(x: Tensor, t: Tensor) -> Tensor:
        out_uncond, out_cond = model_fn_2b(torch.cat([x, x]), torch.cat([t, t])).chunk(2)
        out = out_uncond + scale * (out_cond - out_uncond)
        if not rescale:
            return out
        a = alphas_cumprod.to(x.device)[t].view(-1, *[1] * (x.dim() - 1)).to(x.dtype)
        x0, _ = pred_to_x0_eps(out, x, a, prediction_type)
        x0_cond, _ = pred_to_x0_eps(out_cond, x, a, prediction_type)
        dims = tuple(range(1, x.dim()))
        factor = x0_cond.std(dim=dims, keepdim=True) / x0.std(dim=dims, keepdim=True).clamp_min(1e-12)
        x0 = x0 * (rescale * factor + (1.0 - rescale))
        return x0_to_pred(x0, x, a, prediction_type)

    return guided


def _timestep_batch(t: Tensor | int, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), int(t), dtype=torch.int64, device=x.device)


def _paste_known(x: Tensor, x0: Tensor | None, mask: Tensor | None, t: int, acp: Tensor, generator) -> Tensor:
    """Replace the masked (mask = 1) region of x by the known latent noised to timestep t."""
    if x0 is None or mask is None:
        return x
    known = add_noise(x0, randn_like(x0, generator), t, acp)
    return mask * known + (1.0 - mask) * x


def _check_inputs(x: Tensor, timesteps: Tensor, acp: Tensor, x0: Tensor | None, mask: Tensor | None) -> None:
    if timesteps.ndim != 1 or len(timesteps) == 0:
        raise ValueError(f"timesteps must be a non-empty 1-d table, got shape {tuple(timesteps.shape)}")
    if bool((timesteps[1:] <= timesteps[:-1]).any()):
        raise ValueError("timesteps must be strictly ascending")
    if int(timesteps[0]) < 0 or int(timesteps[-1]) >= len(acp):
        raise ValueError(
            f"timesteps must lie in [0, {len(acp)}), got {int(timesteps[0])}..{int(timesteps[-1])}"
        )
    if (x0 is None) != (mask is None):
        raise ValueError("x0 and mask must be given together")


@torch.no_grad()
def sample_ddim(
    model_fn: ModelFn,
    x: Tensor,
    timesteps: Tensor,
    alphas_cumprod: Tensor,
    *,
    prediction_type: PredictionType = "eps",
    eta: float = 0.0,
    generator: Generators = None,
    callback: ProgressFn | None = None,
    x0: Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12), exactly as the reference `DDIMSampler.p_sample_ddim`.

    The last step goes to alpha-bar[0], not to 1, as in the reference (diffusers' `set_alpha_to_one=False`).
    """
    _check_inputs(x, timesteps, alphas_cumprod, x0, mask)
    table = ddim_table(timesteps.cpu(), alphas_cumprod.cpu().float(), eta)
    total = len(timesteps)
    for i, index in enumerate(reversed(range(total))):
        t = int(timesteps[index])
        x = _paste_known(x, x0, mask, t, alphas_cumprod, generator)
        pred = model_fn(x, _timestep_batch(t, x))

        # the reference's torch.full((b, 1, 1, 1), v) float32 scalars
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        a_t, a_prev, sigma_t, sqrt_1ma = (
            torch.full(shape, float(table[name][index]), device=x.device)
            for name in ("alphas", "alphas_prev", "sigmas", "sqrt_one_minus_alphas")
        )
        if prediction_type == "eps":
            eps = pred
            pred_x0 = (x - sqrt_1ma * eps) / a_t.sqrt()
        else:
            pred_x0, eps = pred_to_x0_eps(pred, x, a_t, prediction_type)
        dir_xt = (1.0 - a_prev - sigma_t**2).sqrt() * eps  # "direction pointing to x_t", eq. 12
        x = a_prev.sqrt() * pred_x0 + dir_xt
        if eta > 0:
            x = x + sigma_t * randn_like(x, generator)
        if callback is not None:
            callback(i + 1, total)
    if x0 is not None:
        x = mask * x0 + (1.0 - mask) * x
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    model_fn: ModelFn,
    x: Tensor,
    timesteps: Tensor,
    alphas_cumprod: Tensor,
    *,
    prediction_type: PredictionType = "eps",
    eta: float = 0.0,
    generator: Generators = None,
    callback: ProgressFn | None = None,
    x0: Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), data prediction, midpoint form, in log-SNR time.

    Steps through `timesteps` from the last to the first, then a final first-order step to the clean
    signal (sigma = 0), like diffusers' `DPMSolverMultistepScheduler(final_sigmas_type="zero")` and
    k-diffusion's `sample_dpmpp_2m`. Deterministic: `eta` must be 0.
    """
    if eta != 0.0:
        raise ValueError(f"eta={eta}: DPM-Solver++ 2M is deterministic; use eta=0 or the ddim sampler")
    _check_inputs(x, timesteps, alphas_cumprod, x0, mask)
    # Step coefficients as Python floats from a float64 CPU table (MPS has no float64).
    acp = [float(a) for a in alphas_cumprod.detach().cpu().double()]
    ts = [int(t) for t in reversed(timesteps.tolist())]
    total = len(ts)
    old_denoised, h_last = None, None  # multistep history: previous x0 prediction and step size
    for i, t in enumerate(ts):
        x = _paste_known(x, x0, mask, t, alphas_cumprod, generator)
        pred = model_fn(x, _timestep_batch(t, x))
        denoised, _ = pred_to_x0_eps(pred, x, acp[t], prediction_type)
        if i == total - 1:  # lower-order final step to sigma = 0: x_0 = D
            x = denoised
        else:
            a_s, a_t = acp[t], acp[ts[i + 1]]
            lam_s = 0.5 * math.log(a_s / (1.0 - a_s))  # lambda = log(alpha / sigma)
            lam_t = 0.5 * math.log(a_t / (1.0 - a_t))
            h = lam_t - lam_s
            if old_denoised is None:
                d = denoised
            else:
                r = h_last / h
                d = (1.0 + 1.0 / (2.0 * r)) * denoised - (1.0 / (2.0 * r)) * old_denoised
            ratio = math.sqrt((1.0 - a_t) / (1.0 - a_s))  # sigma_t / sigma_s
            coef = -math.sqrt(a_t) * math.expm1(-h)  # alpha_t * (1 - e^{-h})
            x = ratio * x + coef * d
            old_denoised, h_last = denoised, h
        if callback is not None:
            callback(i + 1, total)
    if x0 is not None:
        x = mask * x0 + (1.0 - mask) * x
    return x


def stochastic_encode(
    x0: Tensor,
    timesteps: Tensor,
    alphas_cumprod: Tensor,
    t_enc: int,
    noise: Tensor | None = None,
    generator: Generators = None,
) -> Tensor:
    """Noise a clean latent to DDIM index `t_enc` (style transfer), as the reference's `stochastic_encode`.

    z = sqrt(a[timesteps[t_enc]]) * x0 + sqrt(1 - a[timesteps[t_enc]]) * noise. Continue with
    `sample_ddim(model_fn, z, timesteps[:t_enc], ...)`, which is the reference's `decode(z, t_start=t_enc)`.
    """
    if not 0 <= t_enc < len(timesteps):
        raise ValueError(f"t_enc={t_enc}: must lie in [0, {len(timesteps)})")
    table = ddim_table(timesteps.cpu(), alphas_cumprod.cpu().float())
    if noise is None:
        noise = randn_like(x0, generator)
    sqrt_a = torch.sqrt(table["alphas"])[t_enc].to(x0.device)
    return sqrt_a * x0 + table["sqrt_one_minus_alphas"][t_enc].to(x0.device) * noise


SAMPLERS: dict[str, Callable[..., Tensor]] = {"ddim": sample_ddim, "dpmpp-2m": sample_dpmpp_2m}

__all__ = [
    "SAMPLERS",
    "ModelFn",
    "classifier_free_guidance",
    "randn_like",
    "sample_ddim",
    "sample_dpmpp_2m",
    "stochastic_encode",
]
