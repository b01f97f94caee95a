"""`AudioLDM`: the components of a model folder assembled into generate / reconstruct / encode.

    text -> TextEncoder -> UNet + sampler (classifier-free guidance) -> latent / scale_factor
         -> VAE decoder -> mel [B, 1, T, F] -> vocoder -> waveform, trimmed to the requested length
    wav  -> MelFrontend -> VAE encoder -> posterior -> latent * scale_factor           (encode)
    wav  -> mel -> VAE -> mel -> vocoder -> wav, in overlapping chunks                  (reconstruct)

Every method takes and returns CPU tensors (float32 waveforms at `sample_rate`); the work runs on
`self.device`. Seeds are integers in [0, 2**32) (the seeds torch's generator tells apart; None: a random
one). Noise is drawn on CPU from one generator per item, seeded `seed + i`, so item i of a
batch equals a lone run with `seed + i` (up to float rounding: batched kernels sum in another order,
which strong guidance amplifies to ~1e-4 of the waveform, a few 16-bit steps; with batch_size 1 bit for
bit).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterator, Sequence
from numbers import Real
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vocoder.config import MelConfig, preset_name

from . import checkpoint as ckpt
from .chunking import overlap_add, plan_chunks, windowed
from .errors import AudioLDMError, ModelError, UsageError, as_model_errors
from .frontend import limit_frame_level
from .runtime import (
    ProgressFn,
    check_flags,
    check_progress,
    check_seeds,
    is_integer,
    is_real,
    make_generator,
    resolve_device,
)
from .samplers import randn_like

logger = logging.getLogger(__name__)

MAX_DURATION = 600.0  # seconds; generation memory grows linearly with the latent length
CHUNK_FRAMES = 1024  # reconstruct: mel frames per chunk (10.24 s at 16 kHz)
CHUNK_OVERLAP = 32  # frames of context on each side of a chunk; the middle half is cross-faded


def _masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    """Mean over the valid tokens: states [B, L, D], mask [B, L] -> [B, D]."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


