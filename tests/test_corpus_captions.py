"""The corpus builder's caption maps, generators and bookkeeping (examples/corpus), without downloading."""

from __future__ import annotations

import re
import string
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "corpus"))

import build_corpus as bc
import captions as cap
import generators as gen
import sources as src

RATE = 16000


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_every_rule_has_3_to_5_paraphrases_a_valid_category_and_mode():
    n_rules = 0
    for package, rules in cap.CAPTION_MAPS.items():
        assert package in src.PACKAGES, package
        for rule in rules:
            n_rules += 1
            regex = re.compile(rule.pattern)
            assert 3 <= len(rule.captions) <= 5, (package, rule.pattern)
            assert len(set(rule.captions)) == len(rule.captions), (package, rule.pattern)
            assert rule.category in cap.CATEGORIES, (package, rule.category)
            assert rule.clip_mode in cap.MODES, (package, rule.mode)
            for c in rule.captions:
                assert c == c.strip() and c[0].islower() and not c.endswith("."), c
                # {lang} only where the pattern captures a language
                assert _fields(c) <= ({"lang"} if "lang" in regex.groupindex else set()), (package, c)
    assert n_rules > 150
    # every category is reachable from some source
    from_files = {r.category for rules in cap.CAPTION_MAPS.values() for r in rules}
    assert from_files | {"synthetic_speech", "procedural"} == set(cap.CATEGORIES)
    assert len(cap.CATEGORIES) == 12


@pytest.mark.parametrize(
    "package, path, category, word",
    [
        ("qabcs-data", "usr/share/qabcs/abcs/all/noises/dog.ogg", "animal", "dog"),
        ("qabcs-data", "usr/share/qabcs/abcs/all/noises/violin.ogg", "instrument", "string"),
        ("qabcs-data", "usr/share/qabcs/abcs/de/sounds/words/apple.ogg", "speech", "German"),
        ("klettres-data", "usr/share/klettres/pt_BR/syllab/ba.ogg", "speech", "Portuguese"),
        ("klettres-data", "usr/share/klettres/en_GB/alpha/a.ogg", "speech", "English"),
        ("asterisk-core-sounds-it-g722", "usr/share/asterisk/sounds/it_IT_m_Carlo/calling.g722", "speech",
         "Italian"),
        ("bucklespring-data", "usr/share/buckle/wav/1e-0.wav", "keyboard", "typ"),
        ("minetest-data", ("usr/share/games/minetest/games/minetest_game/mods/default/sounds/"
                           "default_grass_footstep.2.ogg"), "impact", "walk"),
        ("redeclipse-data", "usr/share/games/redeclipse/data/sounds/ambience/waterfall_huge.ogg", "nature",
         "water"),
        ("oxygen-sounds", "usr/share/sounds/Oxygen-Im-Phone-Ring.ogg", "notification", "phone"),
        ("wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music/battle-epic.ogg", "music",
         "battle"),
    ],
)
def test_file_names_map_to_the_right_category_and_captions(package, path, category, word):
    m = cap.match(package, path)
    assert m is not None and m.category == category
    caps = m.captions()
    assert any(word.lower() in c.lower() for c in caps), caps
    assert all("{" not in c for c in caps)
    assert m.caption(np.random.default_rng(0)) in caps


@pytest.mark.parametrize(
    "package, path",
    [
        ("bucklespring-data", "usr/share/buckle/wav/10-0.wav"),  # keys 0x10-0x19 are excluded
        ("bucklespring-data", "usr/share/buckle/wav/19-1.wav"),
        ("qabcs-data", "usr/share/qabcs/abcs/all/noises/cheburashka.ogg"),  # the name does not say
        ("hedgewars-data", "usr/share/games/hedgewars/Data/Sounds/voices/Robot/Hello.ogg"),
        ("asterisk-core-sounds-fr-g722", "usr/share/asterisk/sounds/fr_CA_f_June/beep.g722"),
        ("no-such-package", "usr/share/sounds/dog.ogg"),
    ],
)
def test_files_whose_name_does_not_say_what_is_heard_are_dropped(package, path):
    assert cap.match(package, path) is None


def test_drum_roles_from_hydrogen_file_names():
    assert cap.drum_role("drumkits/GMRockKit/Kick-Hard.flac") == "kick"
    assert cap.drum_role("drumkits/GMRockKit/Snare-Soft.flac") == "snare"
    assert cap.drum_role("drumkits/GMRockKit/HatClosed-Med.flac") == "hat"
    assert cap.drum_role("drumkits/GMRockKit/HatOpen-Med.flac") is None
    assert cap.drum_role("drumkits/GMRockKit/SnareRimshot-Med.flac") is None
    assert cap.drum_role("drumkits/GMRockKit/Crash-Hard.flac") is None


