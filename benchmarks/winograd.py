"""Would Winograd convolutions make the VAE and HiFi-GAN faster on CPU? A probe, torch ops only.

    python benchmarks/winograd.py                 # 1 thread; writes the `## Winograd` section of RESULTS.md
    python benchmarks/winograd.py --quick --no-write

The VAE and HiFi-GAN spend ~90 % of their time in 3x3 (VAE) and 1-D k = 3 / 7 / 11 (HiFi-GAN)
convolutions that oneDNN already runs near the CPU's float32 peak, so the only way to be much faster at
equal precision is fewer multiplications. Winograd's minimal filtering F(m, r) computes m outputs of an
r-tap filter with m + r - 1 multiplications per channel pair instead of m * r (F(4 x 4, 3 x 3): 36
instead of 144). This script builds it from torch ops (Toom-Cook matrices from the points 0, +-1, +-2,
+-1/2, ..., infinity; the input transform as a strided single-channel convolution, the products as one
batched matrix product per transform point, the output transform as a transposed convolution or a small
matrix product) and times it against `F.conv1d` / `F.conv2d` on the s-full layer shapes, with the error
relative to the largest output. Dilated 1-D convolutions run as d interleaved undilated ones, over
chunks of 1,024 outputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose vocoder.py would shadow the `vocoder` package

from _common import cpu_name, publish  # noqa: E402

SECTION = "## Winograd"
POINTS = [0, 1, -1, 2, -2, 0.5, -0.5, 3, -3, 1 / 3, -1 / 3, 4, -4]


def toom_cook(m: int, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T [m, a], G [a, r], B^T [a, a]), a = m + r - 1: y = A^T [(G g) * (B^T d)] for a tile d of a inputs.

    From the Toom-Cook product of polynomials evaluated at a - 1 points and infinity: the correlation
    is the transpose of that product, so A^T = V_m^T, G = V_r and B^T = (V_a^-1)^T.
    """
    a = m + r - 1

    def vander(n: int) -> np.ndarray:
        v = np.zeros((a, n))
        for i, p in enumerate(POINTS[: a - 1]):
            v[i] = [p**k for k in range(n)]
        v[a - 1, n - 1] = 1.0  # the point at infinity: the leading coefficient
        return v

    at, g, bt = vander(m).T, vander(r), np.linalg.inv(vander(a)).T
    return tuple(torch.tensor(x, dtype=torch.float64) for x in (at, g, bt))


