"""examples/tiny_recipe.sh: every stage trains a few steps, and the result generates audio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


# Runs in CI (issue 6): four CLI processes (torch import, MiniLM load each), ~40 s of CPU on 2 cores.
def test_tiny_recipe_trains_every_stage_and_generates(tmp_path):
    env = {
        **os.environ,
        "AUDIOLDM": f"{sys.executable} -m audioldm_cli",
        "PYTHON": sys.executable,
        "CI": "true",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
    }
    proc = subprocess.run(
        ["bash", str(REPO / "examples" / "tiny_recipe.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    exports = [f"runs/{stage}/export" for stage in ("vocoder", "vae", "ldm")]
    assert proc.stdout.split() == [*exports, "beep.wav"]  # stdout: the written paths only
    info = sf.info(tmp_path / "beep.wav")
    assert (info.samplerate, info.frames) == (16000, 16000)
    model = json.loads((tmp_path / "runs" / "ldm" / "export" / "pipeline.json").read_text())
    assert model["components"] == {"vae": "vae", "vocoder": "vocoder", "unet": "unet"}
    for stage in ("vocoder", "vae", "ldm"):
        steps = [json.loads(line)["step"] for line in (tmp_path / "runs" / stage / "metrics.jsonl").open()]
        assert steps[-1] == 3
