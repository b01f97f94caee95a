"""--dtype (the UNet under autocast, VAE and vocoder in fp32) and --compile (torch.compile of the UNet).

Everything runs on CPU with the tiny model: CPU autocast does bf16 (and fp16 in recent torch), which
exercises the same code path as CUDA; the GPU speed-ups themselves are measured by benchmarks/gpu.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from audioldm_cli import editing, precision, samplers
from audioldm_cli.cli import app
from audioldm_cli.errors import AudioLDMError, UsageError
from audioldm_cli.pipeline import AudioLDM
from audioldm_cli.runtime import make_generator
from audioldm_cli.schedule import alphas_cumprod, ddim_timesteps

runner = CliRunner()
PROMPTS = ["rain on a tin roof", "a dog barking"]
KW = {"duration": 0.5, "steps": 4, "seed": 3, "sampler": "dpmpp-2m"}
SMALL = {"duration": 0.2, "steps": 2, "seed": 0}


@pytest.fixture(scope="module")
def pipe(tiny_model):
    return AudioLDM.from_pretrained(tiny_model, device="cpu")


class AutocastSpy:
    """Records, for every forward call of the watched modules, (autocast on?, its dtype, input dtype)."""

    def __init__(self, **modules):
        self.calls = {name: [] for name in modules}
        self.handles = [m.register_forward_pre_hook(self._hook(name)) for name, m in modules.items()]

    def _hook(self, name):
        def hook(module, args):
            on = torch.is_autocast_enabled("cpu")
            self.calls[name].append((on, torch.get_autocast_dtype("cpu") if on else None, args[0].dtype))

        return hook

    def seen(self, name) -> set:
        assert self.calls[name], f"{name} was never called"
        return set(self.calls[name])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def spy(pipe) -> AutocastSpy:
    # post_quant_conv is the first layer of VAE decode (encode never calls it)
    return AutocastSpy(unet=pipe.unet, vae_decode=pipe.vae.post_quant_conv, vocoder=pipe.vocoder)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).norm(dim=-1) / b.norm(dim=-1)


# ----------------------------------------------------------------------------------------------
# the Python API


def test_fp32_is_the_plain_unet_call_bit_for_bit(pipe):
    with spy(pipe) as s:
        default = pipe.generate(PROMPTS, **KW)
    assert s.seen("unet") == {(False, None, torch.float32)}
    assert torch.equal(pipe.generate(PROMPTS, dtype="fp32", **KW), default)
    assert torch.equal(pipe.generate(PROMPTS, dtype="auto", **KW), default)  # auto is fp32 on CPU
    # the same generation composed by hand from the public pieces and the bare UNet call
    n = round(KW["duration"] * pipe.sample_rate)
    frames = pipe.frames_for(n, pipe.time_factor * pipe.unet_factor)
    shape = (pipe.latent_channels, frames // pipe.time_factor, pipe.mel_config.n_mels // pipe.freq_factor)
    gens = [make_generator(KW["seed"] + i) for i in range(len(PROMPTS))]
    x = torch.stack([torch.randn(shape, generator=g) for g in gens])
    with torch.inference_mode():
        cond = pipe._condition([""] * len(PROMPTS) + PROMPTS)
        model = samplers.classifier_free_guidance(lambda x, t: pipe.unet(x, t, **cond), 3.0)
        z = samplers.sample_dpmpp_2m(
            model,
            x,
            ddim_timesteps(KW["steps"], pipe.schedule.timesteps),
            alphas_cumprod(pipe.schedule),
            prediction_type=pipe.schedule.prediction_type,
            generator=gens,
        )
    assert torch.equal(pipe.decode_latent(z, n), default)


def test_bf16_autocasts_only_the_unet_and_stays_close_to_fp32(pipe):
    fp32 = pipe.generate(PROMPTS, **KW)
    with spy(pipe) as s:
        bf16 = pipe.generate(PROMPTS, dtype="bf16", **KW)
    assert s.seen("unet") == {(True, torch.bfloat16, torch.float32)}  # latents enter in fp32
    assert s.seen("vae_decode") == {(False, None, torch.float32)}
    assert s.seen("vocoder") == {(False, None, torch.float32)}
    assert bf16.dtype == torch.float32 and bool(torch.isfinite(bf16).all())
    # bf16 keeps 8 significant bits (unit roundoff 2^-8 = 0.4 %); measured on this model and setting:
    # relative L2 0.5 %, correlation 0.99998. The bounds leave a 10x margin and still sit far below
    # what a real fault gives: another seed differs by ~100 % (checked below).
    err = rel_l2(bf16, fp32)
    assert bool((err > 0).all()), "bf16 gave fp32's exact output: autocast did not run"
    assert bool((err < 0.05).all()), err
    for a, b in zip(bf16, fp32):
        assert float(np.corrcoef(a.numpy(), b.numpy())[0, 1]) > 0.99
    other_seed = pipe.generate(PROMPTS, **{**KW, "seed": 4})
    assert bool((rel_l2(other_seed, fp32) > 0.5).all())


def test_fp16_on_cpu_runs_when_torch_can_and_fails_clearly_when_not(pipe, monkeypatch):
    if precision._autocast_supports("cpu", torch.float16):
        with spy(pipe) as s:
            out = pipe.generate("wind", dtype="fp16", **SMALL)
        assert s.seen("unet") == {(True, torch.float16, torch.float32)}
        assert s.seen("vocoder") == {(False, None, torch.float32)}
        assert bool(torch.isfinite(out).all())
    # the probe sees what CPU autocast refuses (float64), and a refused dtype is a UsageError
    assert precision._autocast_supports("cpu", torch.float64) is False
    monkeypatch.setattr(precision, "_autocast_supports", lambda device_type, dtype: False)
    with pytest.raises(UsageError, match=r"dtype='fp16': .* on cpu; use fp32"):
        pipe.generate("wind", dtype="fp16", **SMALL)


@pytest.mark.parametrize("bad", ["fp8", "half", "", None])
def test_bad_dtype_is_a_usage_error_before_any_work(pipe, bad):
    with pytest.raises(UsageError, match=r"dtype=.*: choose one of auto, fp32, fp16, bf16"):
        next(pipe.generate_iter("wind", dtype=bad, **SMALL))


def test_auto_and_names_resolve_per_device():
    assert precision.autocast_dtype("auto", "cpu") is None
    assert precision.autocast_dtype("fp32", "cpu") is None
    assert precision.autocast_dtype(" BF16 ", "cpu") is torch.bfloat16


def test_editing_paths_take_dtype(pipe):
    t = np.arange(int(0.4 * pipe.sample_rate)) / pipe.sample_rate
    wav = torch.from_numpy(0.3 * np.sin(2 * np.pi * 330 * t)).float()
    with spy(pipe) as s:
        moved = editing.transfer(pipe, wav, "a cat", strength=0.6, steps=3, dtype="bf16")
        filled = editing.inpaint(pipe, wav, "a cat", 0.1, 0.3, steps=2, dtype="bf16")
    assert s.seen("unet") == {(True, torch.bfloat16, torch.float32)}
    assert s.seen("vae_decode") == {(False, None, torch.float32)}
    for result in (moved, filled):
        assert result.wav.shape == wav.shape and bool(torch.isfinite(result.wav).all())
    # inpainting still keeps the input's latent exactly outside the range
    keep = filled.mask.expand_as(filled.latent).bool()
    assert torch.equal(filled.latent[keep], filled.original[keep])


# ----------------------------------------------------------------------------------------------
# torch.compile


def fake_compile(log: list):
    """A torch.compile stand-in: records the backend and counts the calls of the 'compiled' module."""

    def compile_(module, backend=None, **kwargs):
        log.append(backend)

        def compiled(*args, **kw):
            compiled.calls += 1
            return module(*args, **kw)

        compiled.calls = 0
        return compiled

    return compile_


def test_compile_wraps_the_unet_once_per_pipeline(tiny_model, monkeypatch):
    log: list = []
    monkeypatch.setattr(torch, "compile", fake_compile(log))
    pipe = AudioLDM.from_pretrained(tiny_model, device="cpu")
    plain = pipe.generate("rain", **SMALL)
    first = pipe.generate("rain", compile=True, **SMALL)
    second = pipe.generate("rain", compile=True, dtype="bf16", **SMALL)
    assert log == ["inductor"]
    assert pipe.compiled_unet("inductor").calls == 2 * SMALL["steps"]  # every UNet call went through it
    assert torch.equal(first, plain) and bool(torch.isfinite(second).all())


def test_compile_with_the_eager_backend_gives_the_same_audio(pipe):
    """A real torch.compile (dynamo tracing, no code generation: seconds, not minutes)."""
    plain = pipe.generate("rain", **SMALL)
    compiled = pipe.generate("rain", compile="eager", **SMALL)
    torch.testing.assert_close(compiled, plain, rtol=1e-5, atol=1e-6)


def test_compile_failure_at_the_first_call_is_one_clear_error(tiny_model, monkeypatch):
    from torch._dynamo.exc import BackendCompilerFailed

    def broken(module, backend=None, **kwargs):
        def compiled(*args, **kw):
            raise BackendCompilerFailed(broken, RuntimeError("Compiler: cc is not found"), None)

        return compiled

    pipe = AudioLDM.from_pretrained(tiny_model, device="cpu")
    with pytest.raises(UsageError, match="compile='no-such-backend': unknown torch.compile backend; choose"):
        pipe.generate("rain", compile="no-such-backend", **SMALL)  # refused before any work
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(
        AudioLDMError, match=r"^compile=True: compiling the UNet failed \(RuntimeError: Compiler: cc"
    ):
        pipe.generate("rain", compile=True, **SMALL)


# ----------------------------------------------------------------------------------------------
# the command line


def cli(*args):
    return runner.invoke(app, [*map(str, args)])


def one_error_line(result) -> str:
    lines = [
        ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith(("INFO:", "WARNING:"))
    ]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("bad", ["fp8", "half", "float16"])
def test_cli_bad_dtype_exits_2_with_one_line_before_loading(tmp_path, bad):
    missing = tmp_path / "no-model"  # the --dtype check comes first: no 'model not found' (exit 1)
    src = tmp_path / "in.wav"
    sf.write(src, np.zeros(1600), 16000)
    for command in (
        ["generate", "wind", "-o", tmp_path / "out.wav"],
        ["transfer", src, "a cat"],
        ["inpaint", src, "--start", "0", "--end", "0.05"],
        ["superres", src, "--cutoff", "2000"],
    ):
        result = cli(*command, "--model", missing, "--device", "cpu", "--dtype", bad)
        assert result.exit_code == 2, result.output
        assert f"--dtype {bad}: choose one of auto, fp32, fp16, bf16" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_cli_dtype_fp32_equals_the_default_and_bf16_writes_audio(tiny_model, tmp_path):
    common = ["--model", tiny_model, "--device", "cpu", "--steps", "2", "--duration", "0.3", "--seed", "5"]
    for name, extra in (("default", []), ("fp32", ["--dtype", "fp32"]), ("bf16", ["--dtype", "bf16"])):
        result = cli("generate", "wind", "-o", tmp_path / f"{name}.wav", *common, *extra)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "fp32.wav").read_bytes() == (tmp_path / "default.wav").read_bytes()
    audio, rate = sf.read(tmp_path / "bf16.wav")
    assert rate == 16000 and audio.shape == (round(0.3 * 16000),) and np.isfinite(audio).all()


def test_cli_compile_flag_plumbs_through(tiny_model, tmp_path, monkeypatch):
    log: list = []
    monkeypatch.setattr(torch, "compile", fake_compile(log))
    result = cli(
        "generate",
        "wind",
        "-o",
        tmp_path / "c.wav",
        "--model",
        tiny_model,
        "--device",
        "cpu",
        "--steps",
        "2",
        "--duration",
        "0.2",
        "--compile",
    )
    assert result.exit_code == 0, result.output
    assert log == ["inductor"] and (tmp_path / "c.wav").is_file()
    src = tmp_path / "in.wav"
    sf.write(src, 0.1 * np.ones(3200), 16000)
    result = cli(
        "transfer", src, "a cat", "--model", tiny_model, "--device", "cpu", "--steps", "2", "--compile"
    )
    assert result.exit_code == 0, result.output
    assert log == ["inductor", "inductor"]  # one more pipeline, one more compile


def test_cli_compile_unavailable_exits_2_with_one_line(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    result = cli(
        "generate", "wind", "-o", tmp_path / "c.wav", "--model", tiny_model, "--device", "cpu", "--compile"
    )
    assert result.exit_code == 2, result.output
    assert "--compile: torch.compile does not support this Python version" in one_error_line(result)
    assert not (tmp_path / "c.wav").exists()
