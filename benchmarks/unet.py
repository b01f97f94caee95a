"""One UNet call (cond + uncond batch) at the audioldm-s-full size with random weights: time and peak memory.

    nice -n 10 python benchmarks/unet.py                       # [2, 8, 256, 16] latent = 10.24 s, 2 threads
    nice -n 10 python benchmarks/unet.py --mode crossattn      # text cross-attention variant (64 tokens)
    nice -n 10 python benchmarks/unet.py --frames 64 --no-write
    nice -n 10 benchmarks/.venv-ref/bin/python benchmarks/unet.py --reference   # also time AudioLDM 0.1.1

Writes the `## UNet` section of benchmarks/RESULTS.md (other sections are left alone). Times are the
median of `--repeats` calls after one warm-up call; CPU time (all threads) is also given because wall
time on a shared machine is noisy. Peak memory is the process's max RSS on CPU, or
`torch.cuda.max_memory_allocated` with `--device cuda`. With `--reference` (run from the benchmark
virtualenv of `benchmarks/setup_reference.sh`) the reference UNet gets the same weights and is timed in
the same process, alternating with ours (FiLM mode only: the reference has no key padding mask).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import cpu_name, max_rss_mib, write_section

from audioldm_cli.unet import UNET_PRESETS, UNetModel

SECTION = "## UNet"






def build(args: argparse.Namespace) -> tuple[UNetModel, dict]:
    """The model and its call arguments (a [2, ...] batch: conditional + unconditional halves)."""
    cfg = dict(UNET_PRESETS["audioldm-s-full"])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, cfg["in_channels"], args.frames, 16, generator=gen).repeat(2, 1, 1, 1)
    kwargs: dict = {"timesteps": torch.full((2,), 981, dtype=torch.long)}
    if args.mode == "film":  # the official checkpoints: one CLAP vector, zeros for unconditional
        y = torch.randn(1, cfg["extra_film_condition_dim"], generator=gen)
        kwargs["y"] = torch.cat([y / y.norm(), torch.zeros_like(y)])
    else:  # our text conditioning: MiniLM-width tokens, padded to 64, a few real ones each
        cfg.update(extra_film_condition_dim=None, extra_film_use_concat=False, context_dim=384)
        kwargs["context"] = torch.randn(2, 64, 384, generator=gen)
        kwargs["context_mask"] = torch.arange(64)[None] < torch.tensor([[9], [2]])
    torch.manual_seed(0)
    model = UNetModel.from_config(cfg).eval()
    return model, {"x": x, **kwargs}


def load_reference(model: UNetModel):
    """The reference AudioLDM 0.1.1 UNet with our weights (helpers of benchmarks/compare.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import compare

    cls = compare.import_reference()["openaimodel"].UNetModel
    with compare.quiet():
        ref = cls(**compare.reference_kwargs(cls, model.config)).eval()
    compare.load_same_weights(model, ref)
    return ref


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, inputs = build(args)
    if args.reference:
        if args.mode != "film" or device.type != "cpu":
            raise SystemExit("error: --reference needs --mode film on CPU")
        # draw every weight afresh (the default init zeroes output layers, hiding differences)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) / max(1, p[0].numel()) ** 0.5)
    ref = load_reference(model) if args.reference else None
    model.to(device)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    rss_model = max_rss_mib()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "ref": []}
    models = {"ours": model, "ref": ref} if ref is not None else {"ours": model}
    max_diff = None
    with torch.inference_mode():
        for i in range(args.repeats + 1):
            order = list(models) if i % 2 == 0 else list(reversed(models))
            outs = {}
            for name in order:
                sync()
                c0, t0 = time.process_time(), time.perf_counter()
                outs[name] = models[name](**inputs)
                sync()
                if i:  # the first round is a warm-up
                    times[name].append((time.perf_counter() - t0, time.process_time() - c0))
            if ref is not None and i == 0:
                max_diff = float((outs["ours"] - outs["ref"]).abs().max())
    out = outs["ours"]
    assert out.shape == inputs["x"].shape and torch.isfinite(out).all()
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    r = {
        "rss_model": rss_model,
        "rss_peak": max_rss_mib(),
        "gpu_peak": gpu_peak,
        "params": sum(p.numel() for p in model.parameters()),
        "shape": list(inputs["x"].shape),
        "max_diff": max_diff,
    }
    for name, values in times.items():
        if values:
            r[name] = {
                "median": statistics.median(w for w, _ in values),
                "best": min(w for w, _ in values),
                "cpu": statistics.median(c for _, c in values),
            }
    return r


