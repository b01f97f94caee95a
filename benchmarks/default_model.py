"""Quality report of the embedded default model (checkpoints/default) on the corpus's held-out val split.

    python benchmarks/default_model.py [--model checkpoints/default] [--corpus examples/corpus/work]
                                       [--recon-per-category 3] [--train-per-category 0] [--steps 25]
                                       [--sampler ddim] [--seeds 1] [--candidates 1]
                                       [--guidance 3 5] [--guidance-rescale PHI]
                                       [--seen-per-category 3] [--seen-guidance 3] [--prompt-set held-out]
                                       [--json benchmarks/default_model.json]

1. Reconstruction: vocoder-only vs VAE+vocoder round trips of val clips (`AudioLDM.reconstruct`):
   mel L1 (the model's log-mel) and log-spectral distance restricted to 0-8 kHz (the mel's band). The
   VAE round trip runs as `reconstruct` does, with the model's recommended latent refinement
   (`sampling.refine_steps`); where that is non-zero, the encoder's single pass is scored beside it.
2. Prompt adherence: a classifier over the corpus categories on level-normalised log-mel statistics
   (`features`), chosen among logistic regressions and a small MLP by 5-fold cross-validation on the
   train split (folds grouped by source file) and fitted on all of it; its accuracy on the real val
   clips, on their vocoder-only and VAE+vocoder round trips (what each stage costs the classifier),
   and its top-1 accuracy on clips generated from caption phrasings that never occur in the corpus
   (HELD_OUT_PROMPTS, 3 per category; --seeds N generates each N times, seeds S..S+N-1: N x 36 clips,
   a binomial standard error of ~8.3 / sqrt(N) points at 50 %), with confusion tables. --candidates K
   makes each clip the best of K by the model's ranker, as `generate --num-candidates K` does, and
   reports beside it the first candidate's score (a run without ranking) from the same generations.
   --guidance-rescale PHI overrides the model's `sampling.guidance_rescale` (as `generate` does).
   --prompt-set tuning generates from TUNING_PROMPTS instead: other new phrasings (3 per category), for
   choosing among variants without looking at the held-out phrasings that score the model
   (--recon-per-category 0 skips step 1, ~6 minutes, where only the adherence is wanted).
   --seen-per-category N adds, as a diagnostic, the same on N train captions per category (phrasings
   the UNet was trained on): the gap between the two is the cost of new wording, the rest is the
   generator's.
Prints a Markdown table; --json writes every number.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/vocoder.py would shadow the `vocoder` package when this file runs as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
logger = logging.getLogger("default_model")

# Phrasings written for this benchmark: none occurs as a caption in the corpus (checked at run time).
HELD_OUT_PROMPTS = {
    "animal": ["a dog barking in the yard", "a cow mooing on a farm", "a cat meowing loudly"],
    "drums": ["a drummer plays a rock beat", "a snare drum roll", "someone hits a drum kit"],
    "impact": [
        "a heavy object crashes to the floor",
        "glass shatters after a hit",
        "footsteps on a wooden floor",
    ],
    "instrument": [
        "a piano plays a slow melody",
        "a violin playing a tune",
        "an acoustic guitar playing notes",
    ],
    "keyboard": [
        "someone typing fast on a computer keyboard",
        "keys clacking on a mechanical keyboard",
        "a person types a message on a keyboard",
    ],
    "machine": ["an engine running and humming", "a motor whirs loudly", "a train engine passing by"],
    "music": ["a short video game soundtrack", "an upbeat electronic tune", "a cheerful melody with a beat"],
    "nature": ["wind blowing through the trees", "water flowing in a stream", "rain falling outside"],
    "notification": [
        "a short chime alert sound",
        "a notification ding on a phone",
        "an alert beep from a computer",
    ],
    "procedural": ["a synthetic sine tone sweep", "a beeping electronic tone", "a buzzing synthesized noise"],
    "speech": ["a woman speaking clearly", "a man says a few words", "a person talking in a calm voice"],
    "synthetic_speech": [
        "a robotic computer voice talking",
        "a text to speech voice reading a sentence",
        "a synthesized voice says a phrase",
    ],
}


# Phrasings for tuning (written 2026-12-04 for choosing among variants): new wording like the held-out
# set's, none a held-out prompt or a corpus caption (checked at run time). Score the held-out set only
# with what the tuning set chose.
TUNING_PROMPTS = {
    "animal": ["a horse neighing loudly", "a sheep bleating in a field", "a bird singing in a tree"],
    "drums": ["a funky drum groove", "a jazz drummer playing a swing rhythm", "fast drumming on a kit"],
    "impact": ["a door slamming shut", "a loud explosion in the distance", "something heavy falls and thuds"],
    "instrument": ["a flute playing a gentle tune", "a cello playing low notes", "a trumpet playing a melody"],
    "keyboard": [
        "clicking keys on a laptop keyboard",
        "someone typing an email quickly",
        "the sound of a typewriter",
    ],
    "machine": ["gunshots fired in a row", "a saw cutting through wood", "a steam locomotive chugging along"],
    "music": [
        "background music for a video game",
        "an orchestral piece with strings",
        "a dance track with synthesizers",
    ],
    "nature": ["a crackling campfire", "thunder during a rainstorm", "waves splashing on the shore"],
    "notification": ["a message alert on a smartphone", "a soft ding from an app", "a system alert tone"],
    "procedural": ["a pure tone beeping three times", "a metronome ticking steadily", "white noise hissing"],
    "speech": ["a man talking to someone", "a woman says something in English", "a man shouting angrily"],
    "synthetic_speech": [
        "a computer voice reading text aloud",
        "an artificial voice speaking German",
        "a speech synthesizer talking",
    ],
}
PROMPT_SETS = {"held-out": HELD_OUT_PROMPTS, "tuning": TUNING_PROMPTS}


def new_phrasings(prompt_set: str, corpus_captions: set[str]) -> list[tuple[str, str]]:
    """(category, prompt) of a prompt set, sorted by category; refuses phrasings the corpus has as
    captions, or (for the tuning set) held-out phrasings."""
    table = PROMPT_SETS[prompt_set]
    phrasings = [(cat, p) for cat in sorted(table) for p in table[cat]]
    reused = [p for _, p in phrasings if p.strip().lower() in corpus_captions]
    if reused:
        raise SystemExit(f"{prompt_set} prompts occur in the corpus: {reused}")
    held = {p.lower() for ps in HELD_OUT_PROMPTS.values() for p in ps}
    if prompt_set != "held-out" and (shared := [p for _, p in phrasings if p.lower() in held]):
        raise SystemExit(f"{prompt_set} prompts are held-out prompts: {shared}")
    return phrasings


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def per_category(rows: list[dict], n: int, seed: int) -> list[dict]:
    """Up to n rows of each category, drawn reproducibly."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["category"]].append(r)
    rng = random.Random(seed)
    picked = []
    for cat in sorted(groups):
        picked += rng.sample(groups[cat], min(n, len(groups[cat])))
    return picked


