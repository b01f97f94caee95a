"""Helpers shared by the stages: frontend resolution, datasets, per-sample noise, model folders."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from vocoder.config import MelConfig, mel_preset

from ..data import Row, SegmentDataset, read_manifest, sample_generator
from ..errors import UsageError
from .config import TrainConfig

logger = logging.getLogger(__name__)


def resolve_frontend(spec: str | dict | None, default: str = "audioldm-16k") -> MelConfig:
    """A MelConfig from a preset name or a dict of MelConfig fields (None: `default`)."""
    try:
        if spec is None or isinstance(spec, str):
            return mel_preset(spec or default)
        return MelConfig.from_dict(dict(spec))
    except (ValueError, TypeError) as e:
        raise UsageError(f"config 'frontend': {e}") from None


def audio_reader(sample_rate: int):
    """path -> mono waveform [N] at `sample_rate`; latent files -> their (scaled) latent [C, T', F']."""

    def read(path: Path) -> torch.Tensor:
        if path.name.endswith(".latent.safetensors"):
            from ..checkpoint import load_latent

            latent, meta = load_latent(path)
            if int(meta["sample_rate"]) != sample_rate:
                raise ValueError(f"latent at {meta['sample_rate']} Hz, training at {sample_rate} Hz")
            return latent
        from ..audio import read_audio

        return read_audio(path, sample_rate)[0]

    return read


def make_datasets(
    data: str | Path,
    cfg: TrainConfig,
    sample_rate: int,
    segment: int,
    *,
    require_captions: bool = False,
    caption_dropout: float = 0.0,
    val_data: str | Path | None = None,
    latent_segment: int | None = None,
) -> tuple[SegmentDataset, SegmentDataset]:
    """(training set, validation set); validation uses `val_data` or the first rows of `data`."""
    rows = read_manifest(data, require_captions=require_captions)
    reader = audio_reader(sample_rate)
    train = SegmentDataset(
        rows, reader, segment, latent_segment=latent_segment, seed=cfg.seed, caption_dropout=caption_dropout
    )
    val_rows: list[Row] = read_manifest(val_data, require_captions=require_captions) if val_data else rows
    val = SegmentDataset(
        val_rows[: cfg.val_items], reader, segment, latent_segment=latent_segment, seed=cfg.seed
    )
    return train, val


def batch_noise(shape: tuple[int, ...], seed: int, step: int, positions, salt: int) -> torch.Tensor:
    """Gaussian noise [len(positions), *shape], one generator per global sample (same on every process)."""
    return torch.stack(
        [torch.randn(shape, generator=sample_generator(seed + salt, step, int(p))) for p in positions]
    )


def batch_uniform_ints(high: int, seed: int, step: int, positions, salt: int) -> torch.Tensor:
    """One integer in [0, high) per global sample, drawn like `batch_noise`."""
    return torch.cat(
        [
            torch.randint(0, high, (1,), generator=sample_generator(seed + salt, step, int(p)))
            for p in positions
        ]
    )


def requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)
