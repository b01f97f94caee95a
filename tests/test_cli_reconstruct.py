"""`audioldm reconstruct` through the CLI: exact lengths, latent inputs, reports, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audioldm_cli.cli import app
from audioldm_cli.testing import make_tiny_model

runner = CliRunner()


@pytest.fixture(scope="module")
def recon_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("rc") / "model", with_unet=False)


def tone(freq: float, rate: int, n: int) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def run(model, *args):
    return runner.invoke(app, ["reconstruct", "--model", str(model), "--device", "cpu", *map(str, args)])


def test_output_is_as_long_as_the_input(recon_model, tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone(440, 16000, 2345), 16000)
    out = tmp_path / "b.flac"
    result = run(recon_model, src, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out)]
    info = sf.info(out)
    assert (info.frames, info.samplerate) == (2345, 16000)


def test_other_rates_and_channels_come_out_at_the_model_rate(recon_model, tmp_path):
    src = tmp_path / "stereo.wav"
    sf.write(src, np.stack([tone(440, 22050, 11025), tone(660, 22050, 11025)], 1), 22050)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run(recon_model, src, "--out-dir", out_dir, "--vocoder-only")
    assert result.exit_code == 0, result.output
    assert sf.info(out_dir / "stereo_recon.wav").frames == 8000  # 0.5 s at 16 kHz


def test_report_json_measures_against_the_input(recon_model, tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone(440, 16000, 4000), 16000)
    result = run(recon_model, src, "--out-dir", tmp_path, "--report", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    row = report["files"][0]
    assert report["failed"] == 0 and row["output"] == str(tmp_path / "a_recon.wav")
    assert row["mel_l1"] > 0 and row["lsd_db"] > 0 and row["mr_stft"] > 0


def test_report_of_identical_audio_is_zero():
    import torch

    from audioldm_cli.metrics import reconstruction_report
    from vocoder.config import mel_preset

    wav = 0.3 * torch.randn(3000, generator=torch.Generator().manual_seed(0))  # every bin above the floors
    scores = reconstruction_report(wav, wav.clone(), mel_preset("audioldm-16k"))
    assert scores == {"mel_l1": 0.0, "lsd_db": 0.0, "mr_stft": 0.0}
    half = reconstruction_report(wav, 0.5 * wav, mel_preset("audioldm-16k"))
    assert abs(half["mel_l1"] - np.log(2)) < 1e-4  # half the amplitude: log-mel lower by log 2 everywhere
    assert abs(half["lsd_db"] - 20 * np.log10(2)) < 1e-3  # 6.02 dB in every bin
    assert abs(half["mr_stft"] - (0.5 + np.log(2))) < 1e-3  # spectral convergence 0.5 + log-magnitude L1


def test_report_of_a_silent_input_says_its_stft_distance_is_undefined(recon_model, tmp_path):
    """Spectral convergence divides by the reference's energy: none for silence (it printed 3.6e7)."""
    src = tmp_path / "silence.wav"
    sf.write(src, np.zeros(3000, np.float32), 16000)
    text = run(recon_model, src, "-o", tmp_path / "a.wav", "--report")
    assert text.exit_code == 0, text.output
    fields = dict(f.split("=") for f in text.stdout.strip().split("\t")[1:])
    assert fields["mr_stft"] == "n/a" and float(fields["mel_l1"]) >= 0
    doc = run(recon_model, src, "-o", tmp_path / "b.wav", "--report", "--json")
    row = json.loads(doc.stdout)["files"][0]
    assert row["mr_stft"] is None and row["lsd_db"] >= 0


