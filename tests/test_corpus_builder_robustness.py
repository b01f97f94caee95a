"""The corpus builder (examples/corpus/build_corpus.py) on bad input, damaged clips and interruptions.

Each build is tiny: no Debian packages, only a few procedural (numpy) clips of 1 s at 8 kHz.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "corpus"))

import build_corpus as bc
import sources as src

RATE, SECONDS, N_CLIPS = 8000, 1.0, 3
NEEDS_DPKG = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("dpkg", "dpkg-deb", "tar")), reason="needs dpkg and tar"
)


@pytest.fixture
def tiny(monkeypatch, caplog):
    """A build of N_CLIPS procedural clips: no packages, no external tools."""
    monkeypatch.setattr(src, "PACKAGES", ())
    monkeypatch.setattr(src, "TOOLS", ())
    monkeypatch.setattr(bc, "QUOTAS", {c: (N_CLIPS if c == "procedural" else 0) for c in bc.QUOTAS})
    caplog.set_level(logging.INFO, logger="build_corpus")


def argv(out: Path, *extra: str) -> list[str]:
    return ["--out", str(out), "--skip-download", "--rate", str(RATE), "--seconds", str(SECONDS), *extra]


def build(out: Path, *extra: str) -> int:
    out.mkdir(parents=True, exist_ok=True)  # --skip-download wants an earlier build's folder
    return bc.main(argv(out, *extra))


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def wavs(out: Path) -> list[Path]:
    return sorted((out / "clips").glob("*/*.wav"))


def test_a_rerun_reuses_valid_clips_without_rewriting_them(tmp_path, tiny):
    out = tmp_path / "out"
    assert build(out) == 0
    before = {p: p.stat().st_mtime_ns for p in wavs(out)}
    rows = manifest(out)
    assert len(before) == len(rows) == N_CLIPS
    assert build(out) == 0
    assert {p: p.stat().st_mtime_ns for p in wavs(out)} == before
    assert manifest(out) == rows


@pytest.mark.parametrize("option, value", [("--rate", "16000"), ("--seconds", "2")])
def test_changing_rate_or_seconds_renders_the_clips_again(tmp_path, tiny, caplog, option, value):
    out = tmp_path / "out"
    assert build(out) == 0
    assert build(out, option, value) == 0
    rate = int(value) if option == "--rate" else RATE
    seconds = float(value) if option == "--seconds" else SECONDS
    for row in manifest(out):
        info = sf.info(str(out / row["wav"]))
        assert (info.samplerate, info.frames) == (rate, round(rate * seconds))
    assert f"re-render: {N_CLIPS} existing clips are not valid" in caplog.text


def _break_sidecar_json(wav: Path, other: Path) -> None:
    wav.with_suffix(".json").write_text("{broken")


def _empty_sidecar(wav: Path, other: Path) -> None:
    wav.with_suffix(".json").write_text("{}")


def _sidecar_of_another_clip(wav: Path, other: Path) -> None:
    shutil.copy(other.with_suffix(".json"), wav.with_suffix(".json"))


def _truncated_wav(wav: Path, other: Path) -> None:
    wav.write_bytes(wav.read_bytes()[:3000])


def _empty_wav(wav: Path, other: Path) -> None:
    wav.write_bytes(b"")


def _stereo_wav(wav: Path, other: Path) -> None:
    sf.write(str(wav), np.zeros((round(RATE * SECONDS), 2)), RATE, subtype="PCM_16")


def _float_wav(wav: Path, other: Path) -> None:
    sf.write(str(wav), np.zeros(round(RATE * SECONDS)), RATE, subtype="FLOAT")


@pytest.mark.parametrize(
    "damage",
    [
        _break_sidecar_json,
        _empty_sidecar,
        _sidecar_of_another_clip,
        _truncated_wav,
        _empty_wav,
        _stereo_wav,
        _float_wav,
    ],
)
def test_a_damaged_clip_is_rendered_again_not_reused_or_fatal(tmp_path, tiny, caplog, damage):
    out = tmp_path / "out"
    assert build(out) == 0
    victim, other = wavs(out)[:2]
    damage(victim, other)
    caplog.clear()
    assert build(out) == 0
    rows = manifest(out)
    on_disk = [p.relative_to(out).as_posix() for p in wavs(out)]
    assert sorted(r["wav"] for r in rows) == on_disk  # one row per clip: no duplicate
    for row in rows:
        info = sf.info(str(out / row["wav"]))
        assert (info.channels, info.samplerate, info.frames, info.subtype) == (1, RATE, RATE, "PCM_16")
        assert json.loads((out / row["wav"]).with_suffix(".json").read_text())["wav"] == row["wav"]
    assert f"re-render {victim.relative_to(out).as_posix()}:" in caplog.text
    assert "reuse: 2 finished clips; 1 to render" in caplog.text


def test_check_clip_reads_only_and_accepts_a_valid_clip(tmp_path, tiny):
    out = tmp_path / "out"
    assert build(out) == 0
    rows = manifest(out)
    assert all(r["caption"] in r["captions"] and len(r["captions"]) >= 3 for r in rows)  # every paraphrase
    row = rows[0]
    job = {**row, "caption": "new caption", "captions": ["new caption", "another"]}
    before = sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*"))
    got, why = bc.check_clip(job, out, RATE, SECONDS)
    assert why is None and got["wav"] == row["wav"] and got["caption"] == "new caption"
    assert got["captions"] == ["new caption", "another"]
    assert bc.check_clip({**job, "wav": "clips/procedural/none.wav"}, out, RATE, SECONDS) == (None, None)
    assert bc.check_clip(job, out, RATE, 2.0)[1] == f"{RATE} frames, not {2 * RATE} (2 s at {RATE} Hz)"
    assert sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*")) == before


def _fail_one(monkeypatch, exc):
    real = bc.RENDER["procedural"]
    calls = []

    def render(job, rate, n, rng):
        calls.append(job["id"])
        if len(calls) == 2:
            raise exc
        return real(job, rate, n, rng)

    monkeypatch.setitem(bc.RENDER, "procedural", render)


def test_a_failed_clip_exits_1_after_writing_the_manifest_of_the_others(tmp_path, tiny, caplog, monkeypatch):
    _fail_one(monkeypatch, ValueError("bad source"))
    out = tmp_path / "out"
    assert build(out) == 1
    assert len(manifest(out)) == N_CLIPS - 1
    assert "ValueError: bad source" in caplog.text
    assert caplog.records[-1].getMessage().startswith(f"error: 1 of {N_CLIPS} clips failed")


def test_a_silent_clip_is_skipped_not_a_failure(tmp_path, tiny, caplog, monkeypatch):
    real = bc.RENDER["procedural"]
    monkeypatch.setitem(bc.RENDER, "procedural", lambda job, rate, n, rng: real(job, rate, n, rng) * 1e-5)
    out = tmp_path / "out"
    assert build(out) == 0
    assert manifest(out) == []
    assert f"0 failed, {N_CLIPS} silent (skipped)" in caplog.text


def test_ctrl_c_writes_the_manifest_of_finished_clips_and_exits_130(tmp_path, tiny, caplog, monkeypatch):
    out = tmp_path / "out"
    (out / "clips" / "procedural").mkdir(parents=True)
    leftover = out / "clips" / "procedural" / ".procedural-0.ab12cd.tmp.wav"  # a killed run's temp file
    leftover.write_bytes(b"RIFF")
    _fail_one(monkeypatch, KeyboardInterrupt())
    handler = signal.getsignal(signal.SIGINT)
    assert build(out) == 130
    assert signal.getsignal(signal.SIGINT) is handler
    assert len(manifest(out)) == 1  # a first build, interrupted long before the checkpoint
    assert not list(out.rglob(".*tmp*"))
    assert caplog.records[-1].getMessage().startswith("interrupted: 1 clips done")
    monkeypatch.undo()
    monkeypatch.setattr(src, "PACKAGES", ())
    monkeypatch.setattr(src, "TOOLS", ())
    monkeypatch.setattr(bc, "QUOTAS", {c: (N_CLIPS if c == "procedural" else 0) for c in bc.QUOTAS})
    caplog.clear()
    leftover.write_bytes(b"RIFF")
    assert build(out) == 0
    assert "reuse: 1 finished clips; 2 to render" in caplog.text
    assert "not in this plan" not in caplog.text
    assert len(manifest(out)) == N_CLIPS and not leftover.exists()


def test_bad_out_folders_are_one_line_errors(tmp_path, tiny, caplog, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert bc.main(argv(afile)) == 2  # a usage error, as in the audioldm commands
    assert bc.main(["--out", str(afile / "sub")]) == 2
    assert "is not a writable folder: Not a directory" in caplog.text
    missing = tmp_path / "missing" / "out"
    assert bc.main(argv(missing)) == 2
    assert not (tmp_path / "missing").exists()

    def read_only(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(bc.tempfile, "TemporaryFile", read_only)
    assert bc.main(["--out", str(tmp_path / "ro")]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        f"error: --out {afile} is not a folder",
        f"error: --out {afile / 'sub'} is not a writable folder: Not a directory",
        f"error: --out {missing} does not exist: --skip-download needs the downloads of an earlier build",
        f"error: --out {tmp_path / 'ro'} is not a writable folder: Read-only file system",
    ]


def test_skip_download_without_the_packages_is_a_usage_error(tmp_path, tiny, caplog, monkeypatch):
    monkeypatch.setattr(src, "PACKAGES", ("tinysnd",))
    out = tmp_path / "out"
    out.mkdir()
    assert bc.main(argv(out)) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        f"error: package tinysnd is neither downloaded nor extracted in {out.resolve()} (run without --skip-download)"
    ]
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written


def _deb(tmp_path: Path) -> Path:
    root = tmp_path / "pkgsrc"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: tinysnd\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n"
    )
    (root / "usr" / "share" / "sounds").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(str(root / "usr" / "share" / "sounds" / "noise.wav"), rng.standard_normal(200_000) * 0.1, RATE)
    debs = tmp_path / "out" / "debs"
    debs.mkdir(parents=True)
    deb = debs / "tinysnd_1.0_all.deb"
    cmd = ["dpkg-deb", "-Zgzip", "-z0", "--build", str(root), str(deb)]
    subprocess.run(cmd, check=True, capture_output=True)
    return deb


@NEEDS_DPKG
@pytest.mark.parametrize("cut", [None, 20_000, 0.5])
def test_a_corrupt_deb_is_named_in_a_one_line_error(tmp_path, tiny, caplog, monkeypatch, cut):
    deb = _deb(tmp_path)
    if cut is None:
        deb.write_text("not a deb\n")
    else:
        data = deb.read_bytes()
        deb.write_bytes(data[: int(len(data) * cut) if isinstance(cut, float) else cut])
    monkeypatch.setattr(src, "PACKAGES", ("tinysnd",))
    assert build(tmp_path / "out") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and all("\n" not in e for e in errors)
    assert errors[0].startswith(f"error: {deb} is corrupt or truncated (")
    assert errors[0].endswith("delete it so that it is downloaded again")
    assert "re-run without --skip-download" in errors[1]
    assert not (tmp_path / "out" / "extract" / "tinysnd" / ".done").exists()


@NEEDS_DPKG
def test_an_intact_deb_still_extracts(tmp_path):
    deb = _deb(tmp_path)
    dest = src.extract(tmp_path / "out", "tinysnd")
    assert (dest / ".done").read_text() == deb.name + "\n"
    assert [rel for rel, _ in src.sound_files(tmp_path / "out", "tinysnd")] == ["usr/share/sounds/noise.wav"]


def test_help_shows_examples_resume_and_download_size(capsys):
    with pytest.raises(SystemExit):
        bc.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "build_corpus.py --small" in text and "build_corpus.py --jobs 2" in text
    assert "about 3 GB" in text and "resumes" in text and "--rate or --seconds" in text
