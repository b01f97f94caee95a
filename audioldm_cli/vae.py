"""AutoencoderKL: the mel-spectrogram VAE of AudioLDM (first stage of the latent diffusion model).

    mel [B, 1, T, F] -> split_subbands -> Encoder -> quant_conv -> posterior N(mean, exp(logvar))
    z [B, C, T/t, F/f] -> post_quant_conv -> Decoder -> merge_subbands -> mel [B, 1, T, F]

Module and parameter names follow the official AudioLDM code, so its `first_stage_model.*` weights
load key-for-key (`load_first_stage_from_ckpt`). Frames are time-major: height = time, width = mel bins.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vocoder.checkpoint import load_state_dict_strict, torch_load_safe

from .errors import ModelError, UsageError
from .frontend import merge_subbands, split_subbands

logger = logging.getLogger(__name__)

# ddconfig keys with their defaults (official AudioLDM names). `resolution` only places attention.
DDCONFIG_DEFAULTS: dict = {
    "double_z": True,
    "z_channels": 8,
    "resolution": 256,
    "downsample_time": False,
    "in_channels": 1,
    "out_ch": 1,
    "ch": 128,
    "ch_mult": [1, 2, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
    "downsample_time_stride4_levels": [],
}
# AutoencoderKL.refine: Adam step size relative to the latents' standard deviation (chosen on val clips
# other than the benchmark's: benchmarks/RESULTS.md, "Latent refinement").
REFINE_LR = 0.25
# Keys of the official first_stage_config "params" that only matter to the reference's training code.
IGNORED_KEYS = frozenset(
    [
        "image_key",
        "monitor",
        "time_shuffle",
        "lossconfig",
        "ckpt_path",
        "ignore_keys",
        "base_learning_rate",
        "batchsize",
        "sampling_rate",
        "reload_from_ckpt",
    ]
)

VAE_PRESETS: dict[str, dict] = {
    # The first stage of audioldm-s-full, -m-full and -l-full (same weights layout, 55.4 M parameters).
    "audioldm-s-full": {
        "ddconfig": dict(DDCONFIG_DEFAULTS),
        "embed_dim": 8,
        "subband": 1,
        "scale_factor": 1.0,
    },
    # For tests and examples: same downsampling (4 x 4) and latent width (8) as s-full, ~1 M parameters.
    "tiny": {
        "ddconfig": {**DDCONFIG_DEFAULTS, "ch": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 1},
        "embed_dim": 8,
        "subband": 1,
        "scale_factor": 1.0,
    },
}


def _silu(x: torch.Tensor) -> torch.Tensor:
    # In place when no graph is recorded: saves one full-size activation per call at inference.
    return F.silu(x, inplace=not torch.is_grad_enabled())


NORMS = ("group", "channel")  # ddconfig "norm" (not an AudioLDM key: absent means "group")


class ChannelNorm(nn.Module):
    """Normalises each time-frequency position over its channels (a per-position LayerNorm).

    Unlike GroupNorm, whose statistics span the whole input, an output frame depends only on its own
    input frame, so a VAE built with it behaves the same on a 1 s training crop as on a whole clip.
    Parameters are named like GroupNorm's (`weight`, `bias`: [C]), so checkpoints keep their keys.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # layer_norm over the last axis of a channels-last view; the result stays channels-last, which
        # the next conv takes as it is (2x faster than normalising along dim 1 in NCHW).
        return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps).permute(
            0, 3, 1, 2
        )


