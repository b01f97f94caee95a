"""Audio I/O: formats, channels, rates, streaming, writing, folder expansion and every bad-input case."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from audioldm_cli import audio
from audioldm_cli.audio import (
    AUDIO_SUFFIXES,
    audio_info,
    find_audio_files,
    iter_audio_blocks,
    read_audio,
    resample,
    write_audio,
)
from audioldm_cli.errors import AudioReadError, UsageError


def tone(freq: float, sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    """[frames, channels] float32: channel c is the tone scaled by 1 / (c + 1)."""
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


def peak_hz(wav: torch.Tensor, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wav.numpy()))
    return float(np.argmax(spec) * sr / len(wav))


@pytest.mark.parametrize(
    "ext,subtype,atol", [("wav", "PCM_16", 1e-4), ("flac", "PCM_24", 1e-6), ("ogg", "VORBIS", 0.05)]
)
def test_reads_each_format(tmp_path, ext, subtype, atol):
    data = tone(440, 16000, 0.5)
    path = tmp_path / f"a.{ext}"
    sf.write(path, data, 16000, subtype=subtype)
    wav, sr = read_audio(path)
    assert sr == 16000 and wav.dtype == torch.float32 and wav.shape == (8000,)
    np.testing.assert_allclose(wav.numpy(), data[:, 0], atol=atol)
    assert peak_hz(wav, sr) == pytest.approx(440, abs=2)


def test_reads_mp3(tmp_path):
    sf.write(tmp_path / "a.mp3", tone(440, 16000, 1.0), 16000, format="MP3", subtype="MPEG_LAYER_III")
    wav, sr = read_audio(tmp_path / "a.mp3", 22050)
    assert sr == 22050 and wav.shape == (22050,)  # lossy codec: check length, pitch and level only
    assert peak_hz(wav, sr) == pytest.approx(440, abs=2)
    assert wav.abs().max().item() == pytest.approx(0.5, abs=0.05)


def test_multichannel_is_averaged_to_mono(tmp_path):
    data = tone(300, 16000, 0.25, channels=3)
    sf.write(tmp_path / "c.wav", data, 16000, subtype="FLOAT")
    wav, _ = read_audio(tmp_path / "c.wav")
    np.testing.assert_allclose(wav.numpy(), data.mean(axis=1), atol=1e-7)
    assert audio_info(tmp_path / "c.wav") == (4000, 16000, 3)


@pytest.mark.parametrize("file_sr,target", [(44100, 16000), (48000, 22050), (8000, 16000), (22050, None)])
def test_resamples_to_the_requested_rate(tmp_path, file_sr, target):
    sf.write(tmp_path / "r.flac", tone(1000, file_sr, 1.0, channels=2), file_sr, subtype="PCM_24")
    wav, sr = read_audio(tmp_path / "r.flac", target)
    assert sr == (target or file_sr)
    assert wav.shape == (sr,)  # 1 s stays 1 s
    assert peak_hz(wav, sr) == pytest.approx(1000, abs=2)
    # 0.75 = mean of the channel amplitudes 0.5 and 0.25; resampling keeps the level
    assert wav[sr // 4 : -sr // 4].abs().max().item() == pytest.approx(0.375, abs=5e-3)


@pytest.mark.parametrize(
    "target,block", [(16000, 1000), (16000, 5000), (22050, 4096), (48000, 30000), (None, 777)]
)
def test_blocks_equal_the_whole_file(tmp_path, target, block):
    rng = np.random.default_rng(0)
    sf.write(
        tmp_path / "l.flac",
        rng.uniform(-0.5, 0.5, (44100 * 2 + 123, 2)).astype(np.float32),
        44100,
        subtype="PCM_24",
    )
    whole, _ = read_audio(tmp_path / "l.flac", target)
    blocks = list(iter_audio_blocks(tmp_path / "l.flac", target, block))
    assert all(b.shape == (block,) for b in blocks[:-1]) and 0 < blocks[-1].shape[0] <= block
    streamed = torch.cat(blocks)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=1e-6, rtol=0)


def test_resample_is_identity_at_the_same_rate():
    x = torch.randn(100)
    assert resample(x, 16000, 16000) is x


# ----------------------------------------------------------------------------------------------
# bad inputs


def _truncated_wav(path):
    sf.write(path, tone(440, 16000, 0.5), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _nan_wav(path):
    data = tone(440, 16000, 0.1)
    data[100, 0] = np.nan
    sf.write(path, data, 16000, subtype="FLOAT")


BAD_INPUTS = {
    "missing": (lambda p: None, "no such file"),
    "directory": (lambda p: p.mkdir(), "folder holds no audio files"),
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "truncated": (_truncated_wav, "truncated WAV file"),
    "header_only": (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "not a readable audio file"),
    "text": (lambda p: p.write_text("this is not audio\n" * 20), "not a readable audio file"),
    "zero_samples": (lambda p: sf.write(p, np.zeros((0, 1), np.float32), 16000), "holds no audio samples"),
    "nan": (_nan_wav, "holds 1 NaN/inf samples"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_one_line_errors(tmp_path, case):
    make, message = BAD_INPUTS[case]
    path = tmp_path / "bad.wav"
    make(path)
    for read in (lambda: read_audio(path, 16000), lambda: list(iter_audio_blocks(path, 16000, 1000))):
        with pytest.raises(AudioReadError, match=message) as info:
            read()
        assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_truncated_ogg_and_flac_are_refused(tmp_path):
    for ext, subtype in (("ogg", "VORBIS"), ("flac", "PCM_16")):
        path = tmp_path / f"t.{ext}"
        sf.write(path, tone(440, 16000, 0.5, channels=2), 16000, subtype=subtype)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(
            AudioReadError, match="no audio samples|truncated or corrupt|not a readable audio file"
        ):
            read_audio(path)


# ----------------------------------------------------------------------------------------------
# writing


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_write_then_read_round_trip(tmp_path, ext):
    wav = torch.from_numpy(tone(440, 22050, 0.5)[:, 0])
    out = write_audio(tmp_path / f"o.{ext}", wav, 22050)
    back, sr = read_audio(out)
    assert sr == 22050 and back.shape == wav.shape
    assert sf.info(out).format == {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}[ext]
    torch.testing.assert_close(back, wav, atol=1e-4 if ext != "ogg" else 0.05, rtol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"o.{ext}"]  # atomic: no temp file left


def test_write_clips_with_a_warning(tmp_path, caplog):
    wav = torch.tensor([0.0, 1.5, -2.0, 0.25] * 100)
    with caplog.at_level(logging.WARNING, logger="audioldm_cli.audio"):
        write_audio(tmp_path / "c.wav", wav, 16000)
    assert "clipped 200 samples" in caplog.text
    back, _ = read_audio(tmp_path / "c.wav")
    assert back.max().item() == pytest.approx(1.0, abs=1e-4) and back.min().item() == -1.0


def test_write_multichannel(tmp_path):
    wav = torch.stack([torch.full((100,), 0.5), torch.full((100,), -0.25)])  # [C, N]
    write_audio(tmp_path / "s.flac", wav, 16000)
    assert audio_info(tmp_path / "s.flac") == (100, 16000, 2)
    assert read_audio(tmp_path / "s.flac")[0][0].item() == pytest.approx(0.125, abs=1e-4)


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("flac", "FLAC")])
@pytest.mark.parametrize("channels", [1, 2])
def test_block_writes_equal_one_write(tmp_path, monkeypatch, ext, fmt, channels):
    monkeypatch.setattr(audio, "WRITE_BLOCK_FRAMES", 1000)
    data = tone(440, 16000, 0.3, channels=channels)  # 4800 frames: four full blocks and a short one
    sf.write(tmp_path / f"one.{ext}", data, 16000, format=fmt, subtype="PCM_16")
    write_audio(tmp_path / f"blocks.{ext}", torch.from_numpy(data.T.copy()).squeeze(0), 16000)
    assert (tmp_path / f"blocks.{ext}").read_bytes() == (tmp_path / f"one.{ext}").read_bytes()


def test_block_writes_ogg(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "WRITE_BLOCK_FRAMES", 1000)
    wav = torch.from_numpy(tone(440, 16000, 0.3)[:, 0])
    back, _ = read_audio(write_audio(tmp_path / "b.ogg", wav, 16000))
    assert back.shape == wav.shape
    torch.testing.assert_close(back, wav, atol=0.05, rtol=0)


def test_write_long_ogg(tmp_path):
    # one libsndfile write of more than ~2M Vorbis frames segfaults; write_audio writes in blocks
    wav = torch.from_numpy(tone(440, 16000, 190.0)[:, 0])  # 3.04M samples
    out = write_audio(tmp_path / "long.ogg", wav, 16000)
    assert audio_info(out) == (wav.shape[0], 16000, 1)
    assert read_audio(out)[0].shape == wav.shape


def test_write_errors(tmp_path):
    with pytest.raises(UsageError, match=r"unknown audio extension '\.mp4'; use one of \.wav, \.flac, \.ogg"):
        write_audio(tmp_path / "x.mp4", torch.zeros(10), 16000)
    with pytest.raises(UsageError, match="NaN/inf"):
        write_audio(tmp_path / "x.wav", torch.tensor([0.0, float("inf")]), 16000)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file(tmp_path):
    out = write_audio(tmp_path / "k.wav", torch.full((50,), 0.5), 16000)
    before = out.read_bytes()
    with pytest.raises(UsageError):
        write_audio(out, torch.zeros(2, 2, 2), 16000)
    assert out.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


BAD_WRITES = {
    "soundfile layout": (
        np.zeros((4000, 2), np.float32),
        r"shape \(4000, 2\).*\[C, N\].*transpose a soundfile-style \[N, C\]",
    ),
    "more channels than samples": (np.zeros((3, 2), np.float32), r"3 channels of 2 samples"),
    "over 64 channels": (np.zeros((65, 1000), np.float32), r"65 channels.*C <= 64"),
    "no channels": (np.zeros((0, 100), np.float32), r"0 channels"),
    "3-D": (torch.zeros(2, 2, 100), r"shape \(2, 2, 100\); give \[N\] mono or \[C, N\]"),
    "NaN": (np.array([0.0, np.nan, 0.5, np.nan], np.float32), r"holds 2 NaN/inf samples \(of 4\)"),
    "inf": (torch.tensor([[0.0, float("inf")], [float("-inf"), 0.0]]), r"holds 2 NaN/inf samples"),
}


@pytest.mark.parametrize("case", list(BAD_WRITES))
def test_bad_write_arrays_are_usage_errors(tmp_path, case):
    wav, message = BAD_WRITES[case]
    with pytest.raises(UsageError, match=message) as info:
        write_audio(tmp_path / "x.wav", wav, 16000)
    assert "\n" not in str(info.value) and str(tmp_path / "x.wav") in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temp file


BAD_RATES = [0, -1, 16000.7, "16000", True, None, float("nan"), np.float32(0.5)]


@pytest.mark.parametrize("rate", BAD_RATES, ids=repr)
def test_write_refuses_bad_sample_rates(tmp_path, rate):
    with pytest.raises(UsageError, match="must be a positive integer"):
        write_audio(tmp_path / "x.wav", torch.zeros(10), rate)
    assert list(tmp_path.iterdir()) == []


def test_write_keeps_accepting_what_worked(tmp_path):
    """A guard, not a regression test: integer-valued rates, numpy input, small channels-first arrays."""
    for rate in (16000.0, np.int64(16000), np.float64(16000.0)):
        assert audio_info(write_audio(tmp_path / "r.wav", torch.zeros(10), rate)) == (10, 16000, 1)
    write_audio(tmp_path / "m.wav", np.zeros(10, np.float32), 16000)
    write_audio(tmp_path / "e.wav", np.zeros((1, 0), np.float32), 16000)  # [1, N] is mono, even empty
    write_audio(tmp_path / "s.wav", np.zeros((2, 2), np.float64), 16000)  # C == N: channels first
    write_audio(tmp_path / "w.wav", np.zeros((64, 100), np.float32), 16000)
    assert audio_info(tmp_path / "s.wav") == (2, 16000, 2)
    assert audio_info(tmp_path / "w.wav") == (100, 16000, 64)


@pytest.mark.parametrize("rate", [r for r in BAD_RATES if r is not None] + [22050.5], ids=repr)
def test_readers_refuse_bad_sample_rates(tmp_path, rate):
    path = tmp_path / "a.wav"
    sf.write(path, tone(440, 16000, 0.1), 16000)
    for call in (
        lambda: read_audio(path, rate),
        lambda: list(iter_audio_blocks(path, rate, 1000)),
        lambda: resample(torch.zeros(100), rate, 16000),
        lambda: resample(torch.zeros(100), 16000, rate),
    ):
        with pytest.raises(UsageError, match="sample rate .*: must be a positive integer") as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("rate", [22050.0, np.int32(22050), np.float32(22050.0)], ids=repr)
def test_readers_return_integer_valued_rates_as_int(tmp_path, rate):
    path = tmp_path / "a.wav"
    sf.write(path, tone(440, 16000, 0.1), 16000)
    wav, sr = read_audio(path, rate)
    assert sr == 22050 and type(sr) is int and wav.shape == (2205,)
    torch.testing.assert_close(torch.cat(list(iter_audio_blocks(path, rate, 1000))), wav, atol=1e-6, rtol=0)
    torch.testing.assert_close(resample(read_audio(path)[0], 16000.0, rate), wav)


@pytest.mark.parametrize("block", [1000.5, "1000", True], ids=repr)
def test_iter_audio_blocks_refuses_bad_block_sizes(tmp_path, block):
    path = tmp_path / "a.wav"
    sf.write(path, tone(440, 16000, 0.1), 16000)
    with pytest.raises(UsageError, match="block size .*: must be a positive number of samples"):
        list(iter_audio_blocks(path, 16000, block))


# ----------------------------------------------------------------------------------------------
# folders


def test_find_audio_files_expands_folders_sorted(tmp_path):
    for rel in ("b/z.wav", "b/a.FLAC", "a.ogg", "notes.txt", "b/c/d.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    single = tmp_path / "single.xyz"
    found = find_audio_files([single, tmp_path])
    assert found[0] == single  # files are kept as given, whatever their extension
    assert [p.relative_to(tmp_path).as_posix() for p in found[1:]] == [
        "a.ogg",
        "b/a.FLAC",
        "b/c/d.wav",
        "b/z.wav",
    ]
    assert ".wav" in AUDIO_SUFFIXES and ".flac" in AUDIO_SUFFIXES
    (tmp_path / "empty").mkdir()
    assert find_audio_files([tmp_path / "empty"]) == [tmp_path / "empty"]  # kept: it fails as one item
    with pytest.raises(AudioReadError, match="folder holds no audio files"):
        read_audio(tmp_path / "empty")


@pytest.mark.skipif(".mp3" not in audio.WRITE_FORMATS, reason="this libsndfile has no MP3 encoder")
def test_mp3_output_keeps_the_length(tmp_path):
    for rate, n in ((16000, 12345), (22050, 30000)):
        wav = torch.from_numpy(tone(440, rate, n / rate)[:n, 0])
        out = write_audio(tmp_path / f"x{rate}.mp3", wav, rate)
        back, sr = read_audio(out)
        assert (back.shape[0], sr) == (n, rate)
        assert torch.corrcoef(torch.stack([back, wav]))[0, 1] > 0.9  # lossy, but the same tone
    with pytest.raises(UsageError, match="MP3 cannot store 96000 Hz"):
        write_audio(tmp_path / "hi.mp3", torch.zeros(100), 96000)
    assert not (tmp_path / "hi.mp3").exists()


def test_resampling_holds_aliases_down_and_the_band_flat():
    """A tone just above the new Nyquist frequency must not fold back into the band (the Hann filter of
    torchaudio's defaults let it through at -8 dB); one at 0.9 x Nyquist keeps its level."""
    import math

    t = torch.arange(48000) / 48000

    def level(freq: float) -> tuple[float, float]:
        y = audio.resample(torch.sin(2 * math.pi * freq * t), 48000, 16000)[2000:-2000]
        spectrum = torch.fft.rfft(y * torch.hann_window(len(y))).abs()
        return 20 * math.log10(float(spectrum.max()) / (len(y) / 4)), int(spectrum.argmax()) * 16000 / len(y)

    assert abs(level(7200)[0]) < 0.5
    for freq in (8160, 8800):
        assert level(freq)[0] < -60, freq
    x = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    direct = audio._resample_direct(x, 441, 160)  # the long-file path evaluates the same filter
    torch.testing.assert_close(direct, audio.resample(x, 44100, 16000), atol=1e-4, rtol=0)


def test_rates_a_format_cannot_store_and_empty_audio_are_refused_before_writing(tmp_path):
    with pytest.raises(UsageError, match="Ogg Vorbis cannot store 256000 Hz"):
        audio.write_audio(tmp_path / "x.ogg", np.zeros(1000, np.float32), 256000)
    with pytest.raises(UsageError, match="FLAC cannot store 700000 Hz"):
        audio.write_audio(tmp_path / "x.flac", np.zeros(1000, np.float32), 700000)
    with pytest.raises(UsageError, match="holds no samples"):
        audio.write_audio(tmp_path / "x.flac", np.zeros(0, np.float32), 16000)
    assert list(tmp_path.iterdir()) == []  # no temp file either


def test_named_pipes_are_read_whole(tmp_path):
    import os
    import threading

    wave = (0.3 * np.sin(np.arange(8000) * 0.05)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, 16000)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes((tmp_path / "a.wav").read_bytes()))
    writer.start()
    wav, sr = audio.read_audio(fifo)
    writer.join()
    assert sr == 16000 and torch.allclose(wav, torch.from_numpy(wave), atol=1e-4)


def test_the_mel_ignores_an_enclosing_autocast():
    from vocoder.config import MEL_PRESETS
    from vocoder.mel import LogMel

    mel = LogMel(MEL_PRESETS["audioldm-16k"])
    wav = torch.randn(
        1, 16000, generator=torch.Generator().manual_seed(0), requires_grad=True
    )  # the autograd path
    reference = mel(wav).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mel(wav)
    assert out.dtype == torch.float32 and torch.equal(out.detach(), reference)


def test_devices_are_refused_not_read_to_the_end():
    with pytest.raises(AudioReadError, match="/dev/zero: a device, not an audio file"):
        audio.read_audio("/dev/zero")


def test_a_double_precision_mel_stays_double():
    from vocoder.config import MEL_PRESETS
    from vocoder.mel import LogMel

    mel = LogMel(MEL_PRESETS["audioldm-16k"]).double()
    wav = torch.randn(1, 4000, dtype=torch.float64, requires_grad=True)
    assert mel(wav).dtype == torch.float64
