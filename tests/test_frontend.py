"""Mel frontend: both presets against the reference fixtures, the reading path, subbands, configs."""

from __future__ import annotations

import json
import math

import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from audioldm_cli.errors import UsageError
from audioldm_cli.frontend import (
    MelFrontend,
    fit_frames,
    load_fbank,
    load_mel,
    merge_subbands,
    normalize_wav,
    prepare_wav,
    save_mel,
    split_subbands,
)
from vocoder.config import MEL_PRESETS, MelConfig, mel_preset, preset_name
from vocoder.mel import LogMel, slaney_mel_basis

MEL_ATOL = 5e-5


@pytest.fixture(scope="module")
def ref16(oracle):
    return oracle("mel_frontend")[1]


@pytest.fixture(scope="module")
def ref22(fixtures_dir):
    return load_file(str(fixtures_dir / "hifigan22k" / "hifigan22k_reference.safetensors"))


@pytest.fixture(scope="module")
def fe16():
    return MelFrontend.from_preset("audioldm-16k")


# ----------------------------------------------------------------------------------------------
# audioldm-16k against the official TacotronSTFT


def test_audioldm16k_mel_basis_matches_reference(ref16, fe16):
    torch.testing.assert_close(fe16.log_mel.mel_basis, ref16["__param__.mel_basis"], atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmax", [(22050, 1024, 80, 8000), (16000, 512, 40, 7000), (44100, 2048, 128, None)]
)
def test_slaney_basis_matches_librosa(sr, n_fft, n_mels, fmax):
    ours = slaney_mel_basis(sr, n_fft, n_mels, 0.0, fmax or sr / 2).numpy()
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=fmax)
    np.testing.assert_allclose(ours, theirs, atol=1e-8, rtol=1e-5)


def test_audioldm16k_log_mel_matches_reference(ref16, fe16):
    wav = ref16["__input__.waveform"]
    out = fe16(wav[None])
    assert out.shape == (1, 101, 64)  # [B, T, F], T = 1 + 16000 // 160
    torch.testing.assert_close(out[0].T, ref16["__output__.log_mel"], atol=MEL_ATOL, rtol=0)
    torch.testing.assert_close(out[0].T, ref16["__output__.get_mel_from_wav.log_mel"], atol=MEL_ATOL, rtol=0)
    # the last 0.1 s is digital silence: those frames sit on the log floor
    assert out[0, -3:].max().item() == pytest.approx(np.log(1e-5))


def test_audioldm16k_magnitudes_and_energy(ref16, fe16):
    wav = ref16["__input__.waveform"]
    mags = fe16.log_mel.spectrogram(wav[None])[0]  # [513, 101]
    # compared in the linear domain: the reference's float32 conv-STFT is noisy far below the peak
    ref_mags = ref16["__output__.log_magnitudes"].exp()
    torch.testing.assert_close(mags.clamp(min=1e-5), ref_mags, atol=MEL_ATOL, rtol=1e-5)
    torch.testing.assert_close(mags.norm(dim=0), ref16["__output__.energy"], atol=MEL_ATOL, rtol=1e-5)
    log_mags = fe16.log_magnitudes(wav[None])[0].T
    loud = ref16["__output__.log_magnitudes"] > -3.0
    torch.testing.assert_close(
        log_mags[loud], ref16["__output__.log_magnitudes"][loud], atol=MEL_ATOL, rtol=0
    )


def test_normalize_wav_matches_reference(ref16):
    out = normalize_wav(ref16["__input__.waveform"].double())
    torch.testing.assert_close(out, ref16["__intermediate__.normalize_wav"], atol=1e-7, rtol=0)
    assert out.abs().max().item() == pytest.approx(0.5, abs=1e-7)


@pytest.mark.parametrize("frames", [128, 64])
def test_reference_reading_path(ref16, fe16, fixtures_dir, frames):
    """wav_to_fbank: T128 pads the 1 s signal to 1.28 s; T64 computes the mel on 1 s, then cuts."""
    path = fixtures_dir / "audioldm" / "oracle" / "mel_frontend_input.wav"
    fbank, log_mags, wav = load_fbank(path, fe16, frames)
    ref = f"__output__.wav_to_fbank_T{frames}"
    assert fbank.shape == (frames, 64) and log_mags.shape == (frames, 512)
    torch.testing.assert_close(
        wav.double(), ref16[f"__output__.read_wav_file_T{frames}"][0], atol=1e-6, rtol=0
    )
    torch.testing.assert_close(wav, ref16[f"{ref}.waveform"], atol=1e-6, rtol=0)
    torch.testing.assert_close(fbank, ref16[f"{ref}.fbank"], atol=MEL_ATOL, rtol=0)
    torch.testing.assert_close(
        log_mags.exp(), ref16[f"{ref}.log_magnitudes_stft"].exp(), atol=MEL_ATOL, rtol=1e-5
    )