def Normalize(channels: int, norm: str = "group") -> nn.Module:
    if norm == "channel":
        return ChannelNorm(channels)
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """Norm (GroupNorm or ChannelNorm) -> SiLU -> conv3x3, twice, plus a (1x1-projected) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, norm: str = "group"):
        super().__init__()
        self.norm1 = Normalize(in_channels, norm)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = Normalize(out_channels, norm)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_silu(self.norm1(x)))
        h = self.conv2(self.dropout(_silu(self.norm2(h))))
        return h.add_(x if self.nin_shortcut is None else self.nin_shortcut(x))


class AttnBlock(nn.Module):
    """Single-head self-attention over all T*F positions (1x1-conv q/k/v/proj_out), residual."""

    def __init__(self, channels: int, norm: str = "group"):
        super().__init__()
        self.norm = Normalize(channels, norm)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, T*F, C)
        weight = torch.cat([self.q.weight, self.k.weight, self.v.weight]).view(3 * c, c)
        bias = torch.cat([self.q.bias, self.k.bias, self.v.bias])
        q, k, v = F.linear(tokens, weight, bias).unsqueeze(1).chunk(3, dim=-1)  # (B, 1, T*F, C) each
        h = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # (B, T*F, C), scale C^-0.5
        h = F.linear(h, self.proj_out.weight.view(c, c), self.proj_out.bias)
        return h.transpose(1, 2).reshape(b, c, t, f).add_(x)


class Downsample(nn.Module):
    """Halve time and frequency: zero-pad right/bottom by 1, then a 3x3 stride-2 conv (no padding)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class DownsampleTimeStride4(nn.Module):
    """Time / 4, frequency / 2: zero-pad right/bottom by 1, then a 5x5 conv, stride (4, 2), padding 1."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 5, stride=(4, 2), padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


def _phase_taps(scale: int, kernel: int, padding: int) -> list[tuple[int, torch.Tensor]]:
    """Per output phase d of `conv(nearest_upsample(x, scale))` along one axis: the first input offset
    `lo` and a 0/1 matrix [n, kernel] folding the kernel taps onto the n input positions they read.

    Output o = scale * i + d reads upsampled position o - padding + t, i.e. input i + (d - padding + t) // scale.
    """
    phases = []
    for d in range(scale):
        offsets = [(d - padding + t) // scale for t in range(kernel)]
        lo = min(offsets)
        fold = torch.zeros(max(offsets) - lo + 1, kernel)
        fold[[o - lo for o in offsets], range(kernel)] = 1.0
        phases.append((lo, fold))
    return phases


def upsample_conv(x: torch.Tensor, conv: nn.Conv2d, scale: tuple[int, int]) -> torch.Tensor:
    """`conv(F.interpolate(x, scale_factor=scale, mode="nearest"))` without building the upsampled input.

    Each of the sy * sx output phases is a small conv of `x` with kernel taps summed where they read the
    same input pixel (2x2 instead of 3x3 for the x2 upsampler: 2.25x fewer multiply-adds). Same result
    up to float rounding.
    """
    (sy, sx), (ky, kx), (py, px) = scale, conv.kernel_size, conv.padding
    rows, cols = _phase_taps(sy, ky, py), _phase_taps(sx, kx, px)
    top = max(0, -min(lo for lo, _ in rows))
    bottom = max(0, max(lo + f.shape[0] - 1 for lo, f in rows))
    left = max(0, -min(lo for lo, _ in cols))
    right = max(0, max(lo + f.shape[0] - 1 for lo, f in cols))
    b, _, h, w = x.shape
    xp = F.pad(x, (left, right, top, bottom))
    out = x.new_empty(b, conv.out_channels, h, sy, w, sx)  # (B, K, H, sy, W, sx) == (B, K, H*sy, W*sx)
    weight = conv.weight
    for dy, (lo_y, fy) in enumerate(rows):
        for dx, (lo_x, fx) in enumerate(cols):
            k = torch.einsum("ay,bx,kcyx->kcab", fy.to(weight), fx.to(weight), weight)
            y0, x0 = lo_y + top, lo_x + left
            patch = xp[:, :, y0 : y0 + h + fy.shape[0] - 1, x0 : x0 + w + fx.shape[0] - 1]
            out[:, :, :, dy, :, dx] = F.conv2d(patch, k, conv.bias)
    return out.view(b, conv.out_channels, h * sy, w * sx)


class Upsample(nn.Module):
    """Double time and frequency: nearest-neighbour, then a 3x3 conv (computed phase by phase)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_conv(x, self.conv, (2, 2))


