"""How recognisable are a model's VAE + vocoder round trips? Several models on the same held-out clips.

    python benchmarks/roundtrip_classifier.py MODEL [MODEL ...] [--per-category 10] [--corpus DIR]

The classifier of benchmarks/default_model.py (fitted on the whole train split, same choice by grouped
cross-validation) reads N val clips per category, then each model's `reconstruct` of them (VAE +
vocoder). Per model: top-1 accuracy, the mean probability it gives the true category (a smoother
measure than top-1 on ~100 clips) and the mean mel L1 of the round trip. Prints a Markdown table.
A VAE change that lowers mel L1 can still make round trips less recognisable (L1 rewards smoothed,
median spectra): judge decoder changes by both.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/vocoder.py would shadow the `vocoder` package when this file runs as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent))
logger = logging.getLogger("roundtrip_classifier")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--corpus", type=Path, default=ROOT / "examples" / "corpus" / "work")
    ap.add_argument("--per-category", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import default_model as dm

    from audioldm_cli.audio import read_audio
    from audioldm_cli.frontend import MelFrontend
    from audioldm_cli.metrics import reconstruction_report
    from audioldm_cli.pipeline import AudioLDM
    from vocoder.config import MEL_PRESETS

    mel = MEL_PRESETS["hifigan-22k"]
    frontend = MelFrontend(mel)
    train_rows = dm.read_rows(args.corpus / "manifest_train.jsonl")
    val_rows = dm.read_rows(args.corpus / "manifest_val.jsonl")
    clf, _, chosen, cats, _, _ = dm.corpus_classifier(
        args.corpus, frontend, train_rows, val_rows, 0, args.seed
    )
    rows = dm.per_category([r for r in val_rows if r["category"] in cats], args.per_category, args.seed)
    labels = np.array([cats.index(r["category"]) for r in rows])
    wavs = [read_audio(args.corpus / r["wav"], mel.sample_rate)[0] for r in rows]

    def score(feats: list[np.ndarray]) -> tuple[float, float]:
        p = clf.predict_proba(np.stack(feats))
        return float((p.argmax(1) == labels).mean()), float(p[np.arange(len(rows)), labels].mean())

    table = [("originals", *score([dm.features(frontend, w) for w in wavs]), 0.0, 0.0)]
    for model in args.models:
        t = time.time()
        pipe = AudioLDM.from_pretrained(model)
        feats, l1 = [], []
        with torch.inference_mode():
            for w in wavs:
                out = pipe.reconstruct(w)
                feats.append(dm.features(frontend, out))
                l1.append(reconstruction_report(w, out, pipe.mel_config)["mel_l1"])
        table.append((str(model), *score(feats), float(np.mean(l1)), time.time() - t))
        logger.info("%s: %s", model, table[-1][1:])
    print(f"\n{len(rows)} val clips ({args.per_category} per category at most), classifier {chosen}\n")
    print("| clips | top-1 | p(true category) | mel L1 |\n|---|---:|---:|---:|")
    for name, acc, p_true, l1, _ in table:
        print(f"| {name} | {100 * acc:.1f} % | {p_true:.3f} | {l1:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
