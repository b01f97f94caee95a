#!/usr/bin/env python
"""Build the offline captioned training corpus described in ../../../shared/CORPUS.md.

    python examples/corpus/build_corpus.py --small            # a few hundred clips, for smoke tests
    nice -n 15 python examples/corpus/build_corpus.py --jobs 1  # the full corpus (~7,200 clips)

Stages (each one resumable: existing .debs, extractions and clips are reused):
  1. `apt-get download` the Debian packages of sources.PACKAGES into OUT/debs
  2. extract only their sound files and copyright notices into OUT/extract/PACKAGE
  3. plan the clips: caption maps (captions.py) over the extracted files, plus generated material
     (MIDI rendered by fluidsynth, espeak-ng speech, numpy procedural sounds: generators.py)
  4. render each clip: mono, --rate Hz, --seconds long, loudness-normalised, 16-bit wav, written
     atomically with a JSON sidecar holding its manifest row
  5. write manifest.jsonl, manifest_train.jsonl, manifest_val.jsonl (5 % held out by source file)
     and SOURCES.md (licence summary)

The manifest's "wav" paths are relative to OUT.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

import captions as cap
import generators as gen
import sources as src

log = logging.getLogger("build_corpus")

HERE = Path(__file__).resolve().parent
# Suggested composition (CORPUS.md): clips per category.
QUOTAS = {
    "instrument": 1500, "drums": 400, "speech": 2000, "synthetic_speech": 500, "animal": 450, "nature": 300,
    "machine": 400, "impact": 300, "keyboard": 200, "notification": 170, "music": 500, "procedural": 500,
}
VAL_PERCENT = 5
# most variants (augmentations or windows) taken from one source file or pool, per mode
MAX_VARIANTS = {"oneshot": 4, "window": 6, "words": 10_000, "walk": 12, "typing": 10_000}
ANIMAL_MAX_VARIANTS = 8  # few real animal clips: augment more
# categories built mostly from generated material: the share of the quota kept for it
GENERATED_SHARE = {"instrument": 0.75, "drums": 0.6}
# what a bad source file or a failing tool raises: the clip is skipped and reported, the build goes on
RENDER_ERRORS = (OSError, RuntimeError, ValueError, subprocess.SubprocessError)
CHECKPOINT_EVERY = 500  # clips between manifest rewrites during a build
# the fields of a clip's sidecar (its manifest row; "split" is left out of the manifests)
ROW_FIELDS = ("wav", "caption", "category", "source_package", "license", "copyright", "source_file", "split")
NATURE_MIN_WINDOWS = 5  # windows past a loop's length are random, pitch-shifted re-takes
TARGET_DBFS = -20.0
PEAK = 0.89


# ---------------------------------------------------------------------------------------------
# small helpers

def stable_hash(*parts) -> int:
    return int(hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def split_of(package: str, source: str) -> str:
    """Held-out split by source file: 5 % of source files (never individual clips) go to "val"."""
    return "val" if stable_hash("split", package, source) % 100 < VAL_PERCENT else "train"


def rng_for(*parts) -> np.random.Generator:
    return np.random.default_rng(stable_hash(*parts))


def resample(x: np.ndarray, sr: int, rate: int) -> np.ndarray:
    if sr == rate:
        return x
    from scipy.signal import resample_poly

    f = Fraction(rate, sr).limit_denominator(2000)
    return resample_poly(x, f.numerator, f.denominator)


def _decode(path: str, rate: int) -> np.ndarray:
    if path.endswith(".g722"):
        out = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"],
                             capture_output=True, check=True).stdout
        return np.frombuffer(out, dtype=np.float32).astype(np.float64)
    data, sr = sf.read(path, dtype="float64", always_2d=True)
    return resample(data.mean(axis=1), sr, rate)


_load_small = lru_cache(maxsize=4096)(_decode)  # one-shots and speech prompts, reused across clips
_load_long = lru_cache(maxsize=4)(_decode)  # long loops and music: jobs are sorted by file, few at once


def load(path: str | Path, rate: int) -> np.ndarray:
    """Mono float64 at `rate` (a cached copy: do not modify in place)."""
    path = str(path)
    return (_load_long if os.path.getsize(path) > 1_000_000 else _load_small)(path, rate)


def trim_silence(x: np.ndarray, rate: int, db: float = -45.0) -> np.ndarray:
    if len(x) == 0:
        return x
    hop = max(1, rate // 100)
    n = len(x) // hop
    if n == 0:
        return x
    frames = np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1) + 1e-12)
    active = np.nonzero(20 * np.log10(frames / frames.max()) > db)[0]
    return x[active[0] * hop : (active[-1] + 1) * hop]


def active_rms(x: np.ndarray, rate: int) -> float:
    hop = max(1, rate // 50)
    n = len(x) // hop
    if n == 0:
        return float(np.sqrt(np.mean(x**2) + 1e-12))
    frames = np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1) + 1e-12)
    loud = frames[frames > frames.max() * 10 ** (-40 / 20)]
    return float(np.sqrt(np.mean(loud**2)))


def normalise(x: np.ndarray, rate: int) -> np.ndarray:
    """Loudness-normalise: RMS of the active frames to TARGET_DBFS, then peaks limited to PEAK."""
    rms = active_rms(x, rate)
    if rms < 1e-6:
        return x
    y = x * (10 ** (TARGET_DBFS / 20) / rms)
    peak = np.abs(y).max()
    return y * (PEAK / peak) if peak > PEAK else y


def fit(x: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    out = np.zeros(n)
    x = x[: max(0, n - offset)]
    out[offset : offset + len(x)] = x
    return out


def fade(x: np.ndarray, rate: int, ms: float = 20.0) -> np.ndarray:
    m = min(len(x) // 2, int(rate * ms / 1000))
    if m > 0:
        x = x.copy()
        x[:m] *= np.linspace(0, 1, m)
        x[-m:] *= np.linspace(1, 0, m)
    return x


def pitch_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch (and speed) by resampling: +-2 semitones is a mild, natural-sounding change."""
    if abs(semitones) < 1e-3:
        return x
    from scipy.signal import resample_poly

    f = Fraction(2 ** (-semitones / 12)).limit_denominator(200)
    return resample_poly(x, f.numerator, f.denominator)


