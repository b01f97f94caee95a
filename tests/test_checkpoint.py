"""Model folders: save -> load round trips, strict loading, and one-line errors for broken folders."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from audioldm_cli import checkpoint as ckpt
from audioldm_cli.errors import ModelError
from audioldm_cli.pipeline import AudioLDM
from audioldm_cli.testing import make_tiny_model
from vocoder.checkpoint import CheckpointError, atomic_path


@pytest.fixture(scope="module")
def recon_model(tmp_path_factory) -> Path:
    """A tiny reconstruct-only model folder (VAE + vocoder, no UNet, no text encoder)."""
    return make_tiny_model(tmp_path_factory.mktemp("ckpt") / "model", with_unet=False)


@pytest.fixture
def model_copy(recon_model, tmp_path) -> Path:
    return Path(shutil.copytree(recon_model, tmp_path / "copy"))


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_folder_layout_and_pipeline_json(recon_model):
    meta = json.loads((recon_model / "pipeline.json").read_text())
    assert meta["_class_name"] == "AudioLDM" and meta["format_version"] == 1
    assert meta["components"] == {"vae": "vae", "vocoder": "vocoder"}
    assert meta["text_encoder"] is None
    assert meta["frontend"]["sample_rate"] == 16000 and meta["frontend"]["n_mels"] == 64
    assert meta["schedule"]["timesteps"] == 1000 and meta["schedule"]["linear_end"] == 0.0195
    for kind, cls in (("vae", "AutoencoderKL"), ("vocoder", "HifiGanGenerator")):
        comp = json.loads((recon_model / kind / "config.json").read_text())
        assert comp["_class_name"] == cls and "config" in comp
        assert (recon_model / kind / "model.safetensors").is_file()
    assert "scale_factor" in json.loads((recon_model / "vae" / "config.json").read_text())["config"]


def test_save_load_round_trip_is_exact(recon_model, tmp_path):
    pipe = AudioLDM.from_pretrained(recon_model)
    again = AudioLDM.from_pretrained(pipe.save_pretrained(tmp_path / "again"))
    assert _states_equal(pipe.vae, again.vae) and _states_equal(pipe.vocoder, again.vocoder)
    assert again.config == pipe.config
    wav = torch.randn(4000, generator=torch.Generator().manual_seed(0)) * 0.1
    torch.testing.assert_close(pipe.reconstruct(wav), again.reconstruct(wav), rtol=0, atol=0)


def test_fp16_storage_halves_the_files_and_loads_as_float32(recon_model, tmp_path):
    pipe = AudioLDM.from_pretrained(recon_model)
    half = pipe.save_pretrained(tmp_path / "half", dtype=torch.float16)
    full_size = (recon_model / "vae" / "model.safetensors").stat().st_size
    assert (half / "vae" / "model.safetensors").stat().st_size < 0.6 * full_size
    loaded = AudioLDM.from_pretrained(half)
    w32, w16 = pipe.vae.state_dict(), loaded.vae.state_dict()
    assert all(v.dtype == torch.float32 for v in w16.values())
    assert max((w32[k] - w16[k]).abs().max().item() for k in w32) < 2e-3


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(ModelError, match=f"model folder not found: {tmp_path / 'nope'}"):
        AudioLDM.from_pretrained(tmp_path / "nope")


def test_folder_without_pipeline_json(tmp_path):
    with pytest.raises(ModelError, match="pipeline.json is missing"):
        AudioLDM.from_pretrained(tmp_path)


def test_newer_format_version_is_refused(model_copy):
    meta = json.loads((model_copy / "pipeline.json").read_text())
    meta["format_version"] = 7
    (model_copy / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="format_version 7"):
        ckpt.read_pipeline_config(model_copy)


def test_unknown_pipeline_key_is_refused(model_copy):
    meta = json.loads((model_copy / "pipeline.json").read_text())
    meta["shedule"] = {}
    (model_copy / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"unknown keys \['shedule'\]"):
        ckpt.read_pipeline_config(model_copy)


def test_component_path_outside_the_folder_is_refused(model_copy):
    meta = json.loads((model_copy / "pipeline.json").read_text())
    meta["components"]["vae"] = "../elsewhere"
    (model_copy / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="must be a sub-folder name"):
        ckpt.read_pipeline_config(model_copy)


def test_truncated_safetensors(model_copy):
    weights = model_copy / "vae" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        AudioLDM.from_pretrained(model_copy)


def test_missing_and_unexpected_keys_are_named(model_copy):
    from safetensors.torch import load_file, save_file

    weights = model_copy / "vae" / "model.safetensors"
    state = load_file(str(weights))
    state.pop("quant_conv.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(weights))
    with pytest.raises(
        CheckpointError, match=r"1 missing keys: quant_conv.bias; 1 unexpected keys: extra.weight"
    ):
        AudioLDM.from_pretrained(model_copy)


def test_config_that_does_not_fit_the_weights(model_copy):
    path = model_copy / "vae" / "config.json"
    meta = json.loads(path.read_text())
    meta["config"]["ddconfig"]["ch"] = 64
    path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        AudioLDM.from_pretrained(model_copy)


def test_component_of_another_architecture(model_copy):
    shutil.rmtree(model_copy / "vae")
    shutil.copytree(model_copy / "vocoder", model_copy / "vae")
    with pytest.raises(CheckpointError, match="holds a HifiGanGenerator, expected a AutoencoderKL"):
        AudioLDM.from_pretrained(model_copy)


def test_vocoder_mel_must_match_the_frontend(model_copy):
    meta = json.loads((model_copy / "pipeline.json").read_text())
    meta["frontend"]["f_max"] = 7000.0
    (model_copy / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="vocoder mel config .* differs from the pipeline frontend"):
        AudioLDM.from_pretrained(model_copy)


def test_vae_must_divide_the_mel_bins(model_copy):
    meta = json.loads((model_copy / "pipeline.json").read_text())
    meta["frontend"]["n_mels"] = 62
    (model_copy / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="n_mels 62 is not divisible by the VAE frequency downsampling 4"):
        AudioLDM.from_pretrained(model_copy)


def test_referenced_vocoder_is_not_stored(model_copy, tmp_path):
    """A vocoder given as {"pretrained": source} is loaded from the source, here another folder."""
    voc = Path(shutil.move(str(model_copy / "vocoder"), tmp_path / "shared_vocoder"))
    meta = json.loads((model_copy / "pipeline.json").read_text())
    meta["components"]["vocoder"] = {"pretrained": str(voc)}
    (model_copy / "pipeline.json").write_text(json.dumps(meta))
    pipe = AudioLDM.from_pretrained(model_copy)
    assert pipe.vocoder.hop_length == 160
    out = pipe.save_pretrained(tmp_path / "resaved")
    assert not (out / "vocoder").exists()
    assert json.loads((out / "pipeline.json").read_text())["components"]["vocoder"] == {
        "pretrained": str(voc)
    }


def test_latent_file_round_trip(tmp_path):
    latent = torch.randn(8, 5, 16)
    meta = {
        "format_version": 1,
        "sample_rate": 16000,
        "n_samples": 3000,
        "scale_factor": 0.5,
        "vae_config_hash": "abc",
        "preset": "audioldm-16k",
    }
    for name in ("a.latent.safetensors", "a.latent.npy"):
        ckpt.save_latent(tmp_path / name, latent, meta)
        back, got = ckpt.load_latent(tmp_path / name)
        torch.testing.assert_close(back, latent, rtol=0, atol=0)
        assert got["n_samples"] == 3000 and got["scale_factor"] == 0.5 and got["vae_config_hash"] == "abc"
        assert ckpt.is_latent_path(tmp_path / name)


def test_latent_file_without_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"latent": torch.zeros(8, 2, 16)}, str(tmp_path / "x.latent.safetensors"))
    with pytest.raises(ModelError, match="metadata lacks"):
        ckpt.load_latent(tmp_path / "x.latent.safetensors")


def test_config_hash_is_stable_and_order_free():
    assert ckpt.config_hash({"a": 1, "b": [1, 2]}) == ckpt.config_hash({"b": [1, 2], "a": 1})
    assert ckpt.config_hash({"a": 1}) != ckpt.config_hash({"a": 2})


def test_official_ckpt_parts(tmp_path):
    state = {
        "first_stage_model.encoder.conv_in.weight": torch.ones(2),
        "first_stage_model.vocoder.conv_pre.weight": torch.ones(3),
        "model.diffusion_model.out.2.bias": torch.ones(4),
        "scale_factor": torch.tensor(0.5),
    }
    torch.save({"state_dict": state}, tmp_path / "m.ckpt")
    assert list(ckpt.read_official_state(tmp_path / "m.ckpt", "vae")) == ["encoder.conv_in.weight"]
    assert list(ckpt.read_official_state(tmp_path / "m.ckpt", "vocoder")) == ["conv_pre.weight"]
    assert list(ckpt.read_official_state(tmp_path / "m.ckpt", "unet")) == ["out.2.bias"]
    torch.save({"state_dict": {"x": torch.ones(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not an official AudioLDM checkpoint"):
        ckpt.read_official_state(tmp_path / "other.ckpt", "vae")


@pytest.mark.slow
def test_official_ckpt_loads_as_a_reconstruct_pipeline(tmp_path):
    """A synthetic official checkpoint (full-size VAE and vocoder, random weights) loads strictly,
    reconstructs, and converts into a model folder."""
    from audioldm_cli.vae import AutoencoderKL
    from vocoder.generator import HifiGanGenerator, vocoder_preset

    vae = AutoencoderKL.from_config("audioldm-s-full")
    voc = HifiGanGenerator.from_config(vocoder_preset("audioldm-16k"), use_weight_norm=False)
    state = {f"first_stage_model.{k}": v for k, v in vae.state_dict().items()}
    state.update({f"first_stage_model.vocoder.{k}": v for k, v in voc.state_dict().items()})
    state["scale_factor"] = torch.tensor(0.75)
    torch.save({"state_dict": state}, tmp_path / "audioldm-s-full.ckpt")
    pipe = AudioLDM.from_pretrained(tmp_path / "audioldm-s-full.ckpt")
    assert pipe.unet is None and pipe.scale_factor == 0.75 and pipe.preset == "audioldm-16k"
    assert pipe.reconstruct(torch.zeros(1234)).shape == (1234,)
    folder = pipe.save_pretrained(tmp_path / "converted")
    again = AudioLDM.from_pretrained(folder)
    assert _states_equal(again.vae, pipe.vae) and _states_equal(again.vocoder, pipe.vocoder)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_writes_follow_the_umask_and_keep_a_replaced_files_mode(tmp_path):
    """A temp file + rename gives what a plain open() would: 0o666 less the umask for a new file (not
    mkstemp's private 0o600), the replaced file's own mode otherwise; no temp file is left behind.
    (tests/test_cli_generate.py checks the same through `audioldm generate`.)"""
    target = tmp_path / "out.bin"
    old = os.umask(0o077)
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"a")
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        os.umask(0o002)
        target.unlink()
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"b")
        assert stat.S_IMODE(target.stat().st_mode) == 0o664
        target.chmod(0o640)
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"c")
        assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_bytes() == b"c"
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
