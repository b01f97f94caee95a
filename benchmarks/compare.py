"""Side by side with the reference: our modules vs AudioLDM 0.1.1, same weights, same process.

For each stage (VAE encode, VAE decode, one UNet call, HiFi-GAN, mel frontend) this script builds our
module and the reference one at the audioldm-s-full size, draws random weights into ours and loads the
very same state_dict into the reference (strict: the key names match by design), checks that the two
outputs agree to 1e-4, then times both in one run, alternating ours and the reference, and reports the
median of `--repeats` runs. The mel frontend is compared with librosa instead (the reference's own
TacotronSTFT does not build with librosa >= 0.10).

The reference package is installed in benchmarks/.venv-ref by benchmarks/setup_reference.sh and is
never copied into this repository (its licence is non-commercial). Only its model modules are imported:
its top-level `audioldm/__init__.py` pulls in the whole text-to-audio pipeline (CLAP, torchvision,
training code), which is not what is measured here, so `import_reference` registers the package
without running that file.

    benchmarks/.venv-ref/bin/python benchmarks/compare.py            # full run, writes RESULTS.md
    benchmarks/.venv-ref/bin/python benchmarks/compare.py --quick    # smoke check, small inputs
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import math
import os
import platform
import re
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, sys.path[0] is benchmarks/, whose vae.py, vocoder.py, ... would shadow the packages
# of the same name; the repository root takes its place (the same code as an editable install).
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif importlib.util.find_spec("audioldm_cli") is None:  # imported from elsewhere without an install
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("compare")

REFERENCE_VERSION = "0.1.1"
STAGES = ("vae", "unet", "vocoder", "frontend")
TOLERANCE = 1e-4  # atol = rtol, as the fixtures README suggests for independent float32 networks
# Targets from issue 9 (reference time / our time).
TARGETS = {"VAE encode+decode": 1.5, "UNet call": 1.3, "HiFi-GAN": 1.3, "mel frontend vs librosa": 5.0}
SECTION = "## Compare"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Input sizes of one run; FULL is the issue's setting, QUICK a smoke check."""

    mel_frames: int  # VAE input [1, 1, mel_frames, 64]; latent [1, 8, mel_frames / 4, 16]
    unet_frames: int  # UNet latent [2, 8, unet_frames, 16] (cond + uncond)
    vocoder_frames: int  # HiFi-GAN input [1, 64, vocoder_frames]
    clips: int  # frontend batch: clips x clip_seconds of 16 kHz audio
    clip_seconds: float
    repeats: int


FULL = Sizes(mel_frames=1024, unet_frames=256, vocoder_frames=1024, clips=8, clip_seconds=10.24, repeats=5)
QUICK = Sizes(mel_frames=128, unet_frames=32, vocoder_frames=64, clips=2, clip_seconds=1.0, repeats=2)


@dataclasses.dataclass
class Row:
    """One measured stage: medians in seconds and the output agreement."""

    stage: str
    shape: str
    ours: float
    ref: float
    max_abs: float
    max_ref: float
    ok: bool
    ours_cpu: float = math.nan  # median CPU seconds (all threads): steadier than wall time under load
    ref_cpu: float = math.nan

    @property
    def ratio(self) -> float:
        return self.ref / self.ours

    @property
    def cpu_ratio(self) -> float:
        return self.ref_cpu / self.ours_cpu


# ----------------------------------------------------------------------------------------- setup


