"""The mel frontend of the latent-diffusion stack: time-major log-mels, subbands, the training read path.

- `MelFrontend(cfg)` / `MelFrontend.from_preset(name)`: wav [B, N] -> log-mel [B, T, F] (time-major,
  as the VAE sees it); `.config` is the `MelConfig`.
- `split_subbands` / `merge_subbands`: [B, 1, T, F] <-> [B, S, T, F / S], exact inverses.
- `frame_level` / `limit_frame_level`: each frame's level (log of its mean mel magnitude) and a limiter
  that turns louder frames down to a ceiling (what `generate` applies before the vocoder).
- `normalize_wav`, `pad_wav`, `fit_frames`, `prepare_wav`, `MelFrontend.fbank`, `load_fbank`: the
  official AudioLDM reading path (`read_wav_file` / `wav_to_fbank`) used for training and parity.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vocoder.config import MEL_PRESETS, MelConfig, mel_preset
from vocoder.mel import LogMel

from .errors import UsageError

__all__ = [
    "MEL_PRESETS",
    "MelConfig",
    "MelFrontend",
    "fit_frames",
    "frame_level",
    "limit_frame_level",
    "load_fbank",
    "load_mel",
    "merge_subbands",
    "normalize_wav",
    "pad_wav",
    "prepare_wav",
    "save_mel",
    "split_subbands",
]


class MelFrontend(nn.Module):
    """Log-mel frontend: waveform [B, N] (or [N]) -> log-mel [B, T, F] (or [T, F]), T = cfg.num_frames(N).

    Runs on the device of its buffers (`.to(device)`); inputs are moved there.
    """

    def __init__(self, cfg: MelConfig):
        super().__init__()
        if not isinstance(cfg, MelConfig):
            raise TypeError(
                f"MelFrontend takes a MelConfig (see MelFrontend.from_preset), got {type(cfg).__name__}"
            )
        self.log_mel = LogMel(cfg)

    @classmethod
    def from_preset(cls, name: str) -> MelFrontend:
        """Build from a preset name (`audioldm-16k`, `hifigan-22k`); UsageError for an unknown name."""
        try:
            return cls(mel_preset(name))
        except ValueError as e:
            raise UsageError(str(e)) from None

    @classmethod
    def from_config(cls, config: MelConfig | dict) -> MelFrontend:
        """Build from a MelConfig or its `to_dict()` form (as stored in pipeline.json)."""
        return cls(config if isinstance(config, MelConfig) else MelConfig.from_dict(dict(config)))

    @property
    def config(self) -> MelConfig:
        return self.log_mel.cfg

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    def num_frames(self, n_samples: int) -> int:
        return self.config.num_frames(n_samples)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.log_mel.time_major(wav)

    def log_magnitudes(self, wav: torch.Tensor) -> torch.Tensor:
        """Time-major log linear magnitudes [B, T, n_fft // 2 + 1] (same log floor as the mel)."""
        return self.log_mel.log(self.log_mel.spectrogram(wav)).transpose(-1, -2)

    def stream(self, blocks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Log-mel pieces [T_i, F] of one long mono waveform given as consecutive blocks [n_i].

        Concatenated, the pieces equal `self(whole_waveform)`; memory stays bounded by a block plus
        one STFT window (use with `audio.iter_audio_blocks`).
        """
        cfg, lm = self.config, self.log_mel
        pad, hop, n_fft = cfg.pad_samples, cfg.hop_length, cfg.n_fft
        head: list[torch.Tensor] = []  # samples seen before the left reflection can be built
        buf: torch.Tensor | None = None  # padded signal from the next frame's first sample on
        tail = torch.zeros(0, dtype=lm.window.dtype)  # the last pad + 1 samples, for the right reflection
        n_samples = 0

        def frames() -> Iterator[torch.Tensor]:
            nonlocal buf
            n = (buf.shape[0] - n_fft) // hop + 1 if buf.shape[0] >= n_fft else 0
            if n > 0:
                mags = lm.padded_spectrogram(buf[None, : (n - 1) * hop + n_fft])
                yield lm.log(lm.mel(mags))[0].transpose(0, 1)
                buf = buf[n * hop :]

        for block in blocks:
            block = block.reshape(-1).to(lm.window.dtype)
            n_samples += block.shape[0]
            tail = torch.cat([tail, block])[-(pad + 1) :]
            if buf is None:
                head.append(block)
                if n_samples <= pad:
                    continue
                first = torch.cat(head)
                buf, head = torch.cat([first[1 : pad + 1].flip(0), first]), []
            else:
                buf = torch.cat([buf, block])
            yield from frames()
        if n_samples < cfg.min_samples:
            raise ValueError(
                f"waveform of {n_samples} samples is too short for this mel: need at least "
                f"{cfg.min_samples} samples at {cfg.sample_rate} Hz"
            )
        buf = torch.cat([buf, tail[:-1].flip(0)])
        yield from frames()

    def fbank(self, wav: torch.Tensor, target_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference `wav_to_fbank` on an already prepared waveform (see `prepare_wav`).

        Returns (log-mel [B, target_frames, n_mels], log magnitudes [B, target_frames, 2 * (n_freqs // 2)]):
        mel of the whole waveform, then zero-padded / cut to `target_frames`, and the last linear bin
        dropped when the bin count is odd (513 -> 512), as the reference does.
        """
        mags = self.log_mel.spectrogram(wav)
        mel = self.log_mel.log(self.log_mel.mel(mags)).transpose(-1, -2)
        log_mags = self.log_mel.log(mags).transpose(-1, -2)
        mel, log_mags = fit_frames(mel, target_frames), fit_frames(log_mags, target_frames)
        return _drop_odd_bin(mel), _drop_odd_bin(log_mags)


# ----------------------------------------------------------------------------------------------
# subbands


def frame_level(mel: torch.Tensor) -> torch.Tensor:
    """Log-mel [..., T, F] -> each frame's level [..., T, 1]: the log of its mean mel magnitude."""
    return torch.logsumexp(mel, -1, keepdim=True) - math.log(mel.shape[-1])


def limit_frame_level(mel: torch.Tensor, limit: float) -> torch.Tensor:
    """Turn each frame of log-mel [..., T, F] whose `frame_level` exceeds `limit` down to exactly `limit`.

    A limiter in the mel domain: a frame keeps its spectral shape (one offset for all its bins), quieter
    frames are untouched, and `limit` inf leaves the mel as it is.
    """
    if limit == math.inf:
        return mel
    return mel - (frame_level(mel) - limit).clamp(min=0)


def _check_subbands(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"subband count {n!r}: must be a positive integer")


def split_subbands(mel: torch.Tensor, n: int) -> torch.Tensor:
    """[B, 1, T, F] -> [B, n, T, F / n]: band s holds mel bins s*F/n ... (s+1)*F/n - 1."""
    _check_subbands(n)
    if mel.dim() != 4 or mel.shape[1] != 1:
        raise ValueError(f"split_subbands expects a mel [B, 1, T, F], got shape {tuple(mel.shape)}")
    b, _, t, f = mel.shape
    if f % n:
        raise ValueError(f"cannot split {f} mel bins into {n} subbands: {n} must divide {f}")
    if n == 1:
        return mel
    return mel.reshape(b, t, n, f // n).permute(0, 2, 1, 3)  # [B, n, T, F/n]


def merge_subbands(bands: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """[B, n, T, F / n] -> [B, 1, T, F]: the exact inverse of `split_subbands`."""
    if bands.dim() != 4:
        raise ValueError(f"merge_subbands expects subbands [B, n, T, F/n], got shape {tuple(bands.shape)}")
    b, s, t, fs = bands.shape
    if n is not None:
        _check_subbands(n)
        if n != s:
            raise ValueError(f"merge_subbands: expected {n} subbands, got {s} (shape {tuple(bands.shape)})")
    if s == 1:
        return bands
    return bands.permute(0, 2, 1, 3).reshape(b, 1, t, s * fs)


# ----------------------------------------------------------------------------------------------
# the reference reading path (audioldm audio.tools.read_wav_file / wav_to_fbank)


def normalize_wav(wav: torch.Tensor) -> torch.Tensor:
    """Remove the mean and scale the peak to 0.5, along the last axis: (x - mean) / (max|x - mean| + 1e-8) / 2."""
    x = wav.to(torch.float64)
    x = x - x.mean(dim=-1, keepdim=True)
    x = x / (x.abs().amax(dim=-1, keepdim=True) + 1e-8)
    return (0.5 * x).to(wav.dtype)


def pad_wav(wav: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Zero-pad the last axis at the end up to `n_samples`; a longer waveform is returned uncut."""
    short = n_samples - wav.shape[-1]
    return F.pad(wav, (0, short)) if short > 0 else wav


def prepare_wav(wav: torch.Tensor, target_frames: int, hop_length: int) -> torch.Tensor:
    """The reference `read_wav_file` after loading: normalise, pad to target_frames * hop, peak to 0.5 again."""
    x = pad_wav(normalize_wav(wav), target_frames * hop_length).to(torch.float64)
    peak = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8)  # the reference divides by 0 on silence
    return (0.5 * x / peak).to(wav.dtype)


def fit_frames(spec: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Zero-pad or cut a time-major spectrogram [..., T, F] to exactly `n_frames` frames."""
    short = n_frames - spec.shape[-2]
    if short > 0:
        return F.pad(spec, (0, 0, 0, short))
    return spec[..., :n_frames, :]


def _drop_odd_bin(spec: torch.Tensor) -> torch.Tensor:
    return spec[..., :-1] if spec.shape[-1] % 2 else spec


def load_fbank(
    path: str | os.PathLike, frontend: MelFrontend, target_frames: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Read a file the way official AudioLDM training does (`wav_to_fbank`).

    Returns (log-mel [target_frames, n_mels], log magnitudes [target_frames, even bins], waveform [N]).
    """
    from .audio import read_audio  # audio imports soundfile; keep `frontend` importable without it

    wav, _ = read_audio(path, frontend.sample_rate)
    wav = prepare_wav(wav, target_frames, frontend.hop_length)
    mel, log_mags = frontend.fbank(wav, target_frames)
    return mel, log_mags, wav


# ----------------------------------------------------------------------------------------------
# mel files


MEL_FORMATS = ("npy", "safetensors")
MEL_FORMAT_VERSION = 1


def save_mel(
    path: str | os.PathLike, mel: torch.Tensor, cfg: MelConfig, *, source: str | None = None
) -> Path:
    """Write a time-major log-mel [T, F] atomically; the format follows the suffix (.npy or .safetensors).

    A .safetensors file holds tensor `log_mel` and, as metadata, `format_version`, `layout` ("T,F"),
    `mel_config` (MelConfig JSON) and `source`; a .npy file holds the bare float32 array.
    """
    from vocoder.checkpoint import atomic_path

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in MEL_FORMATS:
        raise UsageError(f"output {path}: unknown mel file extension; use .npy or .safetensors")
    data = mel.detach().to("cpu", torch.float32).contiguous()
    with atomic_path(path) as tmp:
        if fmt == "npy":
            with open(tmp, "wb") as f:
                np.save(f, data.numpy())
        else:
            from safetensors.torch import save_file

            meta = {
                "format_version": str(MEL_FORMAT_VERSION),
                "layout": "T,F",
                "mel_config": json.dumps(cfg.to_dict()),
                "source": source or "",
            }
            save_file({"log_mel": data}, str(tmp), metadata=meta)
    return path


def load_mel(path: str | os.PathLike) -> tuple[torch.Tensor, MelConfig | None]:
    """Read a file written by `save_mel`: (log-mel [T, F], its MelConfig or None for .npy)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return torch.from_numpy(np.load(path, allow_pickle=False)), None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        mel = f.get_tensor("log_mel")
    cfg = MelConfig.from_dict(json.loads(meta["mel_config"])) if "mel_config" in meta else None
    return mel, cfg