def section(args: argparse.Namespace, r: dict) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = (
        f"python benchmarks/unet.py --mode {args.mode} --frames {args.frames} --threads {args.threads} "
        f"--repeats {args.repeats}"
        + (f" --device {args.device}" if args.device != "cpu" else "")
        + (" --reference" if args.reference else "")
    )
    cond = (
        "FiLM y [2, 512] (official s-full)"
        if args.mode == "film"
        else "cross-attention to [2, 64, 384] tokens + mask"
    )
    where = (
        f"CPU: {cpu_name()}, {args.threads} threads"
        if args.device == "cpu"
        else f"GPU: {torch.cuda.get_device_name(torch.device(args.device))}"
    )
    memory = (
        f"Peak memory (max RSS): {r['rss_peak']:.0f} MiB, of which {r['rss_model']:.0f} MiB before the first call "
        "(Python, torch, weights" + (", both models' weights with --reference)." if args.reference else ").")
        if r["gpu_peak"] is None
        else f"Peak GPU memory allocated: {r['gpu_peak']:.0f} MiB."
    )
    rows = ["| one UNet call | median wall s (best) | median CPU s, all threads |", "|---|---|---|"]
    for name, label in (("ours", "ours"), ("ref", "reference audioldm 0.1.1")):
        if name in r:
            t = r[name]
            rows.append(f"| {label} | {t['median']:.2f} ({t['best']:.2f}) | {t['cpu']:.2f} |")
    if "ref" in r:
        o, f = r["ours"], r["ref"]
        rows.append(
            f"| ratio reference / ours | {f['median'] / o['median']:.2f}x ({f['best'] / o['best']:.2f}x) "
            f"| {f['cpu'] / o['cpu']:.2f}x |"
        )
        rows.append(f"\nmax |ours - reference| = {r['max_diff']:.2e} (same weights, same input).")
    table = "\n".join(rows)
    return f"""{SECTION}

`{command}` ({when})

UNetModel `audioldm-s-full` size ({r["params"] / 1e6:.1f} M parameters, random weights), one call on
latent {r["shape"]} (conditional + unconditional halves in one batch), {cond}, float32,
inference mode. {where} (torch {torch.__version__}); load average at the end: {load}
(shared machine: times are upper bounds).

{table}

{memory}

How: attention through `scaled_dot_product_attention` (flash kernel on CPU, no (T*F)^2 score matrix;
the padding mask is a boolean key mask), classifier-free guidance as one 2B batch, no copies of
the (T*F, C) token layout beyond the one transpose in and out of each transformer. Outputs match the
reference fixtures to 1e-4 (tests/test_unet.py). The rest of the time is oneDNN 3x3 convolutions
and MKL GEMMs (about 45 % and 35 % in a profile), which both implementations share.
"""




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("film", "crossattn"), default="film", help="conditioning")
    parser.add_argument("--frames", type=int, default=256, help="latent frames (256 = 10.24 s of audio)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--reference", action="store_true", help="also time the reference (FiLM, CPU)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    text = section(args, run(args))
    sys.stdout.write(text)
    if not args.no_write:
        write_section(args.results, SECTION, text)
        sys.stderr.write(f"wrote {args.results}\n")


if __name__ == "__main__":
    main()
