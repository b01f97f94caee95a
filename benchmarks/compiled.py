"""Do graph compilers make the CPU convolution stacks faster? HiFi-GAN and the VAE decoder, eager or compiled.

    python benchmarks/compiled.py                  # 2 threads, s-full sizes; writes `## Compiled`
    python benchmarks/compiled.py --quick --no-write

Issue 9 lists `torch.compile` among the means to speed the modules up. This script times, alternating in
one process (median of --repeats after a warm-up), the audioldm-s-full HiFi-GAN generator (weight norm
removed) on mel [1, 64, frames] and the s-full VAE decoder on latent [1, 8, frames / 4, 16], random
weights, each as
  eager     the module as `AudioLDM` runs it (float32, inference mode),
  inductor  `torch.compile` with inductor's freezing and oneDNN weight prepacking on (constant weights
            folded, convolutions pre-packed into oneDNN's blocked layout, conv + activation fused),
  jit       `torch.jit.freeze` + `torch.jit.optimize_for_inference` of a trace (TorchScript's
            oneDNN conversion),
and reports each one's speed-up over eager and its largest deviation from eager's output.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose vocoder.py would shadow the `vocoder` package

from _common import cpu_name, publish  # noqa: E402

SECTION = "## Compiled"


def variants(module: torch.nn.Module, example: torch.Tensor) -> dict:
    """name -> (callable, seconds its compilation took)."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    inductor_config.cpp.weight_prepack = True
    out = {"eager": (module, 0.0)}
    t = time.perf_counter()
    compiled = torch.compile(module)
    with torch.no_grad():
        compiled(example)
    out["inductor"] = (compiled, time.perf_counter() - t)
    t = time.perf_counter()
    with torch.no_grad():
        scripted = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(module, example)))
        scripted(example)
    out["jit"] = (scripted, time.perf_counter() - t)
    return out


def bench(name: str, module: torch.nn.Module, example: torch.Tensor, repeats: int) -> list[dict]:
    module = module.eval()
    with torch.inference_mode():
        reference = module(example)
    runs = variants(module, example)
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.no_grad():
        for _ in range(repeats):  # alternating, so that load on the machine hits every variant alike
            for k, (fn, _) in runs.items():
                t = time.perf_counter()
                fn(example)
                times[k].append(time.perf_counter() - t)
        diffs = {k: float((fn(example) - reference).abs().max()) for k, (fn, _) in runs.items()}
    eager = statistics.median(times["eager"])
    return [
        {
            "module": name,
            "variant": k,
            "median_s": statistics.median(v),
            "speedup": eager / statistics.median(v),
            "max_abs_diff": diffs[k],
            "max_abs_ref": float(reference.abs().max()),
            "compile_s": runs[k][1],
        }
        for k, v in times.items()
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=1024, help="mel frames (the VAE latent gets frames / 4)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="64 frames, 2 repeats (a smoke run)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.repeats = 64, 2
    torch.set_num_threads(args.threads)

    from audioldm_cli.vae import AutoencoderKL
    from vocoder.generator import HifiGanGenerator

    gen = torch.Generator().manual_seed(0)
    vocoder = HifiGanGenerator.from_config("audioldm-16k", use_weight_norm=False)
    vae = AutoencoderKL.from_config("audioldm-s-full")
    for module in (vocoder, vae):
        for p in module.parameters():
            p.data.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    mel = torch.randn(1, 64, args.frames, generator=gen)
    latent = torch.randn(1, 8, args.frames // 4, 16, generator=gen)
    rows = bench(f"HiFi-GAN s-full, mel [1, 64, {args.frames}]", vocoder, mel, args.repeats)
    name = f"VAE decoder s-full, latent [1, 8, {args.frames // 4}, 16]"
    rows += bench(name, _Decode(vae), latent, args.repeats)

    lines = [
        SECTION,
        "",
        f"`python benchmarks/compiled.py --frames {args.frames} --threads {args.threads}"
        f" --repeats {args.repeats}`"
        f" ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). {cpu_name()}, {args.threads} threads,"
        f" torch {torch.__version__}; random weights, float32, median of {args.repeats} alternating runs"
        " after one warm-up call (which includes the compilation).",
        "",
        "| module | variant | median (s) | speed-up over eager | max abs diff (max abs output)"
        " | compile (s) |",
        "|---|---|---:|---:|---|---:|",
        *[
            f"| {r['module']} | {r['variant']} | {r['median_s']:.3f} | {r['speedup']:.2f}x |"
            f" {r['max_abs_diff']:.1e} ({r['max_abs_ref']:.3g}) | {r['compile_s']:.1f} |"
            for r in rows
        ],
        "",
    ]
    publish(SECTION, "\n".join(lines), write=not args.no_write)
    return 0


class _Decode(torch.nn.Module):
    """The VAE's decode as a module's forward (what torch.compile and jit.trace take)."""

    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z)


if __name__ == "__main__":
    raise SystemExit(main())
