"""Long inputs in overlapping chunks with a linear cross-fade, so that memory stays bounded.

The caller renders the waveform (or any tensor whose last axis is time, `hop` samples per frame) of any
span of frames `[lo, hi)` (with whatever context it needs);
`overlap_add` splits the whole length into cores of `chunk_frames`, renders each core widened by
`overlap_frames` on both sides, and blends neighbours with complementary linear ramps `overlap_frames`
wide centred on each border. The frames nearest a rendered span's edge, the least accurate ones,
get weight 0, so a convolutional renderer gives the unchunked result exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import Tensor

from .errors import UsageError
from .runtime import ProgressFn, check_progress, is_integer

logger = logging.getLogger(__name__)

# render(lo, hi) -> waveform [B, (hi - lo) * hop] for mel frames [lo, hi) (or [..., (hi - lo) * hop])
RenderFn = Callable[[int, int], Tensor]


def plan_chunks(
    total: int, chunk_frames: int, overlap_frames: int, multiple: int = 1
) -> list[tuple[int, int]]:
    """Core spans [start, end) covering [0, total); one span when chunking would not save anything.

    Spans and the overlap are rounded to `multiple` frames (the VAE's time factor).
    """
    chunk = max(multiple, chunk_frames // multiple * multiple)
    margin = _margin(overlap_frames, multiple)
    if total <= chunk + 2 * margin:
        return [(0, total)]
    return [(start, min(total, start + chunk)) for start in range(0, total, chunk)]


def _margin(overlap_frames: int, multiple: int) -> int:
    return math.ceil(max(0, overlap_frames) / multiple) * multiple


def crossfade_weights(lo: int, hi: int, start: int, end: int, margin: int, total: int) -> Tensor:
    """Per-frame weights [hi - lo] of the span rendered on [lo, hi) whose core is [start, end):
    1 on the core, linear ramps `margin` wide centred on `start` and `end` (none at 0 and `total`)."""
    t = torch.arange(lo, hi, dtype=torch.float32) + 0.5
    w = torch.ones(hi - lo)
    if start > 0 and margin > 0:
        w = torch.minimum(w, ((t - (start - margin / 2)) / margin).clamp(0, 1))
    if end < total and margin > 0:
        w = torch.minimum(w, (((end + margin / 2) - t) / margin).clamp(0, 1))
    return w


def windowed(
    model_fn: Callable[[Tensor, Tensor], Tensor], chunk_frames: int, overlap_frames: int, multiple: int = 1
) -> Callable[[Tensor, Tensor], Tensor]:
    """A denoiser `model_fn(x, t)` over a latent [B, C, T', F'] run window by window along T' and blended
    (MultiDiffusion, Bar-Tal et al. 2023): cores of `chunk_frames`, each seen with `overlap_frames` of
    its neighbours on both sides and cross-faded as `overlap_add` does, on the UNet's `multiple`. A
    latent no longer than one window is one call, as without windows; longer ones cost time linear in
    their length instead of attention's quadratic. Every window has the same length (the first and last
    are shifted inwards, their extra frames weighted 0), so a compiled UNet compiles once."""

    told: set[int] = set()

    def fn(x: Tensor, t: Tensor) -> Tensor:
        total = x.shape[2]
        spans = plan_chunks(total, chunk_frames, overlap_frames, multiple)
        if len(spans) == 1:
            return model_fn(x, t)
        margin = _margin(overlap_frames, multiple)
        size = min(total, spans[0][1] - spans[0][0] + 2 * margin)
        if total not in told:  # once per length, not at every step
            told.add(total)
            logger.info("a latent of %d frames: denoised in %d blended windows", total, len(spans))
        out, weight = None, torch.zeros(total, device=x.device)
        for start, end in spans:
            lo = max(0, min(start - margin, total - size))
            hi = lo + size
            piece = model_fn(x[:, :, lo:hi], t)
            if out is None:
                out = torch.zeros(*piece.shape[:2], total, *piece.shape[3:], device=piece.device)
            w = crossfade_weights(lo, hi, start, end, margin, total).to(piece.device)
            out[:, :, lo:hi] += piece * w[:, None]
            weight[lo:hi] += w
        return out / weight[:, None]

    return fn


def overlap_add(
    render: RenderFn,
    total: int,
    hop: int,
    *,
    chunk_frames: int,
    overlap_frames: int,
    multiple: int = 1,
    progress: ProgressFn | None = None,
) -> Tensor:
    """Waveform [B, total * hop] of `total` mel frames, rendered chunk by chunk and cross-faded (any
    leading dimensions: the last axis is the time axis that is blended)."""
    if not is_integer(chunk_frames) or chunk_frames < 1:
        raise UsageError("must be an integer >= 1", chunk_frames=chunk_frames)
    if not is_integer(overlap_frames) or overlap_frames < 0:
        raise UsageError("must be an integer >= 0", overlap_frames=overlap_frames)
    check_progress(progress)
    spans = plan_chunks(total, chunk_frames, overlap_frames, multiple)
    margin = _margin(overlap_frames, multiple)
    out, weight = None, torch.zeros(total * hop)
    for k, (start, end) in enumerate(spans):
        lo, hi = max(0, start - margin), min(total, end + margin)
        piece = render(lo, hi).float().cpu()
        if out is None:
            out = torch.zeros(*piece.shape[:-1], total * hop)
        w = crossfade_weights(lo, hi, start, end, margin, total).repeat_interleave(hop)
        out[..., lo * hop : hi * hop] += piece * w
        weight[lo * hop : hi * hop] += w
        if progress is not None:
            progress(k + 1, len(spans))
    return out / weight.clamp_min(1e-8)
