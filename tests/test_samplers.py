"""Samplers: the reference DDIM stub fixture to float32 rounding, and diffusers' schedulers as an oracle."""

import pytest
import torch

from audioldm_cli.samplers import (
    SAMPLERS,
    classifier_free_guidance,
    randn_like,
    sample_ddim,
    sample_dpmpp_2m,
    stochastic_encode,
)
from audioldm_cli.schedule import (
    ScheduleConfig,
    alphas_cumprod,
    ddim_timesteps,
    make_betas,
    pred_to_x0_eps,
    x0_to_pred,
)

ACP = alphas_cumprod(ScheduleConfig())


def stub_eps(x, t, c):
    """The fixture's stand-in network: 0.8x + 0.2 tanh(3x) + 0.1 mean(c_b) + 0.05 t/1000 per item."""
    m = c.reshape(c.shape[0], -1).mean(1).reshape(-1, 1, 1, 1)
    return 0.8 * x + 0.2 * torch.tanh(3 * x) + 0.1 * m + 0.05 * (t.float().reshape(-1, 1, 1, 1) / 1000)


def assert_float32_equal(out: torch.Tensor, ref: torch.Tensor) -> None:
    """Equal up to a few float32 ulps: torch's vectorised tanh rounds differently on AVX2 and AVX-512
    CPUs (the fixture's and CI's may differ), and 10 to 20 sampler steps carry that last-bit difference
    along (1.1e-6 on outputs of magnitude 3.6 seen on an Intel Xeon against the AMD-made fixture)."""
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-6)


@pytest.fixture(scope="module")
def stub(oracle):
    return oracle("ddim_sampler_stub")[1]


def test_ddim_stub_no_guidance_matches_fixture(stub):
    c = stub["__input__.c"]
    out = sample_ddim(lambda x, t: stub_eps(x, t, c), stub["__input__.x_T"], ddim_timesteps(10), ACP)
    assert_float32_equal(out, stub["__output__.sample_noguidance"])


def test_ddim_stub_guidance_matches_fixture(stub):
    c, uc = stub["__input__.c"], stub["__input__.uc"]
    calls = []

    def model_2b(x, t):
        calls.append(x.shape[0])
        return stub_eps(x, t, torch.cat([uc, c]))  # unconditional half first

    out = sample_ddim(classifier_free_guidance(model_2b, 2.5), stub["__input__.x_T"], ddim_timesteps(10), ACP)
    assert_float32_equal(out, stub["__output__.sample_cfg"])
    assert calls == [4] * 10  # one batched call (cond + uncond) per step


def test_ddim_style_transfer_matches_fixture(stub):
    c, uc = stub["__input__.c"], stub["__input__.uc"]
    ts = ddim_timesteps(20)
    t_enc = int(0.5 * 20)
    z = stochastic_encode(
        stub["__input__.transfer.x0"], ts, ACP, t_enc, noise=stub["__input__.transfer.noise"]
    )
    assert torch.equal(z, stub["__output__.transfer.z_enc"])
    guided = classifier_free_guidance(lambda x, t: stub_eps(x, t, torch.cat([uc, c])), 2.5)
    out = sample_ddim(guided, z, ts[:t_enc], ACP)
    assert_float32_equal(out, stub["__output__.transfer.decoded_latent"])


def toy_model(x, t):
    """An analytic stand-in network, smooth in x and t."""
    tt = t.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1))) / 1000
    return 0.6 * x + 0.3 * torch.sin(2 * x) * (1 - tt) + 0.2 * tt


def mixing_model(x, t):
    """Like toy_model, but every position sees the mean of its row (so a latent mask steers the rest)."""
    return toy_model(x, t) + 0.3 * x.mean(dim=-1, keepdim=True)


def _run_diffusers(scheduler, x, timesteps, **step_kwargs):
    for t in timesteps:
        out = toy_model(x, torch.full((x.shape[0],), int(t)))
        x = scheduler.step(out, int(t), x, **step_kwargs).prev_sample
    return x