def background(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink or brown noise: a quiet bed mixed under augmented one-shots."""
    spec = np.fft.rfft(rng.standard_normal(n))
    k = np.arange(len(spec), dtype=float)
    k[0] = 1.0
    y = np.fft.irfft(spec / k ** float(rng.choice([0.5, 1.0])), n)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


# ---------------------------------------------------------------------------------------------
# rendering: one function per job kind, job dict -> float mono array of exactly seconds*rate


def render_oneshot(job, rate, n, rng):
    x = trim_silence(load(job["path"], rate), rate)
    if job["variant"] > 0:  # augmentation: pitch, gain, background
        x = pitch_shift(x, float(rng.uniform(-2, 2)))
    if len(x) >= n:
        return fade(x[:n], rate)
    out = np.zeros(n)
    reps = 1 if len(x) > 0.4 * n else int(rng.integers(1, 4))
    pos = int(rng.uniform(0.02, 0.3) * rate)
    for _ in range(reps):
        if pos >= n:
            break
        out += fit(x * rng.uniform(0.7, 1.0), n, pos)
        pos += len(x) + int(rng.uniform(0.2, 1.0) * rate)
    if job["variant"] > 0:
        out = out + background(n, rng) * active_rms(out, rate) * 10 ** (rng.uniform(-30, -18) / 20)
    return out


def render_window(job, rate, n, rng):
    x = load(job["path"], rate)
    extra = job["window"] * n + n > max(len(x), n)  # past the end: an augmented re-take
    if extra:
        x = pitch_shift(x, float(rng.uniform(-2, 2))) * rng.uniform(0.7, 1.0)
    if len(x) < n:  # a short loop: tile it
        x = np.tile(x, math.ceil(n / max(1, len(x))) + 1)
    if extra:
        start = int(rng.integers(0, max(1, len(x) - n)))
        return fade(x[start : start + n], rate, 10)
    start = job["window"] * n
    if start + n > len(x):
        start = max(0, len(x) - n)
    start = int(start + rng.uniform(0, 0.2) * (len(x) - n - start)) if len(x) - n - start > 0 else start
    return fade(x[start : start + n], rate, 10)


def render_words(job, rate, n, rng):
    """Join same-speaker prompts into a 3-8 s (at most the clip) stretch with 150-300 ms gaps."""
    target = min(n / rate, float(rng.uniform(3, 8))) * rate
    pieces, used, total = [], [], 0
    order = rng.permutation(len(job["pool"]))
    for i in order:
        w = trim_silence(load(job["pool_abs"][i], rate), rate)
        if len(w) == 0 or (pieces and total + len(w) > n - 0.1 * rate):
            continue
        gap = int(rng.uniform(0.15, 0.3) * rate)
        pieces.append(np.concatenate([w, np.zeros(gap)]))
        used.append(job["pool"][i])
        total += len(w) + gap
        if total >= target:
            break
    job["used"] = used
    return fit(np.concatenate(pieces), n, int(rng.uniform(0.05, 0.3) * rate))


def render_walk(job, rate, n, rng):
    out = np.zeros(n)
    step = float(rng.uniform(0.42, 0.62))
    t = float(rng.uniform(0.05, 0.3))
    used = set()
    while t < n / rate:
        i = int(rng.integers(len(job["pool"])))
        s = trim_silence(load(job["pool_abs"][i], rate), rate)
        out += fit(s * rng.uniform(0.6, 1.0), n, int(t * rate))
        used.add(job["pool"][i])
        t += step * rng.uniform(0.9, 1.1)
    job["used"] = sorted(used)
    return out


def render_typing(job, rate, n, rng):
    out = np.zeros(n)
    t = float(rng.uniform(0.05, 0.3))
    speed = float(rng.uniform(0.08, 0.22))
    used = set()
    pool = job["pool"]
    while t < n / rate - 0.1:
        i = int(rng.integers(len(pool)))
        out += fit(load(job["pool_abs"][i], rate) * rng.uniform(0.6, 1.0), n, int(t * rate))
        used.add(pool[i])
        pair = job.get("release", {}).get(pool[i])  # bucklespring: XX-0 press, XX-1 release
        if pair:
            out += fit(load(pair[1], rate) * rng.uniform(0.6, 1.0), n, int((t + rng.uniform(0.05, 0.12)) * rate))
            used.add(pair[0])
        t += speed * rng.uniform(0.5, 1.6) + (rng.uniform(0.3, 0.8) if rng.random() < 0.08 else 0)
    job["used"] = sorted(used)
    return out


def _fluidsynth(mid, soundfont: str, rate: int, n: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        mpath, wpath = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.save(str(mpath))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.7", "-r", str(rate), "-F", str(wpath), soundfont,
                        str(mpath)], capture_output=True, check=True)
        data, sr = sf.read(str(wpath), dtype="float64", always_2d=True)
    return fit(resample(data.mean(axis=1), sr, rate), n)


MIDI_GAP_S = 2.0  # silence between pieces in one batched render: lets reverb tails die out
MIDI_BATCH = 40


def midi_batch(jobs: list[dict], soundfont: str, rate: int, n: int) -> list[np.ndarray]:
    """Render several MIDI pieces with one fluidsynth call (loading a soundfont costs seconds, a piece
    a fraction of that): pieces are laid end to end, MIDI_GAP_S apart, then cut out again."""
    import mido

    slot = n / rate + MIDI_GAP_S
    tpb, tempo = 960, 1_000_000  # 1 tick = 1/960 s
    events = []
    for k, job in enumerate(jobs):
        p = job["params"]
        mid = gen.instrument_midi(p, n / rate) if job["kind"] == "instrument" else gen.drum_midi(p, n / rate)
        t0 = k * slot
        for ch in (0, 9):
            events.append((t0 - 0.5 if k else 0.0, 0, mido.Message("control_change", control=123, value=0, channel=ch)))
            events.append((t0 - 0.4 if k else 0.0, 1, mido.Message("control_change", control=121, value=0, channel=ch)))
        now = 0.0
        for msg in mid:  # iterating a MidiFile gives delta times in seconds
            now += msg.time
            if not msg.is_meta and now < n / rate:
                events.append((t0 + now, 2, msg))
        for ch in (0, 9):
            events.append((t0 + n / rate, 3, mido.Message("control_change", control=123, value=0, channel=ch)))
    out = mido.MidiFile(ticks_per_beat=tpb)
    tr = mido.MidiTrack()
    out.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=tempo))
    last = 0
    for t, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        tick = round(t * tpb)
        tr.append(msg.copy(time=max(0, tick - last)))
        last = max(last, tick)
    audio = _fluidsynth(out, soundfont, rate, int((len(jobs) * slot + 1) * rate))
    return [fade(audio[round(k * slot * rate) : round(k * slot * rate) + n], rate, 30)
            for k in range(len(jobs))]


def render_midi_jobs(jobs: list[dict], out_dir: str, rate: int, seconds: float, on_done) -> None:
    """Render the MIDI jobs (those without a valid clip), batched by soundfont; calls on_done(row, error)."""
    n = round(seconds * rate)
    todo: dict[str, list[dict]] = defaultdict(list)
    for job in jobs:
        todo[job["params"]["soundfont_path"]].append(job)
    for sfpath, sjobs in todo.items():
        for i in range(0, len(sjobs), MIDI_BATCH):
            batch = sjobs[i : i + MIDI_BATCH]
            try:
                clips = midi_batch(batch, sfpath, rate, n)
            except RENDER_ERRORS as e:
                for job in batch:
                    on_done(None, f"{job['id']}: {type(e).__name__}: {e}")
                continue
            for job, x in zip(batch, clips):
                on_done(*finish_job(job, x, out_dir, rate))


def render_midi(job, rate, n, rng):
    p = job["params"]
    seconds = n / rate
    mid = gen.instrument_midi(p, seconds) if job["kind"] == "instrument" else gen.drum_midi(p, seconds)
    return fade(_fluidsynth(mid, p["soundfont_path"], rate, n), rate, 30)


def render_drumkit(job, rate, n, rng):
    """Hydrogen one-shots sequenced with numpy into the job's pattern."""
    p = job["params"]
    roles = {r: [load(f, rate) for f in fs] for r, fs in job["roles_abs"].items()}
    note_role = {gen.KICK: "kick", gen.SNARE: "snare", gen.HAT: "hat", gen.OPEN_HAT: "hat", gen.RIDE: "hat"}
    six = 60.0 / p["bpm"] / 4
    steps = 12 if p["pattern"] == "waltz" else 16
    out = np.zeros(n)
    bar = 0
    while bar * steps * six < n / rate:
        for step, note in gen.DRUM_PATTERNS[p["pattern"]]:
            role = note_role.get(note)
            if role not in roles:
                continue
            s = roles[role][int(rng.integers(len(roles[role])))]
            t = (bar * steps + step) * six + rng.normal(0, 0.004)
            out += fit(s * rng.uniform(0.7, 1.0), n, max(0, int(t * rate)))
        bar += 1
    return out


def render_espeak(job, rate, n, rng):
    p = job["params"]
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", f"{p['voice']}+{p['variant']}", "-s", str(p["speed"]), "-p",
                        str(p["pitch"]), "-w", str(w), p["text"]], capture_output=True, check=True)
        data, sr = sf.read(str(w), dtype="float64", always_2d=True)
    x = trim_silence(resample(data.mean(axis=1), sr, rate), rate)
    return fade(fit(x, n, int(rng.uniform(0.05, 0.4) * rate)), rate, 10)


