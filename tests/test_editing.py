"""Editing (transfer, inpaint, superres) on the tiny model, checked in the latent domain, plus the
transfer path against the reference DDIM stub."""

from __future__ import annotations

import pytest
import torch

from audioldm_cli.editing import (
    band_mask,
    edited_span,
    encode_input,
    hz_to_mel,
    inpaint,
    superres,
    time_mask,
    transfer,
    transfer_latent,
    transfer_start,
)
from audioldm_cli.errors import UsageError
from audioldm_cli.pipeline import AudioLDM
from audioldm_cli.schedule import ScheduleConfig, alphas_cumprod, ddim_timesteps

FAST = {"steps": 3, "seed": 0}


@pytest.fixture(scope="module")
def pipe(tiny_model):
    return AudioLDM.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def wav():
    t = torch.arange(11111) / 16000  # 0.69 s: not a multiple of any frame size
    return (
        0.3 * torch.sin(2 * torch.pi * 440 * t)
        + 0.05 * torch.randn(11111, generator=torch.Generator().manual_seed(0))
    ).float()


def test_transfer_matches_the_reference_ddim_stub(oracle):
    """strength 0.5 at 20 steps: noised to DDIM index 10, then decoded over timesteps[:10] (reference)."""
    _, t = oracle("ddim_sampler_stub")
    c, uc = t["__input__.c"], t["__input__.uc"]

    def model_fn(x, ts):  # the stub, guided by hand (uncond half first), scale 2.5
        xx, cc, tt = torch.cat([x, x]), torch.cat([uc, c]), torch.cat([ts, ts]).float()
        e = (
            0.8 * xx
            + 0.2 * torch.tanh(3 * xx)
            + 0.1 * cc.mean(dim=(1, 2)).view(-1, 1, 1, 1)
            + 0.05 * tt.view(-1, 1, 1, 1) / 1000
        )
        e_u, e_c = e.chunk(2)
        return e_u + 2.5 * (e_c - e_u)

    out = transfer_latent(
        model_fn, t["__input__.transfer.x0"], ddim_timesteps(20), alphas_cumprod(ScheduleConfig()), 0.5,
        noise=t["__input__.transfer.noise"],
    )  # fmt: skip
    torch.testing.assert_close(out, t["__output__.transfer.decoded_latent"], rtol=1e-5, atol=1e-5)


def test_transfer_keeps_the_length_and_depends_on_strength(pipe, wav):
    weak = transfer(pipe, wav, "a dog barking", strength=0.34, **FAST)
    strong = transfer(pipe, wav, "a dog barking", strength=1.0, **FAST)
    assert weak.wav.shape == wav.shape and strong.wav.shape == wav.shape
    assert weak.latent.shape == weak.original.shape
    # a weak transfer stays nearer the input's latent than a strong one
    assert (weak.latent - weak.original).norm() < (strong.latent - strong.original).norm()
    again = transfer(pipe, wav, "a dog barking", strength=0.34, **FAST)
    torch.testing.assert_close(again.latent, weak.latent)


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.5, float("nan")])
def test_bad_strength(strength):
    with pytest.raises(UsageError, match="strength="):
        transfer_start(strength, 10)


def test_inpaint_keeps_the_latent_outside_the_range_exactly(pipe, wav):
    result = inpaint(pipe, wav, "rain", 0.2, 0.4, **FAST)
    assert result.wav.shape == wav.shape
    keep = result.mask.expand_as(result.latent).bool()
    assert torch.equal(result.latent[keep], result.original[keep])
    assert not torch.allclose(result.latent[~keep], result.original[~keep])
    # 0.2 .. 0.4 s at 40 ms per latent frame (hop 160 x 4 at 16 kHz) = frames 5 .. 9
    assert result.mask.flatten().tolist()[3:12] == [1, 1, 0, 0, 0, 0, 0, 1, 1]


