#!/usr/bin/env bash
# Train every stage of a tiny model on a synthetic data set, then generate with it.
#
#   examples/tiny_recipe.sh [WORKDIR]      (default: a new temporary folder; printed at the end)
#
# Steps: 1. write 8 one-second clips + captions (train.jsonl)   2. train vocoder   3. train vae (stores
# the new vocoder in its export)   4. train ldm on top of the vae export   5. generate from the ldm export.
# Every stage runs a few steps (its tiny config's max_steps) of a test-sized model: the result is noise, the plumbing is real.
# Set AUDIOLDM to run another command, e.g. AUDIOLDM="python -m audioldm_cli".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIGS="$HERE/configs"
WORK="${1:-$(mktemp -d -t audioldm-recipe.XXXXXX)}"
read -r -a AUDIOLDM <<< "${AUDIOLDM:-audioldm}"
PYTHON="${PYTHON:-python}"
mkdir -p "$WORK"
cd "$WORK"

# 1. a tiny synthetic data set: tones and noise with captions, as JSON lines (paths relative to it)
"$PYTHON" - <<'PY'
import json
import numpy as np
import soundfile as sf

sr, rng = 16000, np.random.default_rng(0)
t = np.arange(sr) / sr
kinds = [("a low hum", lambda: 0.4 * np.sin(2 * np.pi * 110 * t)),
         ("a high beep", lambda: 0.3 * np.sin(2 * np.pi * 1760 * t) * (t % 0.25 < 0.125)),
         ("white noise", lambda: 0.1 * rng.standard_normal(t.size)),
         ("a rising chirp", lambda: 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t))]
with open("train.jsonl", "w") as manifest:
    for i in range(8):
        caption, make = kinds[i % len(kinds)]
        sf.write(f"clip{i}.wav", make().astype(np.float32), sr)
        manifest.write(json.dumps({"wav": f"clip{i}.wav", "caption": caption}) + "\n")
PY

# 2-4. train each stage (--device cpu: the recipe is a smoke test; drop it to use a GPU)
"${AUDIOLDM[@]}" train vocoder --data train.jsonl --out runs/vocoder --config "$CONFIGS/vocoder_tiny.json" --device cpu
"${AUDIOLDM[@]}" train vae --data train.jsonl --out runs/vae --config "$CONFIGS/vae_tiny.json" \
    --vocoder runs/vocoder/export --device cpu
"${AUDIOLDM[@]}" train ldm --data train.jsonl --out runs/ldm --config "$CONFIGS/ldm_tiny.json" \
    --init-from runs/vae/export --device cpu

# 5. generate with the trained model folder
"${AUDIOLDM[@]}" generate "a high beep" --model runs/ldm/export -o beep.wav --duration 1 --steps 5 --seed 0 \
    --device cpu -y
echo "recipe done in $WORK" >&2
