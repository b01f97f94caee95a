"""HiFi-GAN training losses (Kong et al. 2020, eqs. 1-6): least-squares adversarial (LSGAN, Mao et al.
2017), feature matching and mel-spectrogram L1.

All take the lists a `HifiGanDiscriminator` returns (one entry per sub-discriminator) and return a
scalar tensor. The paper's total generator loss is

    generator_loss(fake) + feature_loss(real_fmaps, fake_fmaps) + MEL_WEIGHT * mel_l1_loss(...)

where `feature_loss` already includes the paper's weight of 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .mel import LogMel

FEATURE_WEIGHT = 2.0  # lambda_fm in the paper
MEL_WEIGHT = 45.0  # lambda_mel in the paper


def discriminator_loss(real_scores: list[torch.Tensor], fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN discriminator loss: sum over discriminators of E[(1 - D(real))^2] + E[D(fake)^2]."""
    if len(real_scores) != len(fake_scores):
        raise ValueError(f"{len(real_scores)} real vs {len(fake_scores)} fake score tensors")
    return sum(((1 - r) ** 2).mean() + (f**2).mean() for r, f in zip(real_scores, fake_scores))


def generator_loss(fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN generator loss: sum over discriminators of E[(1 - D(fake))^2]."""
    return sum(((1 - f) ** 2).mean() for f in fake_scores)


def feature_loss(real_fmaps: list[list[torch.Tensor]], fake_fmaps: list[list[torch.Tensor]]) -> torch.Tensor:
    """Feature matching: FEATURE_WEIGHT * sum over discriminators and layers of mean |real - fake|.

    The real activations are targets: gradients flow only through `fake_fmaps`.
    """
    total = 0.0
    for real_layers, fake_layers in zip(real_fmaps, fake_fmaps, strict=True):
        for r, f in zip(real_layers, fake_layers, strict=True):
            total = total + F.l1_loss(f, r.detach())
    return FEATURE_WEIGHT * total


def mel_l1_loss(fake_wave: torch.Tensor, real_wave: torch.Tensor, log_mel: LogMel) -> torch.Tensor:
    """Mean |log-mel(fake) - log-mel(real)| (unweighted; the paper scales it by MEL_WEIGHT).

    Waves are (B, 1, N) or (B, N); the fake one is cut to the real length (the generator may emit a
    few extra samples, see `HifiGanGenerator`).
    """
    fake = fake_wave.reshape(fake_wave.shape[0], -1)
    real = real_wave.reshape(real_wave.shape[0], -1)
    if fake.shape[-1] < real.shape[-1]:
        raise ValueError(
            f"generated audio has {fake.shape[-1]} samples, fewer than the {real.shape[-1]} real ones"
        )
    return F.l1_loss(log_mel(fake[:, : real.shape[-1]]), log_mel(real))
