"""Mel frontend configuration: `MelConfig` and the named presets.

One `MelConfig` fully pins a log-mel definition (rate, STFT geometry, padding convention, magnitude
epsilon, log floor), so that a VAE, a vocoder and a dataset can check that they agree by comparing
configs. Field names follow torchaudio (`sample_rate`, `n_fft`, `hop_length`, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Padding = Literal["center", "hifigan"]
PADDINGS = ("center", "hifigan")


@dataclass(frozen=True)
class MelConfig:
    """A log-mel spectrogram definition.

    padding:
      "center"  reflect-pad n_fft // 2 on both sides (torch.stft center=True); frames = 1 + N // hop.
                The official AudioLDM TacotronSTFT convention.
      "hifigan" reflect-pad (n_fft - hop) // 2 on both sides, then no centering; frames = N // hop
                (for N a multiple of hop). The original HiFi-GAN `mel_spectrogram` convention.
    magnitude_eps: magnitude = sqrt(re^2 + im^2 + magnitude_eps); 0 means plain |STFT|.
    log_floor: log-mel = log(clamp(mel, min=log_floor)).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    win_length: int = 1024
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0
    padding: Padding = "center"
    magnitude_eps: float = 0.0  # HiFi-GAN adds 1e-9 under the square root; AudioLDM uses abs()
    log_floor: float = 1e-5  # log(1e-5) = -11.5129 marks silence in both conventions

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MelConfig.{name}={value!r}: must be a positive integer")
        if self.win_length > self.n_fft:
            raise ValueError(f"MelConfig.win_length={self.win_length}: must be <= n_fft={self.n_fft}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"MelConfig.hop_length={self.hop_length}: must be <= n_fft={self.n_fft}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"MelConfig f_min={self.f_min}, f_max={self.f_max}: need 0 <= f_min < f_max <= "
                f"sample_rate/2 = {self.sample_rate / 2}"
            )
        if self.padding not in PADDINGS:
            raise ValueError(f"MelConfig.padding={self.padding!r}: must be one of {', '.join(PADDINGS)}")
        if self.padding == "hifigan" and (self.n_fft - self.hop_length) % 2:
            raise ValueError(
                f"MelConfig n_fft={self.n_fft}, hop_length={self.hop_length}: 'hifigan' padding needs "
                "n_fft - hop_length to be even"
            )
        if not self.magnitude_eps >= 0:
            raise ValueError(f"MelConfig.magnitude_eps={self.magnitude_eps!r}: must be >= 0")
        if not self.log_floor > 0:
            raise ValueError(f"MelConfig.log_floor={self.log_floor!r}: must be > 0")

    @property
    def n_freqs(self) -> int:
        """Number of linear-frequency STFT bins (n_fft // 2 + 1)."""
        return self.n_fft // 2 + 1

    @property
    def pad_samples(self) -> int:
        """Reflect padding added on each side of the waveform before the STFT."""
        return self.n_fft // 2 if self.padding == "center" else (self.n_fft - self.hop_length) // 2

    @property
    def min_samples(self) -> int:
        """Shortest waveform the STFT accepts (reflect padding needs more samples than it pads)."""
        return max(self.pad_samples + 1, self.n_fft - 2 * self.pad_samples)

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for a waveform of `n_samples` samples."""
        return 1 + (n_samples + 2 * self.pad_samples - self.n_fft) // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MelConfig:
        """Build from a dict; missing keys take defaults, unknown keys are an error."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown MelConfig keys {unknown}; known keys: {', '.join(known)}")
        return cls(**d)


MEL_PRESETS: dict[str, MelConfig] = {
    # Official AudioLDM / Tango VAE and vocoder (TacotronSTFT).
    "audioldm-16k": MelConfig(16000, 1024, 160, 1024, 64, 0.0, 8000.0, "center", 0.0, 1e-5),
    # HiFi-GAN V1 "universal" generator (original meldataset.mel_spectrogram).
    "hifigan-22k": MelConfig(22050, 1024, 256, 1024, 80, 0.0, 8000.0, "hifigan", 1e-9, 1e-5),
}


def mel_preset(name: str) -> MelConfig:
    """Return the named preset, or raise a ValueError listing the known names."""
    try:
        return MEL_PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown mel preset {name!r}; choose one of {', '.join(MEL_PRESETS)}") from None


def preset_name(cfg: MelConfig) -> str | None:
    """The preset name whose config equals `cfg`, or None for a custom config."""
    return next((name for name, preset in MEL_PRESETS.items() if preset == cfg), None)
