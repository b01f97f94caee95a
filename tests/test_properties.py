"""Property tests (hypothesis): frontend frame counts and streaming, subband round trips, resampled
lengths for arbitrary lengths and rates, and an audio reader that raises nothing but `AudioReadError`
whatever bytes it is given. Example counts are modest so that the file runs in seconds."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from audioldm_cli.audio import audio_info, iter_audio_blocks, read_audio
from audioldm_cli.errors import AudioReadError
from audioldm_cli.frontend import MelFrontend, merge_subbands, split_subbands

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FRONTENDS = {name: MelFrontend.from_preset(name) for name in ("audioldm-16k", "hifigan-22k")}


def noise(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-0.5, 0.5, n).astype(np.float32))


# ----------------------------------------------------------------------------------------------
# frontend


@SETTINGS
@given(preset=st.sampled_from(list(FRONTENDS)), extra=st.integers(0, 6000), seed=st.integers(0, 2**16))
def test_frame_count_matches_the_mel_and_grows_one_per_hop(preset, extra, seed):
    fe = FRONTENDS[preset]
    n = fe.config.min_samples + extra
    mel = fe(noise(n, seed))
    assert mel.shape == (fe.num_frames(n), fe.n_mels)
    assert torch.isfinite(mel).all() and mel.min() >= math.log(1e-5) - 1e-6
    assert fe.num_frames(n + fe.hop_length) == fe.num_frames(n) + 1
    if fe.config.padding == "center":  # the AudioLDM convention: one frame per hop, plus one
        assert fe.num_frames(n) == n // fe.hop_length + 1


@SETTINGS
@given(
    preset=st.sampled_from(list(FRONTENDS)),
    cuts=st.lists(st.integers(1, 3000), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_streamed_mel_equals_the_whole_mel_for_any_blocks(preset, cuts, seed):
    fe = FRONTENDS[preset]
    n = max(sum(cuts), fe.config.min_samples)
    wav = noise(n, seed)
    blocks = list(wav.split(cuts + [n - sum(cuts)] if n > sum(cuts) else cuts))
    streamed = torch.cat(list(fe.stream(blocks)))
    whole = fe(wav)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, rtol=0, atol=2e-4)


@SETTINGS
@given(preset=st.sampled_from(list(FRONTENDS)), n=st.integers(1, 700))
def test_too_short_input_is_a_clear_error_in_both_paths(preset, n):
    fe = FRONTENDS[preset]
    assume(n < fe.config.min_samples)
    with pytest.raises(ValueError, match="too short"):
        list(fe.stream([noise(n, 0)]))


# ----------------------------------------------------------------------------------------------
# subbands


@SETTINGS
@given(
    b=st.integers(1, 3),
    t=st.integers(1, 40),
    n=st.sampled_from([1, 2, 4, 8]),
    width=st.integers(1, 16),
    seed=st.integers(0, 2**16),
)
def test_subband_split_merge_round_trip(b, t, n, width, seed):
    f = n * width
    mel = torch.randn(b, 1, t, f, generator=torch.Generator().manual_seed(seed))
    bands = split_subbands(mel, n)
    assert bands.shape == (b, n, t, width)
    for s in range(n):  # band s is the s-th contiguous slice of mel bins
        assert torch.equal(bands[:, s], mel[:, 0, :, s * width : (s + 1) * width])
    assert torch.equal(merge_subbands(bands, n), mel)
    assert torch.equal(split_subbands(merge_subbands(bands), n), bands)


@SETTINGS
@given(f=st.integers(1, 64), n=st.integers(1, 9))
def test_subband_count_that_does_not_divide_is_refused(f, n):
    mel = torch.zeros(1, 1, 3, f)
    if f % n:
        with pytest.raises(ValueError, match=f"cannot split {f} mel bins into {n} subbands"):
            split_subbands(mel, n)
    else:
        assert split_subbands(mel, n).shape == (1, n, 3, f // n)


# ----------------------------------------------------------------------------------------------
# reading audio at arbitrary rates and lengths


@settings(max_examples=15, deadline=None)
@given(
    rate=st.integers(80, 1920).map(lambda k: 50 * k),  # 4 kHz ... 96 kHz in steps of 50 Hz
    n=st.integers(1, 4000),
    channels=st.integers(1, 3),
    target=st.sampled_from([16000, 22050]),
)
def test_read_audio_length_and_streaming_at_any_rate(rate, n, channels, target):
    data = np.random.default_rng(n).uniform(-0.5, 0.5, (n, channels)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.wav"
        sf.write(path, data, rate, subtype="FLOAT")
        assert audio_info(path) == (n, rate, channels)
        wav, sr = read_audio(path, target)
        assert sr == target and wav.dtype == torch.float32 and wav.dim() == 1
        assert wav.shape[0] == math.ceil(n * target / rate)
        same, _ = read_audio(path)
        np.testing.assert_allclose(same.numpy(), data.mean(axis=1), rtol=0, atol=1e-6)
        block = max(1, n // 3)
        streamed = torch.cat(list(iter_audio_blocks(path, target, block)))
        assert streamed.shape == wav.shape
        torch.testing.assert_close(streamed, wav, rtol=0, atol=1e-5)


@settings(max_examples=12, deadline=None)
@given(
    orig=st.integers(40, 1000).map(lambda k: 100 * k),
    new=st.sampled_from([8000, 16000, 22050, 48000]),
    n=st.integers(1, 3000),
)
def test_direct_resampler_is_torchaudios_filter(orig, new, n):
    """The bounded-memory path used for awkward rate pairs computes torchaudio's own filter."""
    import torchaudio.functional as F

    from audioldm_cli.audio import _resample_direct

    assume(orig != new)  # equal rates are passed through untouched, never filtered
    x = noise(n, orig)
    g = math.gcd(orig, new)
    from audioldm_cli.audio import _KAISER_BETA, _LOWPASS_WIDTH, _ROLLOFF

    want = F.resample(
        x, orig, new, _LOWPASS_WIDTH, _ROLLOFF, resampling_method="sinc_interp_kaiser", beta=_KAISER_BETA
    )
    got = _resample_direct(x, orig // g, new // g)
    assert got.shape == want.shape == (math.ceil(n * new / orig),)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-4)


