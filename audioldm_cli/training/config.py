"""Training configuration: one JSON file per run, a few CLI flags override it.

File layout (every section optional; unknown keys are an error naming the known ones):

    {"frontend": "audioldm-16k" | {MelConfig fields},
     "model":    {component config, official AudioLDM key names},
     "loss":     {stage-specific loss weights, see each stage's LossConfig},
     "train":    {TrainConfig fields},
     ldm only:   "text_encoder": {"name", "max_length"}, "schedule": {ScheduleConfig fields},
                 "conditioning": "crossattn" | "film" | "crossattn+film"}
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import UsageError

SECTIONS = ("frontend", "model", "loss", "train", "text_encoder", "schedule", "conditioning")


@dataclass
class TrainConfig:
    """Optimisation and cadence. `batch_size` is the global batch of one optimiser step."""

    max_steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1  # micro-batches per process per step; must divide batch_size / processes
    lr: float = 1e-4
    lr_scale: dict[str, float] = field(default_factory=dict)  # per-optimiser multiplier, e.g. {"disc": 0.5}
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    adam_eps: float = 1e-8  # larger values (1e-6..1e-3) damp the steps of parameters with ~zero gradients
    lr_schedule: Literal["constant", "cosine", "exponential"] = "constant"
    lr_warmup_steps: int = 0
    lr_decay_steps: int = 0  # cosine horizon; 0 = max_steps (then a resumed run must keep max_steps)
    lr_min_ratio: float = 0.0  # cosine floor as a fraction of lr
    lr_gamma: float = 0.999  # exponential decay per step (HiFi-GAN uses 0.999 per epoch)
    clip_grad_norm: float = 1.0  # 0 disables clipping
    max_bad_steps: int = 10  # steps with a non-finite loss that are skipped before the run stops
    precision: Literal["no", "fp16", "bf16"] = "no"
    cpu: bool = False  # force CPU even when a GPU is visible
    ema_decay: float = 0.9999  # for the stages that keep an EMA (ldm); 0 disables (unless ema_gamma > 0)
    ema_gamma: float = 0.0  # > 0: the EMA's power-function profile (EDM2) instead of ema_decay's; see EMA
    segment_seconds: float = 2.0
    caption_dropout: float = 0.1  # ldm: probability of training on the empty caption (for CFG)
    caption_noise: float = 0.0  # ldm: max std of Gaussian noise on a caption's encoder outputs (0: none)
    start_crop: float = 0.0  # probability that a training segment starts at its clip's start (onsets)
    log_every: int = 10
    save_every: int = 1000
    keep_last: int = 3
    val_every: int = 0  # 0: no validation
    val_items: int = 4  # first rows of the validation data (or of --data) used for validation
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self, "train")
        for f in dataclasses.fields(self):  # no float setting means anything at nan or inf
            value = getattr(self, f.name)
            values = (
                value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
            )
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise UsageError(f"train.{f.name}={value}: must be finite")
        if not 0 <= self.seed < 2**32:
            raise UsageError(f"train.seed={self.seed}: must be in [0, 2**32)")
        positive = ("max_steps", "batch_size", "grad_accum", "log_every", "val_items")
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise UsageError(f"train.{name}={getattr(self, name)}: must be > 0")
        for name in ("save_every", "keep_last", "val_every", "lr_warmup_steps", "lr_decay_steps"):
            if int(getattr(self, name)) < 0:
                raise UsageError(f"train.{name}={getattr(self, name)}: must be >= 0")
        if not 0 < self.lr <= 1e30:  # float32 holds the optimiser's lr: beyond ~3e38 it overflows
            raise UsageError(f"train.lr={self.lr}: must be > 0 (and at most 1e30)")
        check_at_least(self, "train", clip_grad_norm=0, weight_decay=0, adam_eps=0, max_bad_steps=0)
        for name, scale in self.lr_scale.items():
            if not scale >= 0:
                raise UsageError(f"train.lr_scale.{name}={scale}: must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UsageError(f"train.betas={self.betas}: must be two numbers in [0, 1)")
        if not self.lr_gamma > 0:
            raise UsageError(f"train.lr_gamma={self.lr_gamma}: must be > 0 (the lr's factor per step)")
        if not 0 <= self.lr_min_ratio <= 1:
            raise UsageError(f"train.lr_min_ratio={self.lr_min_ratio}: must be in [0, 1]")
        if self.precision not in ("no", "fp16", "bf16"):
            raise UsageError(f"train.precision={self.precision!r}: must be one of no, fp16, bf16")
        if self.lr_schedule not in ("constant", "cosine", "exponential"):
            raise UsageError(
                f"train.lr_schedule={self.lr_schedule!r}: must be constant, cosine or exponential"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise UsageError(f"train.ema_decay={self.ema_decay}: must be in [0, 1)")
        if not self.ema_gamma >= 0.0:
            raise UsageError(f"train.ema_gamma={self.ema_gamma}: must be >= 0 (0: the ema_decay profile)")
        if not 0.0 <= self.caption_dropout <= 1.0:
            raise UsageError(f"train.caption_dropout={self.caption_dropout}: must be in [0, 1]")
        if not self.caption_noise >= 0.0:
            raise UsageError(f"train.caption_noise={self.caption_noise}: must be >= 0 (0: no noise)")
        if not 0.0 <= self.start_crop <= 1.0:
            raise UsageError(f"train.start_crop={self.start_crop}: must be in [0, 1]")
        if not self.segment_seconds > 0:
            raise UsageError(f"train.segment_seconds={self.segment_seconds}: must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return cls(**check_keys(cls, d, "train"))


def check_types(obj, section: str) -> None:
    """Refuse a value whose JSON type does not fit its field's default (a string for a number, ...):
    numbers for float fields (ints too), integers for int fields, booleans for bool fields, strings for
    str fields, lists and objects of numbers for the list and dict fields."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for f in dataclasses.fields(obj):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        value = getattr(obj, f.name)
        if isinstance(default, bool):
            ok, kind = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok, kind = number(value), "a number"
        elif isinstance(default, str):
            ok, kind = isinstance(value, str), "a string"
        elif isinstance(default, list):
            ok, kind = isinstance(value, list) and all(number(v) for v in value), "a list of numbers"
        elif isinstance(default, dict):
            ok = isinstance(value, dict) and all(number(v) for v in value.values())
            kind = "an object of numbers"
        else:
            continue
        if not ok:
            raise UsageError(f"{section}.{f.name}={value!r}: must be {kind}")


