"""The latent denoiser: the latent-diffusion "openaimodel" UNet with spatial transformers.

Module and parameter names follow the reference AudioLDM code, so official `model.diffusion_model.*`
weights load key for key. Two conditioning modes, both supported by one class:

- cross-attention (`context_dim` set): each transformer block runs self-attention, then
  cross-attention to the text tokens `context [B, L, context_dim]` with a key padding mask, then a
  GEGLU feed-forward;
- FiLM (`extra_film_condition_dim` set, AudioLDM v1): a global vector `y [B, D]` goes through
  `film_emb` and is concatenated to (or, without `extra_film_use_concat`, added to) the time
  embedding; the transformers' second attention is then a second self-attention.

Shapes: latents are (B, C, T, F) with T and F multiples of `downsample_factor`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import UsageError


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """UNet hyper-parameters under the reference's `unet_config.params` names."""

    image_size: int = 64  # unused by the network (it is fully convolutional); kept for reference configs
    in_channels: int = 8  # latent channels of the VAE
    out_channels: int = 8
    model_channels: int = 128  # channels of the first level; GroupNorm needs multiples of 32
    attention_resolutions: tuple[int, ...] = (8, 4, 2)  # downsampling factors that get transformers
    num_res_blocks: int = 2
    channel_mult: tuple[int, ...] = (1, 2, 3, 5)
    num_heads: int = -1  # give num_heads or num_head_channels (the other stays -1)
    num_head_channels: int = 32
    use_spatial_transformer: bool = True  # the only attention flavour AudioLDM uses
    transformer_depth: int = 1
    context_dim: int | None = None  # text-token width for cross-attention; None = self-attention only
    extra_film_condition_dim: int | None = None  # width of the global FiLM vector y (AudioLDM v1: 512 CLAP)
    extra_film_use_concat: bool = False  # concatenate film_emb(y) to the time embedding instead of adding
    use_scale_shift_norm: bool = False
    dropout: float = 0.0
    conv_resample: bool = True
    dims: int = 2
    legacy: bool = True
    use_checkpoint: bool = False  # accepted for reference configs; no effect here
    use_fp16: bool = False  # accepted for reference configs; use autocast instead

    def __post_init__(self) -> None:
        for key in ("attention_resolutions", "channel_mult"):
            object.__setattr__(self, key, tuple(int(v) for v in getattr(self, key)))
        if not self.use_spatial_transformer:
            raise UsageError(
                "unet use_spatial_transformer=False: only the spatial-transformer UNet is supported"
            )
        if self.dims != 2:
            raise UsageError(f"unet dims={self.dims}: only 2-d latents are supported")
        if not self.conv_resample:
            raise UsageError("unet conv_resample=False is not supported")
        if (self.num_heads == -1) == (self.num_head_channels == -1):
            raise UsageError(
                f"unet num_heads={self.num_heads}, num_head_channels={self.num_head_channels}: set exactly one"
            )
        bad = [self.model_channels * m for m in self.channel_mult if (self.model_channels * m) % 32]
        if bad or not self.channel_mult:
            raise UsageError(
                f"unet model_channels={self.model_channels} x channel_mult={list(self.channel_mult)} gives "
                f"{bad or 'no'} channels; every level needs a multiple of 32 (GroupNorm with 32 groups)"
            )
        if self.num_res_blocks < 1 or self.transformer_depth < 1:
            raise UsageError("unet num_res_blocks and transformer_depth must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown unet config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**d)


_FULL = {
    "image_size": 64, "in_channels": 8, "out_channels": 8, "attention_resolutions": [8, 4, 2],
    "num_res_blocks": 2, "channel_mult": [1, 2, 3, 5], "use_spatial_transformer": True,
    "extra_film_condition_dim": 512, "extra_film_use_concat": True,
}  # fmt: skip
# The official checkpoints' UNets (read off fixtures/audioldm/keys) and a tiny text-conditioned one for tests.
UNET_PRESETS: dict[str, dict[str, Any]] = {
    "audioldm-s-full": {**_FULL, "model_channels": 128, "num_head_channels": 32},
    "audioldm-m-full": {**_FULL, "model_channels": 192, "num_head_channels": 32},
    "audioldm-l-full": {**_FULL, "model_channels": 256, "num_head_channels": 64},
    "tiny": {
        "in_channels": 8, "out_channels": 8, "model_channels": 32, "attention_resolutions": [2],
        "num_res_blocks": 1, "channel_mult": [1, 2], "num_head_channels": 16,
        "context_dim": 384,  # all-MiniLM-L6-v2 width
    },
}  # fmt: skip


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding [B, dim] = cat([cos(t f), sin(t f)]), f_i = max_period^(-i / (dim/2))."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def group_norm(channels: int, eps: float = 1e-5) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=eps)


class ResBlock(nn.Module):
    """Two 3x3 convs with the (time [+ FiLM]) embedding added in between, and a residual connection."""

    def __init__(
        self, channels: int, emb_channels: int, out_channels: int, dropout: float, scale_shift: bool
    ):
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(
            group_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, (2 if scale_shift else 1) * out_channels)
        )
        self.out_layers = nn.Sequential(
            group_norm(out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = (
            nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb)[:, :, None, None]  # (B, C', 1, 1)
        if self.scale_shift:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class Attention(nn.Module):
    """Multi-head attention from x [B, N, dim] to context [B, L, context_dim] (x itself when None)."""

    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int, dropout: float):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        ctx = x if context is None else context
        b, n, _ = x.shape
        q = self.to_q(x).view(b, n, self.heads, -1).transpose(1, 2)  # (B, h, N, d)
        k = self.to_k(ctx).view(b, ctx.shape[1], self.heads, -1).transpose(1, 2)  # (B, h, L, d)
        v = self.to_v(ctx).view(b, ctx.shape[1], self.heads, -1).transpose(1, 2)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L), True = attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    """Linear to 2 x dim_out, then value * GELU(gate) (Shazeer 2020)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention (self-attention when context_dim is None), GEGLU MLP."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None, dropout: float):
        super().__init__()
        # Registration order matches the reference state_dict order: attn1, ff, attn2, norm1..3.
        self.attn1 = Attention(dim, None, heads, dim_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = Attention(dim, context_dim, heads, dim_head, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor | None, mask: Tensor | None) -> Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context, mask)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """GroupNorm, 1x1 conv in, transformer blocks over the T*F positions, 1x1 conv out, residual."""

    def __init__(
        self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int | None, dropout: float
    ):
        super().__init__()
        inner = heads * dim_head
        self.norm = group_norm(channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, dim_head, context_dim, dropout) for _ in range(depth)]
        )
        self.proj_out = nn.Conv2d(inner, channels, 1)

    def forward(self, x: Tensor, context: Tensor | None, mask: Tensor | None) -> Tensor:
        b, _, h, w = x.shape
        z = self.proj_in(self.norm(x))
        z = z.flatten(2).transpose(1, 2)  # (B, T*F, inner)
        for block in self.transformer_blocks:
            z = block(z, context, mask)
        z = z.transpose(1, 2).reshape(b, -1, h, w)
        return x + self.proj_out(z)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    """A block list that hands the embedding to ResBlocks and the context to SpatialTransformers."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None, mask: Tensor | None) -> Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context, mask)
            else:
                x = layer(x)
        return x


