"""Fault tolerance (issue 10): concurrent `generate` processes never clobber each other's files, batch
commands go on past bad items, and a training run SIGKILLed at random points (mid-save included)
always resumes from its last complete checkpoint and ends with the weights of an uninterrupted run.

The subprocess tests are `slow`; their last results are recorded in tests/SLOW_RESULTS.md.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from audioldm_cli.cli import app

runner = CliRunner()
SR = 16000
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CI": "true", "OMP_NUM_THREADS": "1"}


def tone(n: int, freq: float = 440.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# batch commands go on past bad items


@pytest.fixture(scope="module")
def recon_model(tmp_path_factory) -> Path:
    from audioldm_cli.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("ft") / "model", with_unet=False)


@pytest.mark.parametrize("command", ["mel", "reconstruct", "encode"])
def test_batch_goes_on_past_bad_items_and_exits_1(command, recon_model, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir(), out.mkdir()
    sf.write(src / "a.wav", tone(3200), SR)
    (src / "b.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")  # bad header
    sf.write(src / "c.flac", tone(4800, 660), SR)
    (src / "d.wav").write_bytes(b"")  # empty
    sf.write(src / "e.wav", tone(1600, 880), SR)
    args = {
        "mel": ["mel", str(src), "--out-dir", str(out)],
        "reconstruct": [
            "reconstruct",
            str(src),
            "--out-dir",
            str(out),
            "--model",
            str(recon_model),
            "--device",
            "cpu",
        ],
        "encode": ["encode", str(src), "-o", str(out), "--model", str(recon_model), "--device", "cpu"],
    }[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 3, errors  # one per bad file, then the summary
    assert str(src / "b.wav") in errors[0] and str(src / "d.wav") in errors[1]
    assert "2 of 5" in errors[2]
    suffix = {"mel": ".npy", "reconstruct": "_recon.wav", "encode": ".latent.safetensors"}[command]
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"{stem}{suffix}" for stem in "ace"]  # the good ones, and no temp file
    assert sorted(result.stdout.split()) == [str(out / name) for name in written]  # encode: by length groups
    if command == "reconstruct":
        assert [sf.info(out / n).frames for n in written] == [3200, 4800, 1600]


# ----------------------------------------------------------------------------------------------
# two generate processes, one output folder


def _generate_args(model: Path, prompts: list[str], seed: int, out: Path) -> list[str]:
    return [
        "generate",
        *prompts,
        "--out-dir",
        str(out),
        "--model",
        str(model),
        "--device",
        "cpu",
        "--steps",
        "3",
        "--duration",
        "0.2",
        "--seed",
        str(seed),
        "--batch-size",
        "1",
    ]


@pytest.mark.slow
def test_concurrent_generate_processes_never_clobber_each_other(tiny_model, tmp_path):
    """A and B share two output names; each file is whole, printed by one process, and holds its audio."""
    plans = {"A": (["rain", "wind", "thunder", "surf"], 1), "B": (["thunder", "wind", "birds", "surf"], 2)}
    # what each process would write on its own
    expected = {}
    for name, (prompts, seed) in plans.items():
        ref = tmp_path / f"ref_{name}"
        ref.mkdir()
        result = runner.invoke(app, _generate_args(tiny_model, prompts, seed, ref))
        assert result.exit_code == 0, result.output
        expected[name] = {p.name: sf.read(p, dtype="float32")[0] for p in ref.iterdir()}
    assert np.abs(expected["A"]["wind_0.wav"] - expected["B"]["wind_0.wav"]).max() > 0.05

    shared = tmp_path / "shared"
    shared.mkdir()
    exe = Path(sys.executable).with_name("audioldm")
    procs = {
        name: subprocess.Popen(
            [str(exe), *_generate_args(tiny_model, prompts, seed, shared)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for name, (prompts, seed) in plans.items()
    }
    outs = {name: p.communicate(timeout=300) for name, p in procs.items()}
    codes = {name: p.returncode for name, p in procs.items()}
    printed = {name: [Path(line).name for line in out.split()] for name, (out, _) in outs.items()}
    for name, (_, err) in outs.items():
        assert "Traceback" not in err, err
    files = sorted(p.name for p in shared.iterdir())
    assert files == [
        "birds_0.wav",
        "rain_0.wav",
        "surf_0.wav",
        "thunder_0.wav",
        "wind_0.wav",
    ]  # no temp files
    assert sorted(printed["A"] + printed["B"]) == files  # every file claimed by exactly one process
    for name, names in printed.items():
        other = "B" if name == "A" else "A"
        for file in names:  # the audio of the process that printed it (to a few LSB: other thread count)
            got = sf.read(shared / file, dtype="float32")[0]
            assert np.abs(got - expected[name][file]).max() <= 4 / 32768, (name, file)
            if file in expected[other]:
                assert np.abs(got - expected[other][file]).max() > 0.05, (name, file)
    for name, (_, err) in outs.items():
        lost = 4 - len(printed[name])
        if lost:  # either refused up front (exit 2) or lost the race for a name (exit 1)
            assert codes[name] in (1, 2), err
            assert re.search(r"already exists|appeared while running", err), err
        else:
            assert codes[name] == 0, err


# ----------------------------------------------------------------------------------------------
# training killed with SIGKILL at random points

TINY_VAE = {
    "frontend": "audioldm-16k",
    "model": {
        "ddconfig": {"ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "z_channels": 4},
        "embed_dim": 4,
    },
    "loss": {"kl_weight": 1e-4, "mel_scales": [1, 2], "disc_start": -1},
    "train": {
        "max_steps": 16,
        "batch_size": 2,
        "lr": 2e-3,
        "segment_seconds": 0.08,
        "log_every": 1,
        "save_every": 1,
        "keep_last": 2,
        "cpu": True,
        "adam_eps": 1e-3,
    },
}

# The child: train (resuming when a checkpoint exists), dying by SIGKILL at the k-th call of `target`.
CHILD = textwrap.dedent("""
    import logging, os, shutil, signal, sys, torch
    from pathlib import Path
    import safetensors.torch
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
    target, k, data, run, config = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), sys.argv[5]
    calls = [0]

    def die():
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(real, torn):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] != k:
                return real(*args, **kwargs)
            if target == "rmtree":  # delete one file of the folder, then die: a half-removed folder
                files = sorted(Path(args[0]).glob("*")) if Path(args[0]).is_dir() else []
                if files:
                    files[-1].unlink()
                die()
            if target == "os.replace":
                die()
            real(*args, **kwargs)
            path = Path(args[1] if target in ("save_file", "torch.save") else args[0])
            if torn and path.is_file():  # killed while the bytes were going out
                with open(path, "r+b") as f:
                    f.truncate(path.stat().st_size // 2)
            die()
        return wrapper

    if target == "save_file":
        safetensors.torch.save_file = wrap(safetensors.torch.save_file, torn=True)
    elif target == "torch.save":
        torch.save = wrap(torch.save, torn=True)
    elif target == "os.replace":
        os.replace = wrap(os.replace, torn=False)
    elif target == "rmtree":
        shutil.rmtree = wrap(shutil.rmtree, torn=False)
    from audioldm_cli.training.run import train
    resume = any((run / "checkpoints").glob("step_*"))
    state = train("vae", data, run, config=None if resume else config, resume=resume)
    print("finished", state.step, flush=True)
""")


def complete_checkpoints(run: Path) -> dict[int, Path]:
    """step -> folder, for checkpoint folders whose every file loads and agrees on its step."""
    from vocoder.checkpoint import torch_load_safe

    found = {}
    for folder in sorted((run / "checkpoints").glob("step_*")):
        try:
            weights = [load_file(str(f)) for f in sorted(folder.glob("*.safetensors"))]
            state = torch_load_safe(folder / "train_state.pt")
        except Exception:  # noqa: BLE001, S112 - any failure means "not complete"
            continue
        step = int(folder.name.split("_")[1])
        if state["step"] == step and (folder / "vae.safetensors").is_file() and all(weights):
            found[step] = folder
    return found


def logged_step(run: Path) -> int:
    """The last step written to metrics.jsonl (log_every is 1), 0 before the first."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    steps = [json.loads(line).get("step", 0) for line in lines if line.endswith("}")]
    return max(steps, default=0)


