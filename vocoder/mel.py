"""The one log-mel definition: `LogMel`, waveform [B, N] -> log-mel [B, n_mels, T] (vocoder layout).

Pure torch in the forward pass (no librosa), so it runs batched on whatever device its buffers live on.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import MelConfig

# Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above.
_SLANEY_F_SP = 200.0 / 3  # Hz per mel in the linear part
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # 15 mels
_SLANEY_LOG_STEP = math.log(6.4) / 27.0  # 27 mel steps per factor 6.4 in frequency


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default, htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _SLANEY_F_SP
    log = (
        _SLANEY_MIN_LOG_MEL
        + np.log(np.maximum(hz, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOG_STEP
    )
    return np.where(hz >= _SLANEY_MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _SLANEY_F_SP
    log = _SLANEY_MIN_LOG_HZ * np.exp(
        _SLANEY_LOG_STEP * (np.maximum(mel, _SLANEY_MIN_LOG_MEL) - _SLANEY_MIN_LOG_MEL)
    )
    return np.where(mel >= _SLANEY_MIN_LOG_MEL, log, linear)


def slaney_mel_basis(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular mel filterbank [n_mels, n_fft // 2 + 1] with Slaney area normalisation.

    Same definition as `librosa.filters.mel(..., htk=False, norm="slaney")`: triangles whose corners
    are n_mels + 2 points equally spaced on the Slaney mel scale, each scaled by 2 / bandwidth.
    """
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges_hz)  # [n_mels + 1]
    # distance of every FFT bin to every corner: [n_mels + 2, n_freqs]
    offsets = edges_hz[:, None] - fft_hz[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


# Bytes of complex spectrum handled at once by the CPU path of LogMel.forward (about an L2 cache).
_CPU_BLOCK_BYTES = 1024 * 1024


class LogMel(nn.Module):
    """Log-mel spectrogram of a batch of waveforms, following `MelConfig` exactly.

    forward(wav [B, N]) -> [B, n_mels, T], T = cfg.num_frames(N). A 1-D input gives [n_mels, T].
    The mel basis and window are non-persistent buffers: they follow `.to(device)` but never enter
    a state_dict.
    """

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.cfg = cfg
        basis = slaney_mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
        self.register_buffer("mel_basis", basis, persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=True), persistent=False)
        # linear bins up to the last one any mel filter uses (all of them when f_max is Nyquist)
        self.n_used_bins = int(basis.nonzero()[:, 1].max()) + 1

    def extra_repr(self) -> str:
        return repr(self.cfg)

    def _check(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() not in (1, 2):
            raise ValueError(f"LogMel expects a waveform [B, N] or [N], got shape {tuple(wav.shape)}")
        if wav.shape[-1] < self.cfg.min_samples:
            raise ValueError(
                f"waveform of {wav.shape[-1]} samples is too short for this mel: need at least "
                f"{self.cfg.min_samples} samples at {self.cfg.sample_rate} Hz"
            )
        return wav.to(device=self.window.device, dtype=self.window.dtype)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitudes [B, n_fft // 2 + 1, T] (or [n_freqs, T] for a 1-D input)."""
        wav = self._check(wav)
        squeeze = wav.dim() == 1
        x = wav.reshape(-1, 1, wav.shape[-1])
        pad = self.cfg.pad_samples
        x = F.pad(x, (pad, pad), mode="reflect").squeeze(1)  # [B, N + 2 pad]
        mag = self.padded_spectrogram(x)
        return mag[0] if squeeze else mag

    def padded_spectrogram(self, padded: torch.Tensor, n_bins: int | None = None) -> torch.Tensor:
        """Magnitudes [B, n_freqs, T] of an already padded signal [B, M]: frame t = padded[t*hop : t*hop + n_fft].

        `n_bins` keeps only the lowest bins (those the mel filterbank uses).
        """
        padded = padded.to(device=self.window.device, dtype=self.window.dtype)
        spec = torch.stft(
            padded,
            n_fft=self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            win_length=self.cfg.win_length,
            window=self.window,
            center=False,
            return_complex=True,
        )
        if n_bins is not None:
            spec = spec[..., :n_bins, :]
        # sqrt(re^2 + im^2 [+ eps]); twice as fast on CPU as complex abs(), which guards against overflow
        power = torch.addcmul(spec.real * spec.real, spec.imag, spec.imag)
        if self.cfg.magnitude_eps > 0:
            power = power.add_(self.cfg.magnitude_eps)
        return power.sqrt_()

    def mel(self, magnitudes: torch.Tensor) -> torch.Tensor:
        """Linear magnitudes [..., n_freqs, T] -> mel magnitudes [..., n_mels, T] (no log), in float32 even
        under an enclosing autocast (a bf16 product moves the log-mel by ~0.01: a training target, and the
        input of every model, must not depend on the run's precision)."""
        dtype = torch.promote_types(self.mel_basis.dtype, torch.float32)  # fp32, or fp64 for a double LogMel
        with torch.autocast(magnitudes.device.type, enabled=False):
            return torch.matmul(self.mel_basis.to(dtype), magnitudes.to(dtype))

    def log(self, x: torch.Tensor) -> torch.Tensor:
        """log(clamp(x, log_floor)): the dynamic-range compression shared by mel and magnitudes."""
        return torch.log(torch.clamp(x, min=self.cfg.log_floor))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, n_mels, T] (vocoder layout), contiguous."""
        needs_grad = torch.is_grad_enabled() and wav.requires_grad  # the CPU path writes in place
        if self.window.device.type != "cpu" or needs_grad:
            return self.log(self.mel(self.spectrogram(wav)))
        return self._forward_cpu(wav).transpose(-1, -2).contiguous()

    def time_major(self, wav: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, T, n_mels] (VAE layout), contiguous: the same numbers as `forward`, transposed."""
        needs_grad = torch.is_grad_enabled() and wav.requires_grad
        if self.window.device.type != "cpu" or needs_grad:
            return self.log(self.mel(self.spectrogram(wav))).transpose(-1, -2).contiguous()
        return self._forward_cpu(wav)

    def _forward_cpu(self, wav: torch.Tensor) -> torch.Tensor:
        """Time-major log-mel [B, T, n_mels] as the batched path computes it, frame by frame in cache-sized blocks.

        On CPU the complex spectrum of a whole batch (B x 513 x T x 8 bytes) is far larger than the
        caches and the pass is memory-bound; going through blocks of frames ([frames, n_fft] rows,
        rfft along rows, [frames, bins] @ basis^T) is 2-4x faster and bounds the temporary memory.
        """
        wav = self._check(wav)
        x = wav.reshape(-1, wav.shape[-1])
        cfg, n_used = self.cfg, self.n_used_bins
        n_frames = cfg.num_frames(x.shape[-1])
        lead = (cfg.n_fft - cfg.win_length) // 2  # torch.stft centres a shorter window in the frame
        window = F.pad(self.window, (lead, cfg.n_fft - cfg.win_length - lead))
        basis_t = self.mel_basis[:, :n_used].t()  # bins above f_max carry no weight: skip them
        out = x.new_empty(x.shape[0], n_frames, cfg.n_mels)  # frame-major
        step = max(1, _CPU_BLOCK_BYTES // (8 * cfg.n_freqs))  # frames per block
        # The blocks are too small to share among threads: with several, each block pays a thread
        # hand-off (measured 28x slower with 2 threads on a busy machine), so run them on one.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            workers = min(threads, x.shape[0])
            if workers > 1:  # clips in parallel instead: torch ops release the GIL
                inference = torch.is_inference_mode_enabled()  # thread-local: carry it to the workers

                def work(b: int) -> None:
                    with torch.inference_mode(inference), torch.no_grad():
                        self._blocks_cpu(x, out, window, basis_t, n_used, n_frames, step, b)

                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(work, range(x.shape[0])))
            else:
                for b in range(x.shape[0]):
                    self._blocks_cpu(x, out, window, basis_t, n_used, n_frames, step, b)
        finally:
            torch.set_num_threads(threads)
        out = out.clamp_(min=cfg.log_floor).log_()  # [B, T, n_mels]
        return out[0] if wav.dim() == 1 else out

    def _blocks_cpu(self, x, out, window, basis_t, n_used: int, n_frames: int, step: int, b: int) -> None:
        """Fill out[b] (frame-major log-mel before the log) from clip x[b], block by block."""
        cfg = self.cfg
        padded = F.pad(x[b].view(1, 1, -1), (cfg.pad_samples,) * 2, mode="reflect").view(-1)
        frames = padded.unfold(0, cfg.n_fft, cfg.hop_length)  # [T, n_fft], a view
        for f0 in range(0, n_frames, step):
            spec = torch.fft.rfft(frames[f0 : f0 + step] * window)[:, :n_used]
            power = torch.addcmul(spec.real * spec.real, spec.imag, spec.imag)
            if cfg.magnitude_eps > 0:
                power.add_(cfg.magnitude_eps)
            torch.matmul(power.sqrt_(), basis_t, out=out[b, f0 : f0 + step])