# --- procedural sounds: captions from parameters, audio that matches them --------------------------


def _params(kind, seed=0, **over):
    p = gen.procedural_params(kind, np.random.default_rng(seed))
    p.update(over)
    return p


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[spec.argmax()])


@pytest.mark.parametrize("kind", gen.PROCEDURAL_KINDS)
def test_procedural_captions_come_from_parameters(kind):
    for seed in range(20):
        p = _params(kind, seed)
        caps = gen.procedural_captions(p)
        assert len(caps) == 3 and len(set(caps)) == 3
        text = " ".join(caps)
        key = {"beeps": "freq", "metronome": "bpm", "dtmf": "digits", "siren": "style", "alarm": "style",
               "noise": "colour", "chirp": "start", "chord": "root"}[kind]
        assert str(p[key]) in text, (p, caps)
        x = gen.render_procedural(p, 2.0, RATE, np.random.default_rng(seed))
        assert x.shape == (2 * RATE,) and np.isfinite(x).all() and np.abs(x).max() > 0.05


def test_beeps_sound_at_the_captioned_frequency_and_count():
    p = _params("beeps", freq=1000, count=3, beep_s=0.15, shape="sine")
    x = gen.render_procedural(p, 3.0, RATE, np.random.default_rng(1))
    assert abs(_peak_hz(x) - 1000) < 5
    on = (np.abs(x) > 0.5).astype(int)
    onsets = np.flatnonzero(np.diff((np.convolve(on, np.ones(80), "same") > 0).astype(int)) == 1)
    assert len(onsets) == 3
    assert gen.procedural_captions(p)[0] == "3 beeps at 1000 Hz"


def test_dtmf_digit_has_its_row_and_column_tones():
    x = gen.render_procedural({"kind": "dtmf", "digits": "5"}, 1.0, RATE, np.random.default_rng(0))
    seg = x[int(0.2 * RATE): int(0.32 * RATE)]
    spec = np.abs(np.fft.rfft(seg, 8 * RATE))
    freqs = np.fft.rfftfreq(8 * RATE, 1 / RATE)
    top2 = sorted(freqs[i] for i in np.argsort(spec)[-400:][::-1] if spec[i] > 0.5 * spec.max())
    assert abs(top2[0] - 770) < 15 and abs(top2[-1] - 1336) < 15