def test_latent_file_decodes_to_the_original_length(recon_model, tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone(440, 16000, 3000), 16000)
    latents = tmp_path / "lat"
    latents.mkdir()
    assert (
        runner.invoke(app, ["encode", str(src), "-o", str(latents), "--model", str(recon_model)]).exit_code
        == 0
    )
    out = tmp_path / "dec.wav"
    result = run(recon_model, latents / "a.latent.safetensors", "-o", out)
    assert result.exit_code == 0, result.output
    assert sf.info(out).frames == 3000
    # decoding the mean latent is exactly the VAE round trip
    direct = tmp_path / "direct.wav"
    assert run(recon_model, src, "-o", direct).exit_code == 0
    np.testing.assert_allclose(sf.read(out)[0], sf.read(direct)[0], atol=2 / 32768)


def test_latent_from_another_vae_is_refused(recon_model, tmp_path):
    other = make_tiny_model(tmp_path / "other", with_unet=False, seed=1)
    src = tmp_path / "a.wav"
    sf.write(src, tone(440, 16000, 1000), 16000)
    assert runner.invoke(app, ["encode", str(src), "-o", str(tmp_path), "--model", str(other)]).exit_code == 0
    # the latent records the hash of the VAE config: change the config (here its scale_factor)
    cfg_path = other / "vae" / "config.json"
    meta = json.loads(cfg_path.read_text())
    meta["config"]["scale_factor"] = 0.5
    cfg_path.write_text(json.dumps(meta))
    result = run(other, tmp_path / "a.latent.safetensors", "-o", tmp_path / "x.wav")
    assert result.exit_code == 1
    assert "was encoded by another VAE" in result.stderr
    assert not (tmp_path / "x.wav").exists()


def test_bad_file_is_reported_and_the_rest_still_written(recon_model, tmp_path):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    sf.write(good, tone(440, 16000, 1000), 16000)
    bad.write_bytes(b"not audio at all")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run(recon_model, bad, good, "--out-dir", out_dir)
    assert result.exit_code == 1
    assert "bad.wav" in result.stderr and "1 of 2 input(s) failed" in result.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["good_recon.wav"]


def test_bad_latent_files_are_reported_and_the_rest_still_written(recon_model, tmp_path):
    """A latent file with unreadable or impossible metadata, or NaN values, is one failed item of the
    batch (one line, no traceback); the inputs after it are still decoded."""
    src = tmp_path / "a.wav"
    sf.write(src, tone(440, 16000, 3000), 16000)
    lat = tmp_path / "lat"
    assert (
        runner.invoke(
            app, ["encode", str(src), "-o", str(lat), "--format", "npy", "--model", str(recon_model)]
        ).exit_code
        == 0
    )
    good = np.load(lat / "a.latent.npy")
    meta = json.loads((lat / "a.latent.json").read_text())
    cases = {
        "badjson": (good, "{not json"),
        "nsamples_text": (good, json.dumps({**meta, "n_samples": "abc"})),
        "nsamples_huge": (good, json.dumps({**meta, "n_samples": "999999999999"})),
        "nan": (np.full_like(good, np.nan), json.dumps(meta)),
    }
    bad = []
    for name, (array, sidecar) in cases.items():
        np.save(lat / f"{name}.latent.npy", array)
        (lat / f"{name}.latent.json").write_text(sidecar)
        bad.append(lat / f"{name}.latent.npy")
    out = tmp_path / "out"
    result = run(recon_model, *bad, lat / "a.latent.npy", "--out-dir", out)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "4 of 5 input(s) failed" in result.stderr
    assert "not valid JSON" in result.stderr and "bad latent metadata" in result.stderr
    assert "n_samples 999999999999: must lie in [1, " in result.stderr and "NaN/inf" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_recon.wav"]
    assert sf.info(out / "a_recon.wav").frames == 3000


