"""AutoencoderKL: reference fixtures, official key names, config round trip, posterior, .ckpt reading."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import read_key_list

from audioldm_cli.errors import ModelError, UsageError
from audioldm_cli.vae import (
    VAE_PRESETS,
    AutoencoderKL,
    DiagonalGaussianDistribution,
    load_first_stage_from_ckpt,
    upsample_conv,
)
from vocoder.checkpoint import CheckpointError

TOL = {"rtol": 1e-4, "atol": 1e-4}
FIXTURES = ["vae_small", "vae_small_t4_subband4"]


def fixture_model(fixtures_dir, oracle, name: str) -> tuple[AutoencoderKL, dict]:
    meta = json.loads((fixtures_dir / "audioldm" / "oracle" / f"{name}.json").read_text())
    cfg = {k: v for k, v in meta["constructor"].items() if k != "image_key_attribute"}
    state, tensors = oracle(name)
    model = AutoencoderKL.from_config(cfg).eval()
    model.load_state_dict(state, strict=True)
    return model, tensors


@pytest.mark.parametrize("name", FIXTURES)
def test_reproduces_reference_fixture(fixtures_dir, oracle, name):
    model, t = fixture_model(fixtures_dir, oracle, name)
    with torch.inference_mode():
        posterior = model.encode(t["__input__.x"])
        decoded = model.decode(posterior.mean)
    torch.testing.assert_close(posterior.parameters, t["__output__.moments"], **TOL)
    torch.testing.assert_close(posterior.mean, t["__output__.mean"], **TOL)
    torch.testing.assert_close(posterior.logvar, t["__output__.logvar"], **TOL)
    torch.testing.assert_close(posterior.std, t["__output__.std"], **TOL)
    torch.testing.assert_close(decoded, t["__output__.decoded"], **TOL)


@pytest.mark.parametrize("name", FIXTURES)
def test_reproduces_reference_intermediates(fixtures_dir, oracle, name):
    from audioldm_cli.frontend import merge_subbands, split_subbands

    model, t = fixture_model(fixtures_dir, oracle, name)
    n = model.subband
    split = split_subbands(t["__input__.x"], n) if n > 1 else t["__input__.x"]
    assert torch.equal(split, t["__intermediate__.subband_split"])
    with torch.inference_mode():
        torch.testing.assert_close(model.encoder(split), t["__intermediate__.encoder_out"], **TOL)
        before_merge = model.decoder(model.post_quant_conv(t["__output__.mean"]))
    torch.testing.assert_close(before_merge, t["__intermediate__.decoder_out_before_merge"], **TOL)
    if n > 1:
        torch.testing.assert_close(merge_subbands(before_merge, n), t["__output__.decoded"], **TOL)


def test_s_full_parameter_names_and_shapes_equal_the_official_checkpoint(fixtures_dir):
    ref = read_key_list(fixtures_dir / "audioldm" / "keys" / "s_full_first_stage_model_vae.txt")
    ref = {k.removeprefix("first_stage_model."): v for k, v in ref.items()}
    with torch.device("meta"):
        model = AutoencoderKL.from_config("audioldm-s-full")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(ref)  # same names, same (registration) order
    assert ours == ref
    counts = json.loads((fixtures_dir / "audioldm" / "keys" / "param_counts.json").read_text())
    assert sum(p.numel() for p in model.parameters()) == counts["s_full_parameters"]["vae_without_vocoder"]


def test_downsampling_factors_and_latent_shape(fixtures_dir, oracle):
    with torch.device("meta"):
        s_full = AutoencoderKL.from_config("audioldm-s-full")
    assert (s_full.time_downsample_factor, s_full.freq_downsample_factor, s_full.latent_channels) == (4, 4, 8)
    t4, _ = fixture_model(fixtures_dir, oracle, "vae_small_t4_subband4")
    # levels 0 (x2) and 1 (time x4); frequency: 4 subbands x 2 x 2
    assert (t4.time_downsample_factor, t4.freq_downsample_factor) == (8, 16)
    tiny = AutoencoderKL.from_config("tiny").eval()
    with torch.inference_mode():
        z = tiny.encode(torch.randn(2, 1, 24, 16)).mean
        assert z.shape == (2, 8, 6, 4)
        assert tiny.decode(z).shape == (2, 1, 24, 16)


@pytest.mark.parametrize(
    "scale, kernel, size",
    [((2, 2), 3, (5, 3)), ((4, 2), 5, (3, 4)), ((2, 2), 5, (4, 4)), ((3, 1), 3, (2, 5))],
)
def test_phase_upsampling_equals_conv_after_nearest_upsampling(scale, kernel, size):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 5, kernel, padding=kernel // 2)
    x = torch.randn(2, 6, *size, requires_grad=True)
    expected = conv(F.interpolate(x, scale_factor=scale, mode="nearest"))
    out = upsample_conv(x, conv, scale)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # differentiable as well (training goes through the same path)
    (g_out,) = torch.autograd.grad(out.square().sum(), x)
    (g_exp,) = torch.autograd.grad(expected.square().sum(), x)
    torch.testing.assert_close(g_out, g_exp, rtol=1e-4, atol=1e-4)


def test_config_round_trips_through_json():
    for name, preset in VAE_PRESETS.items():
        with torch.device("meta"):
            model = AutoencoderKL.from_config(name)
        cfg = json.loads(json.dumps(model.config))
        assert cfg["scale_factor"] == preset["scale_factor"]
        with torch.device("meta"):
            again = AutoencoderKL.from_config(cfg)
        assert again.config == model.config
        assert {k: v.shape for k, v in again.state_dict().items()} == {
            k: v.shape for k, v in model.state_dict().items()
        }
    # the reference's training-only keys are accepted and dropped
    tiny = AutoencoderKL.from_config({**VAE_PRESETS["tiny"], "image_key": "fbank", "time_shuffle": 1})
    assert "image_key" not in tiny.config


@pytest.mark.parametrize(
    "change, match",
    [
        ({"embed_dimm": 8}, "unknown VAE config keys \\['embed_dimm'\\]"),
        ({"ddconfig": {**VAE_PRESETS["tiny"]["ddconfig"], "chmult": [1]}}, "unknown ddconfig keys"),
        ({"subband": 2}, "in_channels 1 / out_ch 1: must both equal subband \\(2\\)"),
        ({"ddconfig": {**VAE_PRESETS["tiny"]["ddconfig"], "ch": 48}}, "multiple of 32"),
        ({"ddconfig": {**VAE_PRESETS["tiny"]["ddconfig"], "downsample_time_stride4_levels": [2]}}, "0..1"),
        ({"scale_factor": 0.0}, "scale_factor 0.0"),
    ],
)
def test_bad_configs_are_rejected_with_the_rule(change, match):
    with pytest.raises(ModelError, match=match):
        AutoencoderKL.from_config({**VAE_PRESETS["tiny"], **change})
    with pytest.raises(UsageError, match="unknown VAE preset 'huge'; choose one of audioldm-s-full"):
        AutoencoderKL.from_config("huge")


def tiny_with(**ddconfig) -> dict:
    return {**VAE_PRESETS["tiny"], "ddconfig": {**VAE_PRESETS["tiny"]["ddconfig"], **ddconfig}}


def test_channel_norm_keeps_the_checkpoint_keys_and_normalises_each_position():
    from audioldm_cli.checkpoint import config_hash
    from audioldm_cli.vae import ChannelNorm

    torch.manual_seed(0)
    group = AutoencoderKL.from_config("tiny")
    channel = AutoencoderKL.from_config(tiny_with(norm="channel"))
    assert "norm" not in group.config["ddconfig"]  # AudioLDM's GroupNorm stays implicit: same config hash
    assert config_hash(AutoencoderKL.from_config(tiny_with(norm="group")).config) == config_hash(group.config)
    assert channel.config["ddconfig"]["norm"] == "channel"
    assert AutoencoderKL.from_config(json.loads(json.dumps(channel.config))).config == channel.config
    assert {k: v.shape for k, v in channel.state_dict().items()} == {
        k: v.shape for k, v in group.state_dict().items()
    }
    assert isinstance(channel.decoder.mid.block_1.norm1, ChannelNorm)
    norm = ChannelNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.normal_()
    x = torch.randn(2, 6, 5, 4) * 3 + 1
    var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
    scale, shift = norm.weight.view(1, -1, 1, 1), norm.bias.view(1, -1, 1, 1)
    expected = (x - mean) / torch.sqrt(var + 1e-6) * scale + shift
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ModelError, match="norm 'batch': must be one of group, channel"):
        AutoencoderKL.from_config(tiny_with(norm="batch"))


@pytest.mark.parametrize("norm, local", [("channel", True), ("group", False)])
def test_channel_norm_makes_the_convolutions_local_in_time(norm, local):
    """Without the mid-block attention, a channel-norm encoder gives a chunk's inner frames exactly as
    on the whole input (its output depends only on nearby frames); GroupNorm's whole-input statistics
    make them differ, which is why a GroupNorm VAE trained on 1 s crops is worse on 5 s clips."""
    torch.manual_seed(0)
    model = AutoencoderKL.from_config(tiny_with(norm=norm)).eval()
    model.encoder.mid.attn_1 = torch.nn.Identity()
    mel = torch.randn(1, 1, 256, 16)
    mel[..., 128:, :] = mel[..., 128:, :] * 4 - 3  # louder second half: different statistics
    with torch.inference_mode():
        whole = model.encode(mel).mean
        chunk = model.encode(mel[..., :96, :]).mean  # latent frames 0..24
    inner = slice(0, 12)  # beyond the receptive field (~40 mel frames) of the chunk's right border
    assert torch.allclose(chunk[..., inner, :], whole[..., inner, :], atol=1e-5) == local


def test_inputs_off_the_grid_are_refused():
    tiny = AutoencoderKL.from_config("tiny").eval()
    with pytest.raises(
        UsageError, match="mel length 10 frames: .* multiple of the VAE time downsampling 4; pad it to 12"
    ):
        tiny.encode(torch.zeros(1, 1, 10, 16))
    with pytest.raises(
        UsageError, match="mel bins 18: must be a multiple of the VAE frequency downsampling 4"
    ):
        tiny.encode(torch.zeros(1, 1, 12, 18))
    with pytest.raises(UsageError, match=r"expected a mel \[B, 1, T, F\]"):
        tiny.encode(torch.zeros(1, 12, 16))
    with pytest.raises(UsageError, match=r"expected \[B, 8, T, F\]"):
        tiny.decode(torch.zeros(1, 4, 3, 4))


def test_batch_items_are_independent():
    torch.manual_seed(0)
    tiny = AutoencoderKL.from_config("tiny").eval()
    mel = torch.randn(3, 1, 16, 16)
    with torch.inference_mode():
        batch = tiny.encode(mel).mean
        alone = tiny.encode(mel[1:2]).mean
        torch.testing.assert_close(batch[1:2], alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(tiny.decode(batch)[2:], tiny.decode(batch[2:]), rtol=1e-5, atol=1e-5)


def test_posterior_moments_clamp_sample_and_kl():
    torch.manual_seed(0)
    mean, logvar = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    post = DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1))
    assert torch.equal(post.mode(), mean)
    torch.testing.assert_close(post.var, logvar.exp())
    # KL against N(0, I) and against another Gaussian, averaged over C, H, W, checked with torch.distributions
    normal = torch.distributions.Normal
    expected = torch.distributions.kl_divergence(normal(mean, post.std), normal(0.0, 1.0)).mean(dim=(1, 2, 3))
    torch.testing.assert_close(post.kl(), expected)
    other = DiagonalGaussianDistribution(torch.randn(2, 6, 4, 5))
    expected = torch.distributions.kl_divergence(normal(mean, post.std), normal(other.mean, other.std))
    torch.testing.assert_close(post.kl(other), expected.mean(dim=(1, 2, 3)))
    assert post.kl().shape == (2,)
    nll = -normal(mean, post.std).log_prob(mean + 0.3).sum(dim=(1, 2, 3))
    torch.testing.assert_close(post.nll(mean + 0.3), nll)
    # sampling: reproducible per generator, mean + std * N(0, 1)
    a = post.sample(torch.Generator().manual_seed(7))
    b = post.sample(torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, mean + post.std * noise)
    # log-variance clamped to [-30, 20]
    wild = DiagonalGaussianDistribution(torch.tensor([0.0, 0.0, -100.0, 100.0]).view(1, 4, 1, 1))
    assert wild.logvar.flatten().tolist() == [-30.0, 20.0]


TINY_DD = VAE_PRESETS["tiny"]["ddconfig"]
TRAIN_CONFIGS = {
    # attention at the second level (resolution 256 -> 128)
    "attention": {**VAE_PRESETS["tiny"], "ddconfig": {**TINY_DD, "attn_resolutions": [128]}},
    # 2 subbands, time-stride-4 at level 0: time x4, frequency 2 x 2
    "subband_t4": {
        "ddconfig": {
            **TINY_DD,
            "ch_mult": [1, 2],
            "in_channels": 2,
            "out_ch": 2,
            "downsample_time_stride4_levels": [0],
        },
        "embed_dim": 4,
        "subband": 2,
    },
}


@pytest.mark.parametrize("name", list(TRAIN_CONFIGS))
def test_training_forward_backward_is_finite(name):
    torch.manual_seed(0)
    model = AutoencoderKL.from_config(TRAIN_CONFIGS[name]).train()
    mel = torch.randn(2, 1, 16, 8)
    recon, post = model(mel, generator=torch.Generator().manual_seed(0))
    assert recon.shape == mel.shape
    assert post.mean.shape == (
        2,
        model.latent_channels,
        16 // model.time_downsample_factor,
        8 // model.freq_downsample_factor,
    )
    loss = (recon - mel).abs().mean() + 1e-6 * post.kl().sum()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0
    if name == "attention":
        assert model.encoder.down[1].attn[0].q.weight.grad.abs().sum() > 0


def make_checkpoint(cfg, seed: int) -> tuple[dict, dict]:
    """An official-layout checkpoint holding random tensors under the first-stage names of `cfg`."""
    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in AutoencoderKL.from_config(cfg).state_dict().items()}
    vae = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    state = {f"first_stage_model.{k}": v for k, v in vae.items()}
    state["first_stage_model.vocoder.conv_pre.weight"] = torch.zeros(4, 64, 7)
    state["model.diffusion_model.out.2.bias"] = torch.zeros(8)
    state["scale_factor"] = torch.tensor(0.5)
    return {"state_dict": state, "global_step": 3}, vae


def test_load_first_stage_from_synthetic_official_checkpoint(tmp_path):
    ckpt, vae = make_checkpoint("tiny", seed=1)
    path = tmp_path / "audioldm-tiny.ckpt"
    torch.save(ckpt, path)
    model = load_first_stage_from_ckpt(path, "tiny")
    assert not model.training
    assert model.scale_factor == 0.5 and model.config["scale_factor"] == 0.5
    loaded = model.state_dict()
    assert loaded.keys() == vae.keys()
    assert all(torch.equal(loaded[k], vae[k]) for k in vae)
    # an in-memory state_dict works the same
    again = load_first_stage_from_ckpt(ckpt["state_dict"], "tiny")
    assert torch.equal(again.decoder.conv_out.weight, vae["decoder.conv_out.weight"])


def test_truncated_checkpoint_gives_one_line_error(tmp_path):
    ckpt, _ = make_checkpoint("tiny", seed=2)
    path = tmp_path / "cut.ckpt"
    torch.save(ckpt, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch checkpoint") as err:
        load_first_stage_from_ckpt(path, "tiny")
    assert "\n" not in str(err.value)


def test_mismatched_checkpoint_names_the_shapes_and_the_fitting_config(tmp_path):
    wider = {**VAE_PRESETS["tiny"], "ddconfig": {**VAE_PRESETS["tiny"]["ddconfig"], "ch": 64}}
    ckpt, _ = make_checkpoint(wider, seed=3)
    path = tmp_path / "wider.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as err:
        load_first_stage_from_ckpt(path, "tiny")
    msg = str(err.value)
    assert "\n" not in msg
    assert "shape mismatches" in msg and "encoder.conv_in.weight (64, 1, 3, 3) vs (32, 1, 3, 3)" in msg
    assert "The weights fit a config with ch=64, ch_mult=[1, 2, 2], num_res_blocks=1" in msg
    # the s-full checkpoint layout is recognised by name
    ckpt, _ = make_checkpoint("tiny", seed=4)
    with pytest.raises(CheckpointError, match="The weights fit config 'tiny'"):
        load_first_stage_from_ckpt(ckpt, "audioldm-s-full")


def test_checkpoint_without_first_stage_is_refused(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.out.2.bias": torch.zeros(8)}}, path)
    with pytest.raises(ModelError, match="has no 'first_stage_model.\\*' entries"):
        load_first_stage_from_ckpt(path)
    with pytest.raises(UsageError, match="unknown VAE preset"):
        load_first_stage_from_ckpt(make_checkpoint("tiny", 5)[0], "s-full")


def test_component_folder_round_trip(tmp_path):
    """save_component -> read_component -> from_config -> strict load gives the same model."""
    from vocoder.checkpoint import load_state_dict_strict, read_component, save_component

    torch.manual_seed(0)
    model = AutoencoderKL.from_config({**VAE_PRESETS["tiny"], "scale_factor": 0.75}).eval()
    save_component(tmp_path / "vae", "AutoencoderKL", model.config, model.state_dict())
    cfg, state = read_component(tmp_path / "vae", "AutoencoderKL")
    again = AutoencoderKL.from_config(cfg).eval()
    load_state_dict_strict(again, state, str(tmp_path / "vae"))
    assert again.scale_factor == 0.75
    mel = torch.randn(1, 1, 8, 8)
    with torch.inference_mode():
        assert torch.equal(again.encode(mel).mean, model.encode(mel).mean)


@pytest.mark.parametrize("name", FIXTURES)
def test_infer_config_reads_the_architecture_off_the_weights(fixtures_dir, oracle, name):
    from audioldm_cli.vae import infer_config

    model, _ = fixture_model(fixtures_dir, oracle, name)
    state, _ = oracle(name)
    guessed = AutoencoderKL.from_config(infer_config(state)).config
    assert guessed == model.config  # these fixtures have no attention outside the middle blocks
    assert infer_config({"decoder.conv_out.weight": torch.zeros(1, 32, 3, 3)}) is None


def _smooth_mel(batch: int, frames: int = 16, bins: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, 1, frames // 4, bins // 4, generator=g)
    return F.interpolate(mel, size=(frames, bins), mode="bilinear", align_corners=False) - 4.0


def test_refine_fits_the_latent_and_never_ends_worse():
    """A mel the decoder can produce (decoded from a random latent): fitting from the encoder's latent
    must get much closer to it than the encoder's single pass, for every item."""
    torch.manual_seed(0)
    tiny = AutoencoderKL.from_config("tiny").eval()
    weights = {k: v.clone() for k, v in tiny.state_dict().items()}
    with torch.inference_mode():  # as the pipeline calls it: inputs made in inference mode
        mel = tiny.decode(torch.randn(2, 8, 4, 4))
        z0 = tiny.encode(mel).mode()
    start, loss0 = tiny.refine(mel, z0, 0)
    torch.testing.assert_close(start, z0)
    with torch.no_grad():
        torch.testing.assert_close(loss0, (tiny.decode(z0) - mel).abs().flatten(1).mean(1))
    z, loss = tiny.refine(mel, z0, 40)
    assert z.shape == z0.shape and not z.requires_grad
    assert (loss < 0.7 * loss0).all(), (loss, loss0)  # a real fit, item by item (0.52-0.58 here)
    with torch.no_grad():
        torch.testing.assert_close(loss, (tiny.decode(z) - mel).abs().flatten(1).mean(1))
    for k, v in tiny.state_dict().items():  # the weights are fixed and collect no gradient
        assert torch.equal(v, weights[k]), k
    assert all(p.grad is None for p in tiny.parameters())
    with pytest.raises(UsageError, match="refine steps must be >= 0"):
        tiny.refine(mel, z0, -1)


