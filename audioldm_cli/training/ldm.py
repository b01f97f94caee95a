"""`train ldm`: the latent-diffusion UNet over a frozen VAE and text encoder (DDPM, eps or v target).

    z   = VAE posterior sample of the segment's mel * scale_factor    (or a precomputed latent row)
    t   ~ U{0, T-1}, noise ~ N(0, I)        (one generator per global sample: process-count invariant)
    x_t = sqrt(a_t) z + sqrt(1 - a_t) noise
    loss = MSE(unet(x_t, t, text(caption)), target)      target = noise (eps) or v
With loss.min_snr_gamma = g each sample's MSE is weighted by min(SNR_t, g) / SNR_t (eps) or
min(SNR_t, g) / (SNR_t + 1) (v), SNR_t = a_t / (1 - a_t): "Min-SNR" (Hang et al., 2023), which stops the
nearly clean timesteps from dominating the gradient and converges faster; None (the default) is plain MSE.
Captions are replaced by "" with probability train.caption_dropout (the unconditional branch of CFG).
With train.caption_noise = s > 0 the encoder outputs of every other caption (token states and pooled
vector, each with its own draw) get Gaussian noise of std u * s, u ~ U[0, 1) per sample: the UNet then
sees the neighbourhood of each caption, not only the point, which is where new phrasings land (a
paraphrase's sentence vector lies farther from its nearest train caption than train captions lie from
each other). The empty caption stays exact: it is the unconditional side of guidance.
The exported model uses the EMA weights of the UNet.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..schedule import ScheduleConfig, add_noise, alphas_cumprod, training_target
from .common import batch_noise, batch_uniform, batch_uniform_ints, text_encoder_spec
from .config import TrainConfig, check_keys
from .loop import Stage

logger = logging.getLogger(__name__)

TEXT_CACHE_SIZE = 2048  # encoded captions kept (64 tokens x 384 floats = 100 KB each for MiniLM)


@dataclass
class LDMLossConfig:
    val_steps: int = 10  # DDIM steps of the validation audio
    val_guidance: float = 3.0
    val_timesteps: tuple[int, ...] = (100, 500, 900)  # fixed timesteps of the validation loss
    min_snr_gamma: float | None = None  # Min-SNR loss weighting (5 is the paper's choice); None: plain MSE

    @classmethod
    def from_dict(cls, d: dict) -> LDMLossConfig:
        d = dict(check_keys(cls, d or {}, "loss"))
        if "val_timesteps" in d:
            d["val_timesteps"] = tuple(int(t) for t in d["val_timesteps"])
        gamma = d.get("min_snr_gamma")
        if gamma is not None:
            if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
                raise UsageError(f"loss.min_snr_gamma={gamma!r}: must be a positive number (or null: plain MSE)")
            d["min_snr_gamma"] = float(gamma)
        return cls(**d)


def min_snr_weights(t: torch.Tensor, acp: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Per-sample loss weights [B] of Min-SNR-gamma: min(SNR, gamma) / SNR for eps, / (SNR + 1) for v."""
    a = acp[t].double()
    snr = a / (1.0 - a)
    clipped = snr.clamp(max=gamma)
    return (clipped / (snr + 1.0) if prediction_type == "v" else clipped / snr).float()