def render_procedural(job, rate, n, rng):
    return gen.render_procedural(job["params"], n / rate, rate, rng)


RENDER = {
    "oneshot": render_oneshot, "window": render_window, "words": render_words, "walk": render_walk,
    "typing": render_typing, "instrument": render_midi, "drum_midi": render_midi, "drumkit": render_drumkit,
    "espeak": render_espeak, "procedural": render_procedural,
}


def render_job(job: dict, out_dir: str, rate: int, seconds: float) -> tuple[dict | None, str | None]:
    """Render one clip (over any existing one: check_clip decides what is reused): returns (manifest row, error)."""
    try:
        rng = rng_for("render", job["id"])
        n = round(seconds * rate)
        x = RENDER[job["kind"]](job, rate, n, rng)
        return finish_job(job, x, out_dir, rate)
    except RENDER_ERRORS as e:  # one bad source must not stop the build
        return None, f"{job['id']}: {type(e).__name__}: {e}"


def check_clip(job: dict, out_dir: str | Path, rate: int, seconds: float) -> tuple[dict | None, str | None]:
    """Whether the job's existing clip can be reused with these options. Reads only and never raises.

    (row, None): reuse it; row is its sidecar with the caption the current maps give.
    (None, None): there is no clip yet. (None, why): there is one, but it must be rendered again: its
    sidecar is unreadable or another clip's, or its wav is damaged or not mono 16-bit PCM of exactly
    `seconds` at `rate` (a build with other --rate/--seconds in the same OUT, or an interrupted copy).
    """
    wav = Path(out_dir) / job["wav"]
    side = wav.with_suffix(".json")
    if not wav.exists() and not side.exists():
        return None, None
    if not side.exists():
        return None, "no .json sidecar"
    if not wav.exists():
        return None, "no .wav next to its sidecar"
    try:
        row = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None, f"unreadable sidecar ({type(e).__name__})"
    if not isinstance(row, dict) or row.get("wav") != job["wav"]:
        return None, "its sidecar is not this clip's"
    lacking = [k for k in ROW_FIELDS if not isinstance(row.get(k), str)]
    if lacking:
        return None, f"sidecar lacks {', '.join(lacking)}"
    try:
        info = sf.info(str(wav))
    except Exception as e:  # noqa: BLE001 - any failure to read the header means "render it again"
        return None, f"unreadable wav ({type(e).__name__})"
    n = round(seconds * rate)
    if info.format != "WAV" or info.subtype != "PCM_16":
        return None, f"{info.format} {info.subtype}, not WAV PCM_16"
    if info.channels != 1:
        return None, f"{info.channels} channels, not 1"
    if info.samplerate != rate:
        return None, f"sample rate {info.samplerate} Hz, not {rate}"
    if info.frames != n:
        return None, f"{info.frames} frames, not {n} ({seconds:g} s at {rate} Hz)"
    row.update({k: job[k] for k in ("caption", "captions", "category", "license", "copyright")})
    return row, None


