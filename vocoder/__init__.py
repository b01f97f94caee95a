"""HiFi-GAN vocoder: mel definition, generator, discriminators, losses and weight loading.

Importable on its own: nothing here imports `audioldm_cli`.
"""

from .checkpoint import CheckpointError, atomic_path, load_state_dict_strict, read_component, save_component

__all__ = ["CheckpointError", "atomic_path", "load_state_dict_strict", "read_component", "save_component"]