def test_prepare_wav_pads_in_the_waveform_domain(fe16):
    wav = torch.linspace(-1, 1, 1000)
    out = prepare_wav(wav, target_frames=20, hop_length=160)
    assert out.shape == (3200,)
    assert out[1000:].abs().max().item() == 0.0
    assert out.abs().max().item() == pytest.approx(0.5)
    fbank, _ = fe16.fbank(out[None], 20)
    assert fbank.shape == (1, 20, 64)
    assert fbank[0, -1].max().item() == pytest.approx(np.log(1e-5))  # padded frames are log(floor), not 0


def test_fit_frames_pads_with_zeros_and_cuts():
    spec = torch.arange(12.0).reshape(1, 4, 3)
    assert torch.equal(fit_frames(spec, 2), spec[:, :2])
    padded = fit_frames(spec, 6)
    assert padded.shape == (1, 6, 3) and torch.equal(padded[:, :4], spec) and padded[:, 4:].abs().sum() == 0


# ----------------------------------------------------------------------------------------------
# hifigan-22k against the original HiFi-GAN mel_spectrogram


def test_hifigan22k_log_mel_matches_reference(ref22):
    fe = MelFrontend.from_preset("hifigan-22k")
    wav = ref22["__input__.waveform"]  # [1, 22050]
    out = fe(wav)
    assert out.shape == (1, 86, 80)  # 22050 // 256 frames
    torch.testing.assert_close(out.transpose(1, 2), ref22["__output__.log_mel"], atol=MEL_ATOL, rtol=0)
    # the vocoder layout straight from LogMel
    torch.testing.assert_close(fe.log_mel(wav), ref22["__output__.log_mel"], atol=MEL_ATOL, rtol=0)


# ----------------------------------------------------------------------------------------------
# shapes, batching, streaming


@pytest.mark.parametrize("name", list(MEL_PRESETS))
@pytest.mark.parametrize("n", [1024, 1600, 22050, 22050 + 77])
def test_frame_count_follows_hop(name, n):
    fe = MelFrontend.from_preset(name)
    out = fe(torch.randn(2, n) * 0.1)
    assert out.shape == (2, fe.num_frames(n), fe.n_mels)
    if name == "audioldm-16k":
        assert fe.num_frames(n) == 1 + n // 160
    else:
        assert fe.num_frames(n) == n // 256


def test_batch_equals_single_items(fe16):
    wav = torch.randn(3, 4000) * 0.2
    batch = fe16(wav)
    for i in range(3):
        torch.testing.assert_close(batch[i], fe16(wav[i]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(MEL_PRESETS))
def test_stream_equals_whole(name):
    fe = MelFrontend.from_preset(name)
    wav = torch.randn(9001, generator=torch.Generator().manual_seed(0)) * 0.3
    whole = fe(wav)
    for block in (100, 700, 5000):
        pieces = torch.cat(list(fe.stream(wav.split(block))))
        assert pieces.shape == whole.shape
        torch.testing.assert_close(pieces, whole, atol=1e-5, rtol=0)


def test_too_short_waveform_is_a_clear_error(fe16):
    with pytest.raises(ValueError, match="too short.*at least 513 samples"):
        fe16(torch.zeros(1, 300))
    with pytest.raises(ValueError, match="too short"):
        list(fe16.stream([torch.zeros(300)]))
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        fe16(torch.zeros(1, 1, 1, 3000))


def test_buffers_follow_the_module_and_stay_out_of_state_dict():
    fe = MelFrontend.from_preset("audioldm-16k")
    assert fe.state_dict() == {}
    assert fe.log_mel.window.shape == (1024,) and fe.log_mel.mel_basis.shape == (64, 513)
    wav = torch.randn(2000) * 0.1
    out32 = fe(wav)
    out64 = fe.to(torch.float64)(wav)  # inputs are cast to the buffers' dtype
    assert out64.dtype == torch.float64 and out64.shape == (1 + 2000 // 160, 64)
    torch.testing.assert_close(out64.float(), out32, atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------------------------
# subbands


def test_subband_split_matches_reference_layout(oracle):
    _, t = oracle("vae_small_t4_subband4")
    x = t["__input__.x"]  # [1, 1, 64, 64]
    bands = split_subbands(x, 4)
    assert torch.equal(bands, t["__intermediate__.subband_split"])
    assert torch.equal(bands[0, 1], x[0, 0, :, 16:32])  # band s holds mel bins s*F/n .. (s+1)*F/n
    assert torch.equal(merge_subbands(bands), x)


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 9), fs=st.integers(1, 8), n=st.sampled_from([1, 2, 4, 8]))
def test_subband_round_trip_is_exact(b, t, fs, n):
    x = torch.randn(b, 1, t, fs * n)
    bands = split_subbands(x, n)
    assert bands.shape == (b, n, t, fs)
    assert torch.equal(merge_subbands(bands, n), x)


def test_subband_errors():
    with pytest.raises(ValueError, match="cannot split 64 mel bins into 3 subbands"):
        split_subbands(torch.zeros(1, 1, 8, 64), 3)
    with pytest.raises(ValueError, match=r"\[B, 1, T, F\]"):
        split_subbands(torch.zeros(1, 2, 8, 64), 2)
    with pytest.raises(ValueError, match="positive integer"):
        split_subbands(torch.zeros(1, 1, 8, 64), 0)
    with pytest.raises(ValueError, match="expected 4 subbands, got 2"):
        merge_subbands(torch.zeros(1, 2, 8, 16), 4)


# ----------------------------------------------------------------------------------------------
# configs and presets


def test_presets_pin_the_design_table():
    a, h = mel_preset("audioldm-16k"), mel_preset("hifigan-22k")
    assert (a.sample_rate, a.n_fft, a.hop_length, a.win_length, a.n_mels, a.f_min, a.f_max) == (
        16000,
        1024,
        160,
        1024,
        64,
        0.0,
        8000.0,
    )
    assert (h.sample_rate, h.n_fft, h.hop_length, h.win_length, h.n_mels, h.f_min, h.f_max) == (
        22050,
        1024,
        256,
        1024,
        80,
        0.0,
        8000.0,
    )
    assert (a.padding, a.magnitude_eps, h.padding, h.magnitude_eps) == ("center", 0.0, "hifigan", 1e-9)
    assert preset_name(h) == "hifigan-22k" and preset_name(MelConfig(n_mels=32)) is None


def test_config_round_trips_through_json():
    for cfg in MEL_PRESETS.values():
        d = json.loads(json.dumps(cfg.to_dict()))
        assert MelConfig.from_dict(d) == cfg
        assert MelFrontend.from_config(d).config == cfg
    assert MelConfig.from_dict({"n_mels": 32}).n_mels == 32  # missing keys take defaults


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"hop_length": 0}, "hop_length=0: must be a positive integer"),
        ({"win_length": 2048}, "win_length=2048: must be <= n_fft=1024"),
        ({"f_max": 9000.0}, "f_max=9000.0: need 0 <= f_min < f_max <= sample_rate/2"),
        ({"padding": "same"}, "padding='same': must be one of center, hifigan"),
        ({"log_floor": 0.0}, "log_floor=0.0: must be > 0"),
        ({"padding": "hifigan", "hop_length": 161}, "needs n_fft - hop_length to be even"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MelConfig(**kwargs)


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="unknown MelConfig keys \\['nmels'\\]; known keys: sample_rate"):
        MelConfig.from_dict({"nmels": 64})
    with pytest.raises(ValueError, match="unknown mel preset 'x'; choose one of audioldm-16k, hifigan-22k"):
        mel_preset("x")
    with pytest.raises(UsageError, match="choose one of audioldm-16k, hifigan-22k"):
        MelFrontend.from_preset("x")


