"""Generated material for the corpus, each with exact captions derived from its parameters.

- procedural sounds in numpy (beeps, DTMF, sirens, alarms, metronome, coloured noise, chirps, chords)
- MIDI files (mido) for sampled instruments and drum kits, rendered later by fluidsynth
- sentences for espeak-ng

Every generator takes a `numpy.random.Generator` and returns its parameters, so a clip is rebuilt
exactly from (kind, seed). Captions are lists of 3 paraphrases; the builder picks one per clip.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# procedural sounds

PROCEDURAL_KINDS = ("beeps", "dtmf", "siren", "alarm", "metronome", "noise", "chirp", "chord")

DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLS = (1209, 1336, 1477)
DTMF_KEYS = "123456789*0#"


def _envelope(n: int, rate: int, attack: float = 0.005, release: float = 0.01) -> np.ndarray:
    env = np.ones(n)
    a, r = max(1, int(attack * rate)), max(1, int(release * rate))
    env[:a] = np.linspace(0, 1, min(a, n))
    env[-r:] = np.minimum(env[-r:], np.linspace(1, 0, min(r, n)))
    return env


def _wave(shape: str, phase: np.ndarray) -> np.ndarray:
    """Waveform of `shape` for phase in cycles."""
    frac = phase % 1.0
    if shape == "sine":
        return np.sin(2 * np.pi * phase)
    if shape == "square":
        return np.where(frac < 0.5, 1.0, -1.0)
    if shape == "sawtooth":
        return 2 * frac - 1
    if shape == "triangle":
        return 4 * np.abs(frac - 0.5) - 1
    raise ValueError(f"unknown waveform {shape!r}")


def _tone(freq: float, dur: float, rate: int, shape: str = "sine") -> np.ndarray:
    n = int(dur * rate)
    return _wave(shape, freq * np.arange(n) / rate) * _envelope(n, rate)


def procedural_params(kind: str, rng: np.random.Generator) -> dict:
    """Random parameters for one procedural clip of `kind`."""
    if kind == "beeps":
        return {"kind": kind, "freq": int(rng.choice([440, 600, 800, 1000, 1500, 2000, 3000])),
                "count": int(rng.integers(1, 7)), "beep_s": float(rng.choice([0.08, 0.15, 0.3, 0.5])),
                "shape": str(rng.choice(["sine", "square"]))}
    if kind == "dtmf":
        return {"kind": kind, "digits": "".join(rng.choice(list("0123456789"), int(rng.integers(4, 11))))}
    if kind == "siren":
        return {"kind": kind, "style": str(rng.choice(["wail", "yelp", "hi-lo"])),
                "low": int(rng.choice([500, 650, 800])), "high": int(rng.choice([1200, 1500, 1800]))}
    if kind == "alarm":
        return {"kind": kind, "style": str(rng.choice(["buzzer", "two-tone", "fast beeping"])),
                "freq": int(rng.choice([800, 1000, 2400, 3000]))}
    if kind == "metronome":
        return {"kind": kind, "bpm": int(rng.choice([60, 80, 100, 120, 140, 160, 200])),
                "accent": bool(rng.integers(2))}
    if kind == "noise":
        return {"kind": kind, "colour": str(rng.choice(["white", "pink", "brown"]))}
    if kind == "chirp":
        lo, hi = int(rng.choice([100, 200, 400])), int(rng.choice([2000, 4000, 8000]))
        up = bool(rng.integers(2))
        return {"kind": kind, "start": lo if up else hi, "end": hi if up else lo,
                "sweep_s": float(rng.choice([0.5, 1.0, 2.5, 5.0]))}
    if kind == "chord":
        return {"kind": kind, "root": str(rng.choice(list(NOTE_NAMES))),
                "quality": str(rng.choice(["major", "minor"])),
                "shape": str(rng.choice(["sine", "square", "sawtooth", "triangle"])),
                "repeats": int(rng.integers(1, 5))}
    raise ValueError(f"unknown procedural kind {kind!r}; expected one of {PROCEDURAL_KINDS}")


NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
WAVE_WORDS = {"sine": "pure sine", "square": "square-wave", "sawtooth": "sawtooth", "triangle": "triangle-wave"}


def procedural_captions(p: dict) -> list[str]:
    """Three paraphrases that state exactly what `render_procedural(p)` contains."""
    kind = p["kind"]
    if kind == "beeps":
        n, f = p["count"], p["freq"]
        what = "a single beep" if n == 1 else f"{n} beeps"
        tone = "a pure tone" if p["shape"] == "sine" else "a harsh square-wave tone"
        long = "long" if p["beep_s"] >= 0.3 else "short"
        return [f"{what} at {f} Hz", f"an electronic device emits {what} of {tone} at {f} Hz",
                f"{n} {long} {f} Hz beep{'s' if n > 1 else ''}"]
    if kind == "dtmf":
        d = p["digits"]
        return [f"telephone keypad tones dial {len(d)} digits", f"DTMF tones dial the number {d}",
                f"someone dials {len(d)} digits on a touch-tone phone"]
    if kind == "siren":
        s = p["style"]
        desc = {"wail": "rises and falls slowly", "yelp": "warbles rapidly up and down",
                "hi-lo": "alternates between two tones"}[s]
        return [f"a siren {desc}", f"an emergency vehicle siren {desc}",
                f"a {s} siren sweeping between {p['low']} and {p['high']} Hz"]
    if kind == "alarm":
        s, f = p["style"], p["freq"]
        return [f"an alarm sounds with a {s} pattern", f"a {s} alarm at {f} Hz",
                f"an electronic alarm goes off, {s}"]
    if kind == "metronome":
        b = p["bpm"]
        acc = " with an accent on every fourth beat" if p["accent"] else ""
        return [f"a metronome ticks at {b} beats per minute{acc}", f"a metronome clicks at {b} bpm",
                f"steady clicks at {b} bpm"]
    if kind == "noise":
        c = p["colour"]
        desc = {"white": "a bright steady hiss", "pink": "a soft even hiss", "brown": "a deep low rumble"}[c]
        return [f"{c} noise", f"steady {c} noise, {desc}", f"{desc} of {c} noise"]
    if kind == "chirp":
        a, b = p["start"], p["end"]
        way = "upward" if b > a else "downward"
        return [f"a tone sweeps {way} from {a} Hz to {b} Hz",
                f"a sine sweep going {way}, repeating every {p['sweep_s']:g} seconds",
                f"a rising and repeating {way} chirp from {a} to {b} Hz" if b > a
                else f"a falling {way} chirp from {a} to {b} Hz"]
    if kind == "chord":
        name = f"{p['root']} {p['quality']}"
        w = WAVE_WORDS[p["shape"]]
        r = p["repeats"]
        times = "once" if r == 1 else f"{r} times"
        return [f"a synthesizer plays {_an(name)} chord {times}", f"a {w} {name} chord",
                f"{_an(name)} chord of {w} tones is played {times}"]
    raise ValueError(f"unknown procedural kind {kind!r}")


def render_procedural(p: dict, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The clip for parameters `p`: float64 mono, `seconds` long at `rate`."""
    n = int(seconds * rate)
    out = np.zeros(n)
    t = np.arange(n) / rate
    kind = p["kind"]
    if kind == "beeps":
        gap = p["beep_s"] * 1.5
        span = p["count"] * (p["beep_s"] + gap)
        start = rng.uniform(0.1, max(0.11, seconds - span))
        for i in range(p["count"]):
            s = int((start + i * (p["beep_s"] + gap)) * rate)
            b = _tone(p["freq"], p["beep_s"], rate, p["shape"])[: max(0, n - s)]
            out[s : s + len(b)] += b
    elif kind == "dtmf":
        s = int(0.2 * rate)
        for d in p["digits"]:
            k = DTMF_KEYS.index(d)
            dur = 0.12
            m = int(dur * rate)
            if s + m > n:
                break
            tt = np.arange(m) / rate
            tone = np.sin(2 * np.pi * DTMF_ROWS[k // 3] * tt) + np.sin(2 * np.pi * DTMF_COLS[k % 3] * tt)
            out[s : s + m] += 0.5 * tone * _envelope(m, rate)
            s += m + int(rng.uniform(0.08, 0.25) * rate)
    elif kind == "siren":
        lo, hi = p["low"], p["high"]
        if p["style"] == "wail":
            f = lo + (hi - lo) * 0.5 * (1 - np.cos(2 * np.pi * t / 2.5))
        elif p["style"] == "yelp":
            f = lo + (hi - lo) * 0.5 * (1 - np.cos(2 * np.pi * t * 3.5))
        else:
            f = np.where((t // 0.5) % 2 == 0, hi, lo)
        out = np.sin(2 * np.pi * np.cumsum(f) / rate) + 0.3 * np.sin(4 * np.pi * np.cumsum(f) / rate)
    elif kind == "alarm":
        f = p["freq"]
        if p["style"] == "buzzer":
            gate = ((t % 1.0) < 0.6).astype(float)
            out = _wave("square", f / 4 * t) * gate
        elif p["style"] == "two-tone":
            ff = np.where((t // 0.25) % 2 == 0, f, f * 0.75)
            out = _wave("square", np.cumsum(ff) / rate) * 0.7
        else:
            gate = ((t % 0.2) < 0.1).astype(float)
            out = np.sin(2 * np.pi * f * t) * gate
    elif kind == "metronome":
        period = 60.0 / p["bpm"]
        click_n = int(0.03 * rate)
        tt = np.arange(click_n) / rate
        for i, s in enumerate(np.arange(0.1, seconds, period)):
            accent = p["accent"] and i % 4 == 0
            f = 1500 if accent else 1000
            c = np.sin(2 * np.pi * f * tt) * np.exp(-tt * 150)
            a = int(s * rate)
            c = c[: n - a]
            out[a : a + len(c)] += c * (1.0 if accent or not p["accent"] else 0.6)
    elif kind == "noise":
        white = rng.standard_normal(n)
        spec = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n, 1 / rate)
        freqs[0] = freqs[1]
        power = {"white": 0.0, "pink": 1.0, "brown": 2.0}[p["colour"]]
        out = np.fft.irfft(spec / freqs ** (power / 2), n)
        out *= 0.25 / (np.sqrt(np.mean(out**2)) + 1e-12)  # RMS -12 dBFS, whatever the colour
    elif kind == "chirp":
        a, b, T = p["start"], p["end"], p["sweep_s"]
        tau = t % T
        k = np.log(b / a) / T
        phase = a * (np.exp(k * tau) - 1) / k  # exponential sweep, restarted every T seconds
        out = np.sin(2 * np.pi * phase) * _envelope(n, rate)
    elif kind == "chord":
        root = 48 + NOTE_NAMES[p["root"]] + 12 * int(rng.integers(0, 2))
        third = 4 if p["quality"] == "major" else 3
        notes = [root, root + third, root + 7]
        hit = seconds / p["repeats"]
        for r in range(p["repeats"]):
            a = int(r * hit * rate)
            m = int(hit * 0.9 * rate)
            m = min(m, n - a)
            tt = np.arange(m) / rate
            env = np.exp(-tt * 1.5) * _envelope(m, rate, 0.01, 0.05)
            for note in notes:
                f = 440.0 * 2 ** ((note - 69) / 12)
                out[a : a + m] += _wave(p["shape"], f * tt) * env / 3
    else:
        raise ValueError(f"unknown procedural kind {kind!r}")
    return out


# ---------------------------------------------------------------------------------------------
# MIDI: sampled instruments (General MIDI programs, 0-based) and drum patterns

INSTRUMENTS = {  # name -> (GM program, lowest and highest comfortable MIDI note)
    "piano": (0, 36, 96), "electric piano": (4, 40, 88), "harpsichord": (6, 41, 89),
    "celesta": (8, 60, 96), "glockenspiel": (9, 72, 105), "music box": (10, 60, 96),
    "vibraphone": (11, 53, 89), "marimba": (12, 45, 96), "xylophone": (13, 65, 108),
    "church organ": (19, 36, 96), "accordion": (21, 53, 89), "harmonica": (22, 60, 84),
    "acoustic guitar": (24, 40, 84), "electric guitar": (27, 40, 86), "distorted electric guitar": (30, 40, 86),
    "acoustic bass": (32, 28, 55), "electric bass": (33, 28, 55), "violin": (40, 55, 100),
    "viola": (41, 48, 88), "cello": (42, 36, 76), "contrabass": (43, 28, 60), "harp": (46, 36, 96),
    "timpani": (47, 40, 55), "string ensemble": (48, 40, 90), "choir": (52, 48, 79),
    "trumpet": (56, 55, 82), "trombone": (57, 40, 72), "tuba": (58, 28, 58), "french horn": (60, 41, 77),
    "brass section": (61, 45, 80), "soprano saxophone": (64, 56, 87), "alto saxophone": (65, 49, 81),
    "tenor saxophone": (66, 44, 76), "oboe": (68, 58, 91), "bassoon": (70, 34, 72), "clarinet": (71, 50, 89),
    "piccolo": (72, 74, 102), "flute": (73, 60, 96), "recorder": (74, 60, 96), "pan flute": (75, 60, 96),
    "sitar": (104, 48, 84), "banjo": (105, 48, 84), "steel drums": (114, 55, 84), "synth lead": (80, 48, 96),
    "synth pad": (88, 40, 88),
}
STYLES = ("melody", "scale", "arpeggio", "chords", "repeated note")
TEMPOS = {"slow": (60, 76), "moderate": (90, 110), "fast": (132, 168)}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


def instrument_params(rng: np.random.Generator, soundfonts: list[str]) -> dict:
    name = str(rng.choice(list(INSTRUMENTS)))
    _, lo, hi = INSTRUMENTS[name]
    span = hi - lo
    register = str(rng.choice(["low", "middle", "high"]))
    base = {"low": lo, "middle": lo + span // 3, "high": lo + 2 * span // 3}[register]
    tempo = str(rng.choice(list(TEMPOS)))
    style = str(rng.choice(STYLES, p=[0.4, 0.15, 0.2, 0.15, 0.1]))
    if name in ("timpani",) and style == "chords":
        style = "melody"
    return {"instrument": name, "register": register, "base_note": int(base), "tempo": tempo,
            "bpm": int(rng.integers(*TEMPOS[tempo])), "style": style,
            "mode": str(rng.choice(list(SCALES))), "soundfont": str(rng.choice(soundfonts)),
            "seed": int(rng.integers(2**31))}


PLURALS = {"melody": "melodies", "scale": "scales", "arpeggio": "arpeggios", "chords": "chords"}


def _an(word: str) -> str:
    """The word with its indefinite article; note names A, E and F read "an"."""
    vowel = word[0] in "aeiou" or (len(word) == 1 or word[1] == " ") and word[0] in "AEF"
    return ("an " if vowel else "a ") + word


def instrument_captions(p: dict) -> list[str]:
    ins, tempo, reg, style = p["instrument"], p["tempo"], p["register"], p["style"]
    mood = "cheerful" if p["mode"] == "major" else "sad"
    what = {"melody": f"a {tempo} {mood} melody", "scale": f"a {tempo} {p['mode']} scale",
            "arpeggio": f"{tempo} arpeggios", "chords": f"{tempo} chords",
            "repeated note": f"one note repeated at a {tempo} tempo"}[style]
    return [f"{_an(ins)} plays {what} in a {reg} register",
            f"{what} played on {_an(ins)}",
            f"solo {ins} playing {PLURALS[style]} in a {reg} register, {tempo}" if style != "repeated note"
            else f"solo {ins} repeating a single {reg} note, {tempo}"]


def instrument_midi(p: dict, seconds: float):
    """A one-track MIDI file (mido.MidiFile) for `instrument_params` `p`, about `seconds` long."""
    import mido

    rng = np.random.default_rng(p["seed"])
    program, lo, hi = INSTRUMENTS[p["instrument"]]
    tpb = 480
    beat_s = 60.0 / p["bpm"]
    mid = mido.MidiFile(ticks_per_beat=tpb)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=int(beat_s * 1e6)))
    tr.append(mido.Message("program_change", program=program, channel=0))
    scale = SCALES[p["mode"]]
    root = p["base_note"]

    def degree(d: int) -> int:
        return int(np.clip(root + 12 * (d // 7) + scale[d % 7], lo, hi))

    events = []  # (start_beat, dur_beats, [notes], velocity)
    beat, total = 0.0, seconds / beat_s
    d = 0
    while beat < total:
        if p["style"] == "melody":
            dur = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            d = int(np.clip(d + rng.choice([-2, -1, 1, 2, 0, 3, -3]), -3, 10))
            events.append((beat, dur, [degree(d)], int(rng.integers(70, 110))))
        elif p["style"] == "scale":
            dur = 0.5
            events.append((beat, dur, [degree(d)], 90))
            d = d + 1 if (int(beat / 0.5) // 8) % 2 == 0 else d - 1
        elif p["style"] == "arpeggio":
            dur = 0.5
            step = [0, 2, 4, 7, 4, 2][int(beat / 0.5) % 6]
            events.append((beat, dur, [degree(step + 7 * (int(beat) // 12 % 2))], 85))
        elif p["style"] == "chords":
            dur = 2.0
            r = int(rng.choice([0, 3, 4, 5]))
            events.append((beat, dur, [degree(r), degree(r + 2), degree(r + 4)], 80))
        else:
            dur = 1.0
            events.append((beat, dur, [degree(0)], 90))
        beat += dur
    msgs = []
    for start, dur, notes, vel in events:
        for note in notes:
            msgs.append((int(start * tpb), mido.Message("note_on", note=note, velocity=vel, channel=0)))
            msgs.append((int((start + dur * 0.95) * tpb), mido.Message("note_off", note=note, channel=0)))
    _append_sorted(tr, msgs)
    return mid


def _append_sorted(track, msgs) -> None:
    now = 0
    for tick, msg in sorted(msgs, key=lambda m: (m[0], m[1].type == "note_on")):
        track.append(msg.copy(time=tick - now))
        now = tick


# General MIDI percussion notes
KICK, SNARE, HAT, OPEN_HAT, RIDE, CRASH, TOM_LO, TOM_HI, CLAP, RIM = 36, 38, 42, 46, 51, 49, 45, 50, 39, 37
DRUM_PATTERNS = {  # name -> 16 steps per bar of sixteenths: list of (step, note)
    "rock": [(0, KICK), (8, KICK), (4, SNARE), (12, SNARE)] + [(s, HAT) for s in range(0, 16, 2)],
    "disco": [(s, KICK) for s in (0, 4, 8, 12)] + [(4, SNARE), (12, SNARE)]
    + [(s, OPEN_HAT) for s in (2, 6, 10, 14)],
    "funk": [(0, KICK), (3, KICK), (10, KICK), (4, SNARE), (12, SNARE), (7, SNARE), (15, SNARE)]
    + [(s, HAT) for s in range(16)],
    "half-time": [(0, KICK), (10, KICK), (8, SNARE)] + [(s, HAT) for s in range(0, 16, 2)],
    "shuffle": [(0, KICK), (9, KICK), (4, SNARE), (12, SNARE)]
    + [(s, RIDE) for s in (0, 3, 4, 7, 8, 11, 12, 15)],
    "breakbeat": [(0, KICK), (10, KICK), (11, KICK), (4, SNARE), (12, SNARE), (14, SNARE)]
    + [(s, HAT) for s in range(0, 16, 2)],
    "waltz": [(0, KICK), (4, SNARE), (8, SNARE)] + [(s, HAT) for s in range(0, 12, 2)],
    "tom groove": [(0, KICK), (8, KICK), (2, TOM_HI), (6, TOM_HI), (10, TOM_LO), (14, TOM_LO), (4, CLAP),
                   (12, CLAP)],
}
DRUM_KITS = {  # name -> (bank-128 program, adjective)
    "standard": (0, "a drum kit"), "room": (8, "a drum kit in a room"), "power": (16, "a powerful rock drum kit"),
    "electronic": (24, "an electronic drum machine"), "TR-808": (25, "a TR-808 drum machine"),
    "jazz": (32, "a jazz drum kit"), "brush": (40, "a drum kit played with brushes"),
}
DRUM_TEMPOS = {"slow": (70, 85), "moderate": (95, 115), "fast": (130, 170)}


def drum_params(rng: np.random.Generator, soundfonts: list[str], kit_names: dict[str, list[str]]) -> dict:
    """`kit_names[soundfont]` lists the kits that soundfont has."""
    sf = str(rng.choice(soundfonts))
    tempo = str(rng.choice(list(DRUM_TEMPOS)))
    return {"pattern": str(rng.choice(list(DRUM_PATTERNS))), "kit": str(rng.choice(kit_names[sf])),
            "tempo": tempo, "bpm": int(rng.integers(*DRUM_TEMPOS[tempo])), "fills": bool(rng.integers(2)),
            "soundfont": sf, "seed": int(rng.integers(2**31))}


def drum_captions(p: dict) -> list[str]:
    kit = DRUM_KITS.get(p["kit"], (0, "a drum kit"))[1]
    pat, tempo = p["pattern"], p["tempo"]
    fills = " with fills" if p["fills"] else ""
    beat = f"{pat} rhythm" if pat in ("waltz", "breakbeat") else f"{pat} beat"
    return [f"{kit} plays a {tempo} {beat}{fills}", f"a {tempo} {beat} played on {kit}",
            f"drums: {_an(tempo)} {beat} at {p['bpm']} bpm{fills}"]


def drum_midi(p: dict, seconds: float):
    import mido

    rng = np.random.default_rng(p["seed"])
    tpb = 480
    beat_s = 60.0 / p["bpm"]
    mid = mido.MidiFile(ticks_per_beat=tpb)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=int(beat_s * 1e6)))
    ch = p.get("channel", 9)  # GM percussion channel; kits stored as bank-0 presets (AVL) play on channel 0
    tr.append(mido.Message("program_change", program=DRUM_KITS.get(p["kit"], (0,))[0] if ch == 9 else 0, channel=ch))
    steps_per_bar = 12 if p["pattern"] == "waltz" else 16
    six = tpb // 4
    msgs = []
    n_bars = int(np.ceil(seconds / (beat_s * steps_per_bar / 4))) + 1
    for bar in range(n_bars):
        base = bar * steps_per_bar * six
        hits = DRUM_PATTERNS[p["pattern"]]
        if p["fills"] and bar % 2 == 1:
            hits = [h for h in hits if h[0] < steps_per_bar - 4] + [
                (s, int(rng.choice([SNARE, TOM_HI, TOM_LO]))) for s in range(steps_per_bar - 4, steps_per_bar)]
        if bar == 0:
            hits = hits + [(0, CRASH)]
        for step, note in hits:
            vel = int(np.clip(rng.normal(100 if step % 4 == 0 else 80, 8), 40, 127))
            t0 = base + step * six + int(rng.normal(0, 6))
            msgs.append((max(0, t0), mido.Message("note_on", note=note, velocity=vel, channel=ch)))
            msgs.append((max(0, t0) + six, mido.Message("note_off", note=note, channel=ch)))
    _append_sorted(tr, msgs)
    return mid


# ---------------------------------------------------------------------------------------------
# espeak-ng sentences

ESPEAK_VOICES = {  # espeak-ng voice -> language name
    "en": "English", "en-us": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
}
ESPEAK_VARIANTS = {"m1": "male", "m3": "male", "m7": "male", "f1": "female", "f3": "female", "f4": "female"}
_SUBJECTS = ["the old man", "my sister", "the teacher", "a small dog", "the driver", "our neighbour",
             "the children", "the doctor", "a tourist", "the farmer"]
_VERBS = ["walked to", "looked at", "talked about", "waited near", "painted", "visited", "cleaned",
          "photographed", "found", "left"]
_OBJECTS = ["the red house", "the station", "a quiet garden", "the blue car", "the market", "the river",
            "an empty room", "the library", "the bridge", "a wooden boat"]
_TAILS = ["this morning", "yesterday", "after lunch", "in the rain", "before the storm", "at noon",
          "last summer", "on Sunday", "with a smile", "very slowly"]
# simple fixed sentences for the other languages: espeak reads any text, the caption only names the language
_FOREIGN = {
    "fr": ["Le train part à huit heures du matin.", "Nous avons visité le musée hier.",
           "Il fait très beau aujourd'hui dans le jardin.", "Ma soeur lit un livre dans la cuisine."],
    "de": ["Der Zug fährt um acht Uhr morgens ab.", "Wir haben gestern das Museum besucht.",
           "Heute ist das Wetter im Garten sehr schön.", "Meine Schwester liest ein Buch in der Küche."],
    "es": ["El tren sale a las ocho de la mañana.", "Ayer visitamos el museo de la ciudad.",
           "Hoy hace muy buen tiempo en el jardín.", "Mi hermana lee un libro en la cocina."],
    "it": ["Il treno parte alle otto del mattino.", "Ieri abbiamo visitato il museo.",
           "Oggi fa molto bello nel giardino.", "Mia sorella legge un libro in cucina."],
}


def espeak_params(rng: np.random.Generator) -> dict:
    voice = str(rng.choice(list(ESPEAK_VOICES), p=[0.35, 0.25, 0.1, 0.1, 0.1, 0.1]))
    if voice.startswith("en"):
        text = " ".join(
            [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."
             .capitalize() for _ in range(int(rng.integers(1, 3)))])
    else:
        text = " ".join(rng.choice(_FOREIGN[voice], int(rng.integers(1, 3)), replace=False))
    variant = str(rng.choice(list(ESPEAK_VARIANTS)))
    return {"voice": voice, "variant": variant, "speed": int(rng.choice([120, 150, 175, 200])),
            "pitch": int(rng.integers(30, 70)), "text": text}


def espeak_captions(p: dict) -> list[str]:
    lang = ESPEAK_VOICES[p["voice"]]
    sex = ESPEAK_VARIANTS[p["variant"]]
    pace = {120: "slowly", 150: "at a normal pace", 175: "quickly", 200: "very quickly"}[p["speed"]]
    return [f"a synthesized {sex} voice speaks {lang}", f"a robotic text-to-speech voice reads a sentence in {lang}",
            f"a synthesized {sex} computer voice talks {pace} in {lang}"]
