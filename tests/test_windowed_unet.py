"""Long latents go through the UNet in blended windows (`chunking.windowed`, MultiDiffusion): a latent
of one window is one call, as without windows; a longer one is covered by aligned windows whose
cross-fade weights sum to one, so a denoiser that is local in time gives the same result."""

from __future__ import annotations

import pytest
import torch

from audioldm_cli.chunking import windowed
from audioldm_cli.pipeline import AudioLDM


def _recording(fn, seen: list):
    def wrapped(x, t):
        seen.append(x.shape[2])
        return fn(x, t)

    return wrapped


def local(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # each frame depends on itself only
    return 2 * x + x**2 + 0.001 * t.view(-1, 1, 1, 1)


def test_windows_cover_the_latent_aligned_and_blend_a_local_denoiser_exactly():
    x = torch.randn(2, 3, 250, 5, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500, 500])
    seen: list[int] = []
    calls = []

    def spy(x_part, t_part):
        calls.append(x_part)
        return local(x_part, t_part)

    out = windowed(_recording(spy, seen), chunk_frames=64, overlap_frames=8, multiple=4)(x, t)
    torch.testing.assert_close(out, local(x, t))
    assert seen == [80] * 4, seen  # 4 cores of 64, each seen with 8 frames on both sides (edges shifted in)
    # one window: the denoiser is called once, on the latent itself
    seen.clear()
    short = x[:, :, :80]
    out = windowed(_recording(local, seen), chunk_frames=64, overlap_frames=8, multiple=4)(short, t)
    assert seen == [80] and torch.equal(out, local(short, t))


def test_a_denoiser_that_mixes_time_sees_each_window_only():
    x = torch.arange(200.0).view(1, 1, 200, 1)

    def window_mean(x_part, t_part):  # every frame of a window gets the window's mean
        return x_part.mean(dim=2, keepdim=True).expand_as(x_part)

    out = windowed(window_mean, chunk_frames=50, overlap_frames=10, multiple=1)(x, torch.tensor([1]))
    assert out[0, 0, 0, 0] < 40 and out[0, 0, -1, 0] > 160  # near the ends, far from the global 99.5


@pytest.fixture
def pipe(tiny_model):
    return AudioLDM.from_pretrained(tiny_model)


def test_generate_runs_the_unet_in_windows_beyond_one(pipe, monkeypatch, caplog):
    seen: list[int] = []
    forward = pipe.unet.forward

    def recording(x, *args, **kwargs):
        seen.append(x.shape[2])
        return forward(x, *args, **kwargs)

    monkeypatch.setattr(pipe.unet, "forward", recording)
    fast = {"steps": 2, "seed": 0}
    # the tiny model: 25 latent frames per second; windows of 0.4 s + 0.1 s on each side = 15 frames
    pipe.unet_window_seconds, pipe.unet_window_overlap_seconds = 0.4, 0.1
    with caplog.at_level("INFO", logger="audioldm_cli"):
        long = pipe.generate(["rain"], duration=3.0, **fast)
    assert long.shape == (1, 48000) and bool(torch.isfinite(long).all())
    told = [r.getMessage() for r in caplog.records if "blended windows" in r.getMessage()]
    from audioldm_cli.chunking import plan_chunks

    windows = len(plan_chunks(76, *pipe._unet_window_frames(), pipe.unet_factor))
    assert windows > 1 and told == [f"a latent of 76 frames: denoised in {windows} blended windows"], told
    assert len(set(seen)) == 1 and max(seen) <= 16 and len(seen) > 2 * 2, seen  # equal windows, every step
    seen.clear()
    short_windowed = pipe.generate(["rain"], duration=0.5, **fast)  # 13 frames: one window
    assert max(seen) > 10
    seen.clear()
    pipe.generate(["rain"], duration=0.6, **fast)  # a window and both its overlaps: still one call
    assert set(seen) == {16}, seen
    pipe.unet_window_seconds = None
    seen.clear()
    whole = pipe.generate(["rain"], duration=3.0, **fast)
    assert set(seen) == {76}, seen  # 75 frames padded to the UNet's multiple, seen at once
    assert not torch.equal(whole, long)
    assert torch.equal(pipe.generate(["rain"], duration=0.5, **fast), short_windowed)
