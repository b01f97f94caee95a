"""The training engine shared by every stage: accelerate, cadence, EMA, checkpoints, resume, SIGINT.

A stage (`training/vae.py`, `vocoder.py`, `ldm.py`) owns its modules and knows its losses; this
engine owns everything else. One optimiser step consumes one *global* batch of `batch_size` samples,
split evenly over the processes and then into `grad_accum` micro-batches, so the result does not
depend on how many processes run it (DDP averages the per-process mean gradients).

All optimiser steps happen after the backward of the whole global batch: a GAN stage's generator
loss therefore sees the discriminator as it was at the start of the step (in every micro-batch).

Run folder:
    config.json                 the resolved configuration
    metrics.jsonl               {"step", "loss/...", "lr", "steps_per_s"} every log_every steps, "val/..." too
                                (a non-finite loss is written as null: strict JSON)
    checkpoints/step_00000100/  <module>.safetensors (weights), ema.safetensors, train_state.pt
                                (written, kept and restored by `checkpoints.py`)
    val/step_00000100/          validation audio
    export/                     a model folder usable by every command (EMA weights where kept)
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vocoder.checkpoint import atomic_path

from ..data import SegmentDataset, local_positions
from ..errors import ModelError, UsageError
from ..runtime import ProgressFn
from .checkpoints import CHECKPOINTS, CheckpointMixin
from .config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Where a run stands. `step` counts completed optimiser steps."""

    step: int = 0
    interrupted: bool = False
    stopped_by: str | None = None  # the signal that interrupted the run ("SIGINT", "SIGTERM"), if one did
    last_losses: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0  # the (first optimiser's) lr of the last update
    checkpoint: Path | None = None
    main_process: bool = True  # False on the other processes of a distributed run
    # data rows left out ("where: why"), set by `run.train`
    skipped_rows: list[str] = field(default_factory=list)