class Winograd1d:
    """'Same' conv1d (stride 1, any dilation), C_in -> C_out, as F(m, r), `chunk` outputs at a time.

    Working through the signal in chunks keeps the transformed tiles (a / m times the input) in cache:
    on whole s-full signals the unchunked form is up to 2x slower.
    """

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int, m: int, chunk: int = 1024
    ):
        _, _, r = weight.shape
        at, g, bt = toom_cook(m, r)
        self.u = torch.einsum("ar,oir->aoi", g, weight.double()).float().contiguous()  # [a, C_out, C_in]
        self.bt = bt.float()[:, None, :].contiguous()  # input transform as a conv kernel [a, 1, a]
        self.a_mat = at.float().t().contiguous()  # [a, m]
        self.bias, self.d, self.m, self.r, self.a, self.chunk = bias, dilation, m, r, m + r - 1, chunk

    def valid(self, xp: torch.Tensor, n_out: int) -> torch.Tensor:
        """[C_in, >= n_out + d (r - 1)] -> the first n_out outputs of the valid correlation [C_out, n_out]."""
        c, m, r, a, d = xp.shape[0], self.m, self.r, self.a, self.d
        tiles = -(-(-(-n_out // d)) // m)  # tiles per phase
        need = (tiles * m + r - 1) * d
        xp = F.pad(xp, (0, need - xp.shape[-1])) if xp.shape[-1] < need else xp[:, :need]
        if d > 1:  # phase s holds positions s, s + d, ...: an undilated correlation each
            xp = xp.reshape(c, -1, d).transpose(1, 2)
        v = F.conv1d(xp.reshape(c * d, 1, -1), self.bt, stride=m)  # [c*d, a, tiles]
        v = v.view(c, d, a, tiles).permute(2, 0, 1, 3).reshape(a, c, d * tiles)
        c_out = self.u.shape[1]
        prod = torch.empty(c_out, a, d * tiles)
        torch.bmm(self.u, v, out=prod.permute(1, 0, 2))
        y = torch.matmul(prod.transpose(1, 2), self.a_mat)  # [c_out, d*tiles, m]
        return y.view(c_out, d, tiles * m).transpose(1, 2).reshape(c_out, -1)[:, :n_out]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] == 1, "a probe: batch 1 only"
        n, pad = x.shape[-1], self.d * (self.r - 1) // 2
        xp = F.pad(x[0], (pad, pad))
        out = torch.empty(self.u.shape[1], n)
        for t0 in range(0, n, self.chunk):
            k = min(self.chunk, n - t0)
            out[:, t0 : t0 + k] = self.valid(xp[:, t0 : t0 + k + 2 * pad], k)
        if self.bias is not None:
            out += self.bias[:, None]
        return out[None]


class Winograd2d:
    """'Same' 3x3 conv2d (stride 1), C_in -> C_out, as F(m x m, 3 x 3)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, m: int):
        at, g, bt = toom_cook(m, weight.shape[-1])
        a = m + weight.shape[-1] - 1
        u = torch.einsum("ar,bs,oirs->aboi", g, g, weight.double())
        self.u = u.reshape(a * a, *weight.shape[:2]).float().contiguous()  # [a*a, C_out, C_in]
        self.bt = torch.einsum("ai,bj->abij", bt, bt).reshape(a * a, 1, a, a).float().contiguous()
        self.at = torch.einsum("ia,jb->abij", at, at).reshape(a * a, 1, m, m).float().contiguous()
        self.bias, self.m, self.a = bias, m, a

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        m, a = self.m, self.a
        th, tw = -(-h // m), -(-w // m)
        xp = F.pad(x, (1, tw * m + 1 - w, 1, th * m + 1 - h))
        v = F.conv2d(xp.reshape(b * c, 1, *xp.shape[2:]), self.bt, stride=m)  # [b*c, a*a, th, tw]
        v = v.view(b, c, a * a, th * tw).permute(2, 1, 0, 3).reshape(a * a, c, b * th * tw)
        c_out = self.u.shape[1]
        prod = torch.bmm(self.u, v).view(a * a, c_out, b, th * tw).permute(2, 1, 0, 3)
        y = F.conv_transpose2d(prod.reshape(b * c_out, a * a, th, tw), self.at, stride=m)
        y = y.view(b, c_out, th * m, tw * m)[:, :, :h, :w]
        return y if self.bias is None else y + self.bias[:, None, None]


def best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-error", type=float, default=5e-5, help="largest relative error a layer may add")
    ap.add_argument("--quick", action="store_true", help="shorter inputs (smoke check)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = 8 if args.quick else 1
    gen = torch.Generator().manual_seed(0)
    rows, direct_total, best_total = [], 0.0, 0.0
    # HiFi-GAN (audioldm-16k, 1024 mel frames): channels and length after each upsampling stage. Each
    # stage has three ResBlock1 (k = 3, 7, 11), each with convs at dilations 1, 3, 5 and three at 1.
    for c, n in [(512, 5120), (256, 20480), (128, 40960), (64, 81920), (32, 163840)]:
        x = torch.randn(1, c, n // scale, generator=gen)
        for r in (3, 7, 11):
            for d, count in ((1, 4), (3, 1), (5, 1)):
                w = torch.randn(c, c, r, generator=gen) / (c * r) ** 0.5
                bias = torch.randn(c, generator=gen) * 0.1
                pad = d * (r - 1) // 2
                with torch.inference_mode():
                    ref = F.conv1d(x, w, bias, padding=pad, dilation=d)
                    t_ref = best_of(lambda: F.conv1d(x, w, bias, padding=pad, dilation=d), args.repeats)
                    cells, best = [], t_ref
                    for m in (2, 4, 6) if r <= 7 else (2,):
                        wc = Winograd1d(w, bias, d, m)
                        err = float((wc(x) - ref).abs().max() / ref.abs().max())
                        t = best_of(lambda: wc(x), args.repeats)
                        if err <= args.max_error:
                            best = min(best, t)
                        cells.append(f"F({m},{r}): {t_ref / t:.2f}x, {err:.0e}")
                direct_total += count * t_ref
                best_total += count * best
                shape = f"[1, {c}, {x.shape[-1]}], k {r}, dilation {d}"
                rows.append(
                    f"| HiFi-GAN conv1d x{count} | {shape} | {t_ref * 1e3:.0f} | " + "; ".join(cells) + " |"
                )
    # VAE (s-full, 1024 x 64 mel): 3x3 convs at each level
    speedups = []
    for c, h, w_ in [(128, 1024, 64), (256, 512, 32), (512, 256, 16)]:
        x = torch.randn(1, c, h // scale, w_, generator=gen)
        w = torch.randn(c, c, 3, 3, generator=gen) / (9 * c) ** 0.5
        bias = torch.randn(c, generator=gen) * 0.1
        with torch.inference_mode():
            ref = F.conv2d(x, w, bias, padding=1)
            t_ref = best_of(lambda: F.conv2d(x, w, bias, padding=1), args.repeats)
            cells = []
            for m in (2, 4):
                wc = Winograd2d(w, bias, m)
                err = float((wc(x) - ref).abs().max() / ref.abs().max())
                speedups.append(t_ref / best_of(lambda: wc(x), args.repeats))
                cells.append(f"F({m}x{m},3x3): {speedups[-1]:.2f}x, {err:.0e}")
        rows.append(
            f"| VAE conv2d | [1, {c}, {x.shape[2]}, {w_}], 3x3 | {t_ref * 1e3:.0f} | "
            + "; ".join(cells)
            + " |"
        )

    text = "\n".join(
        [
            SECTION,
            "",
            f"`python benchmarks/winograd.py --threads {args.threads} --max-error {args.max_error:g}"
            f"{' --quick' if args.quick else ''}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
            f" CPU {cpu_name()}, torch {torch.__version__})",
            "",
            "Winograd F(m, r) built from torch ops against the direct float32 convolution (oneDNN), on the"
            f" s-full layer shapes, best of {args.repeats}; each cell: speed-up over direct (above 1 is"
            " faster), max error / max |output|. xN: the layer occurs N times per HiFi-GAN stage.",
            "",
            "| layer | input | direct (ms) | Winograd: speed-up, relative error |",
            "|---|---|---:|---|",
            *rows,
            "",
            "HiFi-GAN's residual-block convolutions (about 90 % of its time) take"
            f" {direct_total:.2f} s direct; with the fastest form of each layer whose error stays"
            f" <= {args.max_error:g} they would take {best_total:.2f} s, {direct_total / best_total:.2f}x"
            " faster on those layers (so at most that on the whole vocoder), each such layer moving the"
            f" output by up to that error. The VAE's 3x3 convolutions: at best {max(speedups):.2f}x (below"
            " 1: the transforms' memory traffic costs more than the multiplications they save).",
            "",
        ]
    )
    publish(SECTION, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
