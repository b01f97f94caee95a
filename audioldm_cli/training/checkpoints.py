"""Checkpoints of a run: `checkpoints/step_N/` written atomically, the last K kept, resume, export.

    step_N/<module>.safetensors   trained weights (the unwrapped modules' state_dicts)
    step_N/ema.safetensors        EMA copies, keys "<module>.<param>"
    step_N/train_state.pt         optimisers, schedulers, step, EMA counts, RNG (read with weights_only=True)

A checkpoint is written into a temporary folder that is renamed onto `step_N` last, so a process killed
while saving leaves the previous checkpoints intact (the temporary folder is ignored when resuming).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path

import torch

from vocoder.checkpoint import atomic_path, load_state_dict_strict, read_safetensors, torch_load_safe

from ..errors import UsageError

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_NAME = "train_state.pt"
EMA_NAME = "ema.safetensors"


class CheckpointMixin:
    """Saving, resuming and exporting for `Trainer` (uses its acc, cfg, state, modules, optimisers, EMAs)."""

    def checkpoints(self) -> list[Path]:
        """Complete checkpoint folders, oldest first (temporary folders of an interrupted save are ignored)."""
        if not self.ckpt_dir.is_dir():
            return []
        found = [p for p in self.ckpt_dir.glob("step_*") if p.is_dir() and (p / STATE_NAME).is_file()]
        return sorted(found, key=lambda p: p.name)

    def latest_checkpoint(self) -> Path:
        found = self.checkpoints()
        if not found:
            raise UsageError(f"no checkpoint in {self.ckpt_dir}; start a new run instead", resume=True)
        return found[-1]

    def save(self) -> Path:
        """Write checkpoints/step_N atomically (a temp folder renamed at the end) and keep the last K."""
        self.acc.wait_for_everyone()
        if hasattr(self, "_refuse_non_finite_weights"):  # never a NaN checkpoint that prunes the good ones
            self._refuse_non_finite_weights()
        final = self.ckpt_dir / f"step_{self.state.step:08d}"
        if self.acc.is_main_process:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.ckpt_dir.glob(".tmp_step_*"):  # left by a process killed while saving
                shutil.rmtree(stale, ignore_errors=True)
            if (final / STATE_NAME).is_file():
                # This step is saved already (a resumed run that ends where it started, SIGINT right after a
                # scheduled save): same state, and deleting it to rewrite it could leave no newest checkpoint.
                logger.info("%s is saved already", final)
            else:
                self._write_checkpoint(final)
                logger.info("saved %s", final)
            for old in self.checkpoints()[: -self.cfg.keep_last] if self.cfg.keep_last > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()
        self.state.checkpoint = final
        return final

    def _write_checkpoint(self, final: Path) -> None:
        tmp = self.ckpt_dir / f".tmp_{final.name}_{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        from safetensors.torch import save_file

        for name, module in self.unwrapped.items():
            save_file(_cpu(module.state_dict()), str(tmp / f"{name}.safetensors"))
        if self.emas:
            shadow = {f"{n}.{k}": v for n, ema in self.emas.items() for k, v in ema.shadow.items()}
            save_file(_cpu(shadow), str(tmp / EMA_NAME))
        torch.save(self._train_state(), tmp / STATE_NAME)
        if final.exists():  # an incomplete folder (no train_state.pt) of a process killed while removing it
            shutil.rmtree(final)
        os.replace(tmp, final)

    def _train_state(self) -> dict:
        state = {
            "step": self.state.step,
            "optimizers": {n: o.state_dict() for n, o in self.optims.items()},
            "schedulers": {n: s.state_dict() for n, s in self.scheds.items()},
            "ema_updates": {n: e.updates for n, e in self.emas.items()},
            "bad_streak": self.bad_streak,  # > 0: the run diverged; no export until a finite step
            "rng": {"torch": torch.get_rng_state()},
        }
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        scaler = getattr(self.acc, "scaler", None)
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        return state

    def load(self, folder: Path) -> None:
        """Restore weights, EMA, optimisers, schedulers, step and RNG from a checkpoint folder."""
        for name, module in self.unwrapped.items():
            load_state_dict_strict(
                module, read_safetensors(folder / f"{name}.safetensors"), str(folder / name)
            )
        if self.emas:
            shadow = read_safetensors(folder / EMA_NAME)
            for n, ema in self.emas.items():
                ema.shadow = {k: shadow[f"{n}.{k}"].to(v.device) for k, v in ema.shadow.items()}
        state = torch_load_safe(folder / STATE_NAME)
        for n, o in self.optims.items():
            o.load_state_dict(state["optimizers"][n])
        for n, s in self.scheds.items():
            s.load_state_dict(state["schedulers"][n])
        for n, e in self.emas.items():
            e.updates = int(state["ema_updates"].get(n, 0))
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        if "scaler" in state and getattr(self.acc, "scaler", None) is not None:
            self.acc.scaler.load_state_dict(state["scaler"])
        self.state.step = int(state["step"])
        self.bad_streak = int(state.get("bad_streak", 0))  # absent in checkpoints of older versions
        self._diverged_before = self.bad_streak > 0
        self.state.checkpoint = folder
        logger.info("resumed from %s at step %d", folder, self.state.step)
        self._truncate_metrics()

    def _truncate_metrics(self) -> None:
        """Drop metrics logged after the resumed step (a crash after it): they are about to be redone."""
        path = self.run_dir / "metrics.jsonl"
        if not self.acc.is_main_process or not path.is_file():
            return
        lines = path.read_text().splitlines()

        def step_of(line: str) -> float:
            try:
                record = json.loads(line)
                return record.get("step", 0) if isinstance(record, dict) else math.inf
            except json.JSONDecodeError:  # a line torn by a kill while it was written
                logger.warning("%s: dropped a line that is not JSON: %.60s", path, line)
                return math.inf

        kept = [line for line in lines if line.strip() and step_of(line) <= self.state.step]
        if len(kept) != len(lines):
            with atomic_path(path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept))

    def export(self) -> Path:
        """Write RUN_DIR/export (EMA weights substituted), replacing the previous export atomically."""
        target = self.run_dir / "export"
        if self.acc.is_main_process:
            import copy

            modules = dict(self.unwrapped)
            for n, ema in self.emas.items():
                modules[n] = ema.copy_to(copy.deepcopy(self.unwrapped[n]))
            for stale in sorted(self.run_dir.glob(".old_export_*")):  # a process killed mid-swap
                if not target.exists():
                    os.replace(stale, target)  # that run's previous export, put back
                else:
                    shutil.rmtree(stale, ignore_errors=True)
            for stale in self.run_dir.glob(".tmp_export_*"):  # a process killed while exporting
                shutil.rmtree(stale, ignore_errors=True)
            tmp = self.run_dir / f".tmp_export_{os.getpid()}"
            self.stage.export(tmp, {n: m.eval() for n, m in modules.items()})
            old = self.run_dir / f".old_export_{os.getpid()}"
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
            logger.info("exported %s", target)
        self.acc.wait_for_everyone()
        return target


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
