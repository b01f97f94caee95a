"""HiFi-GAN discriminators (training only): multi-period (MPD) and multi-scale (MSD), Kong et al. 2020.

Every discriminator returns `(score, feature_maps)`: `score` (B, N) is the flattened last layer (one
patch score per position), `feature_maps` the activations of every layer, for feature matching.
`width` scales every channel count (1.0 = the paper; 1/8 makes a test-sized GAN).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

LRELU_SLOPE = 0.1
MPD_CHANNELS = (32, 128, 512, 1024, 1024)
MSD_CHANNELS = (128, 128, 256, 512, 1024, 1024, 1024)
MSD_KERNELS = (15, 41, 41, 41, 41, 41, 5)
MSD_STRIDES = (1, 2, 2, 4, 4, 1, 1)
MSD_GROUPS = (1, 4, 16, 16, 16, 16, 1)

Scores = list[torch.Tensor]
FeatureMaps = list[list[torch.Tensor]]


def _scaled(channels: tuple[int, ...], width: float, groups: tuple[int, ...] | None = None) -> list[int]:
    """[1 input channel, *channels * width], checking that grouped convs still divide evenly."""
    out = [1, *(max(1, round(c * width)) for c in channels)]
    for c_in, c_out, g in zip(out[:-1], out[1:], groups or [1] * len(channels)):
        if c_in % g or c_out % g:
            raise ValueError(f"width={width}: {c_in} -> {c_out} channels do not divide into {g} groups")
    return out


class PeriodDiscriminator(nn.Module):
    """Looks at every `period`-th sample: (B, 1, N) -> (B, 1, N/p, p), 2-D convs along time only."""

    def __init__(self, period: int, width: float = 1.0):
        super().__init__()
        self.period = period
        chans = _scaled(MPD_CHANNELS, width)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (5, 1), (3 if i < 4 else 1, 1), padding=(2, 0)))
            for i, (c_in, c_out) in enumerate(itertools.pairwise(chans))
        )
        self.conv_post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, n = wave.shape
        if n % self.period:  # reflect-pad to a whole number of periods
            wave = F.pad(wave, (0, self.period - n % self.period), mode="reflect")
        x = wave.view(b, c, -1, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x.flatten(1), fmap


class ScaleDiscriminator(nn.Module):
    """Strided grouped 1-D convs over the waveform; the first scale uses spectral norm (as the paper)."""

    def __init__(self, width: float = 1.0, use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        chans = _scaled(MSD_CHANNELS, width, MSD_GROUPS)
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(c_in, c_out, k, s, groups=g, padding=(k - 1) // 2))
            for c_in, c_out, k, s, g in zip(chans[:-1], chans[1:], MSD_KERNELS, MSD_STRIDES, MSD_GROUPS)
        )
        self.conv_post = norm(nn.Conv1d(chans[-1], 1, 3, padding=1))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, fmap = wave, []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x.flatten(1), fmap


class MultiPeriodDiscriminator(nn.Module):
    """One `PeriodDiscriminator` per period (2, 3, 5, 7, 11: coprime, so they see different structure)."""

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)

    def forward(self, wave: torch.Tensor) -> tuple[Scores, FeatureMaps]:
        outs = [d(wave) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class MultiScaleDiscriminator(nn.Module):
    """`ScaleDiscriminator`s on the raw waveform and on 2x, 4x, ... average-pooled copies."""

    def __init__(self, scales: int = 3, width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(width, use_spectral_norm=(i == 0)) for i in range(scales)
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wave: torch.Tensor) -> tuple[Scores, FeatureMaps]:
        scores, fmaps = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                wave = self.pool(wave)
            score, fmap = d(wave)
            scores.append(score)
            fmaps.append(fmap)
        return scores, fmaps


class HifiGanDiscriminator(nn.Module):
    """MPD and MSD together, scoring real and generated audio in one call.

    forward(real (B, 1, N), fake (B, 1, N)) -> (real_scores, fake_scores, real_fmaps, fake_fmaps), each
    a list with one entry per sub-discriminator (MPD first), ready for `vocoder.losses`. Pass
    `fake.detach()` for the discriminator update.
    """

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), scales: int = 3, width: float = 1.0):
        super().__init__()
        self.config = {"periods": list(periods), "scales": scales, "width": width}
        self.mpd = MultiPeriodDiscriminator(periods, width)
        self.msd = MultiScaleDiscriminator(scales, width)

    def forward(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[Scores, Scores, FeatureMaps, FeatureMaps]:
        if real.shape != fake.shape or real.dim() != 3 or real.shape[1] != 1:
            raise ValueError(
                f"real {tuple(real.shape)} and fake {tuple(fake.shape)} must both be (B, 1, N) waveforms"
            )
        # One pass over the concatenated batch: half the kernel launches of two separate passes.
        both = torch.cat([real, fake])
        scores, fmaps = [], []
        for disc in (self.mpd, self.msd):
            s, f = disc(both)
            scores += s
            fmaps += f
        b = real.shape[0]
        return (
            [s[:b] for s in scores],
            [s[b:] for s in scores],
            [[m[:b] for m in f] for f in fmaps],
            [[m[b:] for m in f] for f in fmaps],
        )
