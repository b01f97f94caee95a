"""Official AudioLDM `.ckpt` files -> our model folders (VAE, vocoder, UNet, schedule, CLAP text branch).

An official checkpoint's `state_dict` holds (see fixtures/audioldm/keys/README.md):

    first_stage_model.*            VAE            -> vae/
    first_stage_model.vocoder.*    HiFi-GAN       -> vocoder/
    model.diffusion_model.*        raw UNet       -> unet/ with --no-ema
    model_ema.*                    EMA UNet       -> unet/ (default: the reference samples with it)
    cond_stage_model.model.*       CLAP           -> text_encoder/ (text branch + projection, as
                                                     transformers' ClapTextModelWithProjection)
    betas, alphas_cumprod, ...     schedule       -> pipeline.json "schedule"
    scale_factor                   latent scale   -> vae/config.json

EMA names are `model_ema.` + ("diffusion_model." + UNet name) with every "." removed; the map is built
forward from the UNet's own names because dot removal cannot be inverted.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

from vocoder.checkpoint import CheckpointError, load_state_dict_strict, torch_load_safe
from vocoder.config import MEL_PRESETS

from .checkpoint import PIPELINE_NAME, PipelineConfig, save_model_folder
from .errors import AudioLDMError, ModelError, UsageError

logger = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
VAE_PREFIX = "first_stage_model."
VOCODER_PREFIX = "first_stage_model.vocoder."
CLAP_PREFIX = "cond_stage_model.model."
CLAP_TEXT_FOLDER = "text_encoder"
CLAP_AUDIO_FOLDER = "clap_audio"
CLAP_MAX_LENGTH = 512  # the reference tokenizes with padding="max_length", max_length=512

# --config names -> component configs (VAE_PRESETS / UNET_PRESETS / VOCODER_PRESETS names, frontend preset).
CONVERT_PRESETS: dict[str, dict] = {
    size: {"vae": "audioldm-s-full", "unet": f"audioldm-{size}", "vocoder": "audioldm-16k", "frontend": "audioldm-16k"}
    for size in ("s-full", "m-full", "l-full")
}  # fmt: skip
# UNet model_channels -> preset, to pick the config of a checkpoint given without --config.
_CHANNELS_TO_PRESET = {128: "s-full", 192: "m-full", 256: "l-full"}


def ema_name(unet_key: str) -> str:
    """`input_blocks.1.0.in_layers.0.weight` -> `model_ema.diffusion_modelinput_blocks10in_layers0weight`."""
    return EMA_PREFIX + ("diffusion_model." + unet_key).replace(".", "")


def resolve_config(config: str | os.PathLike | Mapping | None, state: Mapping | None = None) -> dict:
    """Component configs {"vae", "unet", "vocoder": dicts, "frontend": preset} from a --config value.

    `config` is a `CONVERT_PRESETS` name, a JSON file with the same four keys (each a preset name or a
    config dict), a dict, or None to pick the preset from the UNet width in `state`.
    """
    from vocoder.generator import HifiGanConfig, vocoder_preset

    from .unet import UNET_PRESETS
    from .vae import VAE_PRESETS

    if config is None:
        config = _guess_preset(state or {})
    given = config
    if isinstance(config, (str, os.PathLike)) and str(config) not in CONVERT_PRESETS:
        path = Path(config)
        if not path.is_file():
            raise UsageError(f"choose one of {', '.join(CONVERT_PRESETS)} or give a JSON file", config=given)
        try:
            config = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"not valid JSON ({e})", config=given) from None
    spec = CONVERT_PRESETS[str(config)] if isinstance(config, (str, os.PathLike)) else config
    if not isinstance(spec, Mapping) or set(spec) != {"vae", "unet", "vocoder", "frontend"}:
        raise UsageError("needs exactly the keys 'vae', 'unet', 'vocoder', 'frontend'", config=given)
    if not isinstance(spec["frontend"], str) or spec["frontend"] not in MEL_PRESETS:
        raise UsageError(
            f"frontend {spec['frontend']!r}: choose one of {', '.join(MEL_PRESETS)}", config=given
        )

    def pick(value, presets: Mapping, kind: str) -> dict:
        if not isinstance(value, (str, Mapping)):
            raise UsageError(
                f"{kind} {value!r:.60}: give a preset name or an object of settings", config=given
            )
        if isinstance(value, str):
            if value not in presets:
                raise UsageError(
                    f"{kind} {value!r}: choose one of {', '.join(presets)} or a dict", config=given
                )
            value = presets[value]
        return copy.deepcopy(dict(value))

    vocoder = spec["vocoder"]
    try:
        vocoder = (
            vocoder_preset(vocoder).to_dict()
            if isinstance(vocoder, str)
            else HifiGanConfig.from_dict(vocoder).to_dict()
        )
    except (TypeError, ValueError) as e:
        raise UsageError(f"vocoder: {e}", config=given) from None
    return {
        "vae": pick(spec["vae"], VAE_PRESETS, "vae"),
        "unet": pick(spec["unet"], UNET_PRESETS, "unet"),
        "vocoder": vocoder,
        "frontend": spec["frontend"],
    }


def _guess_preset(state: Mapping) -> str:
    weight = state.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if weight is None:
        raise ModelError(f"no '{UNET_PREFIX}*' weights: not an AudioLDM latent-diffusion checkpoint")
    channels = int(weight.shape[0])
    if channels not in _CHANNELS_TO_PRESET:
        raise ModelError(
            f"UNet model_channels {channels} matches no known checkpoint "
            f"({', '.join(f'{c}: {n}' for c, n in _CHANNELS_TO_PRESET.items())}); "
            "give its config as a JSON file",
            config=None,
        )
    return _CHANNELS_TO_PRESET[channels]


def read_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The `state_dict` of an official `.ckpt` (read with weights_only=True)."""
    obj = torch_load_safe(path)
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state).__name__}, not a dict of tensors")
    return dict(state)