def test_inpaint_splices_the_new_range_into_the_input(pipe, wav):
    from audioldm_cli.editing import SPLICE_FADE_SECONDS

    whole = inpaint(pipe, wav, "rain", 0.2, 0.4, splice=False, **FAST)
    spliced = inpaint(pipe, wav, "rain", 0.2, 0.4, **FAST)
    assert torch.equal(spliced.latent, whole.latent)
    fade = round(SPLICE_FADE_SECONDS * 16000)
    s0, s1 = 5 * 640, 10 * 640  # latent frames 5 .. 9 (640 samples each)
    assert torch.equal(spliced.wav[: s0 - fade], wav[: s0 - fade])  # the input itself, bit for bit
    assert torch.equal(spliced.wav[s1 + fade :], wav[s1 + fade :])
    assert torch.equal(spliced.wav[s0:s1], whole.wav[s0:s1])  # the new range as decoded
    assert not torch.allclose(whole.wav[: s0 - fade], wav[: s0 - fade], atol=1e-3)  # a VAE round trip
    with pytest.raises(UsageError, match="splice: expected True or False"):
        inpaint(pipe, wav, "rain", 0.2, 0.4, splice="no", **FAST)


def test_time_mask_takes_no_extra_frame_at_frame_edges(pipe):
    long = torch.zeros(16000 * 2)
    latent = encode_input(pipe, long)
    for start, end, frames in ((0.2, 0.28, [5, 6]), (1.16, 1.24, [29, 30]), (0.21, 0.28, [5, 6])):
        mask = time_mask(pipe, latent, start, end, long.shape[-1])
        assert (mask.flatten() == 0).nonzero().flatten().tolist() == frames, (start, end)
    short = long[: 16000 - 4]  # 0.99975 s: --end 1 means its end
    mask = time_mask(pipe, encode_input(pipe, short), 0.5, 1.0, short.shape[-1])
    assert (mask.flatten() == 0).nonzero().flatten().tolist() == list(range(12, 25))
    with pytest.raises(UsageError, match=r"inside the input \(0.99975 s\)"):
        time_mask(pipe, encode_input(pipe, short), 0.5, 1.1, short.shape[-1])


def test_inpaint_can_keep_a_refined_latent(pipe, wav):
    """refine_steps fits the kept latent to the input's mel first: the kept part is that latent, which
    decodes closer to the input mel than the encoder's."""
    plain = inpaint(pipe, wav, "rain", 0.2, 0.4, **FAST)
    refined = inpaint(pipe, wav, "rain", 0.2, 0.4, refine_steps=10, **FAST)
    torch.testing.assert_close(refined.original, encode_input(pipe, wav, refine_steps=10))
    keep = refined.mask.expand_as(refined.latent).bool()
    assert torch.equal(refined.latent[keep], refined.original[keep])
    frames = refined.original.shape[2] * pipe.time_factor
    with torch.inference_mode():
        mel = pipe.mel(wav.reshape(1, -1), frames)
        err = [(pipe.vae.decode(r.original / pipe.scale_factor) - mel).abs().mean() for r in (plain, refined)]
    assert err[1] < err[0], err


def test_unconditional_inpaint(pipe, wav):
    result = inpaint(pipe, wav, "", 0.0, 0.1, **FAST)
    keep = result.mask.expand_as(result.latent).bool()
    assert torch.equal(result.latent[keep], result.original[keep])


def test_edited_span_is_the_regenerated_frames_with_context_on_the_unets_multiple():
    frames = torch.ones(1, 1, 100, 1)
    frames[:, :, 50:56] = 0
    assert edited_span(frames, 100, 4, 10) == (40, 68)  # 50 - 10 down to 40, 56 + 10 up to 68
    assert edited_span(frames, 100, 4, 0) == (48, 56)
    assert edited_span(frames, 100, 4, 60) == (0, 100)  # clamped to the latent
    assert edited_span(frames, 100, 4, None) == (0, 100)
    band = torch.ones(1, 1, 1, 8)
    band[..., 5:] = 0
    assert edited_span(band, 100, 4, 10) == (0, 100)  # a band is regenerated in every frame


def test_masked_edit_takes_any_mask_that_broadcasts_to_the_latent(pipe, wav):
    """A [T', F'] keep-mask (broadcast over channels) works as a [1, 1, T', F'] one."""
    from audioldm_cli.editing import masked_edit

    def mask_2d(x0):
        mask = torch.ones(x0.shape[2], x0.shape[3])
        mask[5:9] = 0
        return mask

    result = masked_edit(pipe, wav, "rain", mask_2d, **FAST)
    keep = torch.ones(result.latent.shape[2], dtype=torch.bool)
    keep[5:9] = False
    assert torch.equal(result.latent[:, :, keep], result.original[:, :, keep])
    assert not torch.allclose(result.latent[:, :, 5:9], result.original[:, :, 5:9])


