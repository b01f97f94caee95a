"""The diffusion noise schedule: betas, alphas_cumprod, DDIM timestep tables, noising and training targets.

Conventions (those of the reference AudioLDM / latent-diffusion code):
- `alphas_cumprod[t]` is alpha-bar for the integer training timestep t in [0, T); x_t =
  sqrt(a_t) * x0 + sqrt(1 - a_t) * eps.
- The linear schedule is `linspace(sqrt(linear_start), sqrt(linear_end), T) ** 2`, computed in float64;
  the float32 copy (`alphas_cumprod(cfg)`) is what the networks and samplers see.
- DDIM timestep tables are ascending integer timesteps `1, 1 + T/S, 1 + 2T/S, ...` (they start at 1).
- "eps" models predict the noise; "v" models predict v = sqrt(a_t) * eps - sqrt(1 - a_t) * x0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import torch
from torch import Tensor

from .errors import UsageError

PredictionType = Literal["eps", "v"]
PREDICTION_TYPES = ("eps", "v")
BETA_SCHEDULES = ("linear",)


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """The training noise schedule; keys as in pipeline.json's "schedule" (official AudioLDM names)."""

    timesteps: int = 1000  # T, number of training timesteps
    beta_schedule: str = "linear"  # the only one AudioLDM uses
    linear_start: float = 0.0015  # beta at t = 0 (AudioLDM's value; Stable Diffusion uses 0.00085)
    linear_end: float = 0.0195  # beta at t = T - 1 (AudioLDM's value; Stable Diffusion uses 0.012)
    prediction_type: PredictionType = "eps"  # what the UNet predicts: noise ("eps") or v

    def __post_init__(self) -> None:
        if int(self.timesteps) != self.timesteps or self.timesteps < 2:
            raise UsageError(f"schedule timesteps={self.timesteps!r}: must be an integer >= 2")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise UsageError(
                f"schedule beta_schedule={self.beta_schedule!r}: must be one of {BETA_SCHEDULES}"
            )
        if not 0.0 < self.linear_start <= self.linear_end < 1.0:
            raise UsageError(
                f"schedule linear_start={self.linear_start}, linear_end={self.linear_end}: "
                "need 0 < linear_start <= linear_end < 1"
            )
        if self.prediction_type not in PREDICTION_TYPES:
            raise UsageError(
                f"schedule prediction_type={self.prediction_type!r}: must be one of {PREDICTION_TYPES}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ScheduleConfig:
        """Build from a dict; missing keys take defaults, unknown keys are an error naming the known ones."""
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown schedule key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**d)


def make_betas(cfg: ScheduleConfig) -> Tensor:
    """betas [T] float64: the reference's linear schedule, linspace in sqrt-space then squared."""
    start, end = math.sqrt(cfg.linear_start), math.sqrt(cfg.linear_end)
    return torch.linspace(start, end, cfg.timesteps, dtype=torch.float64) ** 2


def alphas_cumprod(cfg: ScheduleConfig, dtype: torch.dtype = torch.float32) -> Tensor:
    """alpha-bar [T], cumprod(1 - betas) computed in float64 and then cast (float32 = the reference buffer)."""
    return torch.cumprod(1.0 - make_betas(cfg), dim=0).to(dtype)


def ddim_timesteps(num_steps: int, num_train_timesteps: int = 1000) -> Tensor:
    """Ascending DDIM timesteps [S] int64: `arange(S) * T // S + 1`, the reference's uniform table.

    For S dividing T this is exactly the reference's `range(0, T, T // S) + 1`. Otherwise the steps are
    spread evenly over the whole schedule and the last one lies near T - 1, so sampling starts from
    noise: the reference's stride T // S would stop far short of it (S = 501: at t = 501).
    """
    # S = T would need timestep T, one past the table (the reference fails there the same way)
    if int(num_steps) != num_steps or not 1 <= num_steps < num_train_timesteps:
        raise UsageError(f"steps={num_steps!r}: must be an integer between 1 and {num_train_timesteps - 1}")
    return torch.arange(num_steps, dtype=torch.int64) * num_train_timesteps // num_steps + 1


