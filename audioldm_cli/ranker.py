"""A small contrastive audio-text model that ranks generated candidates (`generate --num-candidates`).

AudioLDM makes several candidates per prompt and keeps the one its CLAP model finds closest to the
text. Models without CLAP (the embedded default uses MiniLM) can carry this instead: an audio encoder
trained with `audioldm train ranker` to map a clip's log-mel into a shared space with the model's own
text encoder (its pooled sentence vector: the masked mean of the token states), CLIP-style.

    audio:  log-mel [B, T, F] - its maximum (level-free) -> 1-D conv tower over time (mel bins as
            channels; a stride-2 stem, then residual blocks each halving the time axis), mean + std
            pooling over time -> linear -> unit vector [B, D]
    text:   pooled text-encoder vector [B, E] -> linear -> unit vector [B, D]
    score:  cosine similarity (the trained temperature `logit_scale` only matters in training)

It is a component of a model folder (`ranker/`: config.json + model.safetensors), listed in
pipeline.json's "components" as "ranker".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class RankerConfig:
    n_mels: int = 80
    text_dim: int = 384  # width of the text encoder's pooled vector
    channels: int = 128  # conv tower width
    blocks: int = 3  # residual conv blocks, each followed by a 2x time pooling
    embed_dim: int = 256  # width of the shared space
    text_projection: bool = True  # False: the text side is the pooled vector itself (embed_dim = text_dim)
    level_scale: float = 5.0  # (log-mel - max) / level_scale is the tower's input

    @classmethod
    def from_dict(cls, d: dict) -> RankerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ranker config keys {unknown}; known: {sorted(known)}")
        cfg = cls(**d)
        for name in ("n_mels", "text_dim", "channels", "blocks", "embed_dim"):
            value = getattr(cfg, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ranker {name}={value!r}: must be a positive integer")
        if not cfg.channels % 8 == 0:
            raise ValueError(f"ranker channels={cfg.channels}: must be a multiple of 8 (GroupNorm groups)")
        if not isinstance(cfg.text_projection, bool):
            raise ValueError(f"ranker text_projection={cfg.text_projection!r}: must be true or false")
        if not cfg.text_projection and cfg.embed_dim != cfg.text_dim:
            raise ValueError(
                f"ranker embed_dim={cfg.embed_dim}: without a text projection it must equal text_dim={cfg.text_dim}"
            )
        if not (isinstance(cfg.level_scale, (int, float)) and cfg.level_scale > 0):
            raise ValueError(f"ranker level_scale={cfg.level_scale!r}: must be a positive number")
        return cfg


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, k, stride, padding=k // 2), nn.GroupNorm(8, c_out), nn.SiLU())


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, 3), _conv(c, c, 3))

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(x + self.body(x), 2, ceil_mode=True)


class AudioTextRanker(nn.Module):
    """`embed_audio(log-mel [B, T, F]) -> [B, D]` and `embed_text(pooled [B, E]) -> [B, D]`, unit vectors."""

    def __init__(self, cfg: RankerConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.stem = _conv(cfg.n_mels, c, 5, stride=2)  # ~21 frames/s at a 256 hop and 22.05 kHz
        self.blocks = nn.Sequential(*(_Block(c) for _ in range(cfg.blocks)))
        self.audio_proj = nn.Linear(2 * c, cfg.embed_dim)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.embed_dim) if cfg.text_projection else nn.Identity()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @classmethod
    def from_config(cls, config: dict | RankerConfig) -> AudioTextRanker:
        return cls(config if isinstance(config, RankerConfig) else RankerConfig.from_dict(dict(config)))

    @property
    def config(self) -> dict:
        return asdict(self.cfg)

    def embed_audio(self, mel: Tensor) -> Tensor:
        """Log-mel [B, T, F] (natural log, the model's frontend) -> [B, D] unit vectors."""
        if mel.ndim != 3 or mel.shape[-1] != self.cfg.n_mels:
            raise ValueError(f"ranker expects log-mel [B, T, {self.cfg.n_mels}], got {tuple(mel.shape)}")
        x = (mel - mel.amax(dim=(1, 2), keepdim=True)) / self.cfg.level_scale
        h = self.blocks(self.stem(x.transpose(1, 2)))  # [B, C, T / 2^(blocks + 1)]
        pooled = torch.cat([h.mean(-1), h.std(-1, unbiased=False)], dim=1)
        return F.normalize(self.audio_proj(pooled), dim=-1)

    def embed_text(self, pooled: Tensor) -> Tensor:
        """The text encoder's pooled vectors [B, E] -> [B, D] unit vectors."""
        return F.normalize(self.text_proj(pooled.float()), dim=-1)

    def forward(self, mel: Tensor, pooled: Tensor) -> Tensor:
        """Cosine similarities [B_audio, B_text]."""
        return self.embed_audio(mel) @ self.embed_text(pooled).T


def contrastive_loss(sims: Tensor, logit_scale: Tensor, same: Tensor) -> Tensor:
    """Symmetric InfoNCE over cosine similarities sims [B, B] of B clips (rows) and their B captions.

    `same` [B, B] (bool) marks pairs with the same caption: each row's target spreads evenly over
    them, so a repeated caption is not pushed away from its own clips."""
    logits = logit_scale.clamp(max=math.log(100.0)).exp() * sims
    target = same.float() / same.float().sum(1, keepdim=True)  # symmetric: `same` is
    return -0.5 * ((target * logits.log_softmax(1)).sum(1).mean() + (target * logits.log_softmax(0)).sum(0).mean())


__all__ = ["AudioTextRanker", "RankerConfig", "contrastive_loss"]
