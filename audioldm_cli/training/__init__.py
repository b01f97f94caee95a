"""Training every stage (`vae`, `vocoder`, `ldm`) on one shared accelerate engine (`loop.py`)."""

from .config import TrainConfig
from .loop import EMA, Stage, Trainer, TrainState

__all__ = ["EMA", "Stage", "TrainConfig", "TrainState", "Trainer"]
