"""The CLAP text conditioner of the official AudioLDM checkpoints: prompts -> one unit vector each.

As the reference (`laion_clap`'s `get_text_embedding`): RoBERTa pooler output -> 2-layer projection
-> L2 normalisation. The model folder is written by `audioldm convert --clap-tokenizer DIR`
(a transformers `ClapTextModelWithProjection` plus the user's tokenizer); nothing downloads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ModelError

logger = logging.getLogger(__name__)


def _quiet_transformers() -> None:
    """Our CLI owns stderr: no "Loading weights" bars from transformers."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


class ClapTextEmbedder:
    """Frozen CLAP text branch: `embed(prompts) -> [B, D]` unit vectors ("" = the unconditional input).

    Also callable like `TextEncoder`: `(states [B, 1, D], mask [B, 1])`, the vector as one token.
    """

    def __init__(self, folder: str | os.PathLike, max_length: int = 512, device: str | torch.device = "cpu"):
        from transformers import AutoTokenizer, ClapTextModelWithProjection

        _quiet_transformers()
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ModelError(
                f"CLAP text model folder {folder} is missing (no config.json); re-run `audioldm convert`"
            )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = ClapTextModelWithProjection.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load the CLAP text model in {folder} ({first})") from None
        self.name = str(folder)
        self.max_length = int(min(max_length, model.config.max_position_embeddings - 2))
        self.model = model.eval().requires_grad_(False).to(device)
        self.dim = int(model.config.projection_dim)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def embed(self, prompts: list[str]) -> Tensor:
        """prompts -> [B, D] float32 L2-normalised CLAP text embeddings."""
        batch = self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            out = self.model(
                input_ids=batch["input_ids"].to(self.device),
                attention_mask=batch["attention_mask"].to(self.device),
            )
        return F.normalize(out.text_embeds.float(), dim=-1)

    def __call__(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        vec = self.embed(prompts)
        return vec[:, None], torch.ones(vec.shape[0], 1, dtype=torch.bool, device=vec.device)


def load_text_conditioner(spec: dict, model_dir: Path | None, device: str | torch.device):
    """The CLAP embedder named by a pipeline.json "text_encoder" entry of type "clap"."""
    if not spec.get("name"):
        missing = spec.get("missing", "CLAP text model")
        raise ModelError(
            f"this model needs its {missing}, which was not converted: re-run `audioldm convert CKPT "
            "--clap-tokenizer DIR` with a local roberta-base tokenizer folder"
        )
    path = Path(spec["name"])
    if not path.is_absolute() and model_dir is not None:
        path = model_dir / path
    return ClapTextEmbedder(path, spec.get("max_length", 512), device)


class ClapAudioEmbedder:
    """Frozen CLAP audio branch (HTSAT): `embed(wavs [B, N] at sample_rate) -> [B, D]` unit vectors.

    As the reference: resampled to 48 kHz, 64-bin log-mel (50-14000 Hz) of 10 s windows (shorter clips
    repeat-padded) in `ClapFeatureExtractor`, HTSAT pooled output -> projection -> L2 normalisation.
    """

    def __init__(self, folder: str | os.PathLike, device: str | torch.device = "cpu"):
        from transformers import ClapAudioModelWithProjection, ClapFeatureExtractor

        _quiet_transformers()
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ModelError(
                f"CLAP audio model folder {folder} is missing (no config.json); re-run `audioldm convert`"
            )
        try:
            self.extractor = ClapFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
            model = ClapAudioModelWithProjection.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load the CLAP audio model in {folder} ({first})") from None
        self.model = model.eval().requires_grad_(False).to(device)
        self.dim = int(model.config.projection_dim)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def embed(self, wavs: Tensor, sample_rate: int) -> Tensor:
        """wavs [B, N] float32 at `sample_rate` -> [B, D] float32 unit vectors."""
        from .audio import resample

        rate = self.extractor.sampling_rate
        wavs = wavs.reshape(-1, wavs.shape[-1]).float().cpu()
        if sample_rate != rate:
            wavs = torch.stack([resample(w, sample_rate, rate) for w in wavs])
        feats = self.extractor(
            [w.numpy() for w in wavs], sampling_rate=rate, return_tensors="pt", truncation="rand_trunc"
        )
        with torch.no_grad():
            out = self.model(input_features=feats["input_features"].to(self.device))
        return F.normalize(out.audio_embeds.float(), dim=-1)


def load_audio_embedder(pipe, purpose: str) -> ClapAudioEmbedder:
    """The CLAP audio branch stored with `pipe` (official checkpoints converted with --clap-tokenizer)."""
    spec = pipe.config.text_encoder or {}
    if spec.get("type") != "clap" or not spec.get("audio"):
        raise ModelError(
            f"{purpose} needs a CLAP audio encoder and this model has none; convert an official AudioLDM "
            "checkpoint with `audioldm convert CKPT --clap-tokenizer DIR`"
        )
    path = Path(spec["audio"])
    if not path.is_absolute() and pipe.model_dir is not None:
        path = pipe.model_dir / path
    return ClapAudioEmbedder(path, pipe.device)


__all__ = ["ClapAudioEmbedder", "ClapTextEmbedder", "load_audio_embedder", "load_text_conditioner"]