def make_data(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        wave = (
            tone(4800, 300 * (i + 1)) if i % 2 == 0 else (0.1 * rng.standard_normal(4800)).astype(np.float32)
        )
        sf.write(folder / f"clip{i}.wav", wave, SR)
        rows.append(json.dumps({"wav": f"clip{i}.wav", "caption": f"sound {i}"}))
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "vae.json").write_text(json.dumps(TINY_VAE))
    return folder / "train.jsonl", folder / "vae.json"


@pytest.mark.slow
def test_sigkill_at_random_points_always_resumes_from_the_last_complete_checkpoint(tmp_path):
    from audioldm_cli.training.run import train

    manifest, config = make_data(tmp_path / "data")
    reference = train("vae", manifest, tmp_path / "reference", config=config)
    assert reference.step == 16
    want = load_file(str(tmp_path / "reference" / "checkpoints" / "step_00000016" / "vae.safetensors"))

    seed = int(os.environ.get("KILL_SEED", "0"))
    rng = random.Random(seed)
    run = tmp_path / "run"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    log = []
    for attempt in range(16):
        before = complete_checkpoints(run) if run.exists() else {}
        if attempt < 14:
            target = rng.choice(["timer", "save_file", "torch.save", "os.replace", "rmtree"])
            k = rng.randint(1, 3)
        else:  # then let it finish
            target, k = "none", 0
        cmd = [sys.executable, str(script), target, str(k), str(manifest), str(run), str(config)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        if target == "timer":  # kill a random moment after a random step (any machine speed)
            kill_after = min(16, max(before, default=0) + rng.randint(1, 3))
            jitter = rng.uniform(0.0, 0.4)
            while proc.poll() is None and logged_step(run) < kill_after:
                time.sleep(0.01)
            time.sleep(jitter)
            proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
        assert "Traceback" not in err, err[-3000:]
        resumed = re.findall(r"resumed from .*step_(\d+) at step (\d+)", err)
        trained = re.search(r"step \d+/16", err)  # got past startup (a kill may land while importing)
        if resumed:  # always from the newest complete checkpoint
            assert before and int(resumed[0][1]) == max(before), (before, resumed, target, k)
        else:  # a run with a checkpoint that got past its startup must have resumed
            assert not (before and (trained or proc.returncode == 0)), (target, k, before, err[-3000:])
        log.append((target, k, proc.returncode, max(before) if before else None))
        if proc.returncode == 0:
            assert out.strip().endswith("finished 16"), out
            break
        assert proc.returncode == -signal.SIGKILL, (target, k, proc.returncode, err[-3000:])
        after = complete_checkpoints(run)
        if before:  # a kill never destroys the newest complete checkpoint it started from
            assert max(after) >= max(before), (target, k, before, after)
    else:
        pytest.fail(f"the run never finished: {log}")
    kills = [entry for entry in log if entry[2] != 0]
    assert len(kills) >= 4, log
    final = run / "checkpoints" / "step_00000016"
    got = load_file(str(final / "vae.safetensors"))
    assert got.keys() == want.keys()
    for key, value in want.items():  # killed and resumed == never interrupted
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-5, msg=key)
    assert (run / "export" / "vae" / "model.safetensors").is_file()
    assert not list((run / "checkpoints").glob(".tmp_*"))  # temp folders of killed saves are cleaned up
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s] == sorted(s for s in steps if s)  # no step logged twice out of order
    print(f"KILL_SEED={seed}: {len(kills)} kills {log}")


