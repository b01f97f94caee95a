"""The noise schedule against the reference's `ddim_schedule` fixture, and its invariants."""

import pytest
import torch

from audioldm_cli.errors import UsageError
from audioldm_cli.schedule import (
    ScheduleConfig,
    add_noise,
    alphas_cumprod,
    ddim_table,
    ddim_timesteps,
    make_betas,
    pred_to_x0_eps,
    training_target,
)


@pytest.fixture(scope="module")
def ref(oracle):
    return oracle("ddim_schedule")[1]


def test_betas_and_alphas_cumprod_match_reference_exactly(ref):
    cfg = ScheduleConfig()
    assert torch.equal(make_betas(cfg), ref["__output__.betas_float64"])
    assert torch.equal(alphas_cumprod(cfg, torch.float64), ref["__output__.alphas_cumprod_float64"])
    assert torch.equal(alphas_cumprod(cfg), ref["__output__.ddpm.alphas_cumprod"])
    acp = alphas_cumprod(cfg)
    acp64 = alphas_cumprod(cfg, torch.float64)
    assert torch.equal(acp64.sqrt().float(), ref["__output__.ddpm.sqrt_alphas_cumprod"])
    assert torch.equal((1 - acp64).sqrt().float(), ref["__output__.ddpm.sqrt_one_minus_alphas_cumprod"])
    assert acp.dtype == torch.float32


@pytest.mark.parametrize("steps", [200, 50])
@pytest.mark.parametrize("eta", [0, 1])
def test_ddim_tables_match_reference(ref, steps, eta):
    prefix = f"__output__.ddim{steps}_eta{eta}."
    ts = ddim_timesteps(steps, 1000)
    assert torch.equal(ts, ref[prefix + "timesteps"])
    table = ddim_table(ts, alphas_cumprod(ScheduleConfig()), float(eta))
    for name in ("alphas", "alphas_prev", "sqrt_one_minus_alphas"):
        assert torch.equal(table[name], ref[prefix + name + "_as_used_float32"]), name
    # sigmas come from a float64 expression whose exact operand order we do not mimic: 1 ulp.
    torch.testing.assert_close(table["sigmas"], ref[prefix + "sigmas_as_used_float32"], rtol=2.5e-7, atol=0)
    assert table["alphas_prev"][0] == alphas_cumprod(ScheduleConfig())[0]  # not 1, as in the reference


def test_ddim_timesteps_exact_length_and_bounds():
    assert ddim_timesteps(30, 1000).tolist()[:3] == [1, 34, 67]
    assert len(ddim_timesteps(30, 1000)) == 30
    assert ddim_timesteps(999, 1000).tolist() == list(range(1, 1000))
    with pytest.raises(UsageError, match="steps=0"):
        ddim_timesteps(0)
    for steps in (1000, 1001):  # 1000 would need timestep 1000, one past the 1000-entry schedule
        with pytest.raises(UsageError, match="between 1 and 999"):
            ddim_timesteps(steps)


def test_schedule_monotone_and_add_noise_identity_at_small_t():
    acp = alphas_cumprod(ScheduleConfig())
    assert bool((acp[1:] < acp[:-1]).all()) and 0 < float(acp[-1]) < float(acp[0]) < 1
    x0, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    # at t=0 only sqrt(1 - 0.9985) = 3.9% of the noise is mixed in
    assert bool(((add_noise(x0, noise, 0, acp) - x0).abs() <= 0.04 * (x0.abs() + noise.abs())).all())
    # per-item timesteps broadcast over the batch
    t = torch.tensor([0, 500, 999])
    xt = add_noise(x0, noise, t, acp)
    for i in range(3):
        a = acp[t[i]]
        torch.testing.assert_close(xt[i], a.sqrt() * x0[i] + (1 - a).sqrt() * noise[i])


@pytest.mark.parametrize("prediction_type", ["eps", "v"])
def test_training_target_round_trips_to_x0_and_eps(prediction_type):
    acp = alphas_cumprod(ScheduleConfig(), torch.float64)
    x0, noise = torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64)
    t = torch.tensor([10, 700])
    xt = add_noise(x0, noise, t, acp)
    target = training_target(x0, noise, t, acp, prediction_type)
    rec_x0, rec_eps = pred_to_x0_eps(target, xt, acp[t].reshape(-1, 1, 1), prediction_type)
    torch.testing.assert_close(rec_x0, x0)
    torch.testing.assert_close(rec_eps, noise)


def test_v_target_definition():
    acp = alphas_cumprod(ScheduleConfig(), torch.float64)
    x0, noise = torch.ones(1, 2), torch.zeros(1, 2)
    v = training_target(x0, noise, 999, acp, "v")
    torch.testing.assert_close(v, -(1 - acp[999]).sqrt().float().expand(1, 2))


def test_config_round_trip_and_errors():
    cfg = ScheduleConfig(prediction_type="v")
    assert ScheduleConfig.from_dict(cfg.to_dict()) == cfg
    assert ScheduleConfig.from_dict({"timesteps": 1000}) == ScheduleConfig()
    with pytest.raises(UsageError, match="unknown schedule key.*linear_stat"):
        ScheduleConfig.from_dict({"linear_stat": 0.1})
    with pytest.raises(UsageError, match="prediction_type='x0'"):
        ScheduleConfig(prediction_type="x0")
    with pytest.raises(UsageError, match="linear_start"):
        ScheduleConfig(linear_start=0.1, linear_end=0.01)


def test_ddim_tables_start_near_pure_noise_for_any_step_count():
    """The reference's stride T // S stops short of T - 1 when S does not divide T (S = 501 started at
    t = 501, as S = 2 does); the table keeps the reference's exactly where S divides T."""
    from audioldm_cli.schedule import ddim_timesteps

    for steps in (2, 4, 5, 8, 10, 20, 25, 40, 50, 100, 125, 200, 250, 500):  # divisors of 1000
        assert torch.equal(ddim_timesteps(steps), torch.arange(0, 1000, 1000 // steps) + 1)
    for steps in range(1, 1000):
        table = ddim_timesteps(steps)
        assert len(table) == steps and bool((table[1:] > table[:-1]).all()) and int(table[-1]) <= 999
        assert int(table[-1]) >= 1000 - 1000 // steps  # within one stride of the end
    assert int(ddim_timesteps(501)[-1]) == 999 and int(ddim_timesteps(334)[-1]) == 998
