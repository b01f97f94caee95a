"""The UNet against the reference's small-config oracles and full-size key lists."""

import json

import pytest
import torch

from audioldm_cli.errors import UsageError
from audioldm_cli.unet import UNET_PRESETS, UNetConfig, UNetModel, timestep_embedding
from tests.conftest import read_key_list

PREFIX = "model.diffusion_model."


def _oracle_model(fixtures_dir, oracle, name):
    constructor = json.loads((fixtures_dir / "audioldm" / "oracle" / f"{name}.json").read_text())[
        "constructor"
    ]
    state, io = oracle(name)
    model = UNetModel.from_config(constructor).eval()
    model.load_state_dict(state, strict=True)
    return model, io


def test_film_unet_matches_reference(fixtures_dir, oracle):
    model, io = _oracle_model(fixtures_dir, oracle, "unet_small_film")
    with torch.inference_mode():
        out = model(io["__input__.x"], io["__input__.timesteps"], y=io["__input__.y"])
    torch.testing.assert_close(out, io["__output__.eps"], rtol=1e-4, atol=1e-4)


def test_crossattn_unet_matches_reference(fixtures_dir, oracle):
    model, io = _oracle_model(fixtures_dir, oracle, "unet_small_crossattn")
    with torch.inference_mode():
        out = model(io["__input__.x"], io["__input__.timesteps"], context=io["__input__.context"])
        # an all-True mask is the same as no mask
        masked = model(
            io["__input__.x"], io["__input__.timesteps"], context=io["__input__.context"],
            context_mask=torch.ones(2, 4, dtype=torch.bool),
        )  # fmt: skip
    torch.testing.assert_close(out, io["__output__.eps"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(masked, out, rtol=0, atol=1e-6)


def test_padded_tokens_are_ignored(fixtures_dir, oracle):
    """Tokens masked out as keys do not change the output, whatever their values."""
    model, io = _oracle_model(fixtures_dir, oracle, "unet_small_crossattn")
    x, t, ctx = io["__input__.x"], io["__input__.timesteps"], io["__input__.context"]
    junk = torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(0)) * 10
    mask = torch.tensor([[True] * 4 + [False] * 3] * 2)
    with torch.inference_mode():
        ref = model(x, t, context=ctx)
        padded = model(x, t, context=torch.cat([ctx, junk], dim=1), context_mask=mask)
        unmasked = model(x, t, context=torch.cat([ctx, junk], dim=1))
    torch.testing.assert_close(padded, ref, rtol=1e-5, atol=1e-5)
    assert (unmasked - ref).abs().max() > 1e-3


@pytest.mark.parametrize("size", ["s", "m", "l"])
def test_full_size_key_names_and_shapes(fixtures_dir, size):
    expected = read_key_list(fixtures_dir / "audioldm" / "keys" / f"{size}_full_diffusion_model_unet.txt")
    expected = {k.removeprefix(PREFIX): v for k, v in expected.items()}
    with torch.device("meta"):
        model = UNetModel.from_config(f"audioldm-{size}-full")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(got) == list(expected)  # same names in the same (registration) order
    assert got == expected
    counts = json.loads((fixtures_dir / "audioldm" / "keys" / "param_counts.json").read_text())
    n_params = sum(p.numel() for p in model.parameters())
    key = {"s": None, "m": "m_full_unet_parameters", "l": "l_full_unet_parameters"}[size]
    assert n_params == (
        counts["s_full_parameters"]["unet(model.diffusion_model)"] if key is None else counts[key]
    )


def test_presets_equal_reference_configs(fixtures_dir):
    counts = json.loads((fixtures_dir / "audioldm" / "keys" / "param_counts.json").read_text())
    for size in ("m", "l"):
        ref = UNetConfig.from_dict(counts[f"{size}_full_unet_config"])
        assert ref == UNetConfig.from_dict(UNET_PRESETS[f"audioldm-{size}-full"])


def test_tiny_preset_shapes_config_round_trip_and_padding():
    torch.manual_seed(0)
    model = UNetModel.from_config("tiny").eval()
    assert model.downsample_factor == 2
    cfg = json.loads(json.dumps(model.config))
    assert UNetModel.from_config(cfg).config == model.config
    x = torch.randn(3, 8, 6, 4)
    ctx, mask = (
        torch.randn(3, 5, 384),
        torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]).bool(),
    )
    with torch.no_grad():
        out = model(x, torch.tensor([1, 500, 999]), context=ctx, context_mask=mask)
        again = model(x[1:2], torch.tensor([500]), context=ctx[1:2], context_mask=mask[1:2])
    assert out.shape == (3, 8, 6, 4) and torch.isfinite(out).all()
    torch.testing.assert_close(out[1:2], again, rtol=1e-5, atol=1e-5)  # items are independent
    with pytest.raises(ValueError, match="multiple of 2"):
        model(torch.randn(1, 8, 5, 4), torch.tensor([1]), context=ctx[:1])
    with pytest.raises(ValueError, match="context is required"):
        model(x, torch.tensor([1, 2, 3]))


def test_film_add_mode_and_scale_shift_norm_forward_and_backward():
    cfg = dict(UNET_PRESETS["tiny"], context_dim=None, extra_film_condition_dim=16, use_scale_shift_norm=True)
    model = UNetModel.from_config(cfg)
    assert model.film_emb.out_features == 128 and model.input_blocks[1][0].emb_layers[1].in_features == 128
    x = torch.randn(2, 8, 4, 4)
    out = model(x, torch.tensor([3, 700]), y=torch.randn(2, 1, 16))
    out.square().mean().backward()
    assert out.shape == x.shape and model.film_emb.weight.grad.abs().sum() > 0


def test_timestep_embedding_is_cos_then_sin():
    emb = timestep_embedding(torch.tensor([0, 10]), 8)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    torch.testing.assert_close(emb[1, 0], torch.cos(torch.tensor(10.0)))
    torch.testing.assert_close(emb[1, 4], torch.sin(torch.tensor(10.0)))


def test_config_errors():
    with pytest.raises(UsageError, match="unknown unet config key.*model_channel"):
        UNetModel.from_config({"model_channel": 32})
    with pytest.raises(UsageError, match="multiple of 32"):
        UNetModel.from_config(dict(UNET_PRESETS["tiny"], model_channels=48))
    with pytest.raises(UsageError, match="unknown UNet preset"):
        UNetModel.from_config("huge")
    with pytest.raises(UsageError, match="set exactly one"):
        UNetModel.from_config(dict(UNET_PRESETS["tiny"], num_heads=4))


def test_a_row_with_no_kept_token_attends_to_all_tokens_instead_of_nan(fixtures_dir, oracle):
    model, io = _oracle_model(fixtures_dir, oracle, "unet_small_crossattn")
    x, t, ctx = io["__input__.x"], io["__input__.timesteps"], io["__input__.context"]
    mask = torch.tensor([[False] * 4, [True, True, False, False]])
    with torch.inference_mode():
        out = model(x, t, context=ctx, context_mask=mask)
        unmasked = model(x[:1], t[:1], context=ctx[:1])
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:1], unmasked, rtol=1e-5, atol=1e-5)
