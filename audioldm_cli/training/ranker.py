"""`train ranker`: the contrastive audio-text model that ranks generated candidates (`ranker.py`).

    a = ranker.embed_audio(log-mel of the segment)       t = ranker.embed_text(pooled caption vector)
    loss = symmetric InfoNCE over the batch, logit_scale trained (CLIP); clips sharing a caption are
           each other's positives, not negatives

The negatives are the other clips of the same micro-batch: under several processes (or --grad-accum)
each process contrasts its own share only, so keep the per-process micro-batch large (the default's 64).

The frozen text encoder is the --init-from model's (its pooled sentence vector: the mean of its token
states), so the ranker scores prompts in the model's own text space. The export is the --init-from
model folder with the ranker added (pipeline.json "components": {"ranker": "ranker"}); `generate
--num-candidates K` then keeps the best of K by this score.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from ..ranker import AudioTextRanker, RankerConfig, contrastive_loss
from .common import text_encoder_spec
from .config import TrainConfig, check_keys
from .loop import Stage

logger = logging.getLogger(__name__)

TEXT_CACHE_SIZE = 8192  # pooled caption vectors kept (384 floats each for MiniLM)


@dataclass
class RankerLossConfig:
    """No knobs yet: the loss is the symmetric InfoNCE of `ranker.contrastive_loss`."""

    @classmethod
    def from_dict(cls, d: dict) -> RankerLossConfig:
        return cls(**check_keys(cls, d or {}, "loss"))


class RankerStage(Stage):
    """Trains `ranker` on (audio segment, caption) pairs; `pipe` gives the frontend and the text encoder."""

    name = "ranker"
    ema = ("ranker",)

    def __init__(self, pipe, ranker: AudioTextRanker):
        self.pipe = pipe
        self.modules = {"ranker": ranker}
        self.optimizers = {"ranker": ("ranker",)}
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def sample_rate(self) -> int:
        return self.pipe.sample_rate

    def to(self, device: torch.device) -> None:
        self.pipe.device = device
        self.pipe.frontend.to(device)
        self.pipe.text_encoder.to(device)

    def pooled(self, captions: list[str]) -> torch.Tensor:
        """Pooled caption vectors [B, E] (cached: the text encoder is frozen)."""
        cache = self._text_cache
        for c in dict.fromkeys(captions):
            if c not in cache:  # one at a time, as `LDMStage.condition`: the same vector whatever the batch
                cache[c] = self.pipe.pooled_text([c])[0]
        for c in captions:
            cache.move_to_end(c)
        out = torch.stack([cache[c] for c in captions])
        while len(cache) > TEXT_CACHE_SIZE:
            cache.popitem(last=False)
        return out

    def _loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(contrastive loss, audio-to-text top-1 accuracy, temperature) of a batch."""
        captions = list(batch["caption"])
        with torch.no_grad():
            mel = self.pipe.frontend(batch["audio"].float())
        ranker = self.modules["ranker"]
        sims = ranker(mel, self.pooled(captions))  # through the wrapper: DDP syncs the gradients
        scale = (ranker.module if hasattr(ranker, "module") else ranker).logit_scale
        same = torch.tensor([[a == b for b in captions] for a in captions], device=sims.device)
        loss = contrastive_loss(sims, scale, same)
        hit = same[torch.arange(len(captions)), sims.argmax(1)].float().mean()
        return loss, hit, scale.detach().exp()

    def train_step(self, batch: dict, step: int):
        loss, hit, scale = self._loss(batch)
        return {"ranker": loss}, {"loss/contrastive": loss, "acc/audio_to_text": hit, "logit_scale": scale}

    @torch.no_grad()
    def validate(self, batch: dict):
        loss, hit, _ = self._loss(batch)
        return {"contrastive": float(loss), "audio_to_text": float(hit)}, {}

    def export(self, folder: Path, modules: dict[str, nn.Module]) -> None:
        from ..pipeline import AudioLDM

        pipe = self.pipe
        components = {**pipe.config.components, "ranker": "ranker"}
        out = AudioLDM(
            type(pipe.config).from_dict({**pipe.config.to_dict(), "components": components}),
            vae=copy.deepcopy(pipe.vae).cpu(),
            vocoder=copy.deepcopy(pipe.vocoder).cpu(),
            unet=copy.deepcopy(pipe.unet).cpu() if pipe.unet is not None else None,
            ranker=copy.deepcopy(modules["ranker"]).float().cpu(),
        )
        out.save_pretrained(folder)


def build_ranker_stage(
    doc: dict,
    cfg: TrainConfig,
    *,
    init_from: str | None = None,
    vocoder: str | None = None,
    resume: bool = False,
):
    """The ranker stage: --init-from MODEL gives the frontend, the text encoder and the folder to extend."""
    from ..checkpoint import PipelineConfig
    from ..pipeline import AudioLDM
    from .run import Built

    if not init_from:
        raise UsageError(
            "train ranker needs the model folder whose generations it will rank "
            "(its frontend and text encoder are used; the export is that folder plus the ranker)",
            init_from=None,
        )
    if vocoder:
        raise UsageError(
            "train ranker keeps the vocoder of the model it starts from; give none", vocoder=vocoder
        )
    loss = RankerLossConfig.from_dict(doc.get("loss", {}))
    pipe = AudioLDM.from_pretrained(init_from)
    if pipe._text_is_clap:
        raise UsageError(
            f"{init_from} ranks its candidates with its own CLAP model (`generate --num-candidates`); "
            "it needs no ranker"
        )
    pcfg = pipe.config.to_dict()
    spec = text_encoder_spec(doc, pcfg)
    if pipe.unet is not None and pcfg.get("text_encoder") not in (None, spec):
        raise UsageError(
            "config 'text_encoder' differs from the one of the model it starts from, whose UNet was trained "
            "with it: drop it (the ranker must score prompts in the UNet's text space)"
        )
    pcfg["text_encoder"] = spec
    pipe.reconfigure(PipelineConfig.from_dict(pcfg))
    text_dim = pipe.text_encoder.dim
    if doc.get("model") is not None or pipe.ranker is None:
        if pipe.ranker is not None and not resume:
            logger.warning("config 'model' given: training a new ranker instead of the one in %s", init_from)
        spec = {**dict(doc.get("model") or {}), "n_mels": pipe.mel_config.n_mels, "text_dim": text_dim}
        try:
            rcfg = RankerConfig.from_dict(spec)
        except (TypeError, ValueError) as e:
            raise UsageError(f"config 'model': {e}") from None
        torch.manual_seed(cfg.seed)
        ranker = AudioTextRanker(rcfg)
    else:
        ranker = copy.deepcopy(pipe.ranker)
    pipe.ranker = None
    stage = RankerStage(pipe, ranker.train().requires_grad_(True))
    frames = max(8, round(cfg.segment_seconds * pipe.sample_rate / pipe.hop_length))
    sections = {"model": ranker.config, "loss": asdict(loss), "text_encoder": pcfg["text_encoder"]}
    return Built(stage, sections, frames * pipe.hop_length, require_captions=True, caption_dropout=0.0)