class Skipped(str):
    """The error of a clip left out for its content (a silent source: nothing to caption), not a failure."""


def remove_temp_files(out: Path) -> int:
    """Delete the half-written clips (atomic_path's `.NAME.XXXX.tmp.wav`/`.json`) a killed build left."""
    n = 0
    for p in (out / "clips").glob("*/.*.tmp.*"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def finish_job(job: dict, x: np.ndarray, out_dir: str, rate: int) -> tuple[dict | None, str | None]:
    """Normalise and write a rendered clip and its sidecar; returns (manifest row, error)."""
    from vocoder.checkpoint import atomic_path

    wav = Path(out_dir) / job["wav"]
    side = wav.with_suffix(".json")
    try:
        x = np.nan_to_num(x)
        if np.abs(x).max() < 1e-3:
            return None, Skipped(f"{job['id']}: silent clip ({';'.join(job['sources'])})")
        x = normalise(x, rate)
        wav.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(wav) as tmp:
            sf.write(str(tmp), x.astype(np.float32), rate, subtype="PCM_16", format="WAV")
        row = {k: job[k] for k in ("caption", "captions", "category", "source_package", "license", "copyright")}
        row = {"wav": job["wav"], **row,
               "source_file": ";".join(job.get("used") or job["sources"]), "split": job["split"]}
        with atomic_path(side) as tmp:
            tmp.write_text(json.dumps(row, ensure_ascii=False) + "\n")
        os.chmod(wav, 0o644)
        os.chmod(side, 0o644)
        return row, None
    except RENDER_ERRORS as e:
        return None, f"{job['id']}: {type(e).__name__}: {e}"


# ---------------------------------------------------------------------------------------------
# planning


def _job(category, kind, package, sources, split, caption_options, licence, key, **extra):
    rng = rng_for("caption", key)
    job_id = f"{kind}-{stable_hash(key):012x}"
    return {"id": job_id, "category": category, "kind": kind, "source_package": package, "sources": sources,
            "split": split, "caption": caption_options[int(rng.integers(len(caption_options)))],
            "captions": list(caption_options), "license": licence.license, "copyright": licence.copyright,
            "wav": f"clips/{category}/{job_id}.wav", **extra}


def plan_file_jobs(work: Path, seconds: float, quotas: dict[str, int]) -> dict[str, list[dict]]:
    """Candidate jobs from the caption maps, per category, best-first (one per source before variants)."""
    lic = src.LicenceIndex(work)
    cands: dict[str, list[tuple[int, int, dict]]] = defaultdict(list)
    pools: dict[tuple, list] = defaultdict(list)
    matched = dropped = 0
    for package in cap.CAPTION_MAPS:
        if not cap.CAPTION_MAPS[package]:
            continue
        for rel, path in src.sound_files(work, package):
            m = cap.match(package, rel)
            if m is None:
                dropped += 1
                continue
            matched += 1
            mode = m.rule.clip_mode
            split = split_of(package, rel)
            licence = lic.lookup(package, rel)
            if mode in ("words", "walk", "typing"):
                group = (package, m.rule.pattern, mode, str(Path(rel).parent), split) if mode == "words" else \
                        (package, m.rule.pattern, mode, "", split)
                if mode == "walk":
                    group = (package, m.rule.pattern, mode, Path(rel).name.split(".")[0].rstrip("0123456789_-"), split)
                pools[group].append((rel, path, m, licence))
                continue
            if mode == "window":
                try:
                    dur = sf.info(str(path)).duration
                except RENDER_ERRORS as e:
                    log.warning("skipping %s: %s", rel, e)
                    continue
                n_var = max(1, min(MAX_VARIANTS["window"] if m.category != "music" else 4, int(dur // seconds)))
                if m.category == "nature":  # few long ambience loops: add augmented windows
                    n_var = max(n_var, NATURE_MIN_WINDOWS)
                for v in range(n_var):
                    cands[m.category].append((v, stable_hash(rel, v), _job(
                        m.category, "window", package, [rel], split, m.captions(), licence, (package, rel, v),
                        path=str(path), window=v)))
            else:
                n_var = ANIMAL_MAX_VARIANTS if m.category == "animal" else MAX_VARIANTS["oneshot"]
                for v in range(n_var):
                    cands[m.category].append((v, stable_hash(rel, v), _job(
                        m.category, "oneshot", package, [rel], split, m.captions(), licence, (package, rel, v),
                        path=str(path), variant=v)))
    # pooled modes: clips drawn from a pool of files of one speaker / surface / keyboard, in one split
    for group, items in pools.items():
        package, _, mode, _, split = group
        m, licence = items[0][2], items[0][3]
        if mode == "typing" and package == "bucklespring-data":
            press = [(r, p) for r, p, *_ in items if r.endswith("-0.wav")]
            rel_of = {r: p for r, p, *_ in items}
            release = {r: (r[:-6] + "-1.wav", str(rel_of[r[:-6] + "-1.wav"]))
                       for r, _ in press if r[:-6] + "-1.wav" in rel_of}
            pool, pool_abs = [r for r, _ in press], [str(p) for _, p in press]
        else:
            pool, pool_abs, release = [r for r, *_ in items], [str(p) for _, p, *_ in items], {}
        if not pool:
            continue
        n_clips = len(pool) if mode == "words" else MAX_VARIANTS[mode]
        if mode == "words":
            n_clips = max(1, len(pool) // 2)
        if mode == "typing":
            n_clips = quotas.get(m.category, 0)
        for v in range(n_clips):  # ranked by the share of the pool used: pools contribute in proportion
            cands[m.category].append((v / len(pool), stable_hash(group, v), _job(
                m.category, mode, package, [f"{Path(pool[0]).parent}/*"], split, m.captions(), licence,
                (group, v), pool=pool, pool_abs=pool_abs, release=release)))
    log.info("plan: %d files matched a caption rule, %d dropped (name does not say what is heard)",
             matched, dropped)
    return {c: [j for *_, j in sorted(v, key=lambda t: (t[0], t[1]))] for c, v in cands.items()}


def plan_generated(work: Path, quotas: dict[str, int], have: Counter, seed: int) -> list[dict]:
    jobs = []
    melodic = [str(p) for pkg in ("fluid-soundfont-gm", "timgm6mb-soundfont", "musescore-general-soundfont-small")
               for p in src.soundfonts(work, pkg)]
    sf_pkg = {str(p): pkg for pkg in ("fluid-soundfont-gm", "timgm6mb-soundfont", "musescore-general-soundfont-small",
                                       "avldrums.lv2-soundfont") for p in src.soundfonts(work, pkg)}
    lic = src.LicenceIndex(work)

    def licence_of(path):
        pkg = sf_pkg[path]
        return pkg, lic.lookup(pkg, Path(path).relative_to(src.extract_dir(work, pkg)).as_posix())

    # sampled instruments from generated MIDI
    need = max(0, quotas["instrument"] - have["instrument"])
    for i in range(need):
        rng = rng_for(seed, "instrument", i)
        p = gen.instrument_params(rng, melodic)
        pkg, licence = licence_of(p["soundfont"])
        p["soundfont_path"] = p["soundfont"]
        p["soundfont"] = Path(p["soundfont"]).name
        key = ("instrument", seed, i)
        jobs.append(_job("instrument", "instrument", pkg, [f"generated MIDI #{i} on {p['soundfont']}"],
                         split_of("midi", key), gen.instrument_captions(p), licence, key, params=p))
    # drums: GM kits (fluid, and the two AVL kits), plus hydrogen one-shots sequenced in numpy
    need = max(0, quotas["drums"] - have["drums"])
    drum_sfs = [str(p) for p in src.soundfonts(work, "fluid-soundfont-gm")] + \
               [str(p) for p in src.soundfonts(work, "avldrums.lv2-soundfont")]
    kits = {s: (list(gen.DRUM_KITS) if "Fluid" in s else ["standard"]) for s in drum_sfs}
    hydrogen = hydrogen_kits(work)
    n_hydro = need // 3 if hydrogen else 0
    for i in range(need - n_hydro):
        rng = rng_for(seed, "drums", i)
        p = gen.drum_params(rng, drum_sfs, kits)
        pkg, licence = licence_of(p["soundfont"])
        p["soundfont_path"] = p["soundfont"]
        p["soundfont"] = Path(p["soundfont"]).name
        if "LV2" in p["soundfont"]:  # the AVL kits are bank-0 presets: play them on a melodic channel
            p["channel"] = 0
        key = ("drum_midi", seed, i)
        jobs.append(_job("drums", "drum_midi", pkg, [f"generated drum MIDI #{i} on {p['soundfont']}"],
                         split_of("midi", key), gen.drum_captions(p), licence, key, params=p))
    kit_names = sorted(hydrogen)
    for i in range(n_hydro):
        rng = rng_for(seed, "drumkit", i)
        kit = kit_names[i % len(kit_names)]
        pkg, roles, licence = hydrogen[kit]
        p = gen.drum_params(rng, ["-"], {"-": ["standard"]})
        p["pattern"] = str(rng.choice([k for k in gen.DRUM_PATTERNS if k != "tom groove"]))
        p["fills"] = False
        p["kit"] = kit
        key = ("drumkit", seed, i)
        beat = f"{p['pattern']} rhythm" if p["pattern"] in ("waltz", "breakbeat") else f"{p['pattern']} beat"
        caps = [f"a drum kit plays a {p['tempo']} {beat}", f"drums: a {p['tempo']} {beat} at {p['bpm']} bpm",
                f"kick drum, snare and hi-hat play a {p['tempo']} {beat}"]
        split = split_of(pkg, kit)  # the kit's samples are the source: all its clips share a split
        jobs.append(_job("drums", "drumkit", pkg, [f"{kit}/*"], split, caps, licence, key, params=p,
                         roles_abs={r: [str(x) for x in fs] for r, fs in roles.items()}))
    # espeak-ng
    espeak_lic = src.Licence(*src.PACKAGE_LICENSES["espeak-ng"])
    for i in range(max(0, quotas["synthetic_speech"] - have["synthetic_speech"])):
        p = gen.espeak_params(rng_for(seed, "espeak", i))
        key = ("espeak", seed, i)
        jobs.append(_job("synthetic_speech", "espeak", "espeak-ng", [f"espeak-ng sentence #{i}"],
                         split_of("espeak", key), gen.espeak_captions(p), espeak_lic, key, params=p))
    # procedural
    proc_lic = src.Licence(*src.PACKAGE_LICENSES["numpy (procedural)"])
    for i in range(max(0, quotas["procedural"] - have["procedural"])):
        kind = gen.PROCEDURAL_KINDS[i % len(gen.PROCEDURAL_KINDS)]
        p = gen.procedural_params(kind, rng_for(seed, "procedural", i))
        key = ("procedural", seed, i)
        jobs.append(_job("procedural", "procedural", "numpy (procedural)", [f"procedural {kind} #{i}"],
                         split_of("procedural", key), gen.procedural_captions(p), proc_lic, key, params=p))
    return jobs


def hydrogen_kits(work: Path) -> dict[str, tuple[str, dict, src.Licence]]:
    """Hydrogen kits that have kick, snare and hat samples: name -> (package, role -> files, licence)."""
    lic = src.LicenceIndex(work)
    kits: dict[str, tuple[str, dict, src.Licence]] = {}
    for pkg in ("hydrogen-data", "hydrogen-drumkits"):
        by_kit: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
        rels = {}
        for rel, path in src.sound_files(work, pkg):
            if "/drumkits/" not in rel:
                continue
            kit = rel.split("/drumkits/")[1].split("/")[0]
            role = cap.drum_role(rel)
            if role:
                by_kit[kit][role].append(path)
                rels.setdefault(kit, rel)
        for kit, roles in by_kit.items():
            if {"kick", "snare", "hat"} <= set(roles):
                kits[kit] = (pkg, dict(roles), lic.lookup(pkg, rels[kit]))
    return kits


def select(cands: dict[str, list[dict]], quotas: dict[str, int]) -> tuple[list[dict], Counter]:
    """The first quota candidates per category (candidates come best-first)."""
    chosen, have = [], Counter()
    for category, jobs in cands.items():
        quota = quotas.get(category, 0)
        if category in GENERATED_SHARE:  # mostly rendered from MIDI/one-shots: real clips fill a share
            quota = int(quota * (1 - GENERATED_SHARE[category]))
        take = jobs[:quota]
        chosen += take
        have[category] += len(take)
    return chosen, have


# ---------------------------------------------------------------------------------------------
# outputs


def write_outputs(out: Path, rows: list[dict]) -> None:
    from vocoder.checkpoint import atomic_path

    rows = sorted(rows, key=lambda r: r["wav"])

    def dump(path: Path, subset):
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "split"}, ensure_ascii=False)
                                   + "\n" for r in subset))

    dump(out / "manifest.jsonl", rows)
    dump(out / "manifest_train.jsonl", [r for r in rows if r["split"] == "train"])
    dump(out / "manifest_val.jsonl", [r for r in rows if r["split"] == "val"])
    with atomic_path(out / "SOURCES.md") as tmp:
        tmp.write_text(sources_md(rows))
    for name in ("manifest.jsonl", "manifest_train.jsonl", "manifest_val.jsonl", "SOURCES.md"):
        os.chmod(out / name, 0o644)


def sources_md(rows: list[dict]) -> str:
    by_pkg: dict[str, Counter] = defaultdict(Counter)
    holders: dict[str, Counter] = defaultdict(Counter)
    cats: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        by_pkg[r["source_package"]][r["license"]] += 1
        holders[r["source_package"]][r["copyright"]] += 1
        cats[r["source_package"]][r["category"]] += 1
    lic_total = Counter()
    for r in rows:
        lic_total[r["license"]] += 1
    lines = ["# Sources of the training corpus", "",
             "Generated by `examples/corpus/build_corpus.py` from the clip metadata (`manifest.jsonl` has the",
             "licence, copyright holder and source file of every clip). Debian packages are from the Debian",
             "archive; full terms are in each package's `/usr/share/doc/PACKAGE/copyright`.", "",
             f"{len(rows)} clips.", "", "## Licences", "", "| licence | clips |", "|---|---|"]
    lines += [f"| {lic} | {n} |" for lic, n in lic_total.most_common()]
    lines += ["", "## Packages", "", "| package | clips | categories | licences | copyright |", "|---|---|---|---|---|"]
    for pkg in sorted(by_pkg):
        n = sum(by_pkg[pkg].values())
        c = ", ".join(f"{k} {v}" for k, v in cats[pkg].most_common())
        lic = ", ".join(f"{k} ({v})" for k, v in by_pkg[pkg].most_common())
        hold = "; ".join(h for h, _ in holders[pkg].most_common(3)).replace("|", "/")
        lines.append(f"| {pkg} | {n} | {c} | {lic} | {hold} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


EPILOG = """\
examples:
  python examples/corpus/build_corpus.py --small    # ~300 clips (25 per category): a smoke test
  python examples/corpus/build_corpus.py --jobs 2   # the full corpus, ~7,200 clips

The first build downloads about 3 GB of Debian packages into OUT/debs (apt-get download); all
later steps run offline. Re-running the same command resumes: downloads, extractions and finished
clips are reused. A clip whose file does not match --rate/--seconds (or is damaged) is rendered
again, so changing --rate or --seconds in an existing OUT re-renders its clips.

Exit status: 0 when every clip was made (a clip whose source is silent is skipped, not a failure);
2 on a usage error (a bad --out, --skip-download without an earlier build's downloads, a missing
tool); 1 when a package cannot be downloaded or extracted, or when some clips failed (the manifest
then lists the others); 130 when interrupted (the manifest lists the clips done so far).
"""


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "work", help="output and work folder (default: %(default)s)")
    ap.add_argument("--rate", "-r", type=int, default=22050, help="sample rate in Hz (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=5.0, help="clip length in seconds (default: %(default)s)")
    ap.add_argument("--max-per-category", type=int, default=None,
                    help="cap on clips per category (default: the CORPUS.md composition, ~7,200 clips)")
    ap.add_argument("--jobs", "-j", type=int, default=1, help="parallel render processes (default: %(default)s)")
    ap.add_argument("--skip-download", action="store_true", help="use the .debs/extractions already in OUT")
    ap.add_argument("--small", action="store_true", help="a few hundred clips (25 per category), for smoke tests")
    ap.add_argument("--seed", type=int, default=0, help="seed for generated material (default: %(default)s)")
    ap.add_argument("--prune", action="store_true",
                    help="delete clips in OUT/clips that this plan no longer uses (left by other flags or maps)")
    args = ap.parse_args(argv)
    if args.rate < 8000 or args.rate > 96000:
        ap.error(f"--rate {args.rate} must be between 8000 and 96000")
    if not 1.0 <= args.seconds <= 30.0:
        ap.error(f"--seconds {args.seconds} must be between 1 and 30")
    if args.jobs < 1:
        ap.error(f"--jobs {args.jobs} must be at least 1")
    if args.max_per_category is not None and args.max_per_category < 1:
        ap.error(f"--max-per-category {args.max_per_category} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    state: dict = {}  # build() puts OUT and, once rendering starts, the list of finished rows here
    try:
        return build(args, state)
    except KeyboardInterrupt:
        return interrupted(state)


def interrupted(state: dict) -> int:
    """Ctrl-C: write the manifest of the clips finished so far (atomically), clean up, exit 130."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the write short
    try:
        if state.get("rows") is None:
            log.error("interrupted before any clip was rendered; re-run the same command to resume")
            return 130
        write_outputs(state["out"], state["rows"])
        remove_temp_files(state["out"])
        log.error(
            "interrupted: %d clips done (in %s); re-run the same command to resume",
            len(state["rows"]),
            state["out"] / "manifest.jsonl",
        )
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)


def build(args, state: dict) -> int:
    t0 = time.time()
    missing = [t for t in src.TOOLS if shutil.which(t) is None and not (args.skip_download and t == "apt-get")]
    if missing:
        log.error("error: missing tools: %s (apt-get install -y fluidsynth espeak-ng ffmpeg)", ", ".join(missing))
        return 2
    out = args.out.resolve()
    if out.exists() and not out.is_dir():
        log.error("error: --out %s is not a folder", out)
        return 2
    if args.skip_download:  # checked before OUT is created: a wrong --out leaves nothing behind
        if not out.is_dir():
            log.error("error: --out %s does not exist: --skip-download needs the downloads of an earlier build", out)
            return 2
        for pkg in src.PACKAGES:
            if src.find_deb(out, pkg) is None and not (src.extract_dir(out, pkg) / ".done").exists():
                log.error("error: package %s is neither downloaded nor extracted in %s (run without --skip-download)",
                          pkg, out)
                return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        log.error("error: --out %s is not a writable folder: %s", out, e.strerror or e)
        return 2
    state["out"] = out
    cap_n = args.max_per_category or (25 if args.small else None)
    quotas = {c: (min(q, cap_n) if cap_n else q) for c, q in QUOTAS.items()}

    if not args.skip_download:
        try:
            src.download(out)
        except (OSError, RuntimeError) as e:
            log.error("error: %s", e)
            return 1
    bad = []
    for pkg in src.PACKAGES:  # every package is needed for the same plan: a bad one stops the build
        try:
            src.extract(out, pkg)
        except (OSError, RuntimeError) as e:
            bad.append(pkg)
            log.error("error: %s", e)
    if bad:
        again = "re-run without --skip-download" if args.skip_download else "re-run"
        log.error("error: %d package(s) could not be extracted (%s): delete the .deb(s) named above and %s to "
                  "download them again", len(bad), ", ".join(bad), again)
        return 1

    cands = plan_file_jobs(out, args.seconds, quotas)
    jobs, have = select(cands, quotas)
    jobs += plan_generated(out, quotas, have, args.seed)
    per = Counter(j["category"] for j in jobs)
    log.info("plan: %d clips: %s", len(jobs), ", ".join(f"{c} {per[c]}" for c in cap.CATEGORIES))

    n_tmp = remove_temp_files(out)
    if n_tmp:
        log.info("removed %d half-written temp files left by an interrupted build", n_tmp)
    reused, todo, redo = [], [], Counter()
    for j in jobs:
        row, why = check_clip(j, out, args.rate, args.seconds)
        if row is not None:
            reused.append(row)
            continue
        todo.append(j)
        if why is not None:
            redo[why] += 1
            if sum(redo.values()) <= 10:
                log.info("re-render %s: %s", j["wav"], why)
    if redo:
        log.info("re-render: %d existing clips are not valid for --rate %d --seconds %g (%s)", sum(redo.values()),
                 args.rate, args.seconds, "; ".join(f"{why}: {n}" for why, n in redo.most_common(3)))
    log.info("reuse: %d finished clips; %d to render", len(reused), len(todo))

    rows, errors, skipped = list(reused), [], []
    state["rows"] = rows  # from here an interrupted build writes the manifest of what is done
    done = 0
    t1 = time.time()
    midi_jobs = [j for j in todo if j["kind"] in ("instrument", "drum_midi")]
    work = [(j, str(out), args.rate, args.seconds) for j in todo if j["kind"] not in ("instrument", "drum_midi")]
    work.sort(key=lambda w: (w[0]["kind"], w[0].get("path", ""), w[0]["id"]))  # decoded files get reused
    total = len(todo)

    def on_done(row, err):
        nonlocal done
        done += 1
        _collect(row, err, rows, errors, skipped)
        _progress(done, total, t1)
        if done % CHECKPOINT_EVERY == 0:  # a killed build still leaves a usable manifest
            write_outputs(out, rows)

    render_midi_jobs(midi_jobs, str(out), args.rate, args.seconds, on_done)
    if args.jobs > 1 and work:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(args.jobs, initializer=_ignore_sigint) as pool:
            it = pool.imap_unordered(_render_star, work, chunksize=4)
            for row, err in it:
                on_done(row, err)
    else:
        for w in work:
            on_done(*render_job(*w))
    write_outputs(out, rows)
    planned = {j["wav"] for j in jobs}
    stale = [p for p in (out / "clips").glob("*/*.wav")
             if not p.name.startswith(".") and p.relative_to(out).as_posix() not in planned]
    if stale and args.prune:
        for p in stale:
            p.unlink()
            p.with_suffix(".json").unlink(missing_ok=True)
        log.info("prune: deleted %d clips that are not in this plan", len(stale))
    elif stale:
        log.info("%d clips in %s are not in this plan (kept; --prune deletes them)", len(stale), out / "clips")
    hours = len(rows) * args.seconds / 3600
    per = Counter(r["category"] for r in rows)
    n_val = sum(r["split"] == "val" for r in rows)
    log.info("done: %d clips (%.2f h; %d held out), %d failed, %d silent (skipped), %.0f s: %s", len(rows), hours,
             n_val, len(errors), len(skipped), time.time() - t0, ", ".join(f"{c} {per[c]}" for c in cap.CATEGORIES))
    for e in skipped:
        log.info("skipped: %s", e)
    for e in errors[:20]:
        log.warning("failed: %s", e)
    if errors:
        more = " (the first 20 above)" if len(errors) > 20 else " (above)"
        log.error("error: %d of %d clips failed%s; the manifest lists the %d that were made; re-run to retry",
                  len(errors), len(jobs), more, len(rows))
        return 1
    return 0


def _ignore_sigint():
    """Pool workers leave Ctrl-C to the main process (which stops them): no traceback from each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _render_star(args):
    return render_job(*args)


def _collect(row, err, rows, errors, skipped):
    if row is not None:
        rows.append(row)
    if err is not None:
        (skipped if isinstance(err, Skipped) else errors).append(err)


def _progress(done: int, total: int, t1: float) -> None:
    if done % 50 == 0 or done == total:
        el = time.time() - t1
        eta = el / done * (total - done)
        log.info("render: %d/%d clips, %.0f s elapsed, ~%.0f s left", done, total, el, eta)


if __name__ == "__main__":
    sys.exit(main())
