"""Two CPU processes under `accelerate launch` (torchrun + gloo) give the single-process result.

The global batch (`--batch-size`) is split evenly over the processes and DDP averages the per-process
mean gradients, and every random draw (rows, crops, noise) is keyed by the sample's position in the
global batch, so 2 processes x 1 sample == 1 process x 2 samples up to float summation order.

Note: accelerate's `--cpu` flag makes `accelerate launch` start ONE process (multi-CPU needs MPI);
`--multi_gpu --num_processes 2` on a machine without GPUs (or with `train.cpu: true`) runs torchrun
with the gloo backend on CPU, which is what this test does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_training import assert_same_weights, make_manifest, metrics, vae_config

from audioldm_cli.training.run import train


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two(*args: str) -> list[str]:
    """`accelerate launch` of `audioldm <args>` in two CPU processes (gloo)."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(free_port()),
        "-m",
        "audioldm_cli",
        *args,
    ]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


# Runs in CI (issue 6): three Python processes importing torch, ~10 s on an idle machine.
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    manifest = make_manifest(tmp_path / "data")
    config = vae_config(tmp_path, disc_start=1)  # two optimisers, a GAN pass through the unwrapped D
    args = ["--data", str(manifest), "--out", str(tmp_path / "two"), "--config", str(config)]
    cmd = launch_two("train", "vae", *args, "--max-steps", "2", "--batch-size", "2")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training vae on 2 process(es)" in proc.stderr
    assert proc.stdout.strip().splitlines() == [str(tmp_path / "two" / "export")]  # printed by rank 0 only
    train("vae", manifest, tmp_path / "one", config=config, overrides={"max_steps": 2, "batch_size": 2})
    for name in ("vae", "disc"):
        a = load_file(str(tmp_path / "one" / "checkpoints" / "step_00000002" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "two" / "checkpoints" / "step_00000002" / f"{name}.safetensors"))
        assert_same_weights(a, b, atol=1e-5)
    # the logged losses are the global-batch means, as in the single-process run
    one, two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    for a, b in zip(one, two):
        assert a["step"] == b["step"]
        for key in ("loss/rec", "loss/kl"):
            assert abs(a[key] - b[key]) <= 1e-4 * abs(a[key]), (key, a, b)
    assert json.loads((tmp_path / "two" / "config.json").read_text())["train"]["batch_size"] == 2


def worker_pids(pid: int) -> dict[int, int]:
    """The distributed workers below process `pid`, by their RANK (read from Linux's /proc)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in map(int, (task / "children").read_text().split()):
            pairs = Path(f"/proc/{child}/environ").read_bytes().decode(errors="replace").split("\0")
            env = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
            if "RANK" in env:
                found[int(env["RANK"])] = child
            found.update(worker_pids(child))
    return found


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").is_file(),
    reason="finds the workers through Linux's /proc/PID/task/TID/children",
)
def test_sigterm_to_one_process_stops_both_after_the_same_step(tmp_path):
    """A scheduler may signal one worker only: both stop after the same step (no process left waiting in
    a collective), one checkpoint is saved, the error is said once, and the run resumes from it."""
    manifest = make_manifest(tmp_path / "data")
    run = tmp_path / "two"
    args = ["--data", str(manifest), "--out", str(run), "--config", str(vae_config(tmp_path, save_every=0))]
    cmd = launch_two("train", "vae", *args, "--max-steps", "100000", "--batch-size", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not ((run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").read_text().strip()):
            assert time.monotonic() < deadline and proc.poll() is None, "training did not start"
            time.sleep(0.1)
        os.kill(worker_pids(proc.pid)[1], signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0  # the launcher reports its workers' 143 as a failure
    saved = sorted((run / "checkpoints").iterdir())
    assert len(saved) == 1, saved
    step = int(saved[0].name.split("_")[1])
    assert err.count("WARNING: SIGTERM: stopping after this step") == 1  # only the signalled worker got it
    assert err.count(f"terminated at step {step}: saving a checkpoint") == 1
    assert err.count(f"error: terminated at step {step}: saved {saved[0]}; continue with --resume") == 1
    assert err.count("rows (0 skipped)") == 1  # the other process's info lines repeat rank 0's: not shown
    assert out.strip().splitlines() == [str(run / "export")]
    assert (run / "export" / "vae" / "model.safetensors").is_file()
    state = train("vae", manifest, run, resume=True, overrides={"max_steps": step + 1})
    assert state.step == step + 1 and not state.interrupted
    assert [m["step"] for m in metrics(run)][-1] == step + 1