def schedule_from_buffers(state: Mapping, source: str) -> dict:
    """pipeline.json "schedule" from the checkpoint's `betas` buffer (linear in sqrt space)."""
    from .schedule import ScheduleConfig, make_betas

    betas = state.get("betas")
    if not isinstance(betas, torch.Tensor) or betas.dim() != 1 or len(betas) < 2:
        logger.warning("%s stores no 'betas' buffer: using the AudioLDM schedule defaults", source)
        return ScheduleConfig().to_dict()
    # a half-precision checkpoint stores them rounded (fp16: ~5e-4 relative, bf16: ~4e-3)
    rtol = max(1e-4, 4 * torch.finfo(betas.dtype).eps) if betas.is_floating_point() else 1e-4
    stored = betas.double()
    default = ScheduleConfig(timesteps=len(betas))
    if torch.allclose(make_betas(default).double(), stored, rtol=rtol, atol=1e-8):
        return default.to_dict()  # the exact values, not the rounded ones
    cfg = ScheduleConfig(
        timesteps=len(betas),
        linear_start=round(float(stored[0]), 8),
        linear_end=round(float(stored[-1]), 8),
    )
    if not torch.allclose(make_betas(cfg).double(), stored, rtol=rtol, atol=1e-8):
        raise ModelError(
            f"{source}: its 'betas' buffer is not a linear (sqrt-space) schedule; cannot convert it"
        )
    return cfg.to_dict()