@pytest.mark.parametrize("prediction_type", ["eps", "v"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_matches_diffusers(prediction_type, eta):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(
        trained_betas=make_betas(ScheduleConfig()).numpy(),
        clip_sample=False,
        set_alpha_to_one=False,  # the reference ends at alpha-bar[0]
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type={"eps": "epsilon", "v": "v_prediction"}[prediction_type],
    )
    sched.set_timesteps(25)
    ts = ddim_timesteps(25)
    assert torch.equal(sched.timesteps.flip(0), ts)
    x = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(0))
    expected = _run_diffusers(sched, x, sched.timesteps, eta=eta, generator=torch.Generator().manual_seed(5))
    got = sample_ddim(
        toy_model,
        x,
        ts,
        ACP,
        prediction_type=prediction_type,
        eta=eta,
        generator=torch.Generator().manual_seed(5),
    )
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("prediction_type", ["eps", "v"])
@pytest.mark.parametrize("steps", [5, 20])
def test_dpmpp_2m_matches_diffusers(prediction_type, steps):
    from diffusers import DPMSolverMultistepScheduler

    sched = DPMSolverMultistepScheduler(
        trained_betas=make_betas(ScheduleConfig()).numpy(),
        algorithm_type="dpmsolver++",
        solver_order=2,
        solver_type="midpoint",
        lower_order_final=True,
        final_sigmas_type="zero",
        prediction_type={"eps": "epsilon", "v": "v_prediction"}[prediction_type],
    )
    ts = ddim_timesteps(steps)
    sched.set_timesteps(timesteps=ts.flip(0).tolist())
    x = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(1))
    expected = _run_diffusers(sched, x, sched.timesteps)
    got = sample_dpmpp_2m(toy_model, x, ts, ACP, prediction_type=prediction_type)
    torch.testing.assert_close(got, expected, atol=5e-5, rtol=1e-4)