class AudioLDM:
    """A loaded model folder: frontend, VAE, vocoder, and (for generation) UNet and text encoder."""

    # Latents longer than a window plus its overlaps run through the UNet window by window, blended
    # (`chunking.windowed`): 20 s cores, each seen with 5 s of its neighbours on both sides, so up to
    # 30 s is one pass as before and longer generations and edits cost time linear in their length.
    # None: the whole latent at once.
    unet_window_seconds: float | None = 20.0
    unet_window_overlap_seconds: float = 5.0

    def __init__(
        self,
        config: ckpt.PipelineConfig,
        *,
        vae: nn.Module,
        vocoder: nn.Module,
        unet: nn.Module | None = None,
        ranker: nn.Module | None = None,
        device: str | torch.device = "cpu",
    ):
        """Assemble a pipeline from built modules (`from_pretrained` loads a folder). The modules are
        used as given, not copied: this puts them in eval mode, freezes their parameters
        (`requires_grad_(False)`) and moves them to `device`; to train one afterwards, call
        `.train().requires_grad_(True)` on it."""
        from .frontend import MelFrontend
        from .schedule import ScheduleConfig

        self.config = config
        try:
            self.mel_config = MelConfig.from_dict(config.frontend)
            self.schedule = ScheduleConfig.from_dict(config.schedule)
        except (ValueError, UsageError) as e:
            raise ModelError(f"pipeline.json: {e}") from None
        self.device = resolve_device(device)
        self.frontend = MelFrontend(self.mel_config).to(self.device)
        self.vae, self.vocoder, self.unet, self.ranker = vae, vocoder, unet, ranker
        self._text_encoder = None
        self._compiled_unets: dict[str, tuple] = {}  # torch.compile backend -> (UNet, its compiled form)
        self._vae_hash: tuple[int, str] | None = None  # (id of the VAE, its weights hash)
        self.model_dir: Path | None = None
        self.check_components()
        for module in (self.vae, self.vocoder, self.unet, self.ranker):
            if module is not None:
                module.eval().requires_grad_(False).to(self.device)

    # ------------------------------------------------------------------------------------------
    # loading and saving

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike | None = None, device: str | torch.device = "cpu"
    ) -> AudioLDM:
        """Load a model folder (see CONTRIBUTING.md) strictly; weights load on CPU, then move to `device`.

        No folder: the embedded default model (`checkpoints/default`), as the CLI's commands load it.

        An official AudioLDM `.ckpt` gives its VAE and vocoder (reconstruct and encode only);
        `save_pretrained` then converts it into a model folder. Unreadable files raise `ModelError`s.
        """
        if folder is not None and not isinstance(folder, (str, os.PathLike)):
            raise UsageError(f"folder: expected a path, got {type(folder).__name__}")
        folder = ckpt.default_model_dir() if folder is None else Path(folder)
        device = resolve_device(device)  # fail on a missing GPU before reading weights
        # building the modules draws their initial weights (then overwritten): keep the caller's CPU RNG
        with as_model_errors(), torch.random.fork_rng(devices=[]):
            return cls._load(folder, device)

    @classmethod
    def _load(cls, folder: Path, device: torch.device) -> AudioLDM:
        if folder.suffix == ".ckpt" and folder.is_file():
            from .convert import EMA_PREFIX, UNET_PREFIX, convert_state, read_state

            state = read_state(folder)
            if any(k.startswith(UNET_PREFIX) for k in state):  # a whole latent-diffusion checkpoint
                has_ema = any(k.startswith(EMA_PREFIX + "diffusion_model") for k in state)
                config, parts = convert_state(state, use_ema=has_ema, source=str(folder))
            else:
                config, parts = ckpt.load_official_ckpt(folder)
            return cls(config, **parts, device=device)
        config = ckpt.read_pipeline_config(folder)
        parts = config.components
        for kind, entry in parts.items():  # a folder copied in part: name what is missing, once
            if isinstance(entry, str) and not (folder / entry).exists():
                raise ckpt.ModelError(
                    f"{folder} is incomplete: its pipeline.json keeps the {kind} in {entry}/, which is missing"
                )
        vae = ckpt.load_component(folder / parts["vae"], "vae")
        vocoder = ckpt.load_vocoder_entry(folder, parts["vocoder"])
        unet = ckpt.load_component(folder / parts["unet"], "unet") if "unet" in parts else None
        ranker = ckpt.load_component(folder / parts["ranker"], "ranker") if "ranker" in parts else None
        logger.info("loaded %s on %s", folder, device)
        pipe = cls(config, vae=vae, vocoder=vocoder, unet=unet, ranker=ranker, device=device)
        pipe.model_dir = folder  # text encoders stored inside the folder (CLAP) are found from it
        return pipe

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write this pipeline as a model folder (`dtype=torch.float16` halves the files).

        Text-encoder folders stored inside the loaded model folder (the CLAP branches of a converted
        official checkpoint) are copied along, so that the new folder stands on its own."""
        modules = {"vae": self.vae, "vocoder": self.vocoder, "unet": self.unet, "ranker": self.ranker}
        self._copy_stored_text_encoder(Path(folder))
        return ckpt.save_model_folder(
            folder, self.config, {k: v for k, v in modules.items() if v is not None}, dtype=dtype
        )

    def _copy_stored_text_encoder(self, folder: Path) -> None:
        import shutil

        spec = self.config.text_encoder or {}
        if spec.get("type") != "clap":
            return
        for key in ("name", "audio"):
            rel = spec.get(key)
            if not rel or Path(rel).is_absolute():
                continue
            src, dst = (self.model_dir or Path()) / rel, folder / rel
            if self.model_dir is None or not src.is_dir():
                raise ModelError(
                    f"cannot save: pipeline.json names the CLAP folder {rel}/ relative to the model folder, "
                    "and this pipeline was not loaded from one that holds it"
                )
            if dst.exists() and dst.resolve() == src.resolve():
                continue
            (folder / ckpt.PIPELINE_NAME).unlink(
                missing_ok=True
            )  # replacing a model: stopped, it must not load
            partial = dst.with_name(dst.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, partial)
            if dst.exists():
                shutil.rmtree(dst)
            partial.rename(dst)

    # ------------------------------------------------------------------------------------------
    # properties and consistency checks

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mel_config.hop_length

    @property
    def scale_factor(self) -> float:
        return float(self.vae.scale_factor)

    @property
    def time_factor(self) -> int:
        """Mel frames per latent frame: padded lengths must be multiples of it."""
        return int(self.vae.time_downsample_factor)

    @property
    def freq_factor(self) -> int:
        return int(self.vae.freq_downsample_factor)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.latent_channels)

    @property
    def preset(self) -> str:
        return preset_name(self.mel_config) or "custom"

    def reconfigure(self, config: ckpt.PipelineConfig) -> None:
        """Replace the pipeline.json settings in use (as a training stage does with its config's sections):
        what the pipeline derives from them (the schedule, the text encoder) follows. Same frontend only."""
        from .schedule import ScheduleConfig

        if config.frontend != self.config.frontend:
            raise ModelError("reconfigure cannot change the frontend: load the model again instead")
        try:
            schedule = ScheduleConfig.from_dict(config.schedule)
        except (ValueError, UsageError) as e:
            raise ModelError(f"pipeline.json: {e}") from None
        self.config, self.schedule, self._text_encoder = config, schedule, None

    @property
    def text_encoder(self):
        """The frozen text encoder named in pipeline.json, loaded on first use (reconstruct never needs it)."""
        if self._text_encoder is None:
            if self.config.text_encoder is None:
                raise ModelError("this model has no text encoder (pipeline.json 'text_encoder' is null)")
            spec = self.config.text_encoder
            if spec.get("type") == "clap":  # the official checkpoints' CLAP text branch (see convert.py)
                from .clap import load_text_conditioner

                encoder = load_text_conditioner(spec, self.model_dir, self.device)
            else:
                try:
                    encoder = _load_text_encoder(
                        spec.get("name"), spec.get("max_length", 64), str(self.device)
                    )
                except UsageError as e:  # its arguments come from pipeline.json: the model is at fault
                    raise ModelError(f"pipeline.json text_encoder: {e}") from None
            self._check_text_width(encoder.dim)
            self._text_encoder = encoder
        return self._text_encoder

    def check_components(self) -> None:
        """Check that the components agree with each other (mel bins, latent channels), before any work."""
        n_mels = self.mel_config.n_mels
        if n_mels % self.freq_factor:
            raise ModelError(
                f"frontend n_mels {n_mels} is not divisible by the VAE frequency downsampling {self.freq_factor}"
            )
        vcfg = self.vocoder.config
        if vcfg.get("mel") is not None and MelConfig.from_dict(vcfg["mel"]) != self.mel_config:
            raise ModelError(
                f"vocoder mel config {vcfg['mel']} differs from the pipeline frontend {self.mel_config.to_dict()}"
            )
        if vcfg["num_mels"] != n_mels:
            raise ModelError(f"vocoder num_mels {vcfg['num_mels']} differs from the frontend n_mels {n_mels}")
        if self.vocoder.hop_length != self.hop_length:
            raise ModelError(
                f"vocoder hop {self.vocoder.hop_length} (prod of upsample_rates) differs from "
                f"the frontend hop_length {self.hop_length}"
            )
        if self.unet is not None:
            ucfg = self.unet.config
            if ucfg["in_channels"] != self.latent_channels or ucfg["out_channels"] != self.latent_channels:
                raise ModelError(
                    f"UNet in/out channels {ucfg['in_channels']}/{ucfg['out_channels']} differ from the VAE "
                    f"latent channels {self.latent_channels}"
                )
        if self.ranker is not None and self.ranker.config["n_mels"] != n_mels:
            raise ModelError(
                f"ranker n_mels {self.ranker.config['n_mels']} differs from the frontend n_mels {n_mels}"
            )

    def _check_text_width(self, dim: int) -> None:
        if self.ranker is not None and self.ranker.config["text_dim"] != dim:
            raise ModelError(
                f"ranker text_dim {self.ranker.config['text_dim']} differs from the text encoder width {dim}"
            )
        if self.unet is None:
            return
        from .checkpoint import CONDITIONINGS

        ucfg = self.unet.config
        for key in CONDITIONINGS[self.config.conditioning]:
            if ucfg.get(key) != dim:
                raise ModelError(f"UNet {key} {ucfg.get(key)} differs from the text encoder width {dim}")

    @property
    def default_guidance_scale(self) -> float:
        """The guidance `generate` uses when given none: the model's `sampling.guidance_scale`, else 3."""
        return float(self.config.sampling.get("guidance_scale", ckpt.DEFAULT_GUIDANCE_SCALE))

    @property
    def default_guidance_rescale(self) -> float:
        """The guidance rescale (phi, see `samplers.classifier_free_guidance`) `generate` uses when given
        none: the model's `sampling.guidance_rescale`, else 0 (plain guidance)."""
        return float(self.config.sampling.get("guidance_rescale", 0.0))

    @property
    def default_frame_level_limit(self) -> float:
        """The ceiling `generate` puts on decoded mel frames when given none: the model's
        `sampling.frame_level_limit` (see `frontend.limit_frame_level`), else inf (no limit)."""
        return float(self.config.sampling.get("frame_level_limit", math.inf))

    @property
    def default_num_candidates(self) -> int:
        """Candidates per output `generate --num-candidates` makes when given none: the model's
        `sampling.num_candidates` where it can rank them, else 1."""
        return int(self.config.sampling.get("num_candidates", 1)) if self.can_rank else 1

    @property
    def default_steps(self) -> int:
        """The denoising steps `generate` takes when given none: the model's `sampling.steps`, else 50."""
        return int(self.config.sampling.get("steps", ckpt.DEFAULT_STEPS))

    @property
    def default_refine_steps(self) -> int:
        """Latent refinement steps `reconstruct` runs when given none: the model's `sampling.refine_steps`,
        else 0 (the encoder's latent as it is)."""
        return int(self.config.sampling.get("refine_steps", 0))

    def describe(self) -> dict:
        """A JSON-able description of the model: what `audioldm info` prints."""
        parts = {}
        modules = (("vae", self.vae), ("unet", self.unet), ("vocoder", self.vocoder), ("ranker", self.ranker))
        for kind, module in modules:
            if module is not None:
                entry = self.config.components[kind]
                parts[kind] = {
                    "class": type(module).__name__,
                    "source": entry if isinstance(entry, str) else entry["pretrained"],
                    "parameters": ckpt.count_parameters(module),
                    "config": module.config,
                }
        return {
            "format_version": ckpt.FORMAT_VERSION,
            "preset": self.preset,
            "frontend": self.mel_config.to_dict(),
            "conditioning": self.config.conditioning,
            "text_encoder": self.config.text_encoder,
            "schedule": self.schedule.to_dict(),
            "sampling": {
                "guidance_scale": self.default_guidance_scale,
                "guidance_rescale": self.default_guidance_rescale,
                "frame_level_limit": self.config.sampling.get("frame_level_limit"),  # None: no limit
                "num_candidates": self.default_num_candidates,
                "refine_steps": self.default_refine_steps,
                "steps": self.default_steps,
            },
            "latent": {
                "channels": self.latent_channels,
                "time_downsampling": self.time_factor,
                "freq_downsampling": self.freq_factor,
                "scale_factor": self.scale_factor,
            },
            "components": parts,
        }

    # ------------------------------------------------------------------------------------------
    # shapes

    @property
    def unet_factor(self) -> int:
        """Latent frames per UNet bottleneck frame (2 per level): generated latents are multiples of it."""
        return 2 ** (len(self.unet.config["channel_mult"]) - 1) if self.unet is not None else 1

    def frames_for(self, n_samples: int, multiple: int | None = None) -> int:
        """Mel frames covering `n_samples`, rounded up to `multiple` (default: the VAE's time factor)."""
        multiple = multiple or self.time_factor
        frames = max(1, math.ceil(n_samples / self.hop_length))
        return math.ceil(frames / multiple) * multiple

    def mel(self, wav: Tensor, frames: int) -> Tensor:
        """wav [B, N] (or [N]) -> log-mel [B, 1, frames, F]: zero-pad the waveform to cover `frames`, then
        cut."""
        wav = _as_batch(wav)
        if not is_integer(frames) or frames < 1:
            raise UsageError("must be a positive integer", frames=frames)
        need = frames * self.hop_length
        wav = F.pad(wav, (0, max(0, need - wav.shape[-1])))
        mel = self.frontend(wav.to(self.device))[:, :frames]  # [B, T, F] time-major
        return mel.unsqueeze(1)

    def vocode(self, mel: Tensor, n_samples: int) -> Tensor:
        """mel [B, 1, T, F] -> waveform [B, n_samples] (trimmed or zero-padded to exactly n_samples)."""
        wav = self.vocoder(mel.squeeze(1).transpose(1, 2)).squeeze(1)  # vocoder takes [B, F, T]
        wav = wav[:, :n_samples]
        return F.pad(wav, (0, n_samples - wav.shape[-1])).float().cpu()

    def _check_frame_level_limit(self, limit: float) -> None:
        """A limit at or above the level of silence in this frontend (the log of its floor, about
        -11.5): below it every frame would be pushed under silence, and the vocoder makes noise of it."""
        silence = ckpt.silence_level(self.mel_config.log_floor)
        if math.isnan(limit) or limit < silence:
            raise UsageError(
                f"must be a number >= {silence:.2f}, the level of silence (inf: no limit)",
                frame_level_limit=limit,
            )

    def decode_latent(
        self,
        latent: Tensor,
        n_samples: int | None = None,
        *,
        chunk_frames: int = CHUNK_FRAMES,
        overlap_frames: int = CHUNK_OVERLAP,
        frame_level_limit: float | None = math.inf,
        progress: ProgressFn | None = None,
    ) -> Tensor:
        """latent [B, C, T', F'] (scaled) -> waveform [B, n_samples] (default: all decoded frames).

        Long latents are decoded and vocoded in overlapping chunks of `chunk_frames` mel frames
        (see `chunking.overlap_add`). Decoded mel frames louder than `frame_level_limit` are turned
        down to it before the vocoder (`frontend.limit_frame_level`; inf or None: left as they are).
        """
        frame_level_limit = math.inf if frame_level_limit is None else frame_level_limit
        if not is_real(frame_level_limit):
            raise UsageError("must be a number (inf: no limit)", frame_level_limit=frame_level_limit)
        if not isinstance(latent, Tensor):
            raise UsageError(f"expected a latent as a torch.Tensor, got {type(latent).__name__}")
        if latent.dim() == 3:
            latent = latent[None]
        if latent.dim() != 4:
            raise UsageError(
                f"expected a latent [C, T', F'] or [B, C, T', F'], got shape {tuple(latent.shape)}"
            )
        if not bool(torch.isfinite(latent).all()):
            raise UsageError("the latent holds NaN/inf values")
        self._check_frame_level_limit(frame_level_limit)
        if n_samples is not None and not is_integer(n_samples):
            raise UsageError("must be an integer (None: every decoded sample)", n_samples=n_samples)
        if (
            latent.shape[1] != self.latent_channels
            or latent.shape[-1] * self.freq_factor != self.mel_config.n_mels
        ):
            raise ModelError(
                f"latent of shape {tuple(latent.shape[1:])} does not fit this VAE "
                f"({self.latent_channels} channels, {self.mel_config.n_mels // self.freq_factor} bins)"
            )
        tf, hop = self.time_factor, self.hop_length
        total = latent.shape[2] * tf
        n_samples = total * hop if n_samples is None else n_samples
        if not 0 < n_samples <= total * hop:
            raise UsageError(
                f"must lie in [1, {total * hop}]: the latent's {latent.shape[2]} frames decode to {total * hop} "
                "samples",
                n_samples=n_samples,
            )
        latent = latent.float() / self.scale_factor

        def render(lo: int, hi: int) -> Tensor:
            with torch.inference_mode():
                mel = self.vae.decode(latent[:, :, lo // tf : hi // tf].to(self.device))
                return self.vocode(limit_frame_level(mel, frame_level_limit), (hi - lo) * hop)

        wav = overlap_add(
            render,
            total,
            hop,
            chunk_frames=chunk_frames,
            overlap_frames=overlap_frames,
            multiple=tf,
            progress=progress,
        )
        return F.pad(wav[:, :n_samples], (0, max(0, n_samples - wav.shape[-1])))

    # ------------------------------------------------------------------------------------------
    # encode

    def encode(
        self,
        wav: Tensor,
        sample: bool = False,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        *,
        refine_steps: int = 0,
        chunk_frames: int = CHUNK_FRAMES,
        overlap_frames: int = CHUNK_OVERLAP,
    ) -> tuple[Tensor, dict]:
        """wav [B, N] (or [N]) at `sample_rate` -> (latent [B, C, T', F'] scaled by scale_factor, metadata).

        The latent is the posterior mean, or with `sample=True` a draw from the posterior, its noise
        drawn on CPU from `generator` (one, or one per item so that items do not depend on the batch).
        `refine_steps` > 0 fits the posterior mean to the mel for that many steps (`AutoencoderKL.refine`):
        the decoder then reproduces the input more closely. Inputs longer than `chunk_frames` mel frames
        are encoded in overlapping chunks (`latent_of`), so that memory stays bounded.
        """
        check_flags(sample=sample)
        if sample and refine_steps:
            raise UsageError("refine_steps fits the posterior mean; it cannot be combined with sample=True")
        wav = _as_batch(wav)
        if generator is not None and not isinstance(generator, torch.Generator):
            if not isinstance(generator, Sequence) or not all(
                isinstance(g, torch.Generator) for g in generator
            ):
                raise UsageError("generator: must be a torch.Generator or a list of them (one per item)")
            if len(generator) != wav.shape[0]:
                raise UsageError(f"generator: got {len(generator)} generators for a batch of {wav.shape[0]}")
        n, hop = wav.shape[-1], self.hop_length
        frames = self.frames_for(n)
        padded = F.pad(wav, (0, frames * hop - n))  # as `mel` pads it
        context = math.ceil(self.mel_config.n_fft / hop)  # frames around a chunk: its mel equals the whole's

        def mel_of(a: int, b: int) -> Tensor:  # mel frames [a, b) of the whole input, from its samples
            lo, hi = max(0, a - context), min(frames, b + context)
            with torch.inference_mode():
                mel = self.frontend(padded[:, lo * hop : hi * hop].to(self.device))[:, a - lo : b - lo]
            return mel.unsqueeze(1)

        if sample:

            def moments(part: Tensor) -> Tensor:
                with torch.inference_mode():
                    posterior = self.vae.encode(part)
                    return torch.cat([posterior.mean, posterior.std], 1)

            chunks = self._encode_in_chunks(frames, mel_of, moments, chunk_frames, overlap_frames)
            mean, std = chunks.chunk(2, 1)
            z = mean + std * randn_like(mean, generator)
        else:
            z = self._encode_in_chunks(
                frames, mel_of, self._posterior_mean(refine_steps), chunk_frames, overlap_frames
            )
        return (z * self.scale_factor).float().cpu(), self.latent_metadata(n)

    def latent_of(
        self,
        mel: Tensor,
        refine_steps: int = 0,
        *,
        chunk_frames: int = CHUNK_FRAMES,
        overlap_frames: int = CHUNK_OVERLAP,
    ) -> Tensor:
        """mel [B, 1, T, F] -> unscaled latent: the posterior mean, fitted to the mel for `refine_steps`
        steps when > 0 (`AutoencoderKL.refine`; it runs outside inference mode: it needs gradients).

        A mel longer than `chunk_frames` frames is encoded in overlapping chunks, cross-faded in the latent
        (as `reconstruct` does), so that memory and time grow linearly with its length instead of
        holding the whole input's activations (and, for the VAE's attention, quadratically more)."""
        if not isinstance(mel, Tensor) or not mel.is_floating_point():
            what = f"a {mel.dtype} tensor" if isinstance(mel, Tensor) else type(mel).__name__
            raise UsageError(f"expected a log-mel as a float torch.Tensor [B, 1, T, F], got {what}")
        if mel.dim() != 4 or mel.shape[1] != 1 or mel.shape[3] != self.mel_config.n_mels:
            raise UsageError(
                f"expected a log-mel [B, 1, T, {self.mel_config.n_mels}] (this model's mel bins), "
                f"got shape {tuple(mel.shape)}"
            )
        mel = mel.to(self.device, next(self.vae.parameters()).dtype)
        fitted = self._posterior_mean(refine_steps)
        return self._encode_in_chunks(
            mel.shape[2], lambda a, b: mel[:, :, a:b], fitted, chunk_frames, overlap_frames
        )

    def _posterior_mean(self, refine_steps: int):
        """mel [B, 1, T, F] -> the posterior mean, fitted to it for `refine_steps` steps when > 0."""
        if not is_integer(refine_steps) or refine_steps < 0:
            raise UsageError("must be an integer >= 0", refine_steps=refine_steps)

        def fitted_mean(part: Tensor) -> Tensor:
            with torch.inference_mode():
                z = self.vae.encode(part).mode()
            return self.vae.refine(part, z, refine_steps)[0].to(z.dtype) if refine_steps else z

        return fitted_mean

    def _encode_in_chunks(
        self,
        frames: int,
        mel_of,
        encode,
        chunk_frames: int = CHUNK_FRAMES,
        overlap_frames: int = CHUNK_OVERLAP,
    ) -> Tensor:
        """`encode(mel)` ([B, 1, T, F] -> [B, C, T / time_factor, F']) of the `frames` mel frames that
        `mel_of(a, b)` gives span by span ([B, 1, b - a, F]), over chunks of `chunk_frames` frames with
        `overlap_frames` of overlap, cross-faded along the latent's time axis (`overlap_add`); in one
        piece when that is no longer (or `frames` is not a multiple of the time factor)."""
        if not is_integer(chunk_frames) or chunk_frames < 1:
            raise UsageError("must be an integer >= 1", chunk_frames=chunk_frames)
        if not is_integer(overlap_frames) or overlap_frames < 0:
            raise UsageError("must be an integer >= 0", overlap_frames=overlap_frames)
        tf = self.time_factor
        total, chunk, overlap = frames // tf, max(1, chunk_frames // tf), math.ceil(overlap_frames / tf)
        if frames % tf or len(plan_chunks(total, chunk, overlap)) == 1:
            return encode(mel_of(0, frames))

        def render(lo: int, hi: int) -> Tensor:  # latent frames [lo, hi), time last for overlap_add
            return encode(mel_of(lo * tf, hi * tf)).transpose(2, 3)

        z = overlap_add(render, total, 1, chunk_frames=chunk, overlap_frames=overlap)  # on the CPU
        return z.transpose(2, 3).to(self.device)

    def latent_metadata(self, n_samples: int) -> dict:
        return {
            "format_version": ckpt.LATENT_FORMAT_VERSION,
            "sample_rate": self.sample_rate,
            "n_samples": int(n_samples),
            "scale_factor": self.scale_factor,
            "vae_config_hash": ckpt.config_hash(self.vae.config),
            "vae_weights_hash": self.vae_weights_hash(),
            "preset": self.preset,
        }

    def vae_weights_hash(self) -> str:
        """`checkpoint.weights_hash` of the VAE, computed once per VAE object (the VAE is frozen here)."""
        if self._vae_hash is None or self._vae_hash[0] != id(self.vae):
            self._vae_hash = (id(self.vae), ckpt.weights_hash(self.vae))
        return self._vae_hash[1]

    def check_latent_metadata(self, meta: dict, source: str) -> None:
        """Refuse a latent file written by another VAE or at another sample rate.

        Files carrying `vae_weights_hash` must match the weights too; older files only the config."""
        ours = ckpt.config_hash(self.vae.config)
        if meta["vae_config_hash"] != ours:
            raise ModelError(
                f"{source} was encoded by another VAE (config hash {meta['vae_config_hash']}, this model's is {ours})"
            )
        theirs = meta.get("vae_weights_hash")
        if theirs and theirs != self.vae_weights_hash():
            raise ModelError(
                f"{source} was encoded by another VAE with the same config but other weights "
                f"(weights hash {theirs}, this model's is {self.vae_weights_hash()}); re-encode it with this model"
            )
        if meta["sample_rate"] != self.sample_rate:
            raise ModelError(f"{source} is at {meta['sample_rate']} Hz, this model at {self.sample_rate} Hz")

    # ------------------------------------------------------------------------------------------
    # reconstruct

    def reconstruct(
        self,
        wav: Tensor,
        vocoder_only: bool = False,
        *,
        refine_steps: int | None = None,
        chunk_frames: int = CHUNK_FRAMES,
        overlap_frames: int = CHUNK_OVERLAP,
        progress: ProgressFn | None = None,
    ) -> Tensor:
        """wav [B, N] (or [N]) -> mel -> VAE -> mel -> vocoder -> wav of exactly the input shape.

        `refine_steps` > 0 fits each chunk's latent to its mel before decoding (`AutoencoderKL.refine`):
        a closer round trip at the cost of one decoder forward and backward pass per step; None: the
        model's `default_refine_steps` (0 with `vocoder_only`), 0: the encoder's latent as it is.

        Inputs longer than `chunk_frames` mel frames run in chunks with `overlap_frames` of context on
        each side, cross-faded linearly over `overlap_frames` centred on each border, so memory stays
        bounded by the chunk size and there is no click at the borders.
        `vocoder_only=True` skips the VAE (isolates the vocoder's error).
        """
        check_flags(vocoder_only=vocoder_only)
        batch = _as_batch(wav)
        squeeze, wav = batch.dim() != wav.dim(), batch
        n = wav.shape[-1]
        tf, hop = self.time_factor, self.hop_length
        total = self.frames_for(n)
        padded = F.pad(wav, (0, total * hop - n)).float()
        context = math.ceil(
            self.mel_config.n_fft / hop
        )  # extra frames so that chunk mels equal the whole mel
        if refine_steps is None:
            refine_steps = 0 if vocoder_only else self.default_refine_steps
        if not is_integer(refine_steps) or refine_steps < 0:
            raise UsageError("must be an integer >= 0", refine_steps=refine_steps)
        if vocoder_only and refine_steps:
            raise UsageError("refine_steps fits VAE latents; vocoder_only skips the VAE")

        def render(lo: int, hi: int) -> Tensor:
            a, b = max(0, lo - context), min(total, hi + context)
            with torch.inference_mode():
                mel = self.frontend(padded[:, a * hop : b * hop].to(self.device))[
                    :, lo - a : hi - a
                ].unsqueeze(1)
                if vocoder_only:
                    return self.vocode(mel, (hi - lo) * hop)
            z = self.latent_of(mel, refine_steps)
            with torch.inference_mode():
                return self.vocode(self.vae.decode(z), (hi - lo) * hop)

        out = overlap_add(
            render,
            total,
            hop,
            chunk_frames=chunk_frames,
            overlap_frames=overlap_frames,
            multiple=tf,
            progress=progress,
        )[:, :n]
        return out[0] if squeeze else out

    # ------------------------------------------------------------------------------------------
    # generate

    def generate(
        self,
        prompts: list[str] | str,
        *,
        duration: float = 5.0,
        steps: int | None = None,
        sampler: str = "ddim",
        guidance_scale: float | None = None,
        guidance_rescale: float | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        num_samples: int = 1,
        batch_size: int = 4,
        dtype: str = "fp32",
        compile: bool | str = False,
        frame_level_limit: float | None = None,
        progress: ProgressFn | None = None,
    ) -> Tensor:
        """Text -> waveforms [len(prompts) * num_samples, round(duration * sample_rate)], prompt-major.

        Item i (prompt i // num_samples, sample i % num_samples) starts from noise seeded `seed + i`, so
        it equals a lone run with `seed + i` (up to float rounding, ~1e-4 at strong guidance). Guidance > 1 pushes towards
        the prompt and away from `negative_prompt` (default: the empty prompt); 1 disables guidance; None takes the model's
        recommendation (`default_guidance_scale`); `guidance_rescale` (phi in [0, 1], None: the model's
        `default_guidance_rescale`) reins in the over-saturation of strong guidance. Decoded mel frames louder than `frame_level_limit`
        (None: the model's `default_frame_level_limit`; inf: no limit) are turned down to it.
        `steps` None takes the model's recommendation (`default_steps`).
        `dtype` ("fp32", "fp16", "bf16", "auto") and `compile` (True or a torch.compile backend name)
        speed up the UNet; see `denoiser`.
        """
        kwargs = {
            "duration": duration,
            "steps": steps,
            "sampler": sampler,
            "guidance_scale": guidance_scale,
            "guidance_rescale": guidance_rescale,
            "negative_prompt": negative_prompt,
            "seed": seed,
            "num_samples": num_samples,
            "batch_size": batch_size,
            "dtype": dtype,
            "compile": compile,
            "frame_level_limit": frame_level_limit,
        }
        return torch.stack([wav for _, wav in self.generate_iter(prompts, progress=progress, **kwargs)])

    def generate_iter(
        self,
        prompts: list[str] | str,
        *,
        duration: float = 5.0,
        steps: int | None = None,
        sampler: str = "ddim",
        guidance_scale: float | None = None,
        guidance_rescale: float | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        num_samples: int = 1,
        batch_size: int = 4,
        dtype: str = "fp32",
        compile: bool | str = False,
        frame_level_limit: float | None = None,
        progress: ProgressFn | None = None,
    ) -> Iterator[tuple[int, Tensor]]:
        """As `generate`, yielding (item index, waveform [N]) as each batch finishes (for writing early)."""
        from .precision import check_compile

        check_progress(progress)
        check_compile(compile)
        if not isinstance(prompts, (str, list, tuple)):
            raise UsageError(f"prompts: expected a string or a list of strings, got {type(prompts).__name__}")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not isinstance(negative_prompt, (str, type(None))):
            raise UsageError("must be a string", negative_prompt=negative_prompt)
        guidance_scale = self.default_guidance_scale if guidance_scale is None else guidance_scale
        steps = self.default_steps if steps is None else steps
        if guidance_rescale is None:
            guidance_rescale = self.default_guidance_rescale
        if frame_level_limit is None:
            frame_level_limit = self.default_frame_level_limit
        self.check_generate_inputs(
            prompts,
            duration,
            steps,
            sampler,
            guidance_scale,
            num_samples,
            batch_size,
            dtype=dtype,
            frame_level_limit=frame_level_limit,
            guidance_rescale=guidance_rescale,
        )
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            logger.info("no seed given: using seed %d", seed)
        items = [p for p in prompts for _ in range(num_samples)]
        seed = check_seeds(seed, len(items))  # output i takes seed + i: all checked before any work
        n_samples = round(duration * self.sample_rate)
        frames = self.frames_for(n_samples, self.time_factor * self.unet_factor)
        if frames * self.hop_length != n_samples:
            logger.info(
                "duration %g s: generating %d mel frames, trimmed to %d samples", duration, frames, n_samples
            )
        n_batches = math.ceil(len(items) / batch_size)
        for b in range(n_batches):
            lo, hi = b * batch_size, min(len(items), (b + 1) * batch_size)

            def callback(done: int, total: int, offset: int = b * steps) -> None:
                if progress is not None:
                    progress(offset + done, n_batches * steps)

            latent = self._sample_latents(
                items[lo:hi],
                [seed + i for i in range(lo, hi)],
                frames,
                steps,
                sampler,
                guidance_scale,
                negative_prompt or "",
                callback,
                dtype=dtype,
                compile=compile,
                guidance_rescale=guidance_rescale,
            )
            wavs = self.decode_latent(latent, n_samples, frame_level_limit=frame_level_limit)
            yield from zip(range(lo, hi), wavs)

    def _check_prompts_readable(self, prompts: Sequence[str]) -> None:
        """Refuse a prompt of which the tokenizer keeps nothing (a zero-width space, a lone accent): it
        would be the empty prompt, generated unconditionally without a word."""
        try:
            tokenizer = getattr(self.text_encoder, "tokenizer", None)
        except ModelError:
            return  # no text encoder to load: `_condition` says so where it is needed
        if tokenizer is None:
            return
        for p in dict.fromkeys(prompts):
            if not tokenizer(p, add_special_tokens=False, verbose=False)["input_ids"]:
                raise UsageError(f"prompt {p!r} has no text the text encoder can read")

    def check_generate_inputs(
        self,
        prompts: list[str],
        duration: float,
        steps: int,
        sampler: str,
        guidance_scale: float | None,
        num_samples: int = 1,
        batch_size: int = 1,
        *,
        dtype: str = "fp32",
        frame_level_limit: float | None = None,
        guidance_rescale: float | None = None,
        text: bool = True,
    ) -> None:
        """Validate generation arguments, each error naming the value and the rule (`text` False: the
        prompts are no text, as for an audio prompt, and the text encoder is not loaded to read them).

        `guidance_scale` None stands for the model's `default_guidance_scale`, `frame_level_limit` None
        for its `default_frame_level_limit`, `guidance_rescale` None for its `default_guidance_rescale`,
        `steps` None for its `default_steps`.
        """
        from .precision import autocast_dtype
        from .samplers import SAMPLERS

        if self.unet is None:
            raise ModelError("this model has no UNet: it can reconstruct and encode, not generate")
        if not prompts:
            raise UsageError("no prompt given: pass at least one")
        for p in prompts:
            if not isinstance(p, str):
                raise UsageError(f"prompt {p!r}: must be a string")
            if not p.strip():
                raise UsageError(f"prompt {p!r} is empty: every prompt needs some text")
        steps = self.default_steps if steps is None else steps
        integers = {"steps": steps, "num_samples": num_samples, "batch_size": batch_size}
        numbers = {"duration": duration, "guidance_scale": guidance_scale}
        numbers.update({"guidance_rescale": guidance_rescale, "frame_level_limit": frame_level_limit})
        for name, value in integers.items():
            if not is_integer(value):
                raise UsageError("must be an integer", **{name: value})
        for name, value in numbers.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, Real)):
                raise UsageError("must be a number", **{name: value})
        if not (is_real(duration) and math.isfinite(duration) and 0 < duration <= MAX_DURATION):
            raise UsageError(f"must be > 0 and <= {MAX_DURATION:g} s", duration=duration)
        if round(duration * self.sample_rate) < 1:
            raise UsageError(f"shorter than one sample at {self.sample_rate} Hz", duration=duration)
        if not 1 <= steps < self.schedule.timesteps:  # the DDIM table needs t <= T - 1
            raise UsageError(f"must be between 1 and {self.schedule.timesteps - 1}", steps=steps)
        if steps < 3:  # the reference's table: 1 step sits at t = 1, 2 steps start at t = T / 2
            first = (steps - 1) * self.schedule.timesteps // steps + 1
            logger.info(  # info, not a warning: tests and smoke runs take 1-2 steps on purpose
                "steps %d: sampling starts at t = %d of %d, treating the starting noise as a partly clean "
                "latent: expect noise; 10 or more steps denoise",
                steps,
                first,
                self.schedule.timesteps,
            )
        if not isinstance(sampler, str) or sampler not in SAMPLERS:
            raise UsageError(f"choose one of {', '.join(SAMPLERS)}", sampler=sampler)
        guidance_scale = self.default_guidance_scale if guidance_scale is None else guidance_scale
        if not (math.isfinite(guidance_scale) and guidance_scale >= 0):
            raise UsageError("must be a finite number >= 0", guidance_scale=guidance_scale)
        if guidance_rescale is not None and not 0 <= guidance_rescale <= 1:  # also refuses NaN
            raise UsageError("must be between 0 and 1", guidance_rescale=guidance_rescale)
        if frame_level_limit is not None:
            self._check_frame_level_limit(frame_level_limit)
        if num_samples < 1:
            raise UsageError("must be >= 1", num_samples=num_samples)
        if text:
            self._check_prompts_readable(prompts)
        if batch_size < 1:
            raise UsageError("must be >= 1", batch_size=batch_size)
        autocast_dtype(dtype, self.device)

    def _condition(self, texts: list[str]) -> dict:
        """UNet keyword arguments for `texts`: token states + mask (crossattn), a pooled vector (film),
        or both (crossattn+film). The pooled vector of a token encoder is the masked mean of its states."""
        mode = self.config.conditioning
        if mode == "film" and hasattr(self.text_encoder, "embed"):
            return {"y": self.text_encoder.embed(texts).to(self.device)}  # CLAP: one unit vector per prompt
        states, mask = self.text_encoder(texts)
        states, mask = states.to(self.device), mask.to(self.device)
        cond = {"context": states, "context_mask": mask} if mode != "film" else {}
        if mode != "crossattn":
            cond["y"] = _masked_mean(states, mask)
        return cond

    def pooled_text(self, texts: list[str]) -> Tensor:
        """One vector [B, E] per text: the masked mean of the token states (a CLAP encoder's own vector)."""
        if hasattr(self.text_encoder, "embed"):
            return self.text_encoder.embed(texts).to(self.device)
        states, mask = self.text_encoder(texts)
        return _masked_mean(states.to(self.device), mask.to(self.device))

    @property
    def can_rank(self) -> bool:
        """Whether `rank` works: the model has a ranker, or a CLAP text encoder (whose audio branch ranks)."""
        return self.ranker is not None or self._text_is_clap

    @property
    def _text_is_clap(self) -> bool:
        return (self.config.text_encoder or {}).get("type") == "clap"

    def rank(self, prompt: str, wavs: Tensor) -> Tensor:
        """Scores [K] of candidate waveforms [K, N] (at `sample_rate`) for `prompt`, higher = closer.

        The model's ranker (`audioldm train ranker`) when it has one, else CLAP's text-audio similarity."""
        if self.ranker is None:
            from .variations import rank_candidates

            return rank_candidates(self, prompt, wavs)
        with torch.inference_mode():
            mel = self.frontend(wavs.reshape(-1, wavs.shape[-1]).float().to(self.device))
            return self.ranker(mel, self.pooled_text([prompt]))[:, 0].float().cpu()

    def denoiser(self, cond: dict, *, dtype: str = "fp32", compile: bool | str = False):
        """The UNet as the samplers' `model_fn(x, t) -> prediction` (fp32), closing over `cond`.

        `dtype` "fp16" / "bf16" runs the UNet under `torch.autocast` ("auto": bf16/fp16 on CUDA, fp32
        elsewhere; see `precision.autocast_dtype`); its output is cast back to fp32, so the sampler,
        the VAE and the vocoder never see reduced precision. "fp32" is the plain UNet call.
        `compile=True` (or a backend name such as "eager") runs a torch.compile'd UNet, compiled
        once per pipeline and backend, at its first call. Latents longer than `unet_window_seconds`
        (plus the overlaps) are denoised in blended windows.
        """
        from .precision import autocast, autocast_dtype, compile_failure, compile_failure_types

        amp = autocast_dtype(dtype, self.device)
        unet = self.compiled_unet("inductor" if compile is True else compile) if compile else self.unet
        failures = compile_failure_types() if compile else ()

        def model_fn(x: Tensor, t: Tensor) -> Tensor:
            try:
                with autocast(self.device, amp):
                    out = unet(x, t, **cond)
            except failures as e:
                raise compile_failure(e, compile) from None
            return out.float()

        if self.unet_window_seconds is None:
            return model_fn
        return windowed(model_fn, *self._unet_window_frames(), self.unet_factor)

    def _unet_window_frames(self) -> tuple[int, int]:
        """(core, overlap) latent frames of the UNet's windows, on the UNet's multiple, such that a
        latent generated for up to `unet_window_seconds` + 2 overlaps is one window."""
        m, tf = self.unet_factor, self.time_factor
        overlap = (
            math.ceil(self.unet_window_overlap_seconds * self.sample_rate / self.hop_length / tf / m) * m
        )
        seconds = self.unet_window_seconds + 2 * self.unet_window_overlap_seconds
        whole = self.frames_for(math.ceil(seconds * self.sample_rate), tf * m) // tf
        return max(m, whole - 2 * overlap), overlap

    def guide(self, model_fn_2b, guidance_scale: float, guidance_rescale: float = 0.0):
        """`samplers.classifier_free_guidance` of a 2B-batch denoiser (unconditional half first) with this
        model's schedule, for the guidance rescale's conversions to and from the clean latent."""
        from . import samplers
        from .schedule import alphas_cumprod

        return samplers.classifier_free_guidance(
            model_fn_2b,
            guidance_scale,
            rescale=guidance_rescale,
            alphas_cumprod=alphas_cumprod(self.schedule).to(self.device),
            prediction_type=self.schedule.prediction_type,
        )

    def compiled_unet(self, backend: str = "inductor") -> nn.Module:
        """The UNet wrapped by torch.compile with `backend`, made on first use and kept."""
        from .precision import compile_module

        if self.unet is None:
            raise ModelError("this model has no UNet: it can reconstruct and encode, not generate")
        source, compiled = self._compiled_unets.get(backend, (None, None))
        if source is not self.unet:  # first use, or the UNet was replaced since
            compiled = compile_module(self.unet, backend)
            self._compiled_unets[backend] = (self.unet, compiled)
        return compiled

    def _sample_latents(
        self,
        prompts: list[str],
        seeds: list[int],
        frames: int,
        steps: int,
        sampler: str,
        guidance_scale: float,
        negative: str,
        callback,
        *,
        dtype: str = "fp32",
        compile: bool | str = False,
        guidance_rescale: float = 0.0,
    ) -> Tensor:
        """Run the sampler for one batch; returns scaled latents [B, C, T', F'] (fp32)."""
        from . import samplers
        from .schedule import alphas_cumprod, ddim_timesteps

        shape = (self.latent_channels, frames // self.time_factor, self.mel_config.n_mels // self.freq_factor)
        # 1. noise: one CPU generator per item, so that item i does not depend on the batch it is in
        generators = [make_generator(s) for s in seeds]
        x = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(self.device)
        with torch.inference_mode():
            # 2. text: unconditional (negative prompt) then conditional half, encoded in one batch
            guided = guidance_scale != 1.0
            cond = self._condition([negative] * len(prompts) + prompts if guided else prompts)
            model_fn = self.denoiser(cond, dtype=dtype, compile=compile)
            if guided:
                model_fn = self.guide(model_fn, guidance_scale, guidance_rescale)
            # 3. denoise
            acp = alphas_cumprod(self.schedule).to(self.device)
            timesteps = ddim_timesteps(steps, self.schedule.timesteps)
            latent = samplers.SAMPLERS[sampler](
                model_fn,
                x,
                timesteps,
                acp,
                prediction_type=self.schedule.prediction_type,
                generator=generators,
                callback=callback,
            )
        check_finite_latent(latent, dtype, self.unet)
        return latent


@functools.lru_cache(maxsize=2)
def _load_text_encoder(name: str, max_length: int, device: str):
    """Frozen text encoders are shared between pipelines (loading one takes seconds)."""
    from .text import TextEncoder

    return TextEncoder.from_config({"name": name, "max_length": max_length}, device=device)


def check_finite_latent(latent: Tensor, dtype: str, unet: nn.Module | None = None) -> None:
    """Refuse NaN/inf latents from the sampler instead of writing noise: a reduced-precision run
    overflowed (fp16), the model is broken (`unet` given and holding NaN/inf weights), or the sampling
    itself ran away (a huge guidance scale)."""
    from .precision import autocast_dtype

    if bool(torch.isfinite(latent).all()):
        return
    if autocast_dtype(dtype, latent.device) == torch.float16:  # bf16 has fp32's range: no overflow there
        raise AudioLDMError("the UNet overflowed (non-finite latents); use bf16 or fp32", dtype=dtype)
    if unet is not None and not all(bool(torch.isfinite(p).all()) for p in unet.parameters()):
        raise ModelError("the UNet's weights hold NaN/inf: a broken model (non-finite latents)")
    raise AudioLDMError("sampling gave non-finite latents; lower the guidance scale")


def _as_batch(wav: Tensor) -> Tensor:
    """A waveform [N] or [B, N] of finite float samples as [B, N] (anything else: a UsageError)."""
    if not isinstance(wav, Tensor):
        raise UsageError(
            f"expected a waveform as a torch.Tensor, got {type(wav).__name__} (torch.from_numpy it)"
        )
    if not wav.is_floating_point():
        raise UsageError(
            f"expected float samples in [-1, 1], got a {wav.dtype} tensor (integer PCM: divide by its full scale)"
        )
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2:
        raise UsageError(f"expected a waveform [N] or [B, N], got shape {tuple(wav.shape)}")
    if wav.shape[0] > wav.shape[1] > 0:  # more clips than samples each: soundfile.read's [N, C] layout
        raise UsageError(
            f"expected a waveform [N] or [B, N], got shape {tuple(wav.shape)}: {wav.shape[0]} clips of "
            f"{wav.shape[1]} samples; for a soundfile-style [N, C] array give one channel or the mix: wav.mean(1)"
        )
    if wav.shape[-1] == 0:
        raise UsageError("cannot process an empty waveform (0 samples)")
    if not bool(torch.isfinite(wav).all()):
        raise UsageError("the waveform holds NaN/inf samples")
    return wav