def unet_state(state: Mapping, model: torch.nn.Module, use_ema: bool, source: str) -> dict[str, torch.Tensor]:
    """The UNet weights: its EMA copy (`model_ema.*`, default) or the raw `model.diffusion_model.*`."""
    own = model.state_dict()
    if not use_ema:
        return {k[len(UNET_PREFIX) :]: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    has_ema = any(
        k.startswith(EMA_PREFIX) and k not in (EMA_PREFIX + "decay", EMA_PREFIX + "num_updates")
        for k in state
    )
    if not has_ema:
        raise ModelError(
            f"{source} holds no EMA weights ('{EMA_PREFIX}*'); convert its raw UNet instead "
            "(use_ema=False; on the command line, --no-ema)"
        )
    out, missing = {}, []
    for key in own:
        name = ema_name(key)
        if name in state:
            out[key] = state[name]
        else:
            missing.append(name)
    if missing:
        raise CheckpointError(
            f"{source}: {len(missing)} EMA weights missing for this UNet config, e.g. {missing[0]}; "
            "check the config, or convert the raw UNet (use_ema=False; on the command line, --no-ema)"
        )
    used = {ema_name(k) for k in own} | {EMA_PREFIX + "decay", EMA_PREFIX + "num_updates"}
    left = sorted(k for k in state if k.startswith(EMA_PREFIX) and k not in used)
    if left:  # the strict loader says this of the raw UNet: a config smaller than the checkpoint
        raise CheckpointError(
            f"{source}: {len(left)} EMA weights fit no parameter of this UNet config, e.g. {left[0]}; "
            "check the config (depth, heads, channels)"
        )
    return out


# ----------------------------------------------------------------------------------------------
# CLAP text branch -> transformers ClapTextModelWithProjection


def clap_text_state(state: Mapping) -> dict[str, torch.Tensor]:
    """`cond_stage_model.model.text_branch.*` / `text_projection.{0,2}.*` under transformers' names."""
    out = {}
    for name, value in state.items():
        if name.startswith(CLAP_PREFIX + "text_branch."):
            out["text_model." + name[len(CLAP_PREFIX + "text_branch.") :]] = value
        elif name.startswith(CLAP_PREFIX + "text_projection."):
            layer, _, param = name[len(CLAP_PREFIX + "text_projection.") :].partition(".")
            linear = {"0": "linear1", "2": "linear2"}.get(layer)
            if linear is None:
                raise CheckpointError(f"unexpected CLAP projection entry {name}")
            out[f"text_projection.{linear}.{param}"] = value
    return out


def clap_text_config(text_state: Mapping) -> dict:
    """A `ClapTextConfig` dict read off the weight shapes (RoBERTa: 64-wide heads, LayerNorm eps 1e-5)."""
    words = text_state["text_model.embeddings.word_embeddings.weight"]
    hidden = int(words.shape[1])
    layers = 1 + max(int(k.split(".")[3]) for k in text_state if k.startswith("text_model.encoder.layer."))
    return {
        "vocab_size": int(words.shape[0]),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // 64),
        "intermediate_size": int(text_state["text_model.encoder.layer.0.intermediate.dense.weight"].shape[0]),
        "max_position_embeddings": int(
            text_state["text_model.embeddings.position_embeddings.weight"].shape[0]
        ),
        "type_vocab_size": int(text_state["text_model.embeddings.token_type_embeddings.weight"].shape[0]),
        "projection_dim": int(text_state["text_projection.linear2.weight"].shape[0]),
        "projection_hidden_act": "relu",
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "pad_token_id": 1,
    }


def build_clap_text_model(text_state: Mapping, source: str, heads: int | None = None):
    """A `ClapTextModelWithProjection` holding the checkpoint's text branch, loaded strictly."""
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    cfg = clap_text_config(text_state)
    if heads is not None:
        cfg["num_attention_heads"] = heads
    model = ClapTextModelWithProjection(ClapTextConfig(**cfg)).eval()
    # position_ids / token_type_ids are fixed index buffers: newer checkpoints lack them, so take ours
    own_buffers = {name: buf for name, buf in model.named_buffers()}
    state = {k: v for k, v in text_state.items() if k not in own_buffers}
    state.update(own_buffers)
    load_state_dict_strict(model, state, f"{source} (CLAP text branch)")
    return model


def save_clap_text(folder: Path, model, tokenizer_dir: str | os.PathLike) -> dict:
    """Write the CLAP text model + the user's tokenizer as a transformers folder; returns the pipeline entry."""
    from transformers import AutoTokenizer

    from .clap import _quiet_transformers

    _quiet_transformers()  # no "Writing model shards" bars: the CLI owns stderr

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot load a tokenizer from it ({first})", clap_tokenizer=tokenizer_dir) from None
    if len(tokenizer) > model.config.vocab_size:
        raise UsageError(
            f"{len(tokenizer)} tokens, more than the CLAP vocabulary ({model.config.vocab_size}); "
            "use the roberta-base tokenizer",
            clap_tokenizer=tokenizer_dir,
        )
    target = folder / CLAP_TEXT_FOLDER
    tmp = folder / (CLAP_TEXT_FOLDER + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    max_length = min(CLAP_MAX_LENGTH, model.config.max_position_embeddings - 2)
    return {"name": CLAP_TEXT_FOLDER, "type": "clap", "max_length": max_length}


# ----------------------------------------------------------------------------------------------
# CLAP audio branch (HTSAT) -> transformers ClapAudioModelWithProjection

# HTSAT block names -> transformers' Swin names; the fused qkv projection is split in three.
_HTSAT_RENAMES = (
    (".norm1.", ".layernorm_before."),
    (".norm2.", ".layernorm_after."),
    (".attn.proj.", ".attention.output.dense."),
    (".attn.", ".attention.self."),
    (".mlp.fc1.", ".intermediate.dense."),
    (".mlp.fc2.", ".output.dense."),
)
# the reference computes its mel inside the model; transformers does it in ClapFeatureExtractor
_HTSAT_DROPPED = ("spectrogram_extractor.", "logmel_extractor.", "tscam_conv.", "head.")


def clap_audio_state(state: Mapping) -> dict[str, torch.Tensor]:
    """`cond_stage_model.model.audio_branch.*` / `audio_projection.{0,2}.*` under transformers' names."""
    branch, out = CLAP_PREFIX + "audio_branch.", {}
    for name, value in state.items():
        if name.startswith(CLAP_PREFIX + "audio_projection."):
            layer, _, param = name[len(CLAP_PREFIX + "audio_projection.") :].partition(".")
            linear = {"0": "linear1", "2": "linear2"}.get(layer)
            if linear is None:
                raise CheckpointError(f"unexpected CLAP projection entry {name}")
            out[f"audio_projection.{linear}.{param}"] = value
            continue
        if not name.startswith(branch):
            continue
        key = name[len(branch) :]
        if key.startswith(_HTSAT_DROPPED) or key.endswith(".attn_mask"):  # transformers builds the masks
            continue
        key = "batch_norm." + key[len("bn0.") :] if key.startswith("bn0.") else key
        for old, new in _HTSAT_RENAMES:
            key = key.replace(old, new)
        key = "audio_model.audio_encoder." + key
        if ".attention.self.qkv." in key:
            for part, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                out[key.replace(".qkv.", f".{part}.")] = chunk
        else:
            out[key] = value
    return out


def clap_audio_config(audio_state: Mapping) -> dict:
    """A `ClapAudioConfig` dict read off the HTSAT weight shapes (non-fusion, as AudioLDM's CLAP)."""
    enc = "audio_model.audio_encoder."
    levels = sorted({int(k.split(".")[3]) for k in audio_state if k.startswith(enc + "layers.")})
    depths = [
        1 + max(int(k.split(".")[5]) for k in audio_state if k.startswith(f"{enc}layers.{i}.blocks."))
        for i in levels
    ]
    heads = [
        int(audio_state[f"{enc}layers.{i}.blocks.0.attention.self.relative_position_bias_table"].shape[1])
        for i in levels
    ]
    table = int(audio_state[f"{enc}layers.0.blocks.0.attention.self.relative_position_bias_table"].shape[0])
    patch = audio_state[enc + "patch_embed.proj.weight"]
    return {
        "depths": depths,
        "num_attention_heads": heads,
        "window_size": (round(table**0.5) + 1) // 2,
        "patch_embeds_hidden_size": int(patch.shape[0]),
        "patch_size": int(patch.shape[-1]),
        "patch_stride": [int(patch.shape[-2]), int(patch.shape[-1])],
        "hidden_size": int(audio_state[enc + "norm.weight"].shape[0]),
        "num_mel_bins": int(audio_state[enc + "batch_norm.weight"].shape[0]),
        "projection_dim": int(audio_state["audio_projection.linear2.weight"].shape[0]),
        "enable_fusion": False,
    }


def build_clap_audio_model(audio_state: Mapping, source: str, spec_size: int = 256):
    """A `ClapAudioModelWithProjection` holding the checkpoint's audio branch, loaded strictly."""
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection

    model = ClapAudioModelWithProjection(
        ClapAudioConfig(**clap_audio_config(audio_state), spec_size=spec_size)
    ).eval()
    state = dict(audio_state)
    for name, buf in model.named_buffers():  # fixed index tables: ours where the file has none
        state.setdefault(name, buf)
    load_state_dict_strict(model, state, f"{source} (CLAP audio branch)")
    return model


def save_clap_audio(folder: Path, model) -> str:
    """Write the CLAP audio model + its feature extractor (48 kHz, 64 mels, 50-14000 Hz) as a folder."""
    from transformers import ClapFeatureExtractor

    from .clap import _quiet_transformers

    _quiet_transformers()

    extractor = ClapFeatureExtractor(
        feature_size=model.config.num_mel_bins, frequency_min=50, frequency_max=14000, truncation="rand_trunc"
    )
    target, tmp = folder / CLAP_AUDIO_FOLDER, folder / (CLAP_AUDIO_FOLDER + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    extractor.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return CLAP_AUDIO_FOLDER


# ----------------------------------------------------------------------------------------------
# the whole conversion


def convert_state(
    state: Mapping,
    config: str | os.PathLike | Mapping | None = None,
    *,
    use_ema: bool = True,
    source: str = "checkpoint",
) -> tuple[PipelineConfig, dict[str, torch.nn.Module]]:
    """Build the pipeline config and the VAE, vocoder and UNet modules of an official state_dict.

    The text conditioner is not loaded here (see `convert_checkpoint`): pipeline.json's
    "text_encoder" records that a CLAP text model is required.
    """
    from vocoder.generator import HifiGanGenerator, fold_weight_norm

    from .unet import UNetModel
    from .vae import load_first_stage_from_ckpt

    cfg = resolve_config(config, state)
    vae_part = {k: v for k, v in state.items() if k.startswith(VAE_PREFIX) or k == "scale_factor"}
    try:
        vae = load_first_stage_from_ckpt(vae_part, cfg["vae"])
        vocoder = HifiGanGenerator.from_config(cfg["vocoder"], use_weight_norm=False)
        unet = UNetModel.from_config(cfg["unet"])
    except (TypeError, ValueError) as e:
        if isinstance(e, AudioLDMError):
            raise
        raise UsageError(
            f"{e}", config=config if isinstance(config, (str, os.PathLike)) else "(given)"
        ) from None
    voc_state = {k[len(VOCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(VOCODER_PREFIX)}
    if not voc_state:
        raise CheckpointError(f"{source} holds no '{VOCODER_PREFIX}*' weights")
    load_state_dict_strict(vocoder, fold_weight_norm(voc_state), f"{source} (vocoder)")
    if "scale_factor" not in state:
        logger.warning(
            "%s stores no scale_factor: using %g; if its UNet was trained on latents scaled otherwise, "
            "generation gives noise (set scale_factor in the converted vae/config.json)",
            source,
            vae.scale_factor,
        )
    kind = "EMA" if use_ema else "raw"
    load_state_dict_strict(unet, unet_state(state, unet, use_ema, source), f"{source} ({kind} UNet)")
    film = unet.config.get("extra_film_condition_dim")
    pipeline = PipelineConfig(
        frontend=MEL_PRESETS[cfg["frontend"]].to_dict(),
        components={"vae": "vae", "unet": "unet", "vocoder": "vocoder"},
        conditioning="film" if film else "crossattn",
        text_encoder={
            "name": None,
            "type": "clap",
            "missing": "CLAP text model",
            "max_length": CLAP_MAX_LENGTH,
        },
        schedule=schedule_from_buffers(state, source),
    )
    logger.info("%s: VAE, vocoder and %s UNet converted (scale_factor %.6g)", source, kind, vae.scale_factor)
    return pipeline, {"vae": vae.eval(), "vocoder": vocoder.eval(), "unet": unet.eval()}


def convert_checkpoint(
    ckpt_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: str | os.PathLike | Mapping | None = None,
    *,
    use_ema: bool = True,
    clap_tokenizer: str | os.PathLike | None = None,
) -> Path:
    """Convert an official AudioLDM `.ckpt` into a model folder at `out_dir`; returns the folder.

    Args:
        ckpt_path: the `.ckpt` file (audioldm-s-full, -m-full, -l-full, ...).
        out_dir: the model folder to write (pipeline.json is written last).
        config: "s-full" | "m-full" | "l-full", a JSON file / dict of component configs, or None to
            pick by the UNet width.
        use_ema: load the UNet from its EMA copy (`model_ema.*`), as the reference samples with it.
        clap_tokenizer: a local folder with the roberta-base tokenizer; without it, the CLAP text
            branch is not converted and `generate` on the folder says so.
    """
    from .pipeline import AudioLDM

    source = str(ckpt_path)
    state = read_state(ckpt_path)
    pipeline, modules = convert_state(state, config, use_ema=use_ema, source=source)
    AudioLDM(
        pipeline, **modules
    )  # the parts must fit each other (frontend, vocoder, VAE, UNet): else no folder
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # replacing a model (-y): without its pipeline.json first, a convert stopped partway leaves a folder
    # that does not load, never one that mixes the two checkpoints' parts
    (out_dir / PIPELINE_NAME).unlink(missing_ok=True)
    text_encoder = pipeline.text_encoder
    has_clap = any(k.startswith(CLAP_PREFIX + "text_branch.") for k in state)
    if clap_tokenizer is not None:
        if not has_clap:
            raise ModelError(f"{source} holds no CLAP text branch ('{CLAP_PREFIX}text_branch.*')")
        model = build_clap_text_model(clap_text_state(state), source)
        text_encoder = save_clap_text(out_dir, model, clap_tokenizer)
        if any(k.startswith(CLAP_PREFIX + "audio_branch.") for k in state):
            audio = build_clap_audio_model(clap_audio_state(state), source)
            text_encoder["audio"] = save_clap_audio(out_dir, audio)
    else:
        logger.warning(
            "no CLAP tokenizer given: the CLAP text branch is not converted; generation needs it "
            "(reconstruct and encode work without it)"
        )
    pipeline = PipelineConfig.from_dict({**pipeline.to_dict(), "text_encoder": text_encoder})
    save_model_folder(out_dir, pipeline, modules)
    return out_dir


__all__ = [
    "CONVERT_PRESETS",
    "build_clap_text_model",
    "clap_text_state",
    "convert_checkpoint",
    "convert_state",
    "ema_name",
    "resolve_config",
    "schedule_from_buffers",
]
