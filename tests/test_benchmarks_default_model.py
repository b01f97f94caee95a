"""benchmarks/default_model.py: its prompt sets (the report's held-out phrasings and the tuning set)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dm():
    saved = list(sys.path)
    yield _load("benchmarks_default_model", REPO / "benchmarks" / "default_model.py")
    sys.modules.pop("benchmarks_default_model", None)
    sys.path[:] = saved  # the module drops benchmarks/ from sys.path


def test_tuning_and_held_out_sets_are_disjoint_and_cover_the_same_categories(dm):
    held, tuning = dm.HELD_OUT_PROMPTS, dm.TUNING_PROMPTS
    assert set(held) == set(tuning) and len(held) >= 10
    assert all(len(ps) == 3 for ps in held.values()) and all(len(ps) == 3 for ps in tuning.values())
    lower = lambda table: [p.lower() for ps in table.values() for p in ps]
    assert len(set(lower(held))) == 36 and len(set(lower(tuning))) == 36
    assert not set(lower(held)) & set(lower(tuning))


def test_no_prompt_is_a_caption_of_the_corpus_rules(dm):
    """The fixed captions of examples/corpus/captions.py (the run-time check also covers generated ones)."""
    captions = _load("corpus_captions", REPO / "examples" / "corpus" / "captions.py")
    try:
        fixed = {c.lower() for rules in captions.CAPTION_MAPS.values() for rule in rules for c in rule.captions}
    finally:
        sys.modules.pop("corpus_captions", None)
    assert len(fixed) > 100
    for table in (dm.HELD_OUT_PROMPTS, dm.TUNING_PROMPTS):
        assert not {p.lower() for ps in table.values() for p in ps} & fixed


def test_new_phrasings_refuses_corpus_captions(dm):
    got = dm.new_phrasings("tuning", {"a dog barks"})
    assert len(got) == 36 and got == sorted(got, key=lambda cp: cp[0])
    assert got[0] == ("animal", "a horse neighing loudly")
    with pytest.raises(SystemExit, match="tuning prompts occur in the corpus: \\['a funky drum groove'\\]"):
        dm.new_phrasings("tuning", {"a funky drum groove"})
    with pytest.raises(SystemExit, match="held-out prompts occur in the corpus"):
        dm.new_phrasings("held-out", {"rain falling outside"})


def test_new_phrasings_refuses_held_out_prompts_in_the_tuning_set(dm, monkeypatch):
    leaked = {**dm.TUNING_PROMPTS, "nature": ["rain falling outside", *dm.TUNING_PROMPTS["nature"][1:]]}
    monkeypatch.setitem(dm.PROMPT_SETS, "tuning", leaked)
    with pytest.raises(SystemExit, match="tuning prompts are held-out prompts: \\['rain falling outside'\\]"):
        dm.new_phrasings("tuning", set())


def test_a_negative_reconstruction_count_is_refused_before_any_work(dm, capsys):
    """0 skips the reconstruction section (tuning runs); below 0 is a usage error, exit status 2."""
    with pytest.raises(SystemExit) as exc:
        dm.main(["--recon-per-category", "-1", "--corpus", "/nonexistent"])
    assert exc.value.code == 2
    assert "--recon-per-category must be >= 0" in capsys.readouterr().err
