"""HiFi-GAN training pieces: discriminator shapes, loss values, and a few steps of a tiny GAN."""

from __future__ import annotations

import math

import pytest
import torch

from vocoder import MEL_PRESETS, HifiGanGenerator, LogMel
from vocoder.discriminators import (
    HifiGanDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    PeriodDiscriminator,
)
from vocoder.losses import MEL_WEIGHT, discriminator_loss, feature_loss, generator_loss, mel_l1_loss

WIDTH = 1 / 8  # 4..128 channels: a test-sized discriminator


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors this small gain nothing from a second thread, and lose a lot on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_multi_period_shapes():
    mpd = MultiPeriodDiscriminator(width=WIDTH)
    wave = torch.randn(2, 1, 1601)  # not a multiple of any period: reflect-padded
    scores, fmaps = mpd(wave)
    assert len(scores) == len(fmaps) == 5
    for period, score, fmap in zip((2, 3, 5, 7, 11), scores, fmaps):
        rows = math.ceil(1601 / period)
        assert len(fmap) == 6
        assert fmap[0].shape == (2, 4, math.ceil(rows / 3), period)  # first conv: 4 channels, time / 3
        assert score.shape[0] == 2 and score.shape[1] == fmap[-1].shape[2] * period


def test_multi_scale_shapes():
    msd = MultiScaleDiscriminator(width=WIDTH)
    scores, fmaps = msd(torch.randn(2, 1, 1600))
    assert len(scores) == 3 and all(len(f) == 8 for f in fmaps)
    # each scale sees a 2x average-pooled copy: 1600 -> 801 -> 401 samples; total stride 64
    assert [f[0].shape[-1] for f in fmaps] == [1600, 801, 401]
    assert [s.shape for s in scores] == [(2, 25), (2, 13), (2, 7)]
    assert "parametrizations.weight.original" in str(list(msd.discriminators[0].state_dict()))
    assert hasattr(msd.discriminators[0].convs[0].parametrizations.weight[0], "_u")  # spectral norm
    assert not hasattr(msd.discriminators[1].convs[0].parametrizations.weight[0], "_u")  # weight norm


def test_full_width_channel_counts():
    period = PeriodDiscriminator(2)
    assert [c.out_channels for c in period.convs] == [32, 128, 512, 1024, 1024]
    assert [c.stride[0] for c in period.convs] == [3, 3, 3, 3, 1]


def test_width_must_fit_groups():
    with pytest.raises(ValueError, match="8 -> 16 channels do not divide into 16 groups"):
        MultiScaleDiscriminator(width=1 / 16)


def test_combined_discriminator_splits_real_and_fake():
    torch.manual_seed(0)
    disc = HifiGanDiscriminator(width=WIDTH).eval()
    real, fake = torch.randn(2, 1, 800), torch.randn(2, 1, 800)
    real_s, fake_s, real_f, fake_f = disc(real, fake)
    assert len(real_s) == len(fake_s) == len(real_f) == len(fake_f) == 8
    # same numbers as scoring each batch on its own
    alone_s, alone_f = disc.mpd(fake)
    torch.testing.assert_close(fake_s[0], alone_s[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fake_f[4][2], alone_f[4][2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="must both be"):
        disc(real, fake[:, :, :10])


def test_loss_values():
    ones, zeros = [torch.ones(2, 5), torch.ones(2, 3)], [torch.zeros(2, 5), torch.zeros(2, 3)]
    assert discriminator_loss(ones, zeros).item() == 0.0  # perfect discriminator
    assert discriminator_loss(zeros, ones).item() == 4.0  # (1 + 1) per discriminator
    assert generator_loss(ones).item() == 0.0
    assert generator_loss([torch.full((2, 4), 0.5)]).item() == 0.25
    fm = [[torch.ones(1, 2, 3), torch.zeros(1, 4)]]
    assert feature_loss(fm, fm).item() == 0.0
    assert feature_loss(fm, [[torch.zeros(1, 2, 3), torch.zeros(1, 4)]]).item() == 2.0  # weight 2


def test_feature_loss_gradient_only_to_fake():
    real = torch.randn(3, requires_grad=True)
    fake = torch.randn(3, requires_grad=True)
    feature_loss([[real]], [[fake]]).backward()
    assert real.grad is None and fake.grad.abs().sum() > 0


def test_mel_loss_zero_for_same_audio_and_trims_extra_samples():
    log_mel = LogMel(MEL_PRESETS["audioldm-16k"])
    real = 0.5 * torch.randn(1, 1, 3200, generator=torch.Generator().manual_seed(0))
    fake = torch.cat([real, torch.randn(1, 1, 32)], dim=-1)  # generator's extra samples are ignored
    assert mel_l1_loss(fake, real, log_mel).item() == 0.0
    # noise is loud in every band (no log floor): halving the amplitude shifts every log-mel by log 2
    assert mel_l1_loss(real * 0.5, real, log_mel).item() == pytest.approx(math.log(2), rel=1e-4)


def test_tiny_gan_steps_reduce_losses():
    """Alternating HiFi-GAN updates on a synthetic chirp: both players' losses go down."""
    torch.manual_seed(0)
    log_mel = LogMel(MEL_PRESETS["audioldm-16k"])
    t = torch.arange(1600) / 16000
    real = (0.5 * torch.sin(2 * math.pi * (200 + 1600 * t) * t))[None, None]
    mel = log_mel(real[:, 0])[:, :, :10]  # 10 frames -> 1600 samples
    gen = HifiGanGenerator.from_config("tiny")
    disc = HifiGanDiscriminator(periods=(2, 3, 5), scales=2, width=WIDTH)
    opt_g = torch.optim.AdamW(gen.parameters(), 2e-3, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(disc.parameters(), 2e-3, betas=(0.8, 0.99))
    d_losses, mel_losses = [], []
    for _ in range(6):
        fake = gen(mel)
        opt_d.zero_grad()
        real_s, fake_s, _, _ = disc(real, fake.detach())
        loss_d = discriminator_loss(real_s, fake_s)
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad()
        _, fake_s, real_f, fake_f = disc(real, fake)
        loss_mel = mel_l1_loss(fake, real, log_mel)
        loss_g = generator_loss(fake_s) + feature_loss(real_f, fake_f) + MEL_WEIGHT * loss_mel
        loss_g.backward()
        opt_g.step()
        d_losses.append(loss_d.item())
        mel_losses.append(loss_mel.item())
    assert all(math.isfinite(x) for x in d_losses + mel_losses)
    assert mel_losses[-1] < 0.9 * mel_losses[0], mel_losses
    assert d_losses[-1] < d_losses[0], d_losses