class UNetModel(nn.Module):
    """The reference latent-diffusion UNet; `forward(x, timesteps, context, context_mask, y)` -> prediction."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        mc, emb_dim = cfg.model_channels, cfg.model_channels * 4
        film = cfg.extra_film_condition_dim
        res_emb = emb_dim * 2 if film and cfg.extra_film_use_concat else emb_dim
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if film:
            self.film_emb = nn.Linear(film, emb_dim)

        def res(ch_in: int, ch_out: int) -> ResBlock:
            return ResBlock(ch_in, res_emb, ch_out, cfg.dropout, cfg.use_scale_shift_norm)

        def attn(ch: int) -> SpatialTransformer:
            heads, dim_head = self._heads(ch)
            return SpatialTransformer(
                ch, heads, dim_head, cfg.transformer_depth, cfg.context_dim, cfg.dropout
            )

        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))]
        )
        skip_chans, ch, ds = [mc], mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(res(ch, ch), attn(ch), res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))

    def _heads(self, ch: int) -> tuple[int, int]:
        """(heads, dim_head) at width ch, with the reference's `legacy` rule."""
        cfg = self.cfg
        if cfg.num_head_channels == -1:
            heads, dim_head = cfg.num_heads, ch // cfg.num_heads
        else:
            heads, dim_head = ch // cfg.num_head_channels, cfg.num_head_channels
        if cfg.legacy:
            dim_head = ch // heads
        return heads, dim_head

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | UNetConfig | str) -> UNetModel:
        """Build from a config dict (reference key names), a `UNetConfig`, or a `UNET_PRESETS` name."""
        if isinstance(cfg, str):
            if cfg not in UNET_PRESETS:
                raise UsageError(f"unknown UNet preset {cfg!r}; choose one of {sorted(UNET_PRESETS)}")
            cfg = UNET_PRESETS[cfg]
        return cls(cfg if isinstance(cfg, UNetConfig) else UNetConfig.from_dict(dict(cfg)))

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able config that `from_config` accepts."""
        return self.cfg.to_dict()

    @property
    def downsample_factor(self) -> int:
        """Latent T and F must be multiples of this (2 ** number of downsamplings); pad to it."""
        return 2 ** (len(self.cfg.channel_mult) - 1)

    def forward(
        self,
        x: Tensor,
        timesteps: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        y: Tensor | None = None,
    ) -> Tensor:
        """Predict noise (or v) for latents x (B, C, T, F) at integer timesteps [B].

        Args:
            context: text token states (B, L, context_dim) for cross-attention models.
            context_mask: (B, L) bool, True = real token; padded tokens are ignored as keys.
            y: (B, extra_film_condition_dim) global FiLM vector for FiLM models ((B, 1, D) is accepted).
        Returns:
            (B, out_channels, T, F).
        """
        cfg = self.cfg
        factor = self.downsample_factor
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(
                f"latent size {tuple(x.shape[-2:])} must be a multiple of {factor}; pad it first"
            )
        if (context is not None) != (cfg.context_dim is not None):
            raise ValueError(f"context is {'required' if cfg.context_dim else 'not used'} by this UNet")
        if (y is not None) != bool(cfg.extra_film_condition_dim):
            raise ValueError(
                f"y is {'required' if cfg.extra_film_condition_dim else 'not used'} by this UNet"
            )
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, cfg.model_channels).to(x.dtype))
        if y is not None:
            film = self.film_emb(y.reshape(y.shape[0], -1))
            emb = torch.cat([emb, film], dim=-1) if cfg.extra_film_use_concat else emb + film
        mask = None
        # An all-kept mask is skipped (the plain attention), except under torch.compile, where reading
        # the mask's values would split the graph: there the mask is applied (the same up to rounding).
        if context_mask is not None and (_compiling() or not bool(context_mask.all())):
            # A prompt with no kept token would give NaN; let it attend to every position instead.
            mask = context_mask.bool() | ~context_mask.bool().any(dim=-1, keepdim=True)
        h, skips = x, []
        for block in self.input_blocks:
            h = block(h, emb, context, mask)
            skips.append(h)
        h = self.middle_block(h, emb, context, mask)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context, mask)
        return self.out(h)


def _compiling() -> bool:
    """True while torch.compile traces (torch >= 2.3; older: never)."""
    compiler = getattr(torch, "compiler", None)
    return bool(getattr(compiler, "is_compiling", lambda: False)())


__all__ = ["UNET_PRESETS", "UNetConfig", "UNetModel", "timestep_embedding"]
