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
import socket
import subprocess
import sys

from safetensors.torch import load_file
from test_training import assert_same_weights, make_manifest, metrics, vae_config

from audioldm_cli.training.run import train


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs in CI (issue 6): three Python processes importing torch, ~10 s on an idle machine.
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    manifest = make_manifest(tmp_path / "data")
    config = vae_config(tmp_path, disc_start=1)  # two optimisers, a GAN pass through the unwrapped D
    cmd = [
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
        "train",
        "vae",
        "--data",
        str(manifest),
        "--out",
        str(tmp_path / "two"),
        "--config",
        str(config),
        "--max-steps",
        "2",
        "--batch-size",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
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