# ----------------------------------------------------------------------------------------------
# no network at run time: the main commands, in fresh processes that log and refuse any attempt

NET_GUARD = textwrap.dedent("""
    import ipaddress, os, socket, sys

    LOG = os.environ["NET_LOG"]

    def local(host):
        if host in (None, "", "localhost") or isinstance(host, bytes) and host in (b"localhost",):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def refuse(what, target):
        with open(LOG, "a") as f:
            f.write(f"{what} {target!r}\\n")
        raise OSError(f"network disabled in this test: {what} {target!r}")

    real_connect, real_gai = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if isinstance(address, tuple) and not local(address[0]):
            refuse("connect", address)
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not local(host):
            refuse("getaddrinfo", host)
        return real_gai(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.getaddrinfo = getaddrinfo
    from audioldm_cli.cli import main
    sys.argv = ["audioldm", *sys.argv[1:]]
    main()
""")


@pytest.mark.slow
def test_main_commands_never_touch_the_network(tiny_model, tmp_path):
    guard = tmp_path / "guard.py"
    guard.write_text(NET_GUARD)
    net_log = tmp_path / "net.log"
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(8000), SR)
    env = {k: v for k, v in ENV.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["NET_LOG"] = str(net_log)  # HF_HUB_OFFLINE unset: the tool itself must not need it
    commands = [
        ["--help"],
        [
            "generate",
            "a dog barking",
            "-o",
            str(tmp_path / "dog.wav"),
            "--model",
            str(tiny_model),
            "--steps",
            "2",
            "--duration",
            "0.5",
            "--seed",
            "0",
        ],
        ["reconstruct", str(wav), "-o", str(tmp_path / "r.wav"), "--model", str(tiny_model)],
        ["encode", str(wav), "-o", str(tmp_path), "--model", str(tiny_model)],
        ["info", str(tiny_model)],
        ["mel", str(wav), "-o", str(tmp_path / "a.npy")],
    ]
    for args in commands:
        proc = subprocess.run(
            [sys.executable, str(guard), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )
        assert proc.returncode == 0, (args, proc.stderr[-3000:])
        assert not net_log.exists(), (args, net_log.read_text())
    assert sf.info(tmp_path / "dog.wav").frames == 8000