def test_inpaint_runs_the_unet_on_the_range_and_its_context_only(pipe, monkeypatch):
    """A short range of a long input: the UNet sees the range plus context_seconds on each side, the
    rest of the latent is the input's; a context that reaches both ends changes nothing."""
    wav = 0.1 * torch.randn(4 * 16000, generator=torch.Generator().manual_seed(1))  # 100 latent frames
    seen = []
    forward = pipe.unet.forward

    def recording(x, *args, **kwargs):
        seen.append(x.shape[2])
        return forward(x, *args, **kwargs)

    monkeypatch.setattr(pipe.unet, "forward", recording)
    cropped = inpaint(pipe, wav, "rain", 2.0, 2.2, context_seconds=0.4, **FAST)  # frames 50..55, +-10
    lo, hi = edited_span(cropped.mask, 100, pipe.unet_factor, 10)
    assert set(seen) == {hi - lo} and hi - lo < 100, (seen, lo, hi)
    assert cropped.wav.shape == wav.shape and cropped.latent.shape == cropped.original.shape
    outside = torch.ones(100, dtype=torch.bool)
    outside[lo:hi] = False
    assert torch.equal(cropped.latent[:, :, outside], cropped.original[:, :, outside])
    assert not torch.allclose(cropped.latent[:, :, 50:55], cropped.original[:, :, 50:55])
    seen.clear()
    whole = inpaint(pipe, wav, "rain", 2.0, 2.2, context_seconds=None, **FAST)
    assert set(seen) == {100}
    assert not torch.equal(whole.latent, cropped.latent)  # the UNet saw more
    wide = inpaint(pipe, wav, "rain", 2.0, 2.2, context_seconds=60.0, **FAST)
    assert torch.equal(wide.latent, whole.latent) and torch.equal(wide.wav, whole.wav)
    with pytest.raises(UsageError, match="context_seconds=-1: must be a number of seconds >= 0"):
        inpaint(pipe, wav, "rain", 2.0, 2.2, context_seconds=-1, **FAST)
    from audioldm_cli.cli import inpaint as command
    from audioldm_cli.editing import EDIT_CONTEXT_SECONDS

    assert f"the range and {EDIT_CONTEXT_SECONDS:g} s of the input on each side" in command.__doc__  # --help


@pytest.mark.parametrize("start,end", [(-1, 0.2), (0.3, 0.3), (0.5, 0.2), (0.7, 0.9), (0.1, 5.0)])
def test_bad_inpaint_ranges(pipe, wav, start, end):
    with pytest.raises(UsageError, match="start="):
        time_mask(pipe, encode_input(pipe, wav), start, end, wav.shape[-1])


def test_superres_keeps_the_low_rows_exactly(pipe, wav):
    result = superres(pipe, wav, "", 4000.0, **FAST)
    assert result.wav.shape == wav.shape
    rows = int(result.mask.sum())
    assert 0 < rows < result.latent.shape[-1]
    assert torch.equal(result.latent[..., :rows], result.original[..., :rows])
    assert not torch.allclose(result.latent[..., rows:], result.original[..., rows:])


def test_band_mask_follows_the_slaney_mel_scale(pipe, wav):
    import librosa

    assert hz_to_mel(4000.0) == pytest.approx(float(librosa.hz_to_mel(4000.0)))
    assert hz_to_mel(700.0) == pytest.approx(float(librosa.hz_to_mel(700.0)))
    latent = encode_input(pipe, wav)
    # the mel filterbank's edges (librosa): bins whose triangle ends at or below 4 kHz, 4 bins per row
    edges = librosa.mel_frequencies(n_mels=66, fmin=0.0, fmax=8000.0)
    whole = sum(edges[i + 2] <= 4000.0 for i in range(64))
    assert int(band_mask(pipe, latent, 4000.0).sum()) == whole // 4 == 12
    with pytest.raises(UsageError, match="cutoff_hz="):
        band_mask(pipe, latent, 9000.0)
    with pytest.raises(UsageError, match="cutoff_hz="):
        band_mask(pipe, latent, 20.0)