def lsd_8k(
    ref: torch.Tensor, est: torch.Tensor, sample_rate: int, n_fft: int = 2048, hop: int = 512
) -> float:
    """Log-spectral distance in dB over the bins up to 8 kHz (mean over frames of the RMS over bins)."""
    window = torch.hann_window(n_fft)
    spec = [torch.stft(x, n_fft, hop, window=window, return_complex=True).abs().pow(2) for x in (ref, est)]
    top = int(8000 * n_fft / sample_rate) + 1
    r, e = (s[:top].clamp_min(1e-10).log10() for s in spec)
    return float((10 * (r - e)).pow(2).mean(0).sqrt().mean())


def features(frontend, wav: torch.Tensor) -> np.ndarray:
    """Level-normalised log-mel statistics of one waveform (generated clips are not loudness-normalised).

    Per mel bin: mean, std, 10th and 90th percentile, and the std of the frame-to-frame difference; the
    frame-energy envelope's mean, spread, activity and modulation spectrum (rhythm: syllables, beats,
    ticks); the spectral centroid's mean and spread.
    """
    with torch.inference_mode():
        mel = frontend(wav.float().unsqueeze(0))[0].double()  # [T, F] natural-log mel
    mel = mel - mel.max()
    diff = mel[1:] - mel[:-1]
    q = torch.quantile(mel, torch.tensor([0.1, 0.9], dtype=mel.dtype), dim=0)
    env = torch.logsumexp(mel, dim=1)  # frame energy, log
    env = env - env.max()
    centred = env - env.mean()
    spectrum = torch.fft.rfft(centred * torch.hann_window(len(env), dtype=env.dtype)).abs()
    edges = np.unique(np.geomspace(1, len(spectrum) - 1, 9).astype(int))
    modulation = torch.stack([spectrum[a:b].mean() for a, b in itertools.pairwise(edges)])
    modulation = (modulation / (spectrum[1:].sum() + 1e-8)).log1p()
    power = mel.exp()
    bins = torch.arange(mel.shape[1], dtype=mel.dtype)
    centroid = (power * bins).sum(1) / power.sum(1).clamp_min(1e-12)
    weights = (env - env.min()) / (env.max() - env.min() + 1e-8)
    summary = torch.stack(
        [
            env.mean(),
            env.std(),
            torch.quantile(env, 0.1),
            torch.quantile(env, 0.5),
            (env > -10).double().mean(),
            (env[1:] - env[:-1]).abs().mean(),
            (centroid * weights).sum() / weights.sum().clamp_min(1e-8),
            centroid.std(),
        ]
    )
    return torch.cat([mel.mean(0), mel.std(0), q[0], q[1], diff.std(0), summary, modulation]).float().numpy()


