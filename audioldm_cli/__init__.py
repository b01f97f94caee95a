"""audioldm-cli: AudioLDM-style text-to-audio generation, reconstruction, encoding and training."""

__version__ = "0.1.0"

__all__ = ["AudioLDM", "__version__"]


def __getattr__(name: str):
    # `AudioLDM` is imported on first use, so that `audioldm --help` does not pay for torch.
    if name == "AudioLDM":
        from .pipeline import AudioLDM

        return AudioLDM
    raise AttributeError(f"module 'audioldm_cli' has no attribute {name!r}")
