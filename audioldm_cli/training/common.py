"""Helpers shared by the stages: frontend resolution, datasets, per-sample noise, model folders and vocoders."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from vocoder.config import MelConfig, mel_preset

from ..data import Row, SegmentDataset, parse_manifest, sample_generator
from ..errors import ModelError, UsageError
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


def audio_reader(sample_rate: int, check_latent: Callable[[dict, str], None] | None = None):
    """path -> mono waveform [N] at `sample_rate`; latent files -> their (scaled) latent [C, T', F'].

    `check_latent(metadata, path)` raises when a latent file does not belong to the model being trained
    (e.g. `AudioLDM.check_latent_metadata`: another VAE); the dataset then skips the row with a warning."""

    from ..checkpoint import is_latent_path

    def read(path: Path) -> torch.Tensor:
        if is_latent_path(path):
            from ..checkpoint import load_latent

            latent, meta = load_latent(path)
            if int(meta["sample_rate"]) != sample_rate:
                raise ValueError(f"latent at {meta['sample_rate']} Hz, training at {sample_rate} Hz")
            if check_latent is not None:
                try:
                    check_latent(meta, str(path))
                except ModelError as e:
                    raise ValueError(str(e)) from None
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
    check_latent: Callable[[dict, str], None] | None = None,
    latent_pad: torch.Tensor | None = None,
) -> tuple[SegmentDataset, SegmentDataset]:
    """(training set, validation set); validation uses `val_data` or the first rows of `data`.

    Latent rows (`audioldm encode` files) are checked before any step: a stage that trains on audio
    (`latent_segment` None) skips them as bad rows, and a manifest that mixes them with audio is refused.
    Only the first process of a distributed run logs the manifests' bad rows (all of them read them)."""
    log = os.environ.get("RANK", "0") in ("", "0")
    rows, skipped = _rows_of_one_kind(data, require_captions, latent_segment, "data", log)
    reader = audio_reader(sample_rate, check_latent)
    train = SegmentDataset(
        rows,
        reader,
        segment,
        latent_segment=latent_segment,
        seed=cfg.seed,
        caption_dropout=caption_dropout,
        start_crop=cfg.start_crop,
        skipped=skipped,
        latent_pad=latent_pad,
    )
    val_rows: list[Row] = rows
    val_skipped: list[str] = []
    if val_data:
        val_rows, val_skipped = _rows_of_one_kind(val_data, require_captions, latent_segment, "val_data", log)
    val = SegmentDataset(
        val_rows[: cfg.val_items],
        reader,
        segment,
        latent_segment=latent_segment,
        seed=cfg.seed,
        skipped=val_skipped,
        bad=None if val_data else train._bad,  # the same rows: an unreadable file is warned about once
        latent_pad=latent_pad,
    )
    return train, val


def _rows_of_one_kind(
    data, require_captions: bool, latent_segment: int | None, option: str, log: bool
) -> tuple[list[Row], list[str]]:
    rows, skipped = parse_manifest(data, require_captions=require_captions, option=option, log=log)
    if latent_segment is None:
        latent = [r for r in rows if r.is_latent]
        for r in latent:
            skipped.append(f"{r.where}: a latent file; this stage trains on audio (latents: `train ldm`)")
            if log:
                logger.warning("%s; row skipped", skipped[-1])
        rows = [r for r in rows if not r.is_latent]
        if not rows:
            raise UsageError(
                "holds latent files only; this stage trains on audio (latent files: `train ldm`)",
                **{option: data},
            )
    elif 0 < sum(r.is_latent for r in rows) < len(rows):
        first = next(r for r in rows if r.is_latent)
        raise UsageError(
            f"mixes audio files and latent files (the first latent: {first.where}): use one kind per run",
            **{option: data},
        )
    return rows, skipped


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


def batch_uniform(seed: int, step: int, positions, salt: int) -> torch.Tensor:
    """One float in [0, 1) per global sample, drawn like `batch_noise`."""
    return torch.cat([torch.rand(1, generator=sample_generator(seed + salt, step, int(p))) for p in positions])


def requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def write_model_folder(
    folder: Path,
    mel: MelConfig,
    vae: nn.Module,
    vocoder_entry,
    vocoder: nn.Module | None,
    unet: nn.Module | None = None,
    text_encoder: dict | None = None,
    schedule: dict | None = None,
    conditioning: str = "crossattn",
) -> None:
    """Save a model folder; with no vocoder at all, only the VAE component (`folder/vae`)."""
    from vocoder.checkpoint import save_component

    from ..checkpoint import PipelineConfig, save_model_folder

    if vocoder_entry is None and vocoder is None:
        logger.warning(  # not naming `folder`: it is the temporary folder the export is renamed from
            "no vocoder: the export holds the VAE component only, in export/vae (give a vocoder to get a "
            "model folder usable by reconstruct)"
        )
        save_component(folder / "vae", "AutoencoderKL", vae.config, vae.state_dict())
        return
    components = {"vae": "vae", "vocoder": "vocoder" if vocoder_entry is None else vocoder_entry}
    modules = {"vae": vae}
    if vocoder_entry is None:
        modules["vocoder"] = vocoder.cpu()
    if unet is not None:
        components["unet"], modules["unet"] = "unet", unet
    config = PipelineConfig(
        frontend=mel.to_dict(),
        components=components,
        conditioning=conditioning,
        text_encoder=text_encoder,
        schedule=dict(schedule or {}),
    )
    save_model_folder(folder, PipelineConfig.from_dict(config.to_dict()), modules)


def load_vocoder_source(source: str, mel: MelConfig) -> tuple[dict | None, nn.Module]:
    """(pipeline.json vocoder entry or None to store the module, module) for --vocoder / a model's vocoder."""
    from vocoder.pretrained import load_vocoder

    path = Path(source)
    if (path / "pipeline.json").is_file():  # a model folder: take its vocoder
        from ..checkpoint import load_vocoder_entry, read_pipeline_config

        entry = read_pipeline_config(path).components["vocoder"]
        module = load_vocoder_entry(path, entry)
        referenced = dict(entry) if isinstance(entry, dict) else None
    else:
        module = load_vocoder(source)
        referenced = {"pretrained": source} if ":" in source and not path.exists() else None
    vmel = module.config.get("mel")
    if vmel is not None and MelConfig.from_dict(vmel) != mel:
        raise UsageError(
            f"vocoder {source} inverts another mel ({vmel}) than this run's frontend {mel.to_dict()}"
        )
    if module.config["num_mels"] != mel.n_mels:
        raise UsageError(
            f"vocoder {source} takes {module.config['num_mels']} mels, the frontend has {mel.n_mels}"
        )
    return referenced, module.eval().requires_grad_(False)


def text_encoder_spec(doc: dict, pcfg: dict) -> dict:
    """The pipeline.json "text_encoder" entry a text-conditioned stage trains with: the config's
    "text_encoder" section, else the --init-from model's, else MiniLM (max_length 64)."""
    from ..text import DEFAULT_TEXT_ENCODER

    if doc.get("text_encoder"):
        return dict(doc["text_encoder"])
    return pcfg.get("text_encoder") or {"name": DEFAULT_TEXT_ENCODER, "max_length": 64}


def read_init_model(init_from: str) -> tuple[MelConfig, dict, Path]:
    """(frontend, pipeline config dict, folder) of a model folder given as --init-from."""
    from ..checkpoint import read_pipeline_config

    folder = Path(init_from)
    pcfg = read_pipeline_config(folder)
    return MelConfig.from_dict(pcfg.frontend), pcfg.to_dict(), folder