def fit_classifier(
    x: np.ndarray, y: np.ndarray, groups: list[str], seed: int
) -> tuple[object, dict[str, float], str]:
    """The candidate with the best 5-fold cross-validated accuracy on the train split (folds grouped by
    source file, as the val split is), refitted on all of it:
    (classifier, {name: cv accuracy}, chosen name)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    candidates = {
        "logreg C=0.1": lambda: LogisticRegression(C=0.1, max_iter=3000),
        "logreg C=1": lambda: LogisticRegression(C=1.0, max_iter=3000),
        "mlp 256": lambda: MLPClassifier(
            (256,), alpha=1e-2, max_iter=300, early_stopping=True, random_state=seed
        ),
    }
    cv = GroupKFold(n_splits=5)
    scores = {}
    for name, make in candidates.items():
        model = make_pipeline(StandardScaler(), make())
        scores[name] = float(cross_val_score(model, x, y, groups=groups, cv=cv).mean())
        logger.info("classifier %s: cv accuracy %.3f", name, scores[name])
    best = max(scores, key=scores.get)
    return make_pipeline(StandardScaler(), candidates[best]()).fit(x, y), scores, best


def corpus_classifier(
    corpus: Path, frontend, train_rows: list[dict], val_rows: list[dict], per_cat: int, seed: int
) -> tuple:
    """The benchmark's classifier, fitted on the train split (per_cat clips per category, 0: all):
    (classifier, CV scores, chosen name, categories, fit rows, features of val_rows). The features of
    fit + val clips depend on the corpus only and are cached beside it."""
    from audioldm_cli.audio import read_audio

    fit_rows = per_category(train_rows, per_cat or len(train_rows), seed)
    cache = corpus / f"classifier_features_v2_{per_cat}_{seed}.npz"
    names = [r["wav"] for r in fit_rows] + [r["wav"] for r in val_rows]
    if cache.exists() and list(np.load(cache)["names"]) == names:
        feats = np.load(cache)["x"]
    else:
        sr = frontend.config.sample_rate
        feats = np.stack([features(frontend, read_audio(corpus / n, sr)[0]) for n in names])
        np.savez(cache, x=feats, names=np.array(names))
    cats = sorted({r["category"] for r in train_rows})
    y = np.array([cats.index(r["category"]) for r in fit_rows])
    groups = [r.get("source_file", r["wav"]) for r in fit_rows]
    clf, cv_scores, chosen = fit_classifier(feats[: len(fit_rows)], y, groups, seed)
    return clf, cv_scores, chosen, cats, fit_rows, feats[len(fit_rows) :]


def confusion(cats: list[str], truth, pred) -> dict[str, dict[str, int]]:
    """{true category: {predicted category: count}} (non-zero cells only)."""
    table: dict[str, dict[str, int]] = {c: {} for c in cats}
    for t, p in zip(truth, pred):
        row = table[cats[int(t)]]
        row[cats[int(p)]] = row.get(cats[int(p)], 0) + 1
    return table


def adherence(
    pipe, clf, frontend, cats: list[str], prompts: list[tuple[str, str]], guidance: float, args
) -> dict:
    """Generate --seeds clips per (category, prompt) and classify them: top-1, per-category and confusion.

    With --candidates K each clip is the best of K candidates by the model's ranker (`AudioLDM.rank`, as
    `generate --num-candidates K`): candidate k of seed s is generated with seed s + 1000 k, so
    candidate 0 is the clip of a run without candidates; its top-1 (`top1_first_candidate`) and the
    mean over all candidates (`top1_any_candidate`) are reported beside, from the same generations."""
    seeds = list(range(args.seed, args.seed + args.seeds))
    k_cands = args.candidates
    waves, chosen, scores, cand_pred = [], [], [], []
    for seed in seeds:
        sets = [
            pipe.generate(
                [p for _, p in prompts],
                duration=args.duration,
                steps=args.steps,
                sampler=args.sampler,
                guidance_scale=guidance,
                guidance_rescale=args.guidance_rescale,
                seed=seed + 1000 * k,
            )
            for k in range(k_cands)
        ]
        for i, (_, p) in enumerate(prompts):
            cands = torch.stack([s[i] for s in sets])
            score = pipe.rank(p, cands) if k_cands > 1 else torch.zeros(1)
            best = int(score.argmax())
            waves.append(cands[best])
            chosen.append(best)
            scores.append([round(float(v), 4) for v in score])
            if k_cands > 1:
                cand_pred.append([cats[int(c)] for c in clf.predict(np.stack([features(frontend, w) for w in cands]))])
    pred = clf.predict(np.stack([features(frontend, w) for w in waves]))
    keys = [(cat, p, seed) for seed in seeds for cat, p in prompts]
    rows = [
        {"category": cat, "prompt": p, "seed": seed, "predicted": cats[int(k)], "rms": float(w.pow(2).mean().sqrt())}
        for (cat, p, seed), k, w in zip(keys, pred, waves)
    ]
    if k_cands > 1:
        for r, c, sc, cp in zip(rows, chosen, scores, cand_pred):
            r.update(candidate=c, ranker_scores=sc, candidate_predictions=cp)
    hits = [r["category"] == r["predicted"] for r in rows]
    per_cat = defaultdict(list)
    for r, h in zip(rows, hits):
        per_cat[r["category"]].append(h)
    out = {
        "top1": float(np.mean(hits)),
        "prompts": len(rows),
        "per_category": {c: float(np.mean(v)) for c, v in sorted(per_cat.items())},
        "categories": len(per_cat),
        "confusion": confusion(cats, [cats.index(r["category"]) for r in rows], pred),
        "seeds": seeds,
        "candidates": k_cands,
        "steps": args.steps,
        "sampler": args.sampler,
        "guidance": guidance,
        "guidance_rescale": pipe.default_guidance_rescale if args.guidance_rescale is None else args.guidance_rescale,
        "duration": args.duration,
        "items": rows,
    }
    if k_cands > 1:
        out["top1_first_candidate"] = float(np.mean([r["candidate_predictions"][0] == r["category"] for r in rows]))
        out["top1_any_candidate"] = float(
            np.mean([p == r["category"] for r in rows for p in r["candidate_predictions"]])
        )
        out["top1_oracle"] = float(np.mean([r["category"] in r["candidate_predictions"] for r in rows]))
    logger.info("adherence at guidance %g: top-1 %.3f over %d prompts", guidance, out["top1"], len(rows))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "default")
    ap.add_argument("--corpus", type=Path, default=ROOT / "examples" / "corpus" / "work")
    ap.add_argument("--recon-per-category", type=int, default=3)
    ap.add_argument("--train-per-category", type=int, default=0, help="clips per category to fit on (0: all)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--sampler", default="ddim", help="ddim | dpmpp-2m")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument(
        "--guidance", type=float, nargs="*", default=[3.0], help="one adherence run per value (none: no adherence)"
    )
    ap.add_argument(
        "--refine-steps",
        type=int,
        default=0,
        help="also score round trips whose latents are fitted for N steps (reconstruct --refine-steps N)",
    )
    ap.add_argument(
        "--guidance-rescale", type=float, default=None, help="guidance rescale phi (default: the model's)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1, help="generations per prompt (seeds SEED, SEED+1, ...)")
    ap.add_argument(
        "--classifier-seed",
        type=int,
        default=None,
        help="seed of the classifier's fit and the round-trip clips (default: --seed); "
        "--seed 3 --seeds 2 --classifier-seed 0 extends a --seeds 3 run by seeds 3 and 4",
    )
    ap.add_argument(
        "--candidates",
        type=int,
        default=1,
        help="best of K by the model's ranker per clip (generate --num-candidates K; needs a ranker)",
    )
    ap.add_argument(
        "--seen-per-category", type=int, default=0, help="also generate from N train captions per category"
    )
    ap.add_argument(
        "--seen-guidance",
        type=float,
        nargs="+",
        default=None,
        help="its guidance values (default: --guidance)",
    )
    ap.add_argument(
        "--prompt-set",
        choices=sorted(PROMPT_SETS),
        default="held-out",
        help="the new phrasings to generate from: held-out (the report's) or tuning (for choosing variants)",
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--classifier-only", action="store_true", help="fit and score the classifier, no model")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    if args.candidates < 1:
        ap.error("--candidates must be at least 1")
    if args.recon_per_category < 0:
        ap.error("--recon-per-category must be >= 0 (0: no reconstruction section, e.g. for tuning runs)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    fit_seed = args.seed if args.classifier_seed is None else args.classifier_seed

    from audioldm_cli.audio import read_audio
    from audioldm_cli.frontend import MelFrontend
    from audioldm_cli.metrics import reconstruction_report
    from audioldm_cli.pipeline import AudioLDM
    from vocoder.config import MEL_PRESETS

    pipe = AudioLDM.from_pretrained(args.model) if not args.classifier_only else None
    mel_config = pipe.mel_config if pipe is not None else MEL_PRESETS["hifigan-22k"]
    sr = mel_config.sample_rate
    frontend = MelFrontend(mel_config)
    train_rows = read_rows(args.corpus / "manifest_train.jsonl")
    val_rows = read_rows(args.corpus / "manifest_val.jsonl")

    def load(r: dict) -> torch.Tensor:
        return read_audio(args.corpus / r["wav"], sr)[0]

    result: dict = {"model": str(args.model), "val_clips": len(val_rows), "train_clips": len(train_rows)}

    # 1. classifier on the train split, accuracy on real val clips
    t = time.time()
    clf, cv_scores, chosen, cats, fit_rows, x_val = corpus_classifier(
        args.corpus, frontend, train_rows, val_rows, args.train_per_category, fit_seed
    )
    keep = [i for i, r in enumerate(val_rows) if r["category"] in cats]
    val_ok = [val_rows[i] for i in keep]
    xv = x_val[keep]
    yv = np.array([cats.index(r["category"]) for r in val_ok])
    pv = clf.predict(xv)
    result["classifier"] = {
        "categories": cats,
        "fit_clips": len(fit_rows),
        "cv_accuracy": cv_scores,
        "chosen": chosen,
        "val_accuracy": float((pv == yv).mean()),
        "val_items": len(val_ok),
        "val_confusion": confusion(cats, yv, pv),
        "seconds": round(time.time() - t, 1),
    }
    logger.info(
        "classifier: val accuracy %.3f on %d clips", result["classifier"]["val_accuracy"], len(val_ok)
    )
    if pipe is None:
        print(json.dumps(result["classifier"], indent=2))
        return 0

    # 2. reconstruction of val clips: vocoder only vs VAE + vocoder
    if args.recon_per_category:  # 0 skips it (tuning runs need only the adherence)
        t = time.time()
        recon_rows = per_category(val_ok, args.recon_per_category, fit_seed)
        # "vae": the round trip as `reconstruct` runs it (the model's recommended refinement, if any);
        # "vae_encoder": the encoder's single pass, where that differs; "vae_refined": --refine-steps N
        kinds = ("vocoder", "vae") + (("vae_encoder",) if pipe.default_refine_steps else ())
        kinds += ("vae_refined",) if args.refine_steps else ()
        steps_of = {"vocoder": 0, "vae": pipe.default_refine_steps, "vae_encoder": 0, "vae_refined": args.refine_steps}
        rec = {kind: defaultdict(list) for kind in kinds}
        rt_feats = {kind: [] for kind in kinds}
        for r in recon_rows:
            wav = load(r)
            for kind in kinds:
                t_kind = time.time()
                out = pipe.reconstruct(wav, vocoder_only=kind == "vocoder", refine_steps=steps_of[kind])
                rec[kind]["seconds_per_clip"].append(time.time() - t_kind)
                rec[kind]["mel_l1"].append(reconstruction_report(wav, out, pipe.mel_config)["mel_l1"])
                rec[kind]["lsd_8k_db"].append(lsd_8k(wav, out, sr))
                rt_feats[kind].append(features(frontend, out))
        result["reconstruction"] = {kind: {k: float(np.mean(v)) for k, v in m.items()} for kind, m in rec.items()}
        result["reconstruction"]["clips"] = len(recon_rows)
        for kind in kinds[1:]:  # the mean of per-clip differences (= the difference of the means)
            added = np.array(rec[kind]["mel_l1"]) - np.array(rec["vocoder"]["mel_l1"])  # where the VAE's error is
            result["reconstruction"][f"{kind}_added_mel_l1"] = float(added.mean())
            result["reconstruction"][f"{kind}_added_mel_l1_by_category"] = {
                cat: float(np.mean([a for a, r in zip(added, recon_rows) if r["category"] == cat]))
                for cat in cats
                if any(r["category"] == cat for r in recon_rows)
            }
        result["reconstruction"]["refine_steps"] = args.refine_steps
        result["reconstruction"]["model_refine_steps"] = pipe.default_refine_steps
        labels = np.array([cats.index(r["category"]) for r in recon_rows])
        for kind, feats_rt in rt_feats.items():
            result["reconstruction"][f"classifier_accuracy_on_{kind}_roundtrips"] = float(
                (clf.predict(np.stack(feats_rt)) == labels).mean()
            )
        result["reconstruction"]["seconds"] = round(time.time() - t, 1)
        logger.info("reconstruction: %s", result["reconstruction"])

    # 3. adherence: generate from new phrasings (the held-out set, or the tuning set), classify
    captions = {r["caption"].strip().lower() for r in train_rows + val_rows}
    prompts = [(cat, p) for cat, p in new_phrasings(args.prompt_set, captions) if cat in cats]
    result["prompt_set"] = args.prompt_set
    result["adherence_by_guidance"] = []
    for guidance in args.guidance:
        t = time.time()
        result["adherence_by_guidance"].append(adherence(pipe, clf, frontend, cats, prompts, guidance, args))
        result["adherence_by_guidance"][-1]["seconds"] = round(time.time() - t, 1)
    if result["adherence_by_guidance"]:
        result["adherence"] = result["adherence_by_guidance"][0]
    if args.seen_per_category:  # diagnostic: phrasings the UNet saw in training, same sampling
        rng, seen = random.Random(args.seed), []
        for cat in cats:
            pool = sorted({r["caption"] for r in train_rows if r["category"] == cat})
            seen += [(cat, p) for p in rng.sample(pool, min(args.seen_per_category, len(pool)))]
        result["adherence_seen_captions"] = []
        for guidance in args.seen_guidance or args.guidance:
            t = time.time()
            runs = result["adherence_seen_captions"]
            runs.append(adherence(pipe, clf, frontend, cats, seen, guidance, args))
            runs[-1]["seconds"] = round(time.time() - t, 1)

    print("| measure | value |\n|---|---|")
    cl = result["classifier"]
    print(
        f"| classifier ({cl['chosen']}) cv accuracy on train / accuracy on real val clips ({len(val_ok)}) | "
        f"{cl['cv_accuracy'][cl['chosen']]:.3f} / {cl['val_accuracy']:.3f} |"
    )
    if "reconstruction" in result:
        rc = result["reconstruction"]
        print(
            f"| vocoder-only mel L1 / LSD 0-8 kHz ({rc['clips']} val clips) | "
            f"{rc['vocoder']['mel_l1']:.3f} / {rc['vocoder']['lsd_8k_db']:.2f} dB |"
        )
        print(
            f"| VAE+vocoder mel L1 / LSD 0-8 kHz | {rc['vae']['mel_l1']:.3f} / {rc['vae']['lsd_8k_db']:.2f} dB |"
        )
        how = f" (`reconstruct` as it runs: latents fitted for {pipe.default_refine_steps} steps)" if pipe.default_refine_steps else ""
        print(f"| mel L1 added by the VAE{how} (target <= 0.10) | {rc['vae_added_mel_l1']:.3f} |")
        by_cat = rc["vae_added_mel_l1_by_category"]
        print(f"| ... by category | {', '.join(f'{c} {v:.3f}' for c, v in sorted(by_cat.items()))} |")
        extra = {"vae_encoder": "the encoder's latent as it is (`--refine-steps 0`)",
                 "vae_refined": f"latents fitted for {args.refine_steps} steps (`--refine-steps {args.refine_steps}`)"}
        for kind in kinds[2:]:
            rf = rc[kind]
            print(
                f"| VAE+vocoder, {extra[kind]}: mel L1 / LSD 0-8 kHz / s per clip | "
                f"{rf['mel_l1']:.3f} / {rf['lsd_8k_db']:.2f} dB / {rf['seconds_per_clip']:.1f} |"
            )
            print(f"| mel L1 added by the VAE, {extra[kind]} | {rc[f'{kind}_added_mel_l1']:.3f} |")
            by_cat = rc[f"{kind}_added_mel_l1_by_category"]
            print(f"| ... by category | {', '.join(f'{c} {v:.3f}' for c, v in sorted(by_cat.items()))} |")
        names = {"vocoder": "vocoder-only", "vae": "VAE+vocoder", "vae_encoder": "VAE+vocoder (encoder's latent)",
                 "vae_refined": "VAE+vocoder (fitted latents)"}
        for kind in kinds:
            acc = rc[f"classifier_accuracy_on_{kind}_roundtrips"]
            print(f"| classifier accuracy on {names[kind]} round trips | {acc:.3f} |")
    target = " (target >= 0.60)" if args.prompt_set == "held-out" else " (tuning set, not the report's measure)"
    for a in result["adherence_by_guidance"]:
        best_of = f", best of {a['candidates']} by the ranker" if a["candidates"] > 1 else ""
        print(
            f"| adherence top-1, {a['prompts']} {args.prompt_set} prompts, {a['categories']} categories, guidance "
            f"{a['guidance']:g}{best_of}{target} | {a['top1']:.3f} |"
        )
        if a["candidates"] > 1:
            print(
                f"| ... the first candidate alone / any candidate on average / some candidate (oracle) | "
                f"{a['top1_first_candidate']:.3f} / {a['top1_any_candidate']:.3f} / {a['top1_oracle']:.3f} |"
            )
    for a in result.get("adherence_seen_captions", []):
        print(
            f"| diagnostic: the same on {a['prompts']} train captions, guidance {a['guidance']:g} | "
            f"{a['top1']:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