def test_missing_out_dir_is_created(recon_model, tmp_path):
    sf.write(tmp_path / "a.wav", tone(440, 16000, 1000), 16000)
    target = tmp_path / "new" / "recons"
    result = run(recon_model, tmp_path / "a.wav", "--out-dir", target)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(target / "a_recon.wav")]
    assert sf.info(target / "a_recon.wav").frames == 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/a.wav", "{tmp}/a.wav", "-o", "{tmp}/o.wav"], "-o/--output takes exactly one input"),
        (["{tmp}/a.wav", "--out-dir", "{tmp}/a.wav"], "exists and is not a folder"),
        (["{tmp}/a.wav", "-o", "{tmp}/a.wav"], "already exists; pass -y/--overwrite"),
        (["{tmp}/a.wav", "-o", "{tmp}/o.wav", "--refine-steps", "-1"], "--refine-steps"),
        (
            ["{tmp}/a.wav", "-o", "{tmp}/o.wav", "--refine-steps", "2", "--vocoder-only"],
            "--vocoder-only skips the VAE",
        ),
    ],
)
def test_usage_errors(recon_model, tmp_path, args, message):
    sf.write(tmp_path / "a.wav", tone(440, 16000, 1000), 16000)
    before = (tmp_path / "a.wav").read_bytes()
    result = run(recon_model, *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]
    assert (tmp_path / "a.wav").read_bytes() == before


def test_refine_steps_reach_the_round_trip(recon_model, tmp_path):
    """--refine-steps fits the latent before decoding: another output, as long as the input, and the
    same as the Python API with those steps."""
    from audioldm_cli.audio import read_audio
    from audioldm_cli.pipeline import AudioLDM

    src = tmp_path / "a.wav"
    sf.write(src, tone(440, 16000, 2345), 16000, subtype="FLOAT")
    assert run(recon_model, src, "-o", tmp_path / "plain.wav").exit_code == 0
    result = run(recon_model, src, "-o", tmp_path / "fit.wav", "--refine-steps", "4")
    assert result.exit_code == 0, result.output
    plain, _ = sf.read(tmp_path / "plain.wav", dtype="float32")
    fit, _ = sf.read(tmp_path / "fit.wav", dtype="float32")
    assert fit.shape == plain.shape == (2345,) and np.abs(fit - plain).max() > 1e-4
    pipe = AudioLDM.from_pretrained(recon_model)
    expected = pipe.reconstruct(read_audio(src, 16000)[0], refine_steps=4).numpy()
    np.testing.assert_allclose(fit, expected, atol=1e-4)  # through a 16-bit wav: one quantisation step


def test_the_model_s_refine_steps_are_the_default(recon_model, tmp_path):
    """A model whose pipeline.json recommends `sampling.refine_steps` N reconstructs with N steps unless
    --refine-steps is given (0: the encoder's latent); --vocoder-only still skips the VAE; `info` says it."""
    import shutil

    from audioldm_cli.pipeline import AudioLDM

    model = tmp_path / "m"
    shutil.copytree(recon_model, model)
    doc = json.loads((model / "pipeline.json").read_text())
    doc["sampling"] = {**doc.get("sampling", {}), "refine_steps": 4}
    (model / "pipeline.json").write_text(json.dumps(doc))
    assert AudioLDM.from_pretrained(model).default_refine_steps == 4
    assert AudioLDM.from_pretrained(recon_model).default_refine_steps == 0
    src = tmp_path / "a.wav"
    sf.write(src, tone(440, 16000, 2345), 16000, subtype="FLOAT")
    outs = {}
    for name, m, extra in [
        ("default", model, []),
        ("four", recon_model, ["--refine-steps", "4"]),
        ("zero", model, ["--refine-steps", "0"]),
        ("plain", recon_model, []),
        ("voc", model, ["--vocoder-only"]),
        ("voc_plain", recon_model, ["--vocoder-only"]),
    ]:
        result = run(m, src, "-o", tmp_path / f"{name}.wav", *extra)
        assert result.exit_code == 0, result.output
        outs[name] = sf.read(tmp_path / f"{name}.wav", dtype="float32")[0]
    np.testing.assert_array_equal(outs["default"], outs["four"])
    np.testing.assert_array_equal(outs["zero"], outs["plain"])
    np.testing.assert_array_equal(outs["voc"], outs["voc_plain"])
    assert np.abs(outs["default"] - outs["plain"]).max() > 1e-4
    info = runner.invoke(app, ["info", str(model)])
    assert "reconstruct: latents fitted for 4 steps" in info.output