def test_refine_returns_the_best_latent_it_saw():
    """With a step size far too large the loss jumps around; the result is the best z, not the last."""
    torch.manual_seed(2)
    tiny = AutoencoderKL.from_config("tiny").eval()
    with torch.no_grad():
        mel = tiny.decode(torch.randn(1, 8, 4, 4))
        z0 = tiny.encode(mel).mode()
    _, loss0 = tiny.refine(mel, z0, 0)
    z, loss = tiny.refine(mel, z0, 5, lr=50.0)
    assert loss <= loss0
    with torch.no_grad():
        torch.testing.assert_close(loss, (tiny.decode(z) - mel).abs().flatten(1).mean(1))


def test_refine_keeps_batch_items_independent():
    torch.manual_seed(1)
    tiny = AutoencoderKL.from_config("tiny").eval()
    mel = torch.cat([_smooth_mel(1, seed=1), _smooth_mel(1, seed=2) * 3])
    with torch.no_grad():
        z0 = tiny.encode(mel).mode()
    batch, batch_loss = tiny.refine(mel, z0, 8)
    alone, alone_loss = tiny.refine(mel[1:], z0[1:], 8)
    torch.testing.assert_close(batch[1:], alone, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(batch_loss[1:], alone_loss, rtol=1e-4, atol=1e-5)