class LDMStage(Stage):
    """Trains `unet` on latents of `pipe`'s frozen VAE, conditioned through `pipe`'s text encoder."""

    name = "ldm"
    ema = ("unet",)

    def __init__(
        self, pipe, unet: nn.Module, loss: LDMLossConfig, *, seed: int = 0, caption_noise: float = 0.0
    ):
        self.pipe, self.loss, self.seed, self.caption_noise = pipe, loss, seed, caption_noise
        self.modules = {"unet": unet}
        self.optimizers = {"unet": ("unet",)}
        self.acp = alphas_cumprod(pipe.schedule)
        self._text_cache: OrderedDict[str, dict] = OrderedDict()  # caption -> encoder outputs (LRU)

    @property
    def sample_rate(self) -> int:
        return self.pipe.sample_rate

    def segment_frames(self, seconds: float) -> int:
        """Mel frames per segment: a multiple of the VAE time factor times the UNet's downsampling."""
        unit = self.pipe.time_factor * 2 ** (len(self.modules["unet"].config["channel_mult"]) - 1)
        return max(unit, round(seconds * self.sample_rate / self.pipe.hop_length / unit) * unit)

    def to(self, device: torch.device) -> None:
        pipe = self.pipe
        pipe.device = device
        for module in (pipe.frontend, pipe.vae, pipe.vocoder):
            module.to(device)
        pipe.text_encoder.to(device)
        self.acp = self.acp.to(device)

    def condition(self, captions: list[str]) -> dict:
        """UNet keyword arguments for the captions (cached: the frozen encoder pads to a fixed length)."""
        cache = self._text_cache
        for c in dict.fromkeys(captions):
            if c not in cache:  # one at a time: batched, the encoder's output depends (~1e-6) on the batch,
                cache[c] = {k: v[0] for k, v in self.pipe._condition([c]).items()}  # and resume must be exact
        for c in captions:
            cache.move_to_end(c)
        out = {k: torch.stack([cache[c][k] for c in captions]) for k in cache[captions[0]]}
        while len(cache) > TEXT_CACHE_SIZE:  # bounded: AudioCaps has ~50k distinct captions
            cache.popitem(last=False)
        return out

    def noisy_condition(self, cond: dict, captions: list[str], step: int, positions) -> dict:
        """`cond` with train.caption_noise applied: float outputs (not the mask) of non-empty captions get
        N(0, (u s)^2) noise, u ~ U[0, 1) per sample; one generator per global sample, as `batch_noise`."""
        s = self.caption_noise
        if not s > 0:
            return cond
        kept = torch.tensor([bool(c) for c in captions], dtype=torch.float32)
        scale = batch_uniform(self.seed, step, positions, salt=37) * s * kept
        out = dict(cond)
        for salt, key in enumerate(k for k in ("context", "y") if k in cond):
            value = cond[key]
            noise = batch_noise(tuple(value.shape[1:]), self.seed, step, positions, salt=41 + salt)
            shape = (-1,) + (1,) * (value.dim() - 1)
            out[key] = value + (scale.view(shape) * noise).to(value.device, value.dtype)
        return out

    @torch.no_grad()
    def latents(self, batch: dict, step: int) -> torch.Tensor:
        """Scaled latents [B, C, T', F'] of the batch: precomputed, or a posterior sample of its mel."""
        if "latent" in batch:
            return batch["latent"].float()
        pipe = self.pipe
        audio = batch["audio"].float()
        mel = pipe.mel(audio, audio.shape[-1] // pipe.hop_length)
        posterior = pipe.vae.encode(mel)
        noise = batch_noise(tuple(posterior.mean.shape[1:]), self.seed, step, batch["positions"], salt=23)
        return (posterior.mean + posterior.std * noise.to(mel.device)) * pipe.scale_factor

    def train_step(self, batch: dict, step: int):
        z = self.latents(batch, step)
        t = batch_uniform_ints(self.pipe.schedule.timesteps, self.seed, step, batch["positions"], salt=29).to(
            z.device
        )
        noise = batch_noise(tuple(z.shape[1:]), self.seed, step, batch["positions"], salt=31).to(z.device)
        x_t = add_noise(z, noise, t, self.acp)
        captions = batch["caption"]
        cond = self.noisy_condition(self.condition(captions), captions, step, batch["positions"])
        pred = self.modules["unet"](x_t, t, **cond)
        kind = self.pipe.schedule.prediction_type
        target = training_target(z, noise, t, self.acp, kind)
        if self.loss.min_snr_gamma is None:
            loss = F.mse_loss(pred.float(), target)
            return {"unet": loss}, {"loss/diffusion": loss}
        per_sample = (pred.float() - target).pow(2).flatten(1).mean(1)
        weighted = (min_snr_weights(t, self.acp, self.loss.min_snr_gamma, kind) * per_sample).mean()
        return {"unet": weighted}, {"loss/diffusion": per_sample.mean().detach(), "loss/weighted": weighted.detach()}

    @torch.no_grad()
    def validate(self, batch: dict):
        unet = self.modules["unet"]
        unet = unet.module if hasattr(unet, "module") else unet
        z = self.latents(batch, 0)
        cond = self.condition(batch["caption"])
        noise = batch_noise(tuple(z.shape[1:]), self.seed, 0, batch["positions"], salt=37).to(z.device)
        results = {}
        for ts in self.loss.val_timesteps:
            t = torch.full((z.shape[0],), min(ts, self.pipe.schedule.timesteps - 1), device=z.device)
            pred = unet(add_noise(z, noise, t, self.acp), t, **cond)
            target = training_target(z, noise, t, self.acp, self.pipe.schedule.prediction_type)
            results[f"diffusion_t{int(t[0])}"] = float(F.mse_loss(pred.float(), target))
        audio = {}
        captions = [c for c in batch["caption"] if c.strip()]
        if captions and self.loss.val_steps > 0:
            from ..pipeline import AudioLDM

            pipe = AudioLDM(
                self.pipe.config,
                vae=self.pipe.vae,
                vocoder=self.pipe.vocoder,
                unet=copy.deepcopy(unet),
                device=self.pipe.device,
            )
            pipe._text_encoder = self.pipe.text_encoder
            seconds = z.shape[2] * self.pipe.time_factor * self.pipe.hop_length / self.sample_rate
            waves = pipe.generate(
                captions,
                duration=seconds,
                steps=self.loss.val_steps,
                guidance_scale=self.loss.val_guidance,
                seed=0,
            )
            audio = {f"sample_{i}": w for i, w in enumerate(waves)}
        return results, audio

    def export(self, folder: Path, modules: dict[str, nn.Module]) -> None:
        from .common import write_model_folder

        pipe = self.pipe
        entry = pipe.config.components["vocoder"]
        write_model_folder(
            folder,
            pipe.mel_config,
            copy.deepcopy(pipe.vae).cpu(),
            entry if isinstance(entry, dict) else None,
            copy.deepcopy(pipe.vocoder).cpu(),
            unet=copy.deepcopy(modules["unet"]).float().cpu(),
            text_encoder=pipe.text_encoder.config,
            schedule=pipe.schedule.to_dict(),
            conditioning=pipe.config.conditioning,
        )


def build_ldm_stage(
    doc: dict,
    cfg: TrainConfig,
    *,
    init_from: str | None = None,
    vocoder: str | None = None,
    resume: bool = False,
):
    """The LDM stage: --init-from MODEL gives the frozen VAE and vocoder (and the UNet to fine-tune)."""
    from ..checkpoint import PipelineConfig
    from ..pipeline import AudioLDM
    from ..unet import UNetModel
    from .run import Built

    if not init_from:
        raise UsageError(
            "train ldm needs a model folder to start from, with a trained VAE and vocoder "
            "(e.g. the export/ of `audioldm train vae`)",
            init_from=None,
        )
    if vocoder:
        raise UsageError(
            "train ldm takes its vocoder from the model it starts from; give none", vocoder=vocoder
        )
    loss = LDMLossConfig.from_dict(doc.get("loss", {}))
    pipe = AudioLDM.from_pretrained(init_from)
    pcfg = pipe.config.to_dict()
    pcfg["text_encoder"] = text_encoder_spec(doc, pcfg)
    pcfg["schedule"] = {**pcfg.get("schedule", {}), **doc.get("schedule", {})}
    pcfg["conditioning"] = doc.get("conditioning", pcfg["conditioning"])
    try:
        pcfg["schedule"] = ScheduleConfig.from_dict(pcfg["schedule"]).to_dict()
    except (TypeError, ValueError) as e:
        raise UsageError(f"config 'schedule': {e}") from None
    if doc.get("model"):
        torch.manual_seed(cfg.seed)
        unet = UNetModel.from_config(dict(doc["model"]))
        if pipe.unet is not None and not resume:
            logger.warning("config 'model' given: training a new UNet instead of the one in %s", init_from)
    elif pipe.unet is not None:
        unet = copy.deepcopy(pipe.unet)
        before = pipe.schedule.to_dict()
        changed = [f"{k} {v!r}" for k, v in pcfg["schedule"].items() if v != before[k]]
        if changed and not resume:
            logger.warning(
                "config 'schedule' differs from %s's (%s): its UNet is fine-tuned to the new one",
                init_from,
                ", ".join(changed),
            )
    else:
        raise UsageError(
            f"{init_from} has no UNet to fine-tune: give its architecture in the config 'model' section"
        )
    pipe.unet = None
    # the stage trains (targets, noise levels) and exports with the merged schedule and text encoder
    pipe.reconfigure(PipelineConfig.from_dict({**pcfg, "components": {**pcfg["components"], "unet": "unet"}}))
    _check_unet(pipe, unet)
    stage = LDMStage(
        pipe, unet.train().requires_grad_(True), loss, seed=cfg.seed, caption_noise=cfg.caption_noise
    )
    frames = stage.segment_frames(cfg.segment_seconds)
    sections = {
        "model": unet.config,
        "loss": asdict(loss),
        "text_encoder": pcfg["text_encoder"],
        "schedule": pcfg["schedule"],
        "conditioning": pcfg["conditioning"],
    }
    return Built(
        stage,
        sections,
        frames * pipe.hop_length,
        require_captions=True,
        caption_dropout=cfg.caption_dropout,
        latent_segment=frames // pipe.time_factor,
        latent_pad=silence_latent(pipe, frames),
    )


@torch.no_grad()
def silence_latent(pipe, frames: int) -> torch.Tensor:
    """[C, F] the scaled posterior mean of silence (a middle frame of `frames` mel frames of it): what pads
    a latent clip shorter than the segment, as zero-padded audio encodes (zeros decode to a loud floor)."""
    mel = pipe.mel(torch.zeros(1, frames * pipe.hop_length, device=pipe.device), frames)
    z = pipe.vae.encode(mel).mean * pipe.scale_factor  # [1, C, T', F]
    return z[0, :, z.shape[2] // 2].float().cpu()


def _check_unet(pipe, unet: nn.Module) -> None:
    """The UNet must fit the VAE latents and the text encoder width (before any step is taken)."""
    from ..checkpoint import CONDITIONINGS

    ucfg = unet.config
    if ucfg["in_channels"] != pipe.latent_channels or ucfg["out_channels"] != pipe.latent_channels:
        raise UsageError(
            f"UNet in/out channels {ucfg['in_channels']}/{ucfg['out_channels']}: must equal the "
            f"VAE latent channels {pipe.latent_channels}"
        )
    width = pipe.text_encoder.dim
    for key in CONDITIONINGS[pipe.config.conditioning]:
        if ucfg.get(key) != width:
            raise UsageError(f"UNet {key} {ucfg.get(key)}: must equal the text encoder width {width}")