def test_logmel_is_the_vocoder_layout(ref22):
    lm = LogMel(mel_preset("hifigan-22k"))
    assert lm(ref22["__input__.waveform"]).shape == (1, 80, 86)


# ----------------------------------------------------------------------------------------------
# mel files


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_save_and_load_mel(tmp_path, fe16, suffix):
    spec = fe16(torch.randn(3200) * 0.1)
    path = save_mel(tmp_path / f"m{suffix}", spec, fe16.config, source="x.wav")
    back, cfg = load_mel(path)
    assert torch.equal(back, spec)
    assert cfg == (fe16.config if suffix == ".safetensors" else None)
    assert [p.name for p in tmp_path.iterdir()] == [f"m{suffix}"]  # no temp file left behind


@pytest.mark.parametrize("name", list(MEL_PRESETS))
def test_forward_supports_autograd_and_matches_the_fast_path(name):
    lm = LogMel(mel_preset(name))
    wav = (torch.randn(2, 3000, generator=torch.Generator().manual_seed(1)) * 0.2).requires_grad_()
    out = lm(wav)
    out.mean().backward()
    assert torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(lm(wav), out.detach(), atol=1e-5, rtol=0)


def test_outputs_are_contiguous_in_both_layouts(fe16):
    wav = torch.randn(2, 3000) * 0.1
    time_major, vocoder_layout = fe16(wav), fe16.log_mel(wav)
    assert time_major.is_contiguous() and vocoder_layout.is_contiguous()
    assert torch.equal(time_major, vocoder_layout.transpose(1, 2))


def test_limit_frame_level_turns_only_loud_frames_down_to_the_limit():
    from audioldm_cli.frontend import frame_level, limit_frame_level

    g = torch.Generator().manual_seed(0)
    mel = torch.randn(2, 1, 40, 16, generator=g) * 3 - 2
    level = frame_level(mel)
    limit = float(level.median())  # about half the frames are louder
    out = limit_frame_level(mel, limit)
    loud = (level > limit).squeeze(-1)
    assert 0 < int(loud.sum()) < loud.numel()
    assert torch.equal(out[~loud], mel[~loud])  # quieter frames untouched
    torch.testing.assert_close(frame_level(out)[loud], torch.full_like(level[loud], limit), atol=1e-5, rtol=0)
    shift = (mel - out)[loud]  # one offset for every bin of a frame: its spectral shape is kept
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift), atol=1e-5, rtol=0)
    assert limit_frame_level(mel, math.inf) is mel
    # the level is that of the mean linear magnitude: a flat frame at log-magnitude v has level v
    torch.testing.assert_close(frame_level(torch.full((3, 8), 0.7)), torch.full((3, 1), 0.7))