class UpsampleTimeStride4(nn.Module):
    """Time x 4, frequency x 2: nearest-neighbour, then a 5x5 conv (padding 2), computed phase by phase."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_conv(x, self.conv, (4, 2))


class _MidBlock(nn.Module):
    def __init__(self, channels: int, dropout: float, norm: str = "group"):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout, norm)
        self.attn_1 = AttnBlock(channels, norm)
        self.block_2 = ResnetBlock(channels, channels, dropout, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Level(nn.Module):
    """One resolution level: `block` (ResnetBlocks), `attn` (one per block or none), then a resampler."""

    def __init__(
        self, blocks: list[nn.Module], attns: list[nn.Module], resample: tuple[str, nn.Module] | None
    ):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)
        self._resample_name = None
        if resample is not None:
            self._resample_name = resample[0]
            self.add_module(*resample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            x = block(x)
            if len(self.attn):
                x = self.attn[i](x)
        if self._resample_name is not None:
            x = getattr(self, self._resample_name)(x)
        return x


class Encoder(nn.Module):
    """[B, in_channels, T, F] -> [B, 2 * z_channels (double_z) or z_channels, T/t, F/f]."""

    def __init__(
        self,
        *,
        ch: int,
        ch_mult: Sequence[int],
        num_res_blocks: int,
        attn_resolutions: Sequence[int],
        in_channels: int,
        resolution: int,
        z_channels: int,
        double_z: bool = True,
        dropout: float = 0.0,
        downsample_time_stride4_levels: Sequence[int] = (),
        norm: str = "group",
        **_unused,
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        widths = [ch] + [ch * m for m in ch_mult]
        res = resolution
        self.down = nn.ModuleList()
        for level in range(len(ch_mult)):
            blocks, attns = [], []
            for j in range(num_res_blocks):
                blocks.append(
                    ResnetBlock(
                        widths[level] if j == 0 else widths[level + 1], widths[level + 1], dropout, norm
                    )
                )
                if res in attn_resolutions:
                    attns.append(AttnBlock(widths[level + 1], norm))
            resample = None
            if level != len(ch_mult) - 1:
                cls = DownsampleTimeStride4 if level in downsample_time_stride4_levels else Downsample
                resample = ("downsample", cls(widths[level + 1]))
                res //= 2
            self.down.append(_Level(blocks, attns, resample))
        self.mid = _MidBlock(widths[-1], dropout, norm)
        self.norm_out = Normalize(widths[-1], norm)
        self.conv_out = nn.Conv2d(widths[-1], 2 * z_channels if double_z else z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(_silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    """[B, z_channels, T/t, F/f] -> [B, out_ch, T, F]; `up[i]` mirrors `down[i]` of the encoder."""

    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult: Sequence[int],
        num_res_blocks: int,
        attn_resolutions: Sequence[int],
        resolution: int,
        z_channels: int,
        dropout: float = 0.0,
        downsample_time_stride4_levels: Sequence[int] = (),
        norm: str = "group",
        **_unused,
    ):
        super().__init__()
        n = len(ch_mult)
        width = ch * ch_mult[-1]
        res = resolution // 2 ** (n - 1)
        self.conv_in = nn.Conv2d(z_channels, width, 3, padding=1)
        self.mid = _MidBlock(width, dropout, norm)
        levels: list[nn.Module] = []
        for level in reversed(range(n)):
            out = ch * ch_mult[level]
            blocks, attns = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(width, out, dropout, norm))
                width = out
                if res in attn_resolutions:
                    attns.append(AttnBlock(out, norm))
            resample = None
            if level != 0:
                # up[level] undoes down[level - 1] of the encoder.
                cls = UpsampleTimeStride4 if level - 1 in downsample_time_stride4_levels else Upsample
                resample = ("upsample", cls(out))
                res *= 2
            levels.insert(0, _Level(blocks, attns, resample))
        self.up = nn.ModuleList(levels)
        self.norm_out = Normalize(width, norm)
        self.conv_out = nn.Conv2d(width, out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(_silu(self.norm_out(h)))


class DiagonalGaussianDistribution:
    """The VAE posterior: mean and log-variance (clamped to [-30, 20]) from `moments` [B, 2C, H, W]."""

    def __init__(self, moments: torch.Tensor):
        self.parameters = moments
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> torch.Tensor:
        return torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """mean + std * noise; the noise is drawn on the generator's device, then moved."""
        device = generator.device if generator is not None else self.mean.device
        noise = torch.randn(self.mean.shape, generator=generator, device=device, dtype=self.mean.dtype)
        return self.mean + self.std * noise.to(self.mean.device)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self, other: DiagonalGaussianDistribution | None = None) -> torch.Tensor:
        """KL(self || other), other = N(0, I) by default; per batch item, averaged over C, H, W
        (the AudioLDM convention: a mean, not the sum of Stable Diffusion's VAE). Returns [B]."""
        if other is None:
            terms = self.mean.pow(2) + self.var - 1.0 - self.logvar
        else:
            terms = (
                (self.mean - other.mean).pow(2) / other.var
                + self.var / other.var
                - 1.0
                - self.logvar
                + other.logvar
            )
        return 0.5 * terms.mean(dim=(1, 2, 3))

    def nll(self, sample: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of `sample`, summed over C, H, W. Returns [B]."""
        terms = math.log(2.0 * math.pi) + self.logvar + (sample - self.mean).pow(2) / self.var
        return 0.5 * terms.sum(dim=(1, 2, 3))


def normalize_config(cfg: Mapping) -> dict:
    """Validate a VAE config (official key names) and fill defaults; raise ModelError on a bad one."""
    known = {"ddconfig", "embed_dim", "subband", "scale_factor"}
    unknown = sorted(set(cfg) - known - IGNORED_KEYS)
    if unknown:
        raise ModelError(f"unknown VAE config keys {unknown}; known keys: {sorted(known)}")
    if "ddconfig" not in cfg or "embed_dim" not in cfg:
        raise ModelError("VAE config needs 'ddconfig' and 'embed_dim'")
    dd = dict(cfg["ddconfig"])
    unknown = sorted(set(dd) - set(DDCONFIG_DEFAULTS) - {"norm"})
    if unknown:
        known = sorted([*DDCONFIG_DEFAULTS, "norm"])
        raise ModelError(f"unknown ddconfig keys {unknown}; known keys: {known}")
    norm = dd.pop("norm", "group")
    if norm not in NORMS:
        raise ModelError(f"VAE ddconfig norm {norm!r}: must be one of {', '.join(NORMS)}")
    dd = {**copy.deepcopy(DDCONFIG_DEFAULTS), **dd}
    if norm != "group":  # AudioLDM's GroupNorm stays implicit, so existing configs keep their hash
        dd["norm"] = norm
    dd["ch_mult"] = [int(m) for m in dd["ch_mult"]]
    dd["attn_resolutions"] = [int(r) for r in dd["attn_resolutions"]]
    dd["downsample_time_stride4_levels"] = [int(r) for r in dd["downsample_time_stride4_levels"]]
    out = {
        "ddconfig": dd,
        "embed_dim": int(cfg["embed_dim"]),
        "subband": int(cfg.get("subband", 1)),
        "scale_factor": float(cfg.get("scale_factor", 1.0)),
    }
    _check_config(out)
    return out


def _check_config(cfg: dict) -> None:
    dd, sub = cfg["ddconfig"], cfg["subband"]
    if sub < 1:
        raise ModelError(f"VAE subband {sub}: must be >= 1")
    if dd["in_channels"] != sub or dd["out_ch"] != sub:
        raise ModelError(
            f"VAE ddconfig in_channels {dd['in_channels']} / out_ch {dd['out_ch']}: "
            f"must both equal subband ({sub}), one channel per frequency band"
        )
    widths = [dd["ch"] * m for m in dd["ch_mult"]]
    if not dd["ch_mult"] or dd["ch"] % 32 or any(w % 32 for w in widths):
        raise ModelError(
            f"VAE ddconfig ch {dd['ch']} x ch_mult {dd['ch_mult']}: every width must be a "
            "multiple of 32 (GroupNorm with 32 groups)"
        )
    bad = [lv for lv in dd["downsample_time_stride4_levels"] if not 0 <= lv < len(dd["ch_mult"]) - 1]
    if bad:
        raise ModelError(
            f"VAE downsample_time_stride4_levels {bad}: levels must lie in "
            f"0..{len(dd['ch_mult']) - 2} (levels that downsample)"
        )
    if dd["downsample_time"]:
        raise ModelError(
            "VAE ddconfig downsample_time=True is not supported; use downsample_time_stride4_levels"
        )
    if dd["num_res_blocks"] < 1 or cfg["embed_dim"] < 1 or dd["z_channels"] < 1:
        raise ModelError("VAE num_res_blocks, z_channels and embed_dim must be >= 1")
    if not math.isfinite(cfg["scale_factor"]) or cfg["scale_factor"] <= 0:
        raise ModelError(f"VAE scale_factor {cfg['scale_factor']}: must be a finite number > 0")


class AutoencoderKL(nn.Module):
    """The AudioLDM VAE. Build with `from_config` (official keys) or from a `VAE_PRESETS` name."""

    def __init__(self, cfg: Mapping):
        super().__init__()
        self._config = normalize_config(cfg)
        dd, embed_dim = self._config["ddconfig"], self._config["embed_dim"]
        self.encoder = Encoder(**dd)
        self.decoder = Decoder(**dd)
        z2 = 2 * dd["z_channels"] if dd["double_z"] else dd["z_channels"]
        self.quant_conv = nn.Conv2d(z2, 2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, dd["z_channels"], 1)

    @classmethod
    def from_config(cls, cfg: Mapping | str) -> AutoencoderKL:
        """Build from a config dict (`ddconfig`, `embed_dim`, `subband`, optional `scale_factor`) or a preset name."""
        if isinstance(cfg, str):
            if cfg not in VAE_PRESETS:
                raise UsageError(f"unknown VAE preset {cfg!r}; choose one of {', '.join(VAE_PRESETS)}")
            cfg = VAE_PRESETS[cfg]
        return cls(cfg)

    @property
    def config(self) -> dict:
        """A JSON-able copy of the config; `from_config(model.config)` rebuilds the same architecture."""
        return copy.deepcopy(self._config)

    @property
    def scale_factor(self) -> float:
        """Latent scaling used by the diffusion model: z_diffusion = z * scale_factor."""
        return self._config["scale_factor"]

    @scale_factor.setter
    def scale_factor(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise ModelError(f"VAE scale_factor {value}: must be a finite number > 0")
        self._config["scale_factor"] = value

    @property
    def subband(self) -> int:
        return self._config["subband"]

    @property
    def latent_channels(self) -> int:
        return self._config["embed_dim"]

    @property
    def time_downsample_factor(self) -> int:
        """Input frames per latent frame: T must be a multiple of this."""
        dd = self._config["ddconfig"]
        levels = range(len(dd["ch_mult"]) - 1)
        return math.prod(4 if lv in dd["downsample_time_stride4_levels"] else 2 for lv in levels)

    @property
    def freq_downsample_factor(self) -> int:
        """Mel bins per latent bin (subbands included): F must be a multiple of this."""
        return self.subband * 2 ** (len(self._config["ddconfig"]["ch_mult"]) - 1)

    def _check_mel(self, mel: torch.Tensor) -> None:
        if mel.ndim != 4 or mel.shape[1] != 1:
            raise UsageError(f"VAE input shape {tuple(mel.shape)}: expected a mel [B, 1, T, F]")
        t, f = mel.shape[2], mel.shape[3]
        tf, ff = self.time_downsample_factor, self.freq_downsample_factor
        if t == 0 or t % tf:
            raise UsageError(
                f"mel length {t} frames: must be a positive multiple of the VAE time "
                f"downsampling {tf}; pad it to {max(tf, -(-t // tf) * tf)}"
            )
        if f % ff:
            raise UsageError(f"mel bins {f}: must be a multiple of the VAE frequency downsampling {ff}")

    def encode(self, mel: torch.Tensor) -> DiagonalGaussianDistribution:
        """mel [B, 1, T, F] -> posterior over latents [B, embed_dim, T / t, F / f] (unscaled)."""
        self._check_mel(mel)
        if self.subband > 1:
            mel = split_subbands(mel, self.subband)
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(mel)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, embed_dim, T / t, F / f] (unscaled) -> mel [B, 1, T, F]."""
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise UsageError(
                f"latent shape {tuple(z.shape)}: expected [B, {self.latent_channels}, T, F] for this VAE"
            )
        out = self.decoder(self.post_quant_conv(z))
        if self.subband > 1:
            out = merge_subbands(out, self.subband)
        return out

    def refine(
        self, mel: torch.Tensor, z: torch.Tensor, steps: int, lr: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fit latents to their mel with the weights fixed: (z [B, C, T', F'], loss [B]).

        The encoder predicts a latent in one pass (amortised inference), which leaves part of what
        the decoder could reproduce on the table. This runs `steps` Adam steps on z (from the given
        one, usually the posterior mean) against mean |decode(z) - mel| and returns, per item, the z
        of the lowest loss seen, so the result is never worse than its start. Items are independent
        (one loss per item; Adam is elementwise). `lr` is in units of each item's latent standard
        deviation (default `REFINE_LR`), so it suits VAEs whose latents have other scales. Gradients
        go to z only. Works inside `torch.inference_mode()` too (the fit leaves it for its own tensors).
        """
        if steps < 0:
            raise UsageError(f"refine steps must be >= 0, got {steps}")
        with torch.inference_mode(False):  # a caller's inference mode would refuse the gradients
            return self._refine(mel, z, steps, lr)

    def _refine(
        self, mel: torch.Tensor, z: torch.Tensor, steps: int, lr: float | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mel = mel.detach().clone()  # clones out of inference mode: inference tensors cannot enter autograd
        start = z.detach().float().clone()
        dtype = self.post_quant_conv.weight.dtype
        with torch.no_grad():
            best_loss = self._item_l1(self.decode(start.to(dtype)), mel)
        if steps == 0:
            return start, best_loss
        best = start.clone()
        # Steps are taken in units of each item's own latent spread: z = start + spread * u, Adam on u.
        spread = start.flatten(1).std(1).clamp_min(1e-6).view(-1, *[1] * (start.dim() - 1))
        u = torch.zeros_like(start, requires_grad=True)
        opt = torch.optim.Adam([u], lr=REFINE_LR if lr is None else lr)

        def keep_better(z: torch.Tensor, loss: torch.Tensor) -> None:
            nonlocal best_loss
            better = loss < best_loss
            best[better] = z[better]
            best_loss = torch.where(better, loss, best_loss)

        for step in range(steps):
            with torch.enable_grad():
                z = start + spread * u
                loss = self._item_l1(self.decode(z.to(dtype)), mel)
                (u.grad,) = torch.autograd.grad(loss.sum(), [u])
            if step:  # the loss of z after `step` updates; the start is already scored
                keep_better(z.detach(), loss.detach())
            opt.step()
        with torch.no_grad():  # the last update's z
            z = start + spread * u
            keep_better(z, self._item_l1(self.decode(z.to(dtype)), mel))
        return best, best_loss

    @staticmethod
    def _item_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.float() - b.float()).abs().flatten(1).mean(1)

    def forward(
        self, mel: torch.Tensor, sample_posterior: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussianDistribution]:
        """Reconstruct (training): returns (decoded mel, posterior)."""
        posterior = self.encode(mel)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z), posterior


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """Guess the VAE config that fits a first-stage state_dict (no prefix), or None if it is not one.

    Attention placement (`attn_resolutions`, `resolution`) cannot be read off the weights: left at defaults.
    """
    try:
        conv_in = state_dict["encoder.conv_in.weight"]
        ch, in_ch = int(conv_in.shape[0]), int(conv_in.shape[1])
        levels = sorted({int(k.split(".")[2]) for k in state_dict if k.startswith("encoder.down.")})
        ch_mult = [int(state_dict[f"encoder.down.{lv}.block.0.conv1.weight"].shape[0]) // ch for lv in levels]
        n_blocks = len({k.split(".")[4] for k in state_dict if k.startswith("encoder.down.0.block.")})
        stride4 = [
            lv
            for lv in levels
            if state_dict.get(f"encoder.down.{lv}.downsample.conv.weight", conv_in).shape[-1] == 5
        ]
        z2 = int(state_dict["encoder.conv_out.weight"].shape[0])
        z_ch = int(state_dict["post_quant_conv.weight"].shape[0])
        embed = int(state_dict["post_quant_conv.weight"].shape[1])
        out_ch = int(state_dict["decoder.conv_out.weight"].shape[0])
    except (KeyError, IndexError, ValueError, AttributeError):
        return None
    dd = {
        **DDCONFIG_DEFAULTS,
        "ch": ch,
        "ch_mult": ch_mult,
        "num_res_blocks": n_blocks,
        "in_channels": in_ch,
        "out_ch": out_ch,
        "z_channels": z_ch,
        "double_z": z2 == 2 * z_ch,
        "downsample_time_stride4_levels": stride4,
    }
    return {"ddconfig": dd, "embed_dim": embed, "subband": in_ch}


# The ddconfig fields that decide the weight shapes (attention placement aside).
ARCH_KEYS = ("ch", "ch_mult", "num_res_blocks", "z_channels", "in_channels", "downsample_time_stride4_levels")


def _describe(cfg: dict) -> str:
    """Name the preset whose weight shapes equal those of `cfg`, else spell out the fields."""
    dd = cfg["ddconfig"]
    for name, preset in VAE_PRESETS.items():
        same = all(dd[k] == preset["ddconfig"][k] for k in ARCH_KEYS)
        if same and cfg["embed_dim"] == preset["embed_dim"]:
            return f"config {name!r}"
    return "a config with " + ", ".join(f"{k}={dd[k]}" for k in ARCH_KEYS) + f", embed_dim={cfg['embed_dim']}"


def load_first_stage_from_ckpt(
    path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor],
    config_name: str | Mapping = "audioldm-s-full",
) -> AutoencoderKL:
    """Build the VAE of an official AudioLDM `.ckpt` (its `first_stage_model.*` entries, vocoder excluded).

    Args:
        path_or_state_dict: a `.ckpt` path (read with `weights_only=True`), or the loaded checkpoint /
            its `state_dict`.
        config_name: a `VAE_PRESETS` name (the s/m/l-full checkpoints all use "audioldm-s-full") or a config.

    Returns the model in eval mode; its `scale_factor` is the checkpoint's when it stores one.
    """
    if isinstance(path_or_state_dict, Mapping):
        ckpt, source = path_or_state_dict, "checkpoint"
    else:
        ckpt, source = torch_load_safe(path_or_state_dict), str(path_or_state_dict)
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, Mapping):
        raise ModelError(f"{source}: 'state_dict' is a {type(state).__name__}, not a dict of tensors")
    prefix = "first_stage_model."
    vae_state = {
        k[len(prefix) :]: v
        for k, v in state.items()
        if k.startswith(prefix) and not k.startswith(prefix + "vocoder.")
    }
    if not vae_state:
        raise ModelError(f"{source} has no '{prefix}*' entries: not an AudioLDM latent-diffusion checkpoint")
    model = AutoencoderKL.from_config(config_name)
    fits = infer_config(vae_state)
    hint = f"The weights fit {_describe(fits)}." if fits else ""
    name = repr(config_name) if isinstance(config_name, str) else "(given)"
    load_state_dict_strict(model, vae_state, f"{source} (VAE config {name})", hint)
    scale = state.get("scale_factor")
    if isinstance(scale, torch.Tensor) and scale.numel() == 1:
        model.scale_factor = float(scale)
        logger.info("VAE scale_factor %.6g read from %s", model.scale_factor, source)
    return model.eval()


__all__ = [
    "VAE_PRESETS",
    "AutoencoderKL",
    "Decoder",
    "DiagonalGaussianDistribution",
    "Encoder",
    "infer_config",
    "load_first_stage_from_ckpt",
    "normalize_config",
    "upsample_conv",
]
