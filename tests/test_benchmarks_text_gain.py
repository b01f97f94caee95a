"""benchmarks/text_gain.py: the UNet's noise-prediction error with a caption against the empty prompt's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from audioldm_cli.pipeline import AudioLDM

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def text_gain():
    spec = importlib.util.spec_from_file_location(
        "benchmarks_text_gain", REPO / "benchmarks" / "text_gain.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module.text_gain
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def pipe(tiny_model) -> AudioLDM:
    return AudioLDM.from_pretrained(tiny_model)


def _latents(pipe: AudioLDM, batch: int) -> torch.Tensor:
    frames = 4 * pipe.unet_factor
    shape = (batch, pipe.latent_channels, frames, pipe.mel_config.n_mels // pipe.freq_factor)
    return torch.randn(shape, generator=torch.Generator().manual_seed(3))


def test_the_empty_caption_is_the_unconditional_side(text_gain, pipe):
    err_u, err_c = text_gain(pipe, _latents(pipe, 2), ["", ""], [10, 500, 990], draws=2)
    assert err_u.shape == (3, 2)
    assert torch.equal(err_u, err_c)
    assert bool((err_u > 0).all()) and bool(torch.isfinite(err_u).all())


def test_captions_change_the_error_and_runs_repeat(text_gain, pipe):
    latents, captions = _latents(pipe, 2), ["a dog barks", "rain on a roof"]
    first = text_gain(pipe, latents, captions, [100, 700], draws=2, seed=5)
    again = text_gain(pipe, latents, captions, [100, 700], draws=2, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(*first)  # the tiny UNet's cross-attention does read the text
    other_noise = text_gain(pipe, latents, captions, [100, 700], draws=2, seed=6)
    assert not torch.equal(first[0], other_noise[0])


def test_one_caption_per_latent(text_gain, pipe):
    with pytest.raises(ValueError, match="2 latents but 1 captions"):
        text_gain(pipe, _latents(pipe, 2), ["a dog"], [100], draws=1)


def test_a_v_model_is_scored_on_its_noise_estimate(text_gain, tmp_path):
    """For a v-predicting UNet the error is that of the noise estimate derived from v, the same quantity
    as an eps model's: it equals the eps error computed by hand from the v output."""
    from audioldm_cli.schedule import add_noise, alphas_cumprod, pred_to_x0_eps
    from audioldm_cli.testing import make_tiny_model

    pipe = AudioLDM.from_pretrained(make_tiny_model(tmp_path / "v", prediction_type="v"))
    latents = _latents(pipe, 2)
    _, err_c = text_gain(pipe, latents, ["a dog", "rain"], [600], draws=1, seed=2)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(2))
    acp = alphas_cumprod(pipe.schedule)
    x_t = add_noise(latents, noise, 600, acp)
    with torch.inference_mode():
        v = pipe.unet(x_t, torch.full((2,), 600), **pipe._condition(["a dog", "rain"]))
    eps = pred_to_x0_eps(v, x_t, acp[600], "v")[1]
    torch.testing.assert_close(err_c[0], (eps - noise).pow(2).mean((1, 2, 3)), rtol=1e-5, atol=1e-7)
    assert not torch.allclose(err_c[0], (v - noise).pow(2).mean((1, 2, 3)))  # not the raw v output