@settings(max_examples=4, deadline=None)
@given(rate=st.sampled_from([44101, 16001, 47999, 7919]), n=st.integers(2000, 12000))
def test_coprime_rates_read_in_bounded_memory(rate, n):
    """A file at a rate sharing no factor with the model's (44101 Hz) reads quickly, whole or streamed.

    torchaudio's polyphase kernel for 44101 -> 16000 Hz would need about 18 GB.
    """
    import resource

    data = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "odd.wav"
        sf.write(path, data, rate, subtype="FLOAT")
        wav, _ = read_audio(path, 16000)
        assert wav.shape == (math.ceil(n * 16000 / rate),) and torch.isfinite(wav).all()
        streamed = torch.cat(list(iter_audio_blocks(path, 16000, 1000)))
        torch.testing.assert_close(streamed, wav, rtol=0, atol=1e-5)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, grown_mb


# ----------------------------------------------------------------------------------------------
# arbitrary bytes: AudioReadError or a valid waveform, nothing else

SUFFIXES = [".wav", ".flac", ".ogg", ".mp3", ".aiff", ".au", ".txt", ""]


def _wav_header(data_size: int) -> bytes:
    """A RIFF/WAVE header (PCM16 mono 16 kHz) that declares `data_size` data bytes."""
    import struct

    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 16000, 32000, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + len(fmt) + 8 + data_size)
        + b"WAVE"
        + fmt
        + struct.pack("<4sI", b"data", data_size)
    )


MAGIC = [b"", b"RIFF", b"RIFF\x24\x00\x00\x00WAVE", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"FORM", b".snd"]
byte_files = st.one_of(
    st.binary(max_size=600),
    st.tuples(st.sampled_from(MAGIC), st.binary(max_size=600)).map(lambda t: t[0] + t[1]),
    st.tuples(st.integers(0, 2**32 - 64), st.binary(max_size=400)).map(lambda t: _wav_header(t[0]) + t[1]),
)


@settings(max_examples=60, deadline=None)
@given(content=byte_files, suffix=st.sampled_from(SUFFIXES))
def test_reader_raises_only_audio_read_error_on_arbitrary_bytes(content, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"blob{suffix}"
        path.write_bytes(content)
        for read in (
            lambda: read_audio(path)[0],
            lambda: read_audio(path, 16000)[0],
            lambda: torch.cat(list(iter_audio_blocks(path, 16000, 1000))),
        ):
            try:
                wav = read()
            except AudioReadError as e:
                message = str(e)
                assert str(path) in message and "\n" not in message
                continue
            # libsndfile found some audio in these bytes: then it is a real, finite, non-empty waveform
            assert wav.dtype == torch.float32 and wav.dim() == 1 and wav.numel() > 0
            assert torch.isfinite(wav).all()
