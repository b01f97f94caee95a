"""HiFi-GAN generator: reference fixtures, key names, weight norm, config round trip."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from conftest import read_key_list

from vocoder import MEL_PRESETS, VOCODER_PRESETS, HifiGanConfig, HifiGanGenerator, waveform_to_int16
from vocoder.generator import fold_weight_norm


@pytest.fixture(scope="module")
def small(oracle, fixtures_dir):
    state, extra = oracle("hifigan_small")
    constructor = json.loads((fixtures_dir / "audioldm/oracle/hifigan_small.json").read_text())["constructor"]
    model = HifiGanGenerator.from_config(constructor).remove_weight_norm().eval()
    model.load_state_dict(state, strict=True)
    return model, extra


def test_hifigan_small_matches_reference(small):
    model, extra = small
    with torch.inference_mode():
        wave = model(extra["__input__.mel"])
    # 5 * 20 + 1 samples after the first (16, rate 5) layer, then x32: the reference's 160 * T + 32.
    assert wave.shape == (1, 1, 3232)
    torch.testing.assert_close(wave, extra["__output__.waveform"], rtol=1e-4, atol=1e-4)
    pcm = waveform_to_int16(wave)
    assert pcm.dtype == torch.int16 and pcm.shape == (1, 3232)
    assert (pcm.int() - extra["__output__.vocoder_infer_int16"].int()).abs().max() <= 1


def test_int16_clamps_instead_of_wrapping():
    pcm = waveform_to_int16(torch.tensor([[1.0, -1.0, 0.5, -0.99999]]))
    assert pcm.tolist() == [[32767, -32768, 16384, -32767]]


def test_audioldm_16k_keys_equal_the_official_vocoder(fixtures_dir):
    expected = read_key_list(fixtures_dir / "audioldm/keys/s_full_first_stage_model_vocoder.txt")
    expected = {k.removeprefix("first_stage_model.vocoder."): v for k, v in expected.items()}
    with torch.device("meta"):  # shapes only: 55 M parameters are not allocated
        model = HifiGanGenerator.from_config("audioldm-16k", use_weight_norm=False)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    assert sum(p.numel() for p in model.parameters()) == 55_264_897  # param_counts.json


def test_output_length_is_frames_times_hop():
    model = HifiGanGenerator.from_config("tiny").eval()
    with torch.inference_mode():
        wave = model(torch.randn(2, 64, 7))
    assert wave.shape == (2, 1, 7 * 160)
    assert wave.abs().max() <= 1.0


def test_weight_norm_training_form_and_removal():
    torch.manual_seed(0)
    model = HifiGanGenerator.from_config("tiny")
    names = list(model.state_dict())
    assert "conv_pre.parametrizations.weight.original0" in names
    assert "conv_pre.weight" not in names
    mel = torch.randn(1, 64, 5)
    wave = model(mel)
    wave.square().mean().backward()
    grad = model.conv_pre.parametrizations.weight.original1.grad
    assert grad is not None and grad.abs().sum() > 0

    plain = model.inference_state_dict()
    model.remove_weight_norm()
    assert sorted(model.state_dict()) == sorted(plain)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, plain[name], rtol=0, atol=1e-7)
    with torch.no_grad():
        torch.testing.assert_close(model(mel), wave.detach(), rtol=1e-5, atol=1e-6)
    model.remove_weight_norm()  # idempotent


def test_fold_weight_norm_release_names():
    v = torch.randn(4, 3, 5)
    g = torch.rand(4, 1, 1) + 0.5
    folded = fold_weight_norm({"c.weight_g": g, "c.weight_v": v, "c.bias": torch.zeros(4)})
    assert sorted(folded) == ["c.bias", "c.weight"]
    norms = folded["c.weight"].flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, g.flatten())
    # torch's own weight norm agrees
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(3, 4, 5))
    conv.parametrizations.weight.original0.data.copy_(g)
    conv.parametrizations.weight.original1.data.copy_(v)
    torch.testing.assert_close(folded["c.weight"], conv.weight.detach())


def test_resblock_2():
    cfg = {**VOCODER_PRESETS["tiny"].to_dict(), "resblock": "2", "resblock_dilation_sizes": [[1, 3], [1, 3]]}
    model = HifiGanGenerator.from_config(cfg, use_weight_norm=False).eval()
    assert "resblocks.0.convs.1.weight" in model.state_dict()
    assert not any("convs1" in k for k in model.state_dict())
    with torch.inference_mode():
        assert model(torch.randn(1, 64, 3)).shape == (1, 1, 480)


def test_config_round_trip_is_json():
    for name, preset in VOCODER_PRESETS.items():
        model_cfg = HifiGanConfig.from_dict(json.loads(json.dumps(preset.to_dict())))
        assert model_cfg == preset, name
    universal = VOCODER_PRESETS["universal-22k"].to_dict()
    assert universal["upsample_rates"] == [8, 8, 2, 2] and universal["mel"]["sample_rate"] == 22050
    model = HifiGanGenerator.from_config("tiny")
    assert HifiGanGenerator.from_config(model.config).config == model.config
    as_object = {**model.config, "mel": MEL_PRESETS["audioldm-16k"]}  # a MelConfig is accepted too
    assert HifiGanConfig.from_dict(as_object) == model.cfg


@pytest.mark.parametrize(
    "change, message",
    [
        ({"resblock": "3"}, "resblock='3'"),
        ({"upsample_rates": [5, 4]}, "same length"),
        ({"resblock_dilation_sizes": [[1, 3]]}, "must match"),
        ({"upsample_initial_channel": 30}, "divisible"),
        ({"num_mels": 80}, "n_mels=64"),
        ({"upsample_rates": [5, 4, 2, 2, 1], "upsample_kernel_sizes": [15, 8, 4, 4, 2]}, "hop_length=160"),
        ({"segment_size": 8192}, "unknown vocoder config keys ['segment_size']"),
        ({"resblock_kernel_sizes": [2, 5]}, "must be odd"),
        ({"resblock_dilation_sizes": 5}, "must be a list of lists of integers"),
        ({"num_mels": 0}, "num_mels=0: must be a positive integer"),
        ({"num_mels": None}, "num_mels=None: must be a positive integer"),
        ({"upsample_initial_channel": -512}, "must be a positive integer"),
    ],
)
def test_bad_config_is_one_line_error(change, message):
    with pytest.raises(ValueError) as err:
        HifiGanGenerator.from_config({**VOCODER_PRESETS["tiny"].to_dict(), **change})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_config_must_be_an_object_or_a_preset_name():
    with pytest.raises(ValueError, match="an object of settings or a preset name, got 5"):
        HifiGanGenerator.from_config(5)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown vocoder preset 'huge'; choose one of audioldm-16k"):
        HifiGanGenerator.from_config("huge")


def test_bad_input_shape():
    model = HifiGanGenerator.from_config("tiny")
    with pytest.raises(ValueError, match=r"expected a log-mel \(B, 64, T\)"):
        model(torch.randn(1, 80, 4))
    with pytest.raises(ValueError, match="with T >= 1"):
        model(torch.randn(1, 64, 0))
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros(1, 64, 3, dtype=torch.long))


def test_other_float_dtypes_are_cast_to_the_weights():
    model = HifiGanGenerator.from_config("tiny", use_weight_norm=False).eval()
    mel = torch.randn(1, 64, 3, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = model(mel)
        torch.testing.assert_close(model(mel.double()), ref)
        assert model(mel.half()).dtype == torch.float32


def test_init_is_torch_default_as_the_release_trains_from():
    """The release's N(0, 0.01) `init_weights` runs after weight norm and never reaches the parameters:
    its convs start from PyTorch's default (uniform, std 1/sqrt(3 fan_in)), and so do ours."""
    torch.manual_seed(0)
    model = HifiGanGenerator.from_config("universal-22k", use_weight_norm=False)
    conv = model.resblocks[0].convs1[0]  # 256 channels, kernel 3
    assert conv.weight.std().item() == pytest.approx((3 * 256 * 3) ** -0.5, rel=0.05)


def test_public_names_resolve():
    import vocoder
    import vocoder.checkpoint

    for name in vocoder.__all__:
        getattr(vocoder, name)  # the lazy table and __all__ agree
    assert vocoder.CheckpointError is vocoder.checkpoint.CheckpointError
    assert not hasattr(vocoder, "nonexistent")


def test_vocoder_never_imports_audioldm_cli():
    import vocoder

    sources = sorted(Path(vocoder.__file__).parent.glob("*.py"))
    assert len(sources) >= 7
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "audioldm_cli" for n in names), f"{path.name} imports {names}"
