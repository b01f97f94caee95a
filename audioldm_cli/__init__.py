"""audioldm-cli: AudioLDM-style text-to-audio generation, reconstruction, encoding and training."""

__version__ = "0.1.0"