def test_dpmpp_2m_recovers_a_point_mass():
    """With the exact eps of a one-point data distribution every step lands on that point."""
    target = torch.tensor([[0.5, -1.0, 2.0]])

    def exact_eps(x, t):
        a = ACP[t].reshape(-1, 1)
        return (x - a.sqrt() * target) / (1 - a).sqrt()

    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(3))
    out = sample_dpmpp_2m(exact_eps, x, ddim_timesteps(7), ACP)
    torch.testing.assert_close(out, target, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_share_signature_and_report_progress(name):
    seen = []
    x = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    out = SAMPLERS[name](toy_model, x, ddim_timesteps(6), ACP, callback=lambda d, n: seen.append((d, n)))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert seen == [(i, 6) for i in range(1, 7)]
    again = SAMPLERS[name](toy_model, x, ddim_timesteps(6), ACP)
    assert torch.equal(out, again)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_latent_mask_keeps_known_region(name):
    x = torch.randn(2, 2, 4, 8, generator=torch.Generator().manual_seed(0))
    x0 = torch.randn(2, 2, 4, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 1, 1, 8)
    mask[..., :3] = 1.0
    gen = torch.Generator().manual_seed(2)
    out = SAMPLERS[name](mixing_model, x, ddim_timesteps(5), ACP, x0=x0, mask=mask, generator=gen)
    assert torch.equal(out[..., :3], x0[..., :3])
    free = SAMPLERS[name](mixing_model, x, ddim_timesteps(5), ACP)
    assert not torch.allclose(out[..., 3:], free[..., 3:])  # the known part steers the rest
    with pytest.raises(ValueError, match="together"):
        SAMPLERS[name](toy_model, x, ddim_timesteps(5), ACP, x0=x0)


def test_per_item_generators_make_items_batch_independent():
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    gens = [torch.Generator().manual_seed(10 + i) for i in range(3)]
    batch = sample_ddim(toy_model, x, ddim_timesteps(4), ACP, eta=1.0, generator=gens)
    alone = sample_ddim(
        toy_model, x[2:], ddim_timesteps(4), ACP, eta=1.0, generator=[torch.Generator().manual_seed(12)]
    )
    torch.testing.assert_close(batch[2:], alone, atol=1e-6, rtol=0)
    assert not torch.allclose(batch[0], batch[2])
    noise = randn_like(x, [torch.Generator().manual_seed(s) for s in (7, 8, 8)])
    assert torch.equal(noise[1], noise[2])  # same seed, same noise


def test_guidance_formula_and_scale_one_equals_conditional():
    def model_2b(x, t):
        b = x.shape[0] // 2
        return torch.cat([torch.ones_like(x[:b]), torch.full_like(x[b:], 3.0)])  # uncond = 1, cond = 3

    x, t = torch.zeros(2, 3), torch.tensor([5, 5])
    torch.testing.assert_close(classifier_free_guidance(model_2b, 2.5)(x, t), torch.full((2, 3), 1 + 2.5 * 2))
    torch.testing.assert_close(classifier_free_guidance(model_2b, 1.0)(x, t), torch.full((2, 3), 3.0))


@pytest.mark.parametrize("prediction_type", ["eps", "v"])
def test_x0_to_pred_inverts_pred_to_x0(prediction_type):
    g = torch.Generator().manual_seed(0)
    x, pred = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    a = ACP[torch.tensor([0, 500, 999])].view(-1, 1, 1)
    x0, _ = pred_to_x0_eps(pred, x, a, prediction_type)
    torch.testing.assert_close(x0_to_pred(x0, x, a, prediction_type), pred, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("prediction_type", ["eps", "v"])
def test_guidance_rescale_matches_the_conditional_x0_spread(prediction_type):
    """rescale 0 is plain guidance; 1 gives each item's guided x0 the std of its conditional x0; phi mixes
    the two x0 linearly; the output stays a model output at the same x_t."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, 5, generator=g)
    outs = torch.randn(4, 3, 4, 5, generator=g)  # uncond half, cond half
    t = torch.tensor([900, 40])
    a = ACP[t].view(-1, 1, 1, 1)

    def model_2b(x2, t2):
        assert torch.equal(t2, torch.cat([t, t])) and torch.equal(x2, torch.cat([x, x]))
        return outs

    def x0_of(pred):
        return pred_to_x0_eps(pred, x, a, prediction_type)[0]

    def guided(scale, phi):
        fn = classifier_free_guidance(
            model_2b, scale, rescale=phi, alphas_cumprod=ACP, prediction_type=prediction_type
        )
        return fn(x, t)

    plain = outs[:2] + 7.0 * (outs[2:] - outs[:2])
    torch.testing.assert_close(guided(7.0, 0.0), plain)
    x0_plain, x0_cond = x0_of(plain), x0_of(outs[2:])
    full = x0_of(guided(7.0, 1.0))
    torch.testing.assert_close(full.std(dim=(1, 2, 3)), x0_cond.std(dim=(1, 2, 3)), atol=1e-3, rtol=1e-3)
    ratio = full / x0_plain  # a per-item rescale of the plain x0, shrinking it (strong guidance spreads it)
    torch.testing.assert_close(ratio, ratio[:, :1, :1, :1].expand_as(ratio), atol=1e-3, rtol=1e-3)
    assert bool((ratio[:, 0, 0, 0] < 1).all())
    torch.testing.assert_close(x0_of(guided(7.0, 0.7)), 0.7 * full + 0.3 * x0_plain, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        classifier_free_guidance(model_2b, 3.0, rescale=1.5, alphas_cumprod=ACP)
    with pytest.raises(ValueError, match="needs alphas_cumprod"):
        classifier_free_guidance(model_2b, 3.0, rescale=0.5)


def test_bad_inputs_raise():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ascending"):
        sample_ddim(toy_model, x, torch.tensor([5, 1]), ACP)
    with pytest.raises(ValueError, match="lie in"):
        sample_dpmpp_2m(toy_model, x, torch.tensor([1, 1000]), ACP)
    with pytest.raises(ValueError, match="deterministic"):
        sample_dpmpp_2m(toy_model, x, ddim_timesteps(3), ACP, eta=1.0)
    with pytest.raises(ValueError, match="t_enc=20"):
        stochastic_encode(x, ddim_timesteps(20), ACP, 20)
