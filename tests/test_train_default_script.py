"""examples/train_default.sh end to end on a tiny corpus, two steps a stage: every stage runs, the
decoder stage keeps the encoder the UNet was trained on, and the assembled folder loads and generates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
SR = 22050


def tiny_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    rows = {"train": [], "val": []}
    for i in range(5):
        wave = 0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t) if i % 2 else 0.1 * rng.standard_normal(t.size)
        sf.write(folder / f"clip{i}.wav", wave.astype(np.float32), SR)
        split = "val" if i == 4 else "train"
        category = "tone" if i % 2 else "noise"
        row = {"wav": f"clip{i}.wav", "caption": f"a {category}", "category": category}
        row["captions"] = [f"a {category}", f"some {category} {i}"]  # the corpus builder's paraphrases
        rows[split].append(json.dumps(row))
    for split, lines in rows.items():
        (folder / f"manifest_{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_train_default_script_runs_every_stage_and_assembles(tmp_path):
    corpus, work, dest = tiny_corpus(tmp_path / "corpus"), tmp_path / "work", tmp_path / "dest"
    env = {
        **os.environ,
        "CORPUS": str(corpus),
        "DEST": str(dest),
        "VAE_STEPS": "2",
        "VAE_DECODER_STEPS": "2",
        "LDM_STEPS": "2",
        "LDM_BATCH": "3",
        "PYTHON": sys.executable,
        "AUDIOLDM": f"{sys.executable} -m audioldm_cli",
        "NICE": "nice -n 0",
    }
    script = ["bash", str(ROOT / "examples" / "train_default.sh"), str(work)]
    done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(dest)

    record = json.loads((dest / "training.json").read_text())
    assert [record[s]["steps"] for s in ("vae", "vae_decoder", "ldm")] == [2, 2, 2]
    assert record["vae_decoder"]["config"]["loss"]["freeze_encoder"] is True
    assert record["ldm"]["config"]["train"]["batch_size"] == 3  # LDM_BATCH (the config file says 16)
    pipeline = json.loads((dest / "pipeline.json").read_text())
    assert pipeline["sampling"]["guidance_scale"] == 15.0 and pipeline["sampling"]["frame_level_limit"] < 0
    assert pipeline["sampling"]["guidance_rescale"] == 1.0
    assert pipeline["sampling"]["refine_steps"] == 50
    assert pipeline["sampling"]["steps"] == 25

    # the assembled VAE is stage 1b's: stage 1's encoder (which made the UNet's latents), a new decoder
    first = load_file(str(work / "vae" / "export" / "vae" / "model.safetensors"))
    tuned = load_file(str(work / "vae_decoder" / "export" / "vae" / "model.safetensors"))
    final = load_file(str(dest / "vae" / "model.safetensors"))
    assert final.keys() == first.keys() == tuned.keys()
    for k, v in tuned.items():
        assert torch.equal(v.half(), final[k]), k
        if k.startswith(("encoder.", "quant_conv.")):
            assert torch.equal(v, first[k]), k
        elif k.endswith(".weight"):
            assert not torch.equal(v, first[k]), k
    decoder = [k for k in tuned if k.startswith(("decoder.", "post_quant_conv."))]
    assert any(not torch.equal(tuned[k].half(), first[k].half()) for k in decoder)  # visible in fp16 too

    from audioldm_cli.pipeline import AudioLDM

    wave = AudioLDM.from_pretrained(dest).generate("a tone", duration=0.5, steps=2, seed=0)
    assert wave.shape == (1, round(0.5 * SR)) and torch.isfinite(wave).all()

    # a second run reuses every stage and assembles the same model
    again = subprocess.run(script, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("reusing") == 3
    assert load_file(str(dest / "vae" / "model.safetensors")).keys() == final.keys()

    # a decoder stage whose encoder is not the one the UNet's latents came from is refused
    path = work / "vae_decoder" / "export" / "vae" / "model.safetensors"
    changed = dict(tuned)
    key = next(k for k in changed if k.startswith("encoder."))
    changed[key] = changed[key] + 0.01
    save_file(changed, str(path))
    refused = subprocess.run(script, env=env, capture_output=True, text=True, timeout=900)
    assert refused.returncode == 1 and "is not from the VAE the UNet was trained on" in refused.stderr
    assert torch.equal(load_file(str(dest / "vae" / "model.safetensors"))[key], final[key])  # dest untouched

    # the UNet trains on the first caption of each clip unless PARAPHRASES=1 passes them all
    def latent_rows():
        lines = (work / "latents" / "manifest_train.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    assert [("captions" in r) for r in latent_rows()] == [False] * 4
    save_file(tuned, str(path))
    subprocess.run(["rm", "-r", str(work / "latents"), str(work / "ldm")], check=True)
    listed = subprocess.run(
        script, env={**env, "PARAPHRASES": "1"}, capture_output=True, text=True, timeout=900, check=False
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    expected = [[f"a {c}", f"some {c} {i}"] for i, c in enumerate(["noise", "tone", "noise", "tone"])]
    assert [r["captions"] for r in latent_rows()] == expected
    assert "lists no" not in listed.stderr
    # a corpus built before the builder kept every paraphrase: said, and trained on one caption a clip
    train_manifest = corpus / "manifest_train.jsonl"
    rows = [json.loads(line) for line in train_manifest.read_text().splitlines() if line.strip()]
    train_manifest.write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "captions"}) + "\n" for r in rows)
    )
    subprocess.run(["rm", "-r", str(work / "latents"), str(work / "ldm")], check=True)
    old = subprocess.run(
        script, env={**env, "PARAPHRASES": "1"}, capture_output=True, text=True, timeout=900, check=False
    )
    assert old.returncode == 0, old.stderr[-3000:]
    assert 'PARAPHRASES=1 but the corpus manifest lists no "captions"' in old.stderr
    assert [("captions" in r) for r in latent_rows()] == [False] * 4