def ddim_table(timesteps: Tensor, alphas_cumprod: Tensor, eta: float = 0.0) -> dict[str, Tensor]:
    """The reference DDIM tables for ascending `timesteps` (all float32, as the sampler uses them).

    Returns `alphas` = a[t_i], `alphas_prev` = a[t_{i-1}] with a[0] for the first entry (not 1),
    `sigmas` = eta * sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev)) (computed in float64 from the
    float32 alphas, as the reference does), and `sqrt_one_minus_alphas` = sqrt(1 - a) (float32 1 - a,
    rooted in float64 and rounded once, which reproduces the reference's numpy values bit for bit).
    """
    acp = alphas_cumprod.to(torch.float32)
    alphas = acp[timesteps]
    alphas_prev = torch.cat([acp[:1], acp[timesteps[:-1]]])
    a64, ap64 = alphas.double(), alphas_prev.double()
    sigmas = eta * torch.sqrt((1.0 - ap64) / (1.0 - a64) * (1.0 - a64 / ap64))
    return {
        "alphas": alphas,
        "alphas_prev": alphas_prev,
        "sigmas": sigmas.to(torch.float32),
        "sqrt_one_minus_alphas": (1.0 - alphas).double().sqrt().to(torch.float32),
    }


def _expand(values: Tensor, t: Tensor | int, like: Tensor) -> Tensor:
    """values[t] shaped [B, 1, 1, ...] to broadcast against `like` [B, ...]."""
    t = torch.as_tensor(t, device=values.device).long()
    out = values[t].to(device=like.device, dtype=like.dtype)
    if out.ndim == 0:
        return out
    return out.reshape(-1, *([1] * (like.ndim - 1)))


def add_noise(x0: Tensor, noise: Tensor, t: Tensor | int, alphas_cumprod: Tensor) -> Tensor:
    """q(x_t | x0): sqrt(a_t) * x0 + sqrt(1 - a_t) * noise, with t a scalar or one timestep per item."""
    a = _expand(alphas_cumprod, t, x0)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def training_target(
    x0: Tensor,
    noise: Tensor,
    t: Tensor | int,
    alphas_cumprod: Tensor,
    prediction_type: PredictionType = "eps",
) -> Tensor:
    """What the network should output at (x_t, t): the noise ("eps") or v = sqrt(a) * noise - sqrt(1-a) * x0."""
    if prediction_type == "eps":
        return noise
    if prediction_type == "v":
        a = _expand(alphas_cumprod, t, x0)
        return a.sqrt() * noise - (1.0 - a).sqrt() * x0
    raise UsageError(f"prediction_type={prediction_type!r}: must be one of {PREDICTION_TYPES}")


def pred_to_x0_eps(
    pred: Tensor, x_t: Tensor, alpha_t: Tensor | float, prediction_type: PredictionType = "eps"
) -> tuple[Tensor, Tensor]:
    """Convert a network output at x_t (alpha-bar `alpha_t`, scalar or broadcastable) to (x0, eps)."""
    alpha_t = torch.as_tensor(alpha_t, dtype=x_t.dtype, device=x_t.device)
    sqrt_a, sqrt_1ma = alpha_t.sqrt(), (1.0 - alpha_t).sqrt()
    if prediction_type == "eps":
        return (x_t - sqrt_1ma * pred) / sqrt_a, pred
    if prediction_type == "v":
        return sqrt_a * x_t - sqrt_1ma * pred, sqrt_1ma * x_t + sqrt_a * pred
    raise UsageError(f"prediction_type={prediction_type!r}: must be one of {PREDICTION_TYPES}")


def x0_to_pred(
    x0: Tensor, x_t: Tensor, alpha_t: Tensor | float, prediction_type: PredictionType = "eps"
) -> Tensor:
    """The network output at x_t (alpha-bar `alpha_t`) whose clean-latent estimate is x0 (inverse of
    `pred_to_x0_eps`): eps = (x_t - sqrt(a) x0) / sqrt(1 - a), v = sqrt(a) eps - sqrt(1 - a) x0."""
    alpha_t = torch.as_tensor(alpha_t, dtype=x_t.dtype, device=x_t.device)
    sqrt_a, sqrt_1ma = alpha_t.sqrt(), (1.0 - alpha_t).sqrt()
    eps = (x_t - sqrt_a * x0) / sqrt_1ma
    if prediction_type == "eps":
        return eps
    if prediction_type == "v":
        return sqrt_a * eps - sqrt_1ma * x0
    raise UsageError(f"prediction_type={prediction_type!r}: must be one of {PREDICTION_TYPES}")


__all__ = [
    "PREDICTION_TYPES",
    "PredictionType",
    "ScheduleConfig",
    "add_noise",
    "alphas_cumprod",
    "ddim_table",
    "ddim_timesteps",
    "make_betas",
    "pred_to_x0_eps",
    "training_target",
    "x0_to_pred",
]