def import_reference() -> dict[str, types.ModuleType]:
    """Import the reference model modules without running `audioldm/__init__.py` (see module doc)."""
    if "audioldm" not in sys.modules:
        spec = importlib.util.find_spec("audioldm")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(
                "error: the reference package audioldm==0.1.1 is not importable; run "
                "`bash benchmarks/setup_reference.sh`, then use benchmarks/.venv-ref/bin/python"
            )
        package = types.ModuleType("audioldm")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["audioldm"] = package
    version = importlib.metadata.version("audioldm")
    if version != REFERENCE_VERSION:
        logger.warning(
            "reference audioldm is %s, not %s: numbers may not be comparable", version, REFERENCE_VERSION
        )
    return {
        "autoencoder": importlib.import_module("audioldm.variational_autoencoder.autoencoder"),
        "openaimodel": importlib.import_module("audioldm.latent_diffusion.openaimodel"),
        "hifigan": importlib.import_module("audioldm.hifigan"),
    }


def machine_description(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}, torch {torch.__version__} on CPU with {threads} threads; "
        f"reference audioldm {importlib.metadata.version('audioldm')}"
    )


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Draw every parameter afresh, as the fixtures do (the reference init zeroes output layers,
    which would make any two implementations agree trivially): weights N(0, 1/fan_in), biases
    N(0, 0.05^2), 1-D (norm) weights 1 + N(0, 0.1^2)."""
    gen = torch.Generator().manual_seed(seed)
    transposed = {
        f"{name}.weight": m.in_channels * math.prod(m.kernel_size) / math.prod(m.stride)
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.conv._ConvTransposeNd)
    }
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if name.endswith("bias"):
                p.copy_(0.05 * noise)
            elif p.dim() == 1:
                p.copy_(1.0 + 0.1 * noise)
            else:
                fan_in = transposed.get(name, p[0].numel())
                p.copy_(noise / math.sqrt(fan_in))
    return model


def load_same_weights(ours: nn.Module, ref: nn.Module) -> None:
    """Load our state_dict into the reference, strictly: same names, same shapes, nothing left over."""
    with torch.no_grad():
        ref.load_state_dict(ours.state_dict(), strict=True)


def reference_kwargs(cls: type, config: Mapping) -> dict:
    """The subset of our config (official key names) that the reference constructor takes."""
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    dropped = sorted(set(config) - accepted)
    if dropped:
        logger.info("%s: config keys not passed to the reference: %s", cls.__name__, dropped)
    return {k: v for k, v in config.items() if k in accepted}


@contextmanager
def quiet() -> Iterator[None]:
    """The reference prints from its constructors and uses the deprecated weight_norm: keep stdout
    for our results and stderr free of its warnings."""
    with redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


# ---------------------------------------------------------------------------------------- timing


def time_pair(
    ours: Callable[[], object], ref: Callable[[], object], repeats: int
) -> tuple[dict[str, float], object, object]:
    """Median wall and CPU seconds of `ours` and `ref`, run alternately (who goes first alternates too).

    Returns ({"ours", "ref", "ours_cpu", "ref_cpu"}: medians, our output, reference output). One
    untimed warm-up call each comes first; its outputs are returned for the agreement check.
    """
    out_ours, out_ref = ours(), ref()
    times: dict[str, list[float]] = {"ours": [], "ref": [], "ours_cpu": [], "ref_cpu": []}
    for i in range(repeats):
        order = [("ours", ours), ("ref", ref)]
        for key, fn in order if i % 2 == 0 else order[::-1]:
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[f"{key}_cpu"].append(time.process_time() - cpu)
            times[key].append(time.perf_counter() - wall)
        logger.debug("repeat %d: ours %.3f s, reference %.3f s", i, times["ours"][-1], times["ref"][-1])
    return {key: statistics.median(values) for key, values in times.items()}, out_ours, out_ref


def agreement(ours: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, bool]:
    """(max |ours - ref|, max |ref|, all within atol + rtol * |ref|)."""
    ours, ref = torch.as_tensor(ours).double(), torch.as_tensor(ref).double()
    if ours.shape != ref.shape:
        raise SystemExit(
            f"error: output shapes differ: ours {tuple(ours.shape)}, reference {tuple(ref.shape)}"
        )
    diff = (ours - ref).abs()
    ok = bool((diff <= TOLERANCE + TOLERANCE * ref.abs()).all())
    return float(diff.max()), float(ref.abs().max()), ok


def measure(
    stage: str, shape: str, ours: Callable, ref: Callable, repeats: int, pick: Callable = lambda o: o
) -> Row:
    logger.info("timing %s (%s), %d repeats", stage, shape, repeats)
    medians, out_ours, out_ref = time_pair(ours, ref, repeats)
    max_abs, max_ref, ok = agreement(pick(out_ours), pick(out_ref))
    row = Row(stage, shape, max_abs=max_abs, max_ref=max_ref, ok=ok, **medians)
    logger.info(
        "%s: ours %.3f s, reference %.3f s, ratio %.2fx, max diff %.2e",
        stage,
        row.ours,
        row.ref,
        row.ratio,
        max_abs,
    )
    return row


# ---------------------------------------------------------------------------------------- stages


def example_mel(frames: int, seed: int = 0) -> torch.Tensor:
    """A realistic log-mel [1, 1, frames, 64]: our frontend on a chirp + tone + noise."""
    from vocoder.config import MEL_PRESETS
    from vocoder.mel import LogMel

    cfg = MEL_PRESETS["audioldm-16k"]
    t = torch.arange(frames * cfg.hop_length, dtype=torch.float64) / cfg.sample_rate
    gen = torch.Generator().manual_seed(seed)
    wav = 0.3 * torch.sin(2 * math.pi * (100 + 300 * t) * t) + 0.1 * torch.sin(2 * math.pi * 440 * t)
    wav = (wav + 0.05 * torch.randn(t.shape, generator=gen, dtype=torch.float64)).float()
    mel = LogMel(cfg)(wav[None])[..., :frames]  # [1, 64, frames]
    return mel.transpose(1, 2).unsqueeze(1).contiguous()  # time-major [1, 1, frames, 64]


def bench_vae(ref_mods: dict, sizes: Sizes, repeats: int) -> list[Row]:
    from audioldm_cli.vae import VAE_PRESETS, AutoencoderKL

    ours = randomize_(AutoencoderKL.from_config(VAE_PRESETS["audioldm-s-full"]), seed=1).eval()
    ref_cls = ref_mods["autoencoder"].AutoencoderKL
    with quiet():
        ref = ref_cls(**reference_kwargs(ref_cls, ours.config)).eval()
    del ref.vocoder  # the reference VAE carries the vocoder; ours keeps it apart (benchmarked below)
    load_same_weights(ours, ref)

    mel = example_mel(sizes.mel_frames)
    shape = f"mel [1, 1, {sizes.mel_frames}, 64]"
    encode = measure(
        "VAE encode",
        shape,
        lambda: ours.encode(mel),
        lambda: ref.encode(mel),
        repeats,
        pick=lambda post: torch.cat([post.mean, post.logvar], dim=1),
    )
    z = ours.encode(mel).mean
    decode = measure(
        "VAE decode", f"latent {list(z.shape)}", lambda: ours.decode(z), lambda: ref.decode(z), repeats
    )
    both = Row(
        "VAE encode+decode",
        "sum of the two medians",
        encode.ours + decode.ours,
        encode.ref + decode.ref,
        max(encode.max_abs, decode.max_abs),
        max(encode.max_ref, decode.max_ref),
        encode.ok and decode.ok,
        encode.ours_cpu + decode.ours_cpu,
        encode.ref_cpu + decode.ref_cpu,
    )
    return [encode, decode, both]


def bench_unet(ref_mods: dict, sizes: Sizes, repeats: int) -> list[Row]:
    from audioldm_cli.unet import UNET_PRESETS, UNetModel

    ours = randomize_(UNetModel.from_config(UNET_PRESETS["audioldm-s-full"]), seed=2).eval()
    ref_cls = ref_mods["openaimodel"].UNetModel
    with quiet():
        ref = ref_cls(**reference_kwargs(ref_cls, ours.config)).eval()
    load_same_weights(ours, ref)

    gen = torch.Generator().manual_seed(3)
    channels = ours.config["in_channels"]
    x = torch.randn(1, channels, sizes.unet_frames, 16, generator=gen).repeat(2, 1, 1, 1)  # cond + uncond
    t = torch.full((2,), 981, dtype=torch.long)
    film_dim = ours.config.get("extra_film_condition_dim")
    kwargs = {}
    if film_dim:  # the reference checkpoints' conditioning: one CLAP vector, zeros for unconditional
        y = torch.randn(1, film_dim, generator=gen)
        kwargs["y"] = torch.cat([y / y.norm(), torch.zeros_like(y)])
    shape = f"latent {list(x.shape)}, FiLM y {list(kwargs['y'].shape) if kwargs else None}"
    return [measure("UNet call", shape, lambda: ours(x, t, **kwargs), lambda: ref(x, t, **kwargs), repeats)]


def bench_vocoder(ref_mods: dict, sizes: Sizes, repeats: int) -> list[Row]:
    from vocoder.generator import HifiGanGenerator

    ours = randomize_(HifiGanGenerator.from_config("audioldm-16k", use_weight_norm=False), seed=4).eval()
    hifigan = ref_mods["hifigan"]
    config = {k: v for k, v in ours.config.items() if k != "mel"}
    with quiet():
        ref = hifigan.Generator(hifigan.AttrDict(config))
        ref.remove_weight_norm()  # as the reference's get_vocoder does
    ref.eval()
    load_same_weights(ours, ref)

    mel = example_mel(sizes.vocoder_frames, seed=5)[:, 0].transpose(1, 2).contiguous()  # [1, 64, frames]
    return [measure("HiFi-GAN", f"mel {list(mel.shape)}", lambda: ours(mel), lambda: ref(mel), repeats)]


def bench_frontend(sizes: Sizes, repeats: int) -> list[Row]:
    import librosa

    from audioldm_cli.frontend import MelFrontend

    ours = MelFrontend.from_preset("audioldm-16k")  # wav [B, N] -> time-major log-mel [B, T, 64]
    cfg = ours.config
    n = int(sizes.clip_seconds * cfg.sample_rate)
    gen = torch.Generator().manual_seed(6)
    wav = (0.3 * torch.randn(sizes.clips, n, generator=gen)).clamp(-1, 1)
    wav_np = wav.numpy()

    def with_librosa() -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=wav_np,
            sr=cfg.sample_rate,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window="hann",
            center=True,
            pad_mode="reflect",
            power=1.0,
            n_mels=cfg.n_mels,
            fmin=cfg.f_min,
            fmax=cfg.f_max,
            htk=False,
            norm="slaney",
        )
        return np.log(np.maximum(mel, cfg.log_floor)).swapaxes(-1, -2)  # time-major, as ours

    shape = f"{sizes.clips} clips x {sizes.clip_seconds:g} s at {cfg.sample_rate} Hz"
    return [measure("mel frontend vs librosa", shape, lambda: ours(wav), with_librosa, repeats)]


# --------------------------------------------------------------------------------------- results


def report(
    rows: list[Row], machine: str, repeats: int, command: str = "benchmarks/compare.py", pending: tuple = ()
) -> str:
    """The `## Compare` section of RESULTS.md (markdown); `pending` names stages not measured yet."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        SECTION,
        "",
        f"`{command}`, {when}. Machine: {machine}.",
        (
            f"Median of {repeats} runs each after one warm-up, ours and the reference alternating in one "
            "process, `torch.inference_mode()`, float32, the same random weights in both (audioldm-s-full "
            f"sizes). Ratio = reference wall time / our wall time (medians); the CPU-time ratio (process CPU "
            "seconds, all threads) is the steadier figure when the machine is shared. "
            f"Outputs agree when |ours - ref| <= {TOLERANCE:g} + "
            f"{TOLERANCE:g}·|ref| everywhere. The frontend is compared with `librosa.feature.melspectrogram` "
            "(power 1, slaney, log clamp 1e-5) instead of the reference."
        ),
        "",
        "| stage | input | ours (s) | reference or librosa (s) | ratio | target | CPU-time ratio | "
        + "max abs diff (max abs ref) | agree |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        target = TARGETS.get(r.stage)
        verdict = "" if target is None else f"≥ {target:g}x {'met' if r.ratio >= target else '**not met**'}"
        lines.append(
            f"| {r.stage} | {r.shape} | {r.ours:.3f} | {r.ref:.3f} | {r.ratio:.2f}x | {verdict} | "
            f"{r.cpu_ratio:.2f}x | {r.max_abs:.2e} ({r.max_ref:.3g}) | {'yes' if r.ok else '**NO**'} |"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += ["", f"Load average (1 min) when the run ended: {load:.2f}."]
    if pending:
        lines += ["", f"**Partial run**: not measured yet: {', '.join(pending)}."]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the `## Compare` section of `path`, leaving every other section alone."""
    from vocoder.checkpoint import atomic_path

    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\s*$.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text.rstrip("\n") + "\n")


def print_rows(rows: list[Row]) -> None:
    print(
        f"{'stage':<26} {'ours s':>9} {'ref s':>9} {'ratio':>7} {'target':>7} {'CPU ratio':>9}  max abs diff  agree"
    )
    for r in rows:
        target = TARGETS.get(r.stage)
        print(
            f"{r.stage:<26} {r.ours:>9.3f} {r.ref:>9.3f} {r.ratio:>6.2f}x "
            f"{(f'{target:g}x' if target else ''):>7} {r.cpu_ratio:>8.2f}x  {r.max_abs:>12.2e}  {'yes' if r.ok else 'NO'}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs and 2 repeats: a smoke check")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per side (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--only", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="markdown file whose '## Compare' section is replaced (default benchmarks/RESULTS.md; "
        "--quick writes nothing unless this is given)",
    )
    parser.add_argument("--no-results", action="store_true", help="do not write any results file")
    parser.add_argument("--check-imports", action="store_true", help="import both implementations and exit")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v timings per stage, -vv per repeat"
    )
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"--only {args.only}: unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be >= 1")
    if args.threads < 1:
        parser.error(f"--threads {args.threads}: must be >= 1")
    args.stages = stages
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    logger.setLevel((logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)])
    ref_mods = import_reference()
    if args.check_imports:
        import audioldm_cli  # noqa: F401
        import vocoder  # noqa: F401

        print(f"reference audioldm {importlib.metadata.version('audioldm')} and audioldm_cli import fine")
        return 0

    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or sizes.repeats
    machine = machine_description(args.threads)
    logger.info("machine: %s", machine)
    results = (
        None
        if args.no_results
        else args.results or (None if args.quick else ROOT / "benchmarks" / "RESULTS.md")
    )
    command = " ".join(["benchmarks/compare.py", *(sys.argv[1:] if argv is None else argv)])
    rows: list[Row] = []
    with torch.inference_mode():
        for i, stage in enumerate(args.stages):
            if stage == "frontend":
                rows += bench_frontend(sizes, repeats)
            else:
                rows += {"vae": bench_vae, "unet": bench_unet, "vocoder": bench_vocoder}[stage](
                    ref_mods, sizes, repeats
                )
            gc.collect()
            if results is not None:  # after every stage, so that an interrupted run keeps what it measured
                write_section(results, report(rows, machine, repeats, command, tuple(args.stages[i + 1 :])))

    print_rows(rows)
    if results is not None:
        print(f"wrote the '{SECTION}' section of {results}")
    failed = [r.stage for r in rows if not r.ok]
    if failed:
        logger.error("outputs differ beyond %g for: %s", TOLERANCE, ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
