"""Reconstruction distances between a reference waveform and an estimate (`audioldm reconstruct --report`)."""

from __future__ import annotations

import torch
from torch import Tensor

from vocoder.config import MelConfig

# (n_fft, hop) pairs of the multi-resolution STFT distance (Yamamoto et al. 2020, Parallel WaveGAN).
MR_STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def _magnitudes(wav: Tensor, n_fft: int, hop: int) -> Tensor:
    """|STFT| [F, T] of a mono waveform [N] (Hann window, centred)."""
    window = torch.hann_window(n_fft, device=wav.device)
    wav = torch.nn.functional.pad(wav, (0, max(0, n_fft - wav.shape[-1])))  # reflect padding needs > n_fft/2
    return torch.stft(wav, n_fft, hop, window=window, center=True, return_complex=True).abs()


def log_spectral_distance(ref: Tensor, est: Tensor, n_fft: int = 2048, hop: int = 512) -> float:
    """LSD in dB: mean over frames of the RMS over bins of 10*log10(|R|^2 / |E|^2)."""
    eps = 1e-10
    r = _magnitudes(ref, n_fft, hop).pow(2).clamp_min(eps).log10()
    e = _magnitudes(est, n_fft, hop).pow(2).clamp_min(eps).log10()
    return float((10 * (r - e)).pow(2).mean(0).sqrt().mean())


def multi_resolution_stft_distance(ref: Tensor, est: Tensor) -> float | None:
    """Mean over resolutions of spectral convergence + mean |log |R| - log |E||; None for a silent
    reference, whose spectral convergence (relative to its energy) is undefined."""
    total = 0.0
    for n_fft, hop in MR_STFT_RESOLUTIONS:
        r, e = _magnitudes(ref, n_fft, hop), _magnitudes(est, n_fft, hop)
        energy = torch.linalg.norm(r)
        if energy <= 1e-8:
            return None
        convergence = torch.linalg.norm(r - e) / energy
        log_l1 = (r.clamp_min(1e-7).log() - e.clamp_min(1e-7).log()).abs().mean()
        total += float(convergence + log_l1)
    return total / len(MR_STFT_RESOLUTIONS)


def reconstruction_report(ref: Tensor, est: Tensor, mel_config: MelConfig) -> dict[str, float | None]:
    """Distances between two mono waveforms [N] of equal length at `mel_config`'s rate.

    Returns {"mel_l1": mean |log-mel difference|, "lsd_db": log-spectral distance,
    "mr_stft": multi-resolution STFT distance, None for a silent reference}; 0 for identical inputs
    (mr_stft: identical inputs that are not silent).
    """
    if ref.shape != est.shape or ref.dim() != 1:
        raise ValueError(
            f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} must be equal 1-D shapes"
        )
    from .frontend import MelFrontend

    ref, est = ref.float().cpu(), est.float().cpu()
    frontend = MelFrontend(mel_config)
    if ref.shape[-1] < mel_config.min_samples:
        ref, est = (torch.nn.functional.pad(x, (0, mel_config.min_samples - x.shape[-1])) for x in (ref, est))
    with torch.inference_mode():
        mel_l1 = float((frontend(ref) - frontend(est)).abs().mean())
    return {
        "mel_l1": mel_l1,
        "lsd_db": log_spectral_distance(ref, est),
        "mr_stft": multi_resolution_stft_distance(ref, est),
    }
