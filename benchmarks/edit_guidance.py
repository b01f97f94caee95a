"""Edits of the default model: does the edited audio reach the prompt's category?

    nice -n 10 python benchmarks/edit_guidance.py [--edit transfer|inpaint] [--model checkpoints/default]
                                                  [--corpus examples/corpus/work] [--strength 0.5 0.7]
                                                  [--span 1.5 3.5] [--per-category 2] [--steps 50]
                                                  [--json benchmarks/edit_guidance.json]

Takes `--per-category` held-out val clips of each corpus category and edits each twice, towards a
phrasing of the category 4 and of the category 8 places further on in the sorted list (the phrasings are
`default_model.TUNING_PROMPTS`, never corpus captions nor the held-out prompts that score generation),
with the edit commands' sampling (DDIM, seed 0) under two guidance settings:

- plain classifier-free guidance 2.5, AudioLDM's default for its edits (and no rescale);
- the edits' defaults: the guidance scale and rescale the model recommends for `generate`.

`--edit transfer` (style transfer at each `--strength`) classifies the whole output; `--edit inpaint`
regenerates `--span` seconds and classifies that span alone (and, in the JSON, the whole clip). The
classifier is `default_model.py`'s (fitted on the train split as there). Reports the share classified as
the prompt's category (the edit worked) and as the input's. Prints a table; `--json` also writes the
per-item predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose vocoder.py would shadow the `vocoder` package


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "default")
    ap.add_argument("--corpus", type=Path, default=ROOT / "examples" / "corpus" / "work")
    ap.add_argument("--edit", choices=["transfer", "inpaint"], default="transfer")
    ap.add_argument("--strength", type=float, nargs="+", default=[0.5, 0.7], help="transfer only")
    ap.add_argument("--span", type=float, nargs=2, default=[1.5, 3.5], help="inpaint only: start end (s)")
    ap.add_argument("--per-category", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from audioldm_cli import editing
    from audioldm_cli.audio import read_audio
    from audioldm_cli.frontend import MelFrontend
    from audioldm_cli.pipeline import AudioLDM

    sys.path.append(str(ROOT / "benchmarks"))  # for default_model (ROOT comes first: see above)
    import default_model as dm

    torch.set_num_threads(2)
    pipe = AudioLDM.from_pretrained(args.model)
    front = MelFrontend(pipe.mel_config)
    train_rows = dm.read_rows(args.corpus / "manifest_train.jsonl")
    val_rows = dm.read_rows(args.corpus / "manifest_val.jsonl")
    clf, cv, chosen, cats, _, _ = dm.corpus_classifier(args.corpus, front, train_rows, val_rows, 0, 0)
    clips = dm.per_category(val_rows, args.per_category, 0)
    rec = editing.edit_sampling(pipe)
    settings = {
        "plain guidance 2.5": {
            "guidance_scale": 2.5,
            "guidance_rescale": 0.0,
            "frame_level_limit": float("inf"),
        },
        f"the model's ({rec.guidance_scale:g}, rescale {rec.guidance_rescale:g})": {},
    }
    result = {
        "model": str(args.model),
        "edit": args.edit,
        "classifier": {"chosen": chosen, "cv": cv[chosen]},
        "runs": [],
    }
    sr = pipe.sample_rate
    lo, hi = (round(t * sr) for t in args.span)

    def classify(wav: torch.Tensor) -> str:
        return cats[int(clf.predict(dm.features(front, wav)[None])[0])]

    def edit(wav, prompt, strength, kwargs) -> tuple[str, str]:
        """(prediction of the judged audio, of the whole output)."""
        if args.edit == "transfer":
            out = editing.transfer(pipe, wav, prompt, strength=strength, steps=args.steps, seed=0, **kwargs)
            pred = classify(out.wav)
            return pred, pred
        out = editing.inpaint(pipe, wav, prompt, *args.span, steps=args.steps, seed=0, **kwargs)
        return classify(out.wav[lo:hi]), classify(out.wav)

    print(
        "| edit | guidance | to the prompt's category | still the input's | n |\n|---:|---|---:|---:|---:|"
    )
    for strength in args.strength if args.edit == "transfer" else [None]:
        for name, kwargs in settings.items():
            items, t0 = [], time.time()
            for i, row in enumerate(clips):
                wav = read_audio(args.corpus / row["wav"], pipe.sample_rate)[0]
                for shift in (4, 8):
                    target = cats[(cats.index(row["category"]) + shift) % len(cats)]
                    prompt = dm.TUNING_PROMPTS[target][i % 2]
                    pred, whole = edit(wav, prompt, strength, kwargs)
                    items.append(
                        {
                            "wav": row["wav"],
                            "source": row["category"],
                            "target": target,
                            "prompt": prompt,
                            "predicted": pred,
                            "whole": whole,
                        }
                    )
            to_target = float(np.mean([it["predicted"] == it["target"] for it in items]))
            kept = float(np.mean([it["predicted"] == it["source"] for it in items]))
            label = (
                f"{strength:g}" if strength is not None else f"inpaint {args.span[0]:g}-{args.span[1]:g} s"
            )
            print(f"| {label} | {name} | {to_target:.1%} | {kept:.1%} | {len(items)} |", flush=True)
            result["runs"].append(
                {
                    "strength": strength,
                    "guidance": name,
                    "to_target": to_target,
                    "kept": kept,
                    "seconds": round(time.time() - t0),
                    "items": items,
                }
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