class Stage:
    """What a stage provides to the engine (subclassed by each stage).

    `modules` are the trained modules (saved as `<name>.safetensors`); `optimizers` maps an optimiser
    name to the module names it updates; `ema` names the modules that keep an EMA copy.
    """

    name = "stage"
    modules: dict[str, nn.Module]
    optimizers: dict[str, tuple[str, ...]]
    ema: tuple[str, ...] = ()

    def to(self, device: torch.device) -> None:
        """Move frozen helpers (text encoder, frozen VAE, mel) to the device; trained modules move by prepare."""

    def train_step(self, batch: dict, step: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(objective per optimiser, named losses to log) for one micro-batch."""
        raise NotImplementedError

    def validate(self, batch: dict) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        """(named validation losses, {name: waveform [N]}) on unwrapped modules in eval mode."""
        return {}, {}

    def export(self, folder: Path, modules: dict[str, nn.Module]) -> None:
        """Write a model folder from `modules` (EMA copies substituted where kept)."""
        raise NotImplementedError

    @property
    def sample_rate(self) -> int:
        raise NotImplementedError


class EMA:
    """Exponential moving average of a module's floating-point state.

    Two profiles: `decay` with LDM's LitEma warm-up (after t updates the average keeps
    min(decay, (1 + t) / (10 + t)) of itself), or, when `gamma` > 0, the power-function profile of
    Karras et al. 2024 (EDM2): it keeps (1 - 1/t)^(gamma + 1), so the average always spans the same
    share of the run however long it gets (its relative width is
    sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3))): ~0.09 for the LitEma warm-up, which is gamma ~8,
    0.14 for gamma 4, 0.19 for gamma 2).
    """

    def __init__(self, module: nn.Module, decay: float, gamma: float = 0.0) -> None:
        self.decay = float(decay)
        self.gamma = float(gamma)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def current_decay(self) -> float:
        """The share of the average kept at the update that made `updates` what it is."""
        t = self.updates
        if self.gamma > 0:
            return (1.0 - 1.0 / t) ** (self.gamma + 1.0) if t > 1 else 0.0
        return min(self.decay, (1 + t) / (10 + t))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        decay = self.current_decay()
        for k, v in module.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].lerp_(v.detach(), 1.0 - decay)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, module: nn.Module) -> nn.Module:
        module.load_state_dict(self.shadow, strict=True)
        return module


def lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """Multiplier of the base lr after `n` optimiser steps: linear warm-up, then the chosen decay."""
    horizon = cfg.lr_decay_steps or cfg.max_steps

    def factor(n: int) -> float:
        warm = min(1.0, (n + 1) / cfg.lr_warmup_steps) if cfg.lr_warmup_steps else 1.0
        if cfg.lr_schedule == "cosine":
            progress = min(1.0, n / max(1, horizon))
            return warm * (
                cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
            )
        if cfg.lr_schedule == "exponential":
            return warm * cfg.lr_gamma**n
        return warm

    return factor


class Trainer(CheckpointMixin):
    """Runs a `Stage` over a `SegmentDataset` under `accelerate` (see the module docstring)."""

    def __init__(
        self,
        stage: Stage,
        data: SegmentDataset,
        cfg: TrainConfig,
        run_dir: Path,
        *,
        val_data: SegmentDataset | None = None,
        resume: bool = False,
        accelerator=None,
    ) -> None:
        from accelerate import Accelerator

        self.stage, self.data, self.val_data, self.cfg = stage, data, val_data, cfg
        self.run_dir = Path(run_dir)
        if accelerator is None:
            from accelerate.state import AcceleratorState

            # A second run in the same process (library use, tests) may ask for another precision:
            # forget the previous run's settings; the process group (PartialState) is kept.
            AcceleratorState._reset_state()
        self.acc = accelerator or Accelerator(mixed_precision=cfg.precision, cpu=cfg.cpu)
        world = self.acc.num_processes
        self.local = local_positions(cfg.batch_size, self.acc.process_index, world)
        if len(self.local) % cfg.grad_accum:
            raise UsageError(
                f"grad_accum {cfg.grad_accum}: must divide the per-process batch {len(self.local)} "
                f"(batch_size {cfg.batch_size} over {world} processes)"
            )
        self.state = TrainState(main_process=self.acc.is_main_process)
        if self.acc.is_main_process:
            logger.info(
                "training %s on %d process(es), %s, precision %s, global batch %d (%d per process)",
                stage.name,
                world,
                self.acc.device,
                cfg.precision,
                cfg.batch_size,
                len(self.local),
            )
            if cfg.precision == "fp16" and self.acc.device.type == "cpu":
                logger.warning(
                    "precision fp16 needs a GPU: on CPU this run trains in fp32 (bf16 works on CPU)"
                )
            if cfg.batch_size > len(data):
                logger.warning(
                    "batch size %d is larger than the %d training items: each batch holds some of them twice",
                    cfg.batch_size,
                    len(data),
                )
        self.unwrapped = dict(stage.modules)
        stage.to(self.acc.device)
        unknown = sorted(set(cfg.lr_scale) - set(stage.optimizers))
        if unknown:
            raise UsageError(
                f"train.lr_scale names {unknown}, which this stage does not have; its optimisers: "
                f"{', '.join(stage.optimizers)}"
            )
        self.optims = {}
        for name, owners in stage.optimizers.items():
            params = [p for m in owners for p in self.unwrapped[m].parameters() if p.requires_grad]
            lr = cfg.lr * cfg.lr_scale.get(name, 1.0)
            self.optims[name] = torch.optim.AdamW(
                params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, eps=cfg.adam_eps
            )
        # Schedulers are stepped once per global step by us (accelerate would step them per process).
        self.scheds = {
            n: torch.optim.lr_scheduler.LambdaLR(o, lr_factor(cfg)) for n, o in self.optims.items()
        }
        names, optim_names = list(self.unwrapped), list(self.optims)
        prepared = self.acc.prepare(
            *[self.unwrapped[n] for n in names], *[self.optims[n] for n in optim_names]
        )
        prepared = prepared if isinstance(prepared, (list, tuple)) else [prepared]
        stage.modules = dict(zip(names, prepared[: len(names)]))
        self.optims = dict(zip(optim_names, prepared[len(names) :]))
        self.unwrapped = {n: self.acc.unwrap_model(m) for n, m in stage.modules.items()}
        keep_ema = cfg.ema_decay > 0 or cfg.ema_gamma > 0
        self.emas = {n: EMA(self.unwrapped[n], cfg.ema_decay, cfg.ema_gamma) for n in stage.ema if keep_ema}
        self.ckpt_dir = self.run_dir / CHECKPOINTS
        # steps skipped for a non-finite loss: in all (this process's run), and in a row (checkpointed, so
        # that resuming a diverged run does not export its weights before a finite step)
        self.bad_steps = self.bad_streak = 0
        self._diverged_before = False  # resumed with a streak: its weights give no finite loss yet
        self.resumed = resume
        if resume:
            self.load(self.latest_checkpoint())
            self._apply_lr()
        self._stop = self._finishing = False
        self._stopped_by: str | None = None
        self._pool, self._ahead = None, None  # background reading of the next step's batches

    # ------------------------------------------------------------------------------------------
    # the loop

    def run(self, progress: ProgressFn | None = None) -> TrainState:
        """Train until `max_steps`, SIGINT or SIGTERM; save, export and return the state."""
        cfg = self.cfg
        progress = progress or (lambda done, total: None)
        previous = self._install_sigint()
        try:
            self._loop(progress)
            self._refuse_non_finite_weights()
            self.state.interrupted = self.state.step < cfg.max_steps
            self.state.stopped_by = self._stopped_by if self.state.interrupted else None
            if self.state.interrupted and self.acc.is_main_process:
                how = "terminated" if self.state.stopped_by == "SIGTERM" else "interrupted"
                logger.warning("%s at step %d: saving a checkpoint", how, self.state.step)
            self._finishing = True  # a first Ctrl-C from here on waits for the save and the export
            self.save()
            if self.bad_streak and (not self.state.interrupted or self._diverged_before):
                # The weights are those of the last finite step, but no batch since gave a finite loss: an
                # update broke the model (a too large lr). The run is kept, the export not made. (A run
                # stopped early within a streak of its own still exports: a few skipped batches are not
                # yet a verdict on the weights; a resumed streak is.)
                raise ModelError(
                    f"training diverged: the losses (or gradients) of the last {self.bad_streak} step(s) were not finite "
                    f"(train.lr={self.cfg.lr}); saved {self.state.checkpoint} but exported nothing: an update "
                    "broke the weights; train again with a lower --lr (a resumed run exports only after a "
                    f"finite step){self._precision_hint(', or ')}"
                )
            self.export()
        finally:
            self._restore_sigint(previous)
        return self.state

    def _apply_lr(self) -> None:
        """The lr of this run's config, not the checkpoint's: a resumed run takes a new --lr (as the
        message of a diverged run advises). The schedule's position is the checkpoint's."""
        factor = lr_factor(self.cfg)
        for name, opt in self.optims.items():
            base = self.cfg.lr * self.cfg.lr_scale.get(name, 1.0)
            sched = self.scheds[name]
            old = sched.base_lrs[0] if sched.base_lrs else base
            sched.base_lrs = [base for _ in opt.param_groups]
            sched.lr_lambdas = [factor for _ in opt.param_groups]
            for group in opt.param_groups:
                group["initial_lr"] = base
                group["lr"] = base * factor(sched.last_epoch)
            sched._last_lr = [group["lr"] for group in opt.param_groups]  # what get_last_lr() reports
            if old != base and self.acc.is_main_process:
                logger.warning(
                    "%s optimiser: lr %g from here on (the run's checkpoint had %g)", name, base, old
                )

    def _loop(self, progress: ProgressFn) -> None:
        """The training steps, until `max_steps` or a stop request."""
        cfg = self.cfg
        sums: dict[str, float] = {}
        count, tick = 0, time.perf_counter()
        try:
            if cfg.val_every and self.state.step == 0 and self.val_data is not None and not self.resumed:
                self.validate()  # the baseline every later validation is compared with
            while self.state.step < cfg.max_steps and not self._should_stop():
                logs = self.train_one_step()
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                step = self.state.step
                progress(step, cfg.max_steps)
                if step % cfg.log_every == 0 or step == cfg.max_steps:
                    rate = count / max(1e-9, time.perf_counter() - tick)
                    self.log_metrics({k: v / count for k, v in sums.items()}, rate)
                    sums, count, tick = {}, 0, time.perf_counter()
                if cfg.val_every and step % cfg.val_every == 0 and self.val_data is not None:
                    self.validate()
                if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                    self.save()
            if count:  # stopped within a logging window: its steps are logged too
                self.log_metrics(
                    {k: v / count for k, v in sums.items()}, count / max(1e-9, time.perf_counter() - tick)
                )
        finally:
            self._close_prefetch()

    def train_one_step(self) -> dict[str, float]:
        """One optimiser step over the global batch; returns this process's mean named losses."""
        cfg, acc, step = self.cfg, self.acc, self.state.step
        for m in self.stage.modules.values():
            m.train()
        logs: dict[str, float] = {}
        for i, batch in enumerate(self._prefetched(step)):
            batch = self._to_device(batch)
            last = i == cfg.grad_accum - 1
            with self._no_sync(not last), acc.autocast():
                objectives, named = self.stage.train_step(batch, step)
                acc.backward(sum(objectives.values()) / cfg.grad_accum)
            for k, v in named.items():
                logs[k] = logs.get(k, 0.0) + float(v.detach()) / cfg.grad_accum
        bad = torch.tensor([0.0 if all(math.isfinite(v) for v in logs.values()) else 1.0], device=acc.device)
        if acc.num_processes > 1:
            bad = acc.reduce(bad, "sum")  # every process must take the same decision
        if bad.item() > 0:
            self._skip_update(logs)
            return logs
        self.state.lr = self.scheds[next(iter(self.scheds))].get_last_lr()[0] if self.scheds else 0.0
        scaler = getattr(acc, "scaler", None)
        if scaler is not None:
            # fp16 loss scaling: every optimiser unscaled (and clipped) under the same scale, stepped, then
            # the scale updated once (the wrapped optimisers' step() would update it after each, so a second
            # optimiser would be unscaled by another scale); inf gradients are routine here: the scaler
            # skips those updates and lowers its scale
            inner = {name: getattr(opt, "optimizer", opt) for name, opt in self.optims.items()}
            for name, opt in inner.items():
                scaler.unscale_(opt)
                if cfg.clip_grad_norm:
                    norm = float(self._clip(opt, cfg.clip_grad_norm))
                    if math.isfinite(norm):  # an overflow step's inf would void the window's mean
                        logs[f"grad_norm/{name}"] = norm
            for opt in inner.values():
                scaler.step(opt)
            scaler.update()
            for name, opt in self.optims.items():
                opt.zero_grad(set_to_none=True)
                with warnings.catch_warnings():  # a step the scaler skipped still counts for the schedule
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler", UserWarning)
                    self.scheds[name].step()
        else:
            # the global norm of every optimiser's gradient first (clipping off: max_norm inf measures it and
            # scales nothing): a finite loss whose gradient is not (a sqrt at 0...) would break the weights
            norms = {
                name: float(self._clip(opt, cfg.clip_grad_norm or math.inf))
                for name, opt in self.optims.items()
            }
            if cfg.clip_grad_norm:
                logs.update({f"grad_norm/{name}": norm for name, norm in norms.items()})
            if not all(map(math.isfinite, norms.values())):
                self._skip_update(logs)  # the norms are global (clip_grad_norm_ reduces them): all agree
                return logs
            for name, opt in self.optims.items():
                self._step(name, opt)
        for name, ema in self.emas.items():
            ema.update(self.unwrapped[name])
        self.state.step += 1
        self.state.last_losses = logs
        self.bad_streak = 0
        self._diverged_before = False
        return logs

    @staticmethod
    def _clip(opt, max_norm: float) -> torch.Tensor:
        """Clip the gradients of `opt`'s parameters to `max_norm` (inf: none); their global norm."""
        return torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], max_norm)

    def _step(self, name: str, opt) -> None:
        opt.step()
        opt.zero_grad(set_to_none=True)
        self.scheds[name].step()

    def micro_batches(self, step: int) -> list[dict]:
        """This process's micro-batches of global step `step` (CPU tensors; a pure function of the step)."""
        micro = len(self.local) // self.cfg.grad_accum
        batches = []
        for i in range(self.cfg.grad_accum):
            positions = self.local[i * micro : (i + 1) * micro]
            batches.append(
                {**self.data.batch(step, positions, self.cfg.batch_size), "positions": list(positions)}
            )
        return batches

    def _prefetched(self, step: int) -> list[dict]:
        """The batches of `step`, read by a background thread while the previous step computed."""
        import concurrent.futures

        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="audioldm-data")
        ahead, batches = self._ahead, None
        if ahead is not None:  # always wait: the data set is never used by two threads at once
            pending = ahead[1].result()
            batches = pending if ahead[0] == step else None
        batches = batches if batches is not None else self.micro_batches(step)
        if step + 1 < self.cfg.max_steps:
            self._ahead = (step + 1, self._pool.submit(self.micro_batches, step + 1))
        return batches

    def _close_prefetch(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool, self._ahead = None, None

    def _refuse_non_finite_weights(self) -> None:
        """Refuse to save or export weights that an update turned to NaN/inf (the checkpoints saved
        before are kept)."""
        broken = [
            n
            for n, m in self.unwrapped.items()
            if not all(bool(torch.isfinite(p).all()) for p in m.parameters())
        ]
        if broken:
            raise ModelError(
                f"training diverged: the {', '.join(broken)} weights hold NaN/inf at step {self.state.step} "
                f"(train.lr={self.cfg.lr}); nothing saved: lower train.lr{self._precision_hint(' or ')}"
            )

    def _precision_hint(self, joint: str) -> str:
        """Advice to train in fp32, for a run that does not already."""
        return "" if self.cfg.precision == "no" else f"{joint}set train.precision to no"

    def _skip_update(self, logs: dict[str, float]) -> None:
        """A non-finite loss: drop this step's gradients (all processes see the same global losses)."""
        self.bad_steps += 1
        self.bad_streak += 1
        logger.warning(
            "step %d: non-finite loss or gradient %s; update skipped (%d so far)",
            self.state.step + 1,
            {k: v for k, v in logs.items() if not math.isfinite(v)},
            self.bad_steps,
        )
        if self.bad_steps > self.cfg.max_bad_steps:
            raise ModelError(
                f"training diverged: {self.bad_steps} steps with a non-finite loss or gradient (more than "
                f"train.max_bad_steps={self.cfg.max_bad_steps}); lower train.lr{self._precision_hint(' or ')}"
            )
        for opt in self.optims.values():
            opt.zero_grad(set_to_none=True)
        self.state.step += 1

    def _no_sync(self, skip: bool):
        import contextlib

        stack = contextlib.ExitStack()
        if skip and self.acc.num_processes > 1:
            for m in self.stage.modules.values():
                stack.enter_context(self.acc.no_sync(m))
        return stack

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.acc.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    # ------------------------------------------------------------------------------------------
    # logging and validation

    def log_metrics(self, means: dict[str, float], rate: float) -> None:
        keys = sorted(means)
        if self.acc.num_processes > 1 and keys:
            values = torch.tensor([means[k] for k in keys], device=self.acc.device)
            means = dict(zip(keys, self.acc.reduce(values, "mean").tolist()))
        record = {"step": self.state.step, **{k: round(v, 6) for k, v in means.items()}}
        record["lr"] = self.state.lr  # the lr of the window's last update (the scheduler is one step on)
        record["steps_per_s"] = round(rate, 3)
        shown = " ".join(f"{k}={v:.4g}" for k, v in means.items() if k.startswith("loss"))
        if self.acc.is_main_process:
            logger.info("step %d/%d %s %.2f steps/s", self.state.step, self.cfg.max_steps, shown, rate)
        self._append_metrics(record)

    def _append_metrics(self, record: dict) -> None:
        if self.acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                finite = {
                    k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in record.items()
                }
                f.write(json.dumps(finite) + "\n")  # strict JSON: a non-finite loss is null

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation losses (and audio under val/step_N/) on the main process, EMA weights where kept."""
        results: dict[str, float] = {}
        if self.acc.is_main_process:
            originals = {
                n: {k: v.clone() for k, v in self.unwrapped[n].state_dict().items()} for n in self.emas
            }
            for n, ema in self.emas.items():
                ema.copy_to(self.unwrapped[n])
            for m in self.unwrapped.values():
                m.eval()
            try:
                n_val = min(len(self.val_data), self.cfg.val_items)
                batch = self._to_device(self.val_data.batch(0, range(n_val), n_val, train=False))
                batch["positions"] = list(range(n_val))
                results, audio = self.stage.validate(batch)
            finally:
                for n, state in originals.items():
                    self.unwrapped[n].load_state_dict(state)
            if audio:
                from ..audio import write_audio

                folder = self.run_dir / "val" / f"step_{self.state.step:08d}"
                folder.mkdir(parents=True, exist_ok=True)
                for name, wave in audio.items():
                    if not torch.isfinite(wave).all():
                        logger.warning(
                            "validation audio %s at step %d is not finite: not written", name, self.state.step
                        )
                        continue
                    with atomic_path(folder / f"{name}.wav") as tmp:
                        write_audio(tmp, wave.float().cpu(), self.stage.sample_rate)
            self._append_metrics(
                {"step": self.state.step, **{f"val/{k}": round(v, 6) for k, v in results.items()}}
            )
            logger.info("validation at step %d: %s", self.state.step, results)
        self.acc.wait_for_everyone()
        return results

    # ------------------------------------------------------------------------------------------
    # SIGINT or SIGTERM (a job scheduler's stop): finish the current step, save, export, return

    STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def _install_sigint(self) -> dict | None:
        """Handle SIGINT and SIGTERM until `_restore_sigint`; returns the previous handlers. A second
        signal of the same kind gets its previous handler (Ctrl-C: KeyboardInterrupt, abort unsaved)."""
        if threading.current_thread() is not threading.main_thread():
            return None
        previous: dict = {}

        def handler(signum, frame):
            name = signal.Signals(signum).name
            again = "press Ctrl-C again" if signum == signal.SIGINT else f"send {name} again"
            if self._finishing:
                logger.warning("%s: finishing the checkpoint and the export (%s to abort)", name, again)
            else:
                logger.warning("%s: stopping after this step (%s to abort without saving)", name, again)
            self._stop = True
            self._stopped_by = self._stopped_by or name
            again_handler = previous[signum]
            if signum == signal.SIGINT and not callable(again_handler):
                again_handler = signal.default_int_handler  # also under `nohup` (SIG_IGN)
            signal.signal(signum, again_handler)

        for signum in self.STOP_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
        return previous

    @staticmethod
    def _restore_sigint(previous: dict | None) -> None:
        for signum, old in (previous or {}).items():
            signal.signal(signum, old)

    def _should_stop(self) -> bool:
        """Agree on stopping across processes, so that all of them save the same step, and on why:
        SIGTERM if any process received one (a scheduler's stop), else SIGINT."""
        if self.acc.num_processes == 1:
            return self._stop
        mine = [self._stop, self._stopped_by == "SIGINT", self._stopped_by == "SIGTERM"]
        stop, sigint, sigterm = self.acc.reduce(
            torch.tensor(mine, dtype=torch.float32, device=self.acc.device), "sum"
        )
        if sigterm > 0 or sigint > 0:
            self._stopped_by = "SIGTERM" if sigterm > 0 else "SIGINT"
        return bool(stop > 0)