@pytest.mark.parametrize("n", [-1, 2.5, True, "3"])
def test_a_bad_refine_steps_in_pipeline_json_is_refused(recon_model, tmp_path, n):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(recon_model, model)
    doc = json.loads((model / "pipeline.json").read_text())
    doc["sampling"] = {"refine_steps": n}
    (model / "pipeline.json").write_text(json.dumps(doc))
    result = run(model, tmp_path / "missing.wav")
    assert result.exit_code != 0 and "refine_steps" in result.output


@pytest.mark.skipif(
    ".mp3" not in __import__("audioldm_cli.audio").audio.WRITE_FORMATS, reason="no MP3 encoder"
)
def test_mp3_output_is_as_long_as_the_input(recon_model, tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone(440, 16000, 2345), 16000)
    result = run(recon_model, src, "-o", tmp_path / "b.mp3")
    assert result.exit_code == 0, result.output
    info = sf.info(tmp_path / "b.mp3")
    assert (info.format, info.frames, info.samplerate) == ("MP3", 2345, 16000)


def test_a_folder_run_again_leaves_out_its_own_earlier_outputs(recon_model, tmp_path):
    """Outputs go beside the inputs by default: a second run over the folder must not reconstruct
    x_recon.wav into x_recon_recon.wav (nor, with -y, read and rewrite x_recon.wav in one run)."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    sf.write(tree / "x.wav", tone(440, 16000, 1600), 16000)
    sf.write(tree / "sub" / "y.wav", tone(330, 16000, 1600), 16000)
    first = run(recon_model, tree, "--vocoder-only")
    assert first.exit_code == 0, first.output
    written = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.wav"))
    assert written == ["sub/y.wav", "sub/y_recon.wav", "x.wav", "x_recon.wav"]
    again = run(recon_model, tree, "--vocoder-only", "-y")
    assert again.exit_code == 0, again.output
    assert again.stdout.split() == [str(tree / "sub" / "y_recon.wav"), str(tree / "x_recon.wav")]
    assert "left out 2 file(s) that this run writes" in again.stderr
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.wav")) == written
    named = run(recon_model, tree / "x.wav", tree / "x_recon.wav", "--vocoder-only", "-y")
    assert (
        named.exit_code == 2 and f"{tree / 'x_recon.wav'} is an input and also the output of" in named.stderr
    )
    alone = run(recon_model, tree / "x_recon.wav", "--vocoder-only")  # its own input alone: reconstructed
    assert alone.exit_code == 0 and (tree / "x_recon_recon.wav").is_file()


def test_a_refused_run_leaves_no_out_dir(recon_model, tmp_path):
    for sub in ("x", "y"):  # two inputs of the same name would write the same output
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "same.wav", tone(300, 16000, 1600), 16000)
    out = tmp_path / "out"
    result = run(recon_model, tmp_path / "x", tmp_path / "y", "--out-dir", out)
    assert result.exit_code == 2 and str(out / "same_recon.wav") in result.stderr
    assert not out.exists()


def test_out_dir_mirrors_the_folders_given(recon_model, tmp_path):
    """As mel and encode do: two x.wav in different sub-folders no longer clash under --out-dir."""
    tree = tmp_path / "tree"
    for sub in ("a", "b/c"):
        (tree / sub).mkdir(parents=True)
        sf.write(tree / sub / "x.wav", tone(440, 16000, 1600), 16000)
    lone = tmp_path / "lone.wav"
    sf.write(lone, tone(330, 16000, 1600), 16000)
    out = tmp_path / "out"
    result = run(recon_model, tree, lone, "--out-dir", out, "--vocoder-only")
    assert result.exit_code == 0, result.output
    expected = [out / "a" / "x_recon.wav", out / "b" / "c" / "x_recon.wav", out / "lone_recon.wav"]
    assert result.stdout.split() == [str(p) for p in expected] and all(p.is_file() for p in expected)