def test_metronome_clicks_at_the_captioned_tempo():
    p = {"kind": "metronome", "bpm": 120, "accent": False}
    x = gen.render_procedural(p, 5.0, RATE, np.random.default_rng(0))
    loud = np.abs(x) > 0.5
    onsets = np.flatnonzero(np.diff(loud.astype(int)) == 1)
    clicks = onsets[np.r_[True, np.diff(onsets) > RATE // 10]]
    assert len(clicks) == 10  # 5 s at 2 clicks per second
    assert np.allclose(np.diff(clicks) / RATE, 0.5, atol=0.002)
    assert "120 beats per minute" in gen.procedural_captions(p)[0]


def test_noise_colours_have_the_captioned_spectral_tilt():
    def low_high_ratio(colour):
        x = gen.render_procedural({"kind": "noise", "colour": colour}, 2.0, RATE, np.random.default_rng(3))
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / RATE)
        return spec[(f > 50) & (f < 200)].mean() / spec[(f > 3000) & (f < 6000)].mean()

    white, pink, brown = (low_high_ratio(c) for c in ("white", "pink", "brown"))
    assert 0.5 < white < 2.0 < pink < brown


def test_chirp_sweeps_in_the_captioned_direction():
    p = {"kind": "chirp", "start": 200, "end": 4000, "sweep_s": 2.0}
    x = gen.render_procedural(p, 2.0, RATE, np.random.default_rng(0))
    early, late = _peak_hz(x[RATE // 10: RATE // 5]), _peak_hz(x[int(1.7 * RATE): int(1.8 * RATE)])
    assert early < 600 and late > 2500
    assert "upward from 200 Hz to 4000 Hz" in gen.procedural_captions(p)[0]


# --- MIDI and espeak parameters --------------------------------------------------------------------


def test_instrument_midi_stays_in_the_instrument_range_and_length():
    for seed in range(10):
        p = gen.instrument_params(np.random.default_rng(seed), ["a.sf2"])
        program, lo, hi = gen.INSTRUMENTS[p["instrument"]]
        mid = gen.instrument_midi(p, 5.0)
        notes = [m.note for m in mid.tracks[0] if m.type == "note_on"]
        programs = [m.program for m in mid.tracks[0] if m.type == "program_change"]
        assert notes and min(notes) >= lo and max(notes) <= hi and programs == [program]
        assert 4.5 <= mid.length <= 5.0 + 4 * 60 / p["bpm"] + 0.01  # the last note may end early
        caps = gen.instrument_captions(p)
        assert len(caps) == 3 and all(p["instrument"] in c for c in caps)
        assert all(p["tempo"] in c for c in caps)


def test_drum_midi_plays_on_the_percussion_channel():
    p = gen.drum_params(np.random.default_rng(0), ["a.sf2"], {"a.sf2": ["standard"]})
    mid = gen.drum_midi(p, 4.0)
    chans = Counter(m.channel for m in mid.tracks[0] if m.type == "note_on")
    assert set(chans) == {9} and chans[9] > 10
    assert all(p["tempo"] in c for c in gen.drum_captions(p))


def test_espeak_captions_say_synthesized_or_text_to_speech():
    for seed in range(20):
        p = gen.espeak_params(np.random.default_rng(seed))
        caps = gen.espeak_captions(p)
        assert all(("synthesized" in c) or ("text-to-speech" in c) for c in caps)
        assert all(gen.ESPEAK_VOICES[p["voice"]] in c for c in caps)


# --- bookkeeping -----------------------------------------------------------------------------------


def test_split_holds_out_about_5_percent_by_source_file():
    names = [f"usr/share/sounds/file{i}.ogg" for i in range(4000)]
    splits = [bc.split_of("pkg", n) for n in names]
    assert splits == [bc.split_of("pkg", n) for n in names]  # deterministic
    assert 0.035 < splits.count("val") / len(splits) < 0.065


def test_normalise_sets_active_loudness_and_limits_peaks():
    rng = np.random.default_rng(0)
    x = np.zeros(RATE * 2)
    x[RATE // 2: RATE] = 0.01 * np.sin(2 * np.pi * 440 * np.arange(RATE // 2) / RATE)
    y = bc.normalise(x, RATE)
    assert abs(20 * np.log10(bc.active_rms(y, RATE)) - bc.TARGET_DBFS) < 0.5
    spiky = rng.standard_normal(RATE) * 0.01
    spiky[100] = 1.0
    assert np.abs(bc.normalise(spiky, RATE)).max() <= bc.PEAK + 1e-9


def test_dep5_licence_lookup_last_matching_stanza_wins(tmp_path):
    doc = tmp_path / "extract" / "pkg" / "usr" / "share" / "doc" / "pkg"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2020 Main Author\nLicense: GPL-2+\n\n"
        "Files: data/sfx/*\nCopyright: 2019 Sound Person\n 2020 Other Person\nLicense: CC-BY-SA-4.0\n text\n\n"
        "Files: debian/*\nCopyright: 2021 Packager\nLicense: GPL-3+\n")
    idx = src.LicenceIndex(tmp_path)
    lic = idx.lookup("pkg", "usr/share/games/pkg/data/sfx/boom.ogg")
    assert (lic.license, lic.copyright) == ("CC-BY-SA-4.0", "2019 Sound Person")
    assert idx.lookup("pkg", "usr/share/games/pkg/data/music/a.ogg").license == "GPL-2+"


def test_sources_md_summarises_licences_per_package():
    rows = [{"source_package": "a-data", "license": "GPL-2+", "copyright": "X", "category": "animal"},
            {"source_package": "a-data", "license": "CC0-1.0", "copyright": "Y", "category": "nature"},
            {"source_package": "b", "license": "GPL-2+", "copyright": "Z|W", "category": "music"}]
    md = bc.sources_md(rows)
    assert "| GPL-2+ | 2 |" in md and "| CC0-1.0 | 1 |" in md
    assert "| a-data | 2 | animal 1, nature 1 | GPL-2+ (1), CC0-1.0 (1) |" in md
    assert "Z/W" in md  # table-safe


@pytest.mark.parametrize("argv, word", [(["--rate", "100"], "--rate"), (["--seconds", "0.1"], "--seconds"),
                                        (["--jobs", "0"], "--jobs")])
def test_bad_flags_are_usage_errors(argv, word, capsys):
    with pytest.raises(SystemExit) as e:
        bc.parse_args(argv)
    assert e.value.code == 2 and word in capsys.readouterr().err
