"""Edits of the default model: does the edited audio reach the prompt's category?

    nice -n 10 python benchmarks/edit_guidance.py [--edit transfer|inpaint|superres]
                                                  [--model checkpoints/default]
                                                  [--corpus examples/corpus/work] [--strength 0.5 0.7]
                                                  [--span 1.5 3.5] [--cutoff 4000] [--per-category 2]
                                                  [--steps N]
                                                  [--json benchmarks/edit_guidance.json]

Takes `--per-category` held-out val clips of each corpus category and edits each twice, towards a
phrasing of the category 4 and of the category 8 places further on in the sorted list (the phrasings are
`default_model.TUNING_PROMPTS`, never corpus captions nor the held-out prompts that score generation),
with the edit commands' sampling (DDIM, seed 0, the model's recommended steps unless `--steps`) under two
guidance settings:

- plain classifier-free guidance 2.5, AudioLDM's default for its edits (and no rescale);
- the edits' defaults: the guidance scale and rescale the model recommends for `generate`.

`--edit transfer` (style transfer at each `--strength`) classifies the whole output; `--edit inpaint`
regenerates `--span` seconds and classifies that span alone (and, in the JSON, the whole clip). The
classifier is `default_model.py`'s (fitted on the train split as there). Reports the share classified as
the prompt's category (the edit worked) and as the input's. Prints a table; `--json` also writes the
per-item predictions.

`--edit superres` asks another question: each clip, band-limited as a file sampled at 2 x `--cutoff` Hz
would be (resampled down and back up), has its bands above the cutoff regenerated from its own caption
(as `superres` does for such a file); scored by how close the regenerated band is to the original's: the
log-spectral distance over cutoff-8 kHz and the mel L1 over the mel bins above the cutoff (the model's
log-mel), beside those of the band-limited input itself, and by how often the output is still classified
as the clip's category.
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
    ap.add_argument("--edit", choices=["transfer", "inpaint", "superres"], default="transfer")
    ap.add_argument("--strength", type=float, nargs="+", default=[0.5, 0.7], help="transfer only")
    ap.add_argument("--span", type=float, nargs=2, default=[1.5, 3.5], help="inpaint only: start end (s)")
    ap.add_argument("--cutoff", type=float, default=4000.0, help="superres only: Hz (the input's Nyquist)")
    ap.add_argument("--per-category", type=int, default=2)
    ap.add_argument(
        "--steps", type=int, default=None, help="default: the model's recommendation, as the edits"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from audioldm_cli import editing
    from audioldm_cli.audio import read_audio, resample
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
        "steps": pipe.default_steps if args.steps is None else args.steps,
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

    if args.edit == "superres":
        return superres_runs(args, pipe, front, clips, settings, classify, result, read_audio, resample)
    print("| edit | guidance | to the prompt's category | still the input's | n |\n|---:|---|---:|---:|---:|")
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


def lsd_band(ref: torch.Tensor, est: torch.Tensor, sr: int, lo_hz: float, hi_hz: float) -> float:
    """Log-spectral distance in dB over the STFT bins in [lo_hz, hi_hz] (mean over frames of their RMS)."""
    n_fft, hop = 2048, 512
    window = torch.hann_window(n_fft)
    spec = [torch.stft(x, n_fft, hop, window=window, return_complex=True).abs().pow(2) for x in (ref, est)]
    lo, hi = int(np.ceil(lo_hz * n_fft / sr)), int(hi_hz * n_fft / sr) + 1
    r, e = (s[lo:hi].clamp_min(1e-10).log10() for s in spec)
    return float((10 * (r - e)).pow(2).mean(0).sqrt().mean())


def superres_runs(args, pipe, front, clips, settings, classify, result, read_audio, resample) -> int:
    """`--edit superres`: band-limited val clips extended from their own captions (see the docstring)."""
    from audioldm_cli import editing

    sr, low_rate = pipe.sample_rate, round(2 * args.cutoff)
    fmin, fmax = pipe.mel_config.f_min, pipe.mel_config.f_max or sr / 2
    hz_to_mel = editing.hz_to_mel
    mels = torch.linspace(hz_to_mel(fmin), hz_to_mel(fmax), pipe.mel_config.n_mels + 2)
    upper = mels[1:-1] > hz_to_mel(args.cutoff)  # mel bins centred above the cutoff

    def scores(ref: torch.Tensor, est: torch.Tensor) -> tuple[float, float]:
        frames = ref.shape[-1] // pipe.hop_length
        a, b = (pipe.mel(x[None].to(pipe.device), frames)[0].cpu() for x in (ref, est))
        return lsd_band(ref, est, sr, args.cutoff, fmax), float((a[..., upper] - b[..., upper]).abs().mean())

    inputs = []
    for row in clips:
        wav = read_audio(args.corpus / row["wav"], sr)[0]
        limited = resample(resample(wav, sr, low_rate), low_rate, sr)[: wav.shape[-1]]
        inputs.append((row, wav, limited))
    base = [scores(wav, limited) for _, wav, limited in inputs]
    print("| input | LSD cutoff-8 kHz (dB) | mel L1 above the cutoff | still the clip's category | n |")
    print("|---|---:|---:|---:|---:|")
    kept = np.mean([classify(limited) == row["category"] for row, _, limited in inputs])
    print(
        f"| band-limited input | {np.mean([b[0] for b in base]):.2f} | {np.mean([b[1] for b in base]):.3f} "
        f"| {kept:.1%} | {len(inputs)} |",
        flush=True,
    )
    result["cutoff_hz"] = args.cutoff
    result["input"] = {"lsd": [b[0] for b in base], "mel_l1_upper": [b[1] for b in base], "kept": float(kept)}
    for name, kwargs in settings.items():
        items, t0 = [], time.time()
        for row, wav, limited in inputs:
            out = editing.superres(
                pipe, limited, row["caption"], args.cutoff, steps=args.steps, seed=0, **kwargs
            )
            lsd, l1 = scores(wav, out.wav)
            items.append(
                {
                    "wav": row["wav"],
                    "category": row["category"],
                    "caption": row["caption"],
                    "lsd": lsd,
                    "mel_l1_upper": l1,
                    "predicted": classify(out.wav),
                }
            )
        kept = float(np.mean([it["predicted"] == it["category"] for it in items]))
        lsd, l1 = (float(np.mean([it[k] for it in items])) for k in ("lsd", "mel_l1_upper"))
        print(f"| superres, {name} | {lsd:.2f} | {l1:.3f} | {kept:.1%} | {len(items)} |", flush=True)
        result["runs"].append(
            {
                "guidance": name,
                "lsd": lsd,
                "mel_l1_upper": l1,
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