def check_at_least(obj, section: str, **minimums: float) -> None:
    """Refuse a field below its minimum (or not finite): `check_at_least(self, "loss", scales=0)`.
    List fields are checked item by item. Run after `check_types`."""
    for name, low in minimums.items():
        value = getattr(obj, name)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if not (math.isfinite(v) and v >= low):
                raise UsageError(f"{section}.{name}={value!r}: must be at least {low:g}")


def check_keys(cls, d: dict[str, Any], section: str) -> dict[str, Any]:
    """Reject keys that are not fields of dataclass `cls`, naming the known ones."""
    if not isinstance(d, dict):
        raise UsageError(f"config section {section!r}: expected an object, got {type(d).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise UsageError(f"unknown {section} keys {unknown}; known keys: {', '.join(known)}")
    return d


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """The sections of a training config file ({} for None)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise UsageError("no such file", config=path)
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"not valid JSON ({e})", config=path) from None
    if not isinstance(doc, dict):
        raise UsageError(f"expected a JSON object with sections {', '.join(SECTIONS)}", config=path)
    unknown = sorted(set(doc) - set(SECTIONS) - {"stage", "_comment"})
    if unknown:
        raise UsageError(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}", config=path)
    return doc


def merge_overrides(train: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The train section with the CLI flags that were given (not None) on top."""
    return {**train, **{k: v for k, v in overrides.items() if v is not None}}
