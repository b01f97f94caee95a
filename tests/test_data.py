"""Manifests (every accepted form, bad rows, no usable rows) and deterministic segment batches."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from audioldm_cli.data import Row, SegmentDataset, local_positions, read_manifest
from audioldm_cli.errors import UsageError
from audioldm_cli.training.common import audio_reader

SR = 16000


def write_tone(path, seconds=0.25, freq=440.0, sr=SR):
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


@pytest.fixture
def clips(tmp_path):
    for i in range(4):
        write_tone(tmp_path / f"c{i}.wav", freq=200.0 * (i + 1))
    return tmp_path


def test_jsonl_relative_paths_and_bad_rows_reported_with_line_numbers(clips, caplog):
    lines = [
        json.dumps({"wav": "c0.wav", "caption": "low"}),
        json.dumps({"wav": "missing.wav", "caption": "gone"}),
        "{not json",
        "",
        json.dumps({"wav": str(clips / "c1.wav"), "caption": "absolute"}),
        json.dumps({"wav": "c2.wav", "caption": "  "}),
        json.dumps({"caption": "no path"}),
    ]
    manifest = clips / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="audioldm_cli.data"):
        rows = read_manifest(manifest, require_captions=True)
    assert [(r.path, r.caption, r.where) for r in rows] == [
        (clips / "c0.wav", "low", "m.jsonl:1"),
        (clips / "c1.wav", "absolute", "m.jsonl:5"),
    ]
    messages = "\n".join(caplog.messages)
    assert "m.jsonl:2: file not found" in messages
    assert "m.jsonl:3: not valid JSON" in messages
    assert "m.jsonl:6: empty caption" in messages
    assert "m.jsonl:7: no audio path" in messages
    # without require_captions the blank caption row is usable (vae / vocoder need no text)
    assert len(read_manifest(manifest)) == 3


def test_csv_forms(clips):
    (clips / "a.csv").write_text('wav,caption\nc0.wav,"a tone, low"\nnope.wav,x\n')
    rows = read_manifest(clips / "a.csv")
    assert [(r.path.name, r.caption, r.where) for r in rows] == [("c0.wav", "a tone, low", "a.csv:2")]
    (clips / "b.csv").write_text("file_name,caption\nc1.wav,mid\n")
    assert [r.path.name for r in read_manifest(clips / "b.csv")] == ["c1.wav"]
    # AudioCaps names no file: <audiocap_id>.wav next to the manifest
    write_tone(clips / "91139.wav")
    (clips / "audiocaps.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n91139,r1nicOVtvkQ,130,A woman talks\n5,zzz,0,absent\n"
    )
    rows = read_manifest(clips / "audiocaps.csv")
    assert [(r.path.name, r.caption) for r in rows] == [("91139.wav", "A woman talks")]
    (clips / "t.tsv").write_text("path\ttext\nc3.wav\ttabbed\n")
    assert [(r.path.name, r.caption) for r in read_manifest(clips / "t.tsv")] == [("c3.wav", "tabbed")]
    (clips / "c.csv").write_text(
        "wav,caption,captions\nc2.wav,a tone,a tone;a beep\n"
    )  # a cell holds no list
    assert [(r.caption, r.options) for r in read_manifest(clips / "c.csv")] == [("a tone", ("a tone",))]
    (clips / "bad.csv").write_text("name,caption\nc0.wav,x\n")
    with pytest.raises(UsageError, match="no path column"):
        read_manifest(clips / "bad.csv")


def test_audioldm_json_and_folder_forms(clips):
    doc = {"data": [{"wav": "c0.wav", "caption": "one"}, {"wav": "c9.wav", "caption": "missing"}]}
    (clips / "d.json").write_text(json.dumps(doc))
    rows = read_manifest(clips / "d.json")
    assert [(r.path.name, r.caption, r.where) for r in rows] == [("c0.wav", "one", "d.json entry 1")]
    (clips / "c2.txt").write_text("caption of two\n")
    rows = read_manifest(clips)
    assert [(r.path.name, r.caption) for r in rows] == [
        ("c0.wav", ""),
        ("c1.wav", ""),
        ("c2.wav", "caption of two"),
        ("c3.wav", ""),
    ]
    assert [r.path.name for r in read_manifest(clips, require_captions=True)] == ["c2.wav"]


def test_unusable_manifests_are_usage_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text(json.dumps({"wav": "none.wav", "caption": "x"}) + "\n")
    with pytest.raises(UsageError, match=r"no usable rows, 1 bad \(first: empty.jsonl:1: file not found"):
        read_manifest(tmp_path / "empty.jsonl")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(UsageError, match="unknown manifest type '.txt'"):
        read_manifest(tmp_path / "m.txt")
    with pytest.raises(UsageError, match="no such file"):
        read_manifest(tmp_path / "absent.jsonl")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_manifest(tmp_path / "broken.json")


def make_dataset(folder, n=6, seconds=0.25, segment=1600, **kw):
    for i in range(n):
        write_tone(folder / f"s{i}.wav", seconds=seconds, freq=100.0 * (i + 1))
    manifest = folder / "m.jsonl"
    manifest.write_text(
        "".join(json.dumps({"wav": f"s{i}.wav", "caption": f"tone {i}"}) + "\n" for i in range(n))
    )
    return SegmentDataset(read_manifest(manifest), audio_reader(SR), segment, **kw)


def test_batches_are_deterministic_and_process_split_invariant(tmp_path):
    data = make_dataset(tmp_path, seed=3)
    again = SegmentDataset(data.rows, audio_reader(SR), 1600, seed=3)
    whole = data.batch(5, range(4), 4)
    assert whole["audio"].shape == (4, 1600)
    torch.testing.assert_close(whole["audio"], again.batch(5, range(4), 4)["audio"], rtol=0, atol=0)
    halves = [data.batch(5, local_positions(4, r, 2), 4) for r in range(2)]
    torch.testing.assert_close(torch.cat([h["audio"] for h in halves]), whole["audio"], rtol=0, atol=0)
    assert halves[0]["caption"] + halves[1]["caption"] == whole["caption"]
    other_seed = SegmentDataset(data.rows, audio_reader(SR), 1600, seed=4).batch(5, range(4), 4)
    assert not torch.equal(other_seed["audio"], whole["audio"])


def test_each_pass_visits_every_row_once(tmp_path):
    data = make_dataset(tmp_path, n=5)
    first_pass = [data.row_index(step, p, 5) for step in range(1) for p in range(5)]
    assert sorted(first_pass) == list(range(5))
    steps = [data.row_index(s, p, 2) for s in range(5) for p in range(2)]  # 10 samples = 2 passes
    assert sorted(steps[:5]) == list(range(5)) and sorted(steps[5:]) == list(range(5))


def test_row_order_is_the_seeded_permutation_of_each_pass_in_any_call_order(tmp_path):
    data = make_dataset(tmp_path, n=5, seed=2)

    def fresh(step, position, batch):  # the order drawn anew for the sample's pass
        epoch, offset = divmod(step * batch + position, 5)
        return int(torch.randperm(5, generator=torch.Generator().manual_seed(2 * 7919 + epoch))[offset])

    calls = [(s, p) for s in (0, 1, 2, 7, 3, 0, 12, 1) for p in range(3)]  # passes revisited after eviction
    assert [data.row_index(s, p, 3) for s, p in calls] == [fresh(s, p, 3) for s, p in calls]
    assert len(data._orders) <= 2


def test_crops_come_from_the_file_and_short_files_are_zero_padded(tmp_path):
    data = make_dataset(tmp_path, n=2, seconds=0.25, segment=800)
    wav = data.load(0)[1]
    seg = data.sample(0, 0, 1)[0]
    index = data.row_index(0, 0, 1)
    full = data.load(index)[1].numpy()
    # the segment is a contiguous window of the file
    starts = [s for s in range(len(full) - 800 + 1) if np.allclose(full[s : s + 800], seg.numpy())]
    assert starts, "segment is not a window of its file"
    long_segment = SegmentDataset(data.rows, audio_reader(SR), 6000)
    padded = long_segment.sample(0, 0, 1)[0]
    assert padded.shape == (6000,) and wav.shape == (4000,)
    assert torch.count_nonzero(padded[4000:]) == 0 and torch.count_nonzero(padded[:4000]) > 3000


def test_start_crop_anchors_that_share_of_training_crops_at_the_clip_start(tmp_path):
    rows = [Row(tmp_path / f"r{i}", f"c{i}", f"m.jsonl:{i + 1}") for i in range(3)]

    def ramp(path):  # each sample's value is its frame index
        return torch.arange(100.0)

    def latent(path):  # [C, T, F], valued by the time index
        return torch.arange(40.0).view(1, 40, 1).expand(2, 40, 3)

    def starts(data, n=400):
        return [int(data.sample(s, p, 4)[0].reshape(-1)[0]) for s in range(n // 4) for p in range(4)]

    uniform = starts(SegmentDataset(rows, ramp, 30, seed=3))
    assert uniform == starts(SegmentDataset(rows, ramp, 30, seed=3, start_crop=0.0))  # same draws as before
    assert uniform.count(0) < 20 and len(set(uniform)) > 50
    half = starts(SegmentDataset(rows, ramp, 30, seed=3, start_crop=0.5))
    assert 0.4 < half.count(0) / len(half) < 0.65 and len(set(half)) > 40
    assert set(starts(SegmentDataset(rows, ramp, 30, seed=3, start_crop=1.0))) == {0}
    # latent rows crop along their time axis the same way; validation keeps the centred window
    data = SegmentDataset(rows, latent, 1, latent_segment=10, seed=3, start_crop=1.0)
    seg = data.sample(5, 1, 4)[0]
    assert seg.shape == (2, 10, 3) and torch.equal(seg[0, :, 0], torch.arange(10.0))
    assert int(data.sample(0, 0, 4, train=False)[0][0, 0, 0]) == 15
    for bad in (-0.1, 1.5):
        with pytest.raises(UsageError, match="start_crop"):
            SegmentDataset(rows, ramp, 30, start_crop=bad)


def test_train_config_start_crop_reaches_the_training_set_only(tmp_path):
    from audioldm_cli.training.common import make_datasets
    from audioldm_cli.training.config import TrainConfig

    manifest = make_dataset(tmp_path, n=2).rows[0].path.parent / "m.jsonl"
    train_set, val_set = make_datasets(manifest, TrainConfig(start_crop=0.7), SR, 800)
    assert train_set.start_crop == 0.7 and val_set.start_crop == 0.0
    assert TrainConfig().start_crop == 0.0
    with pytest.raises(UsageError, match=r"train.start_crop=2: must be in \[0, 1\]"):
        TrainConfig(start_crop=2)


def test_resampled_to_the_training_rate(tmp_path):
    write_tone(tmp_path / "low.wav", seconds=0.5, sr=8000)
    (tmp_path / "m.jsonl").write_text(json.dumps({"wav": "low.wav", "caption": "x"}) + "\n")
    data = SegmentDataset(read_manifest(tmp_path / "m.jsonl"), audio_reader(SR), 100)
    assert data.load(0)[1].shape == (8000,)  # 0.5 s at 16 kHz


def test_caption_dropout_rate_and_validation_never_drops(tmp_path):
    data = make_dataset(tmp_path, caption_dropout=0.3, seed=1)
    captions = [data.sample(s, p, 4)[1] for s in range(50) for p in range(4)]
    dropped = sum(c == "" for c in captions) / len(captions)
    assert 0.2 < dropped < 0.4
    assert all(data.sample(s, p, 4, train=False)[1] for s in range(5) for p in range(4))
    never = SegmentDataset(data.rows, audio_reader(SR), 1600, caption_dropout=0.0)
    assert all(never.sample(s, 0, 1)[1] for s in range(50))


def test_every_caption_of_a_row_is_drawn_in_training_and_validation_keeps_the_first(tmp_path, caplog):
    for i in range(2):
        write_tone(tmp_path / f"s{i}.wav", seconds=0.5, freq=100.0 * (i + 1))
    rows = [
        {
            "wav": "s0.wav",
            "caption": "a low tone",
            "captions": ["a low tone", "a deep hum", " ", "a bass note"],
        },
        {"wav": "s1.wav", "captions": ["a high tone", "a whistle"]},  # "caption" left out: the first
        {"wav": "s1.wav", "caption": "x", "captions": "not a list"},
        {"wav": "s1.wav", "caption": "x", "captions": ["ok", 3]},
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING):
        parsed = read_manifest(tmp_path / "m.jsonl")
    assert [r.caption for r in parsed] == ["a low tone", "a high tone"]
    assert parsed[0].options == ("a low tone", "a deep hum", "a bass note")
    assert "m.jsonl:3: 'captions' must be a list of strings" in caplog.text
    assert "m.jsonl:4: 'captions' must be a list of strings" in caplog.text
    data = SegmentDataset(parsed, audio_reader(SR), 1600, seed=2)
    drawn = {0: [], 1: []}
    for step in range(60):
        for position in range(2):
            index = data.row_index(step, position, 2)
            drawn[index].append(data.sample(step, position, 2)[1])
    assert {c: drawn[0].count(c) > 8 for c in parsed[0].options} == dict.fromkeys(parsed[0].options, True)
    assert set(drawn[1]) == {"a high tone", "a whistle"}
    assert [data.sample(s, 0, 2)[1] for s in range(5)] == [data.sample(s, 0, 2)[1] for s in range(5)]
    assert {data.sample(s, p, 2, train=False)[1] for s in range(5) for p in range(2)} == {
        "a low tone",
        "a high tone",
    }


def test_a_row_with_one_caption_draws_its_crop_and_dropout_as_without_the_captions_list(tmp_path):
    write_tone(tmp_path / "s.wav", seconds=0.5)
    plain = Row(tmp_path / "s.wav", "a tone", "m:1")
    listed = Row(tmp_path / "s.wav", "a tone", "m:1", ("a tone",))
    a, b = (SegmentDataset([r], audio_reader(SR), 1600, seed=5, caption_dropout=0.5) for r in (plain, listed))
    for step in range(20):
        (xa, ca), (xb, cb) = a.sample(step, 0, 1), b.sample(step, 0, 1)
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        assert ca == cb


def test_unreadable_audio_is_skipped_once_with_its_line(tmp_path, caplog):
    write_tone(tmp_path / "ok.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00not really a wav file at all")
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"wav": "bad.wav", "caption": "b"})
        + "\n"
        + json.dumps({"wav": "ok.wav", "caption": "o"})
        + "\n"
    )
    data = SegmentDataset(read_manifest(tmp_path / "m.jsonl"), audio_reader(SR), 800)
    with caplog.at_level(logging.WARNING, logger="audioldm_cli.data"):
        index, wav = data.load(0)
        assert index == 1 and wav.shape == (4000,)
        data.load(0)
    assert sum("m.jsonl:1: cannot read" in m for m in caplog.messages) == 1
    assert data.batch(0, range(2), 2)["caption"] == ["o", "o"]


def test_batch_size_must_split_over_processes():
    assert local_positions(6, 1, 3) == range(2, 4)
    with pytest.raises(UsageError, match="multiple of the 4 processes"):
        local_positions(6, 0, 4)


def test_csv_quoting_and_field_counts(clips, caplog):
    (clips / "q.csv").write_bytes(
        b'wav,caption\nc0.wav,a dog, barking loudly\nc1.wav,"two\r\nlines, quoted"\nc2.wav\n\nc3.wav,fine,\n'
    )
    with caplog.at_level(logging.WARNING, logger="audioldm_cli.data"):
        rows = read_manifest(clips / "q.csv")
    assert [(r.path.name, r.caption, r.where) for r in rows] == [
        ("c1.wav", "two\nlines, quoted", "q.csv:3"),  # the row's first line; the caption kept whole
        ("c2.wav", "", "q.csv:5"),  # no caption: fine for the stages that need none
        ("c3.wav", "fine", "q.csv:7"),  # after a blank line; an extra empty field is no field
    ]
    assert (
        caplog.messages[0]
        == "q.csv:2: 3 fields, the header has 2 (quote a caption that holds a comma); row skipped"
    )
    (clips / "huge.csv").write_text('wav,caption\nc0.wav,"unclosed\n' + "x" * 200_000 + "\n")
    with pytest.raises(UsageError, match=r"line 2: .*field larger than field limit .*unclosed quote"):
        read_manifest(clips / "huge.csv")


def test_tsv_takes_csv_writers_quoting_and_a_leading_quote_mark(clips, caplog):
    import csv as csv_module

    with open(clips / "w.tsv", "w", newline="") as f:  # as csv.writer and pandas write a TSV
        writer = csv_module.writer(f, delimiter="\t")
        writer.writerows([["wav", "caption"], ["c0.wav", 'a man says "hi"'], ["c1.wav", "a dog, barking"]])
    assert [r.caption for r in read_manifest(clips / "w.tsv")] == ['a man says "hi"', "a dog, barking"]
    with open(clips / "m.tsv", "w", newline="") as f:  # a quoted caption with a line break in it
        csv_module.writer(f, delimiter="\t").writerows([["wav", "caption"], ["c0.wav", "a dog\nthen a cat"]])
    assert [r.caption for r in read_manifest(clips / "m.tsv")] == ["a dog\nthen a cat"]
    for text, captions in (
        (
            'wav\tcaption\nc0.wav\t"Hello there says a man\nc1.wav\tnext\n',
            ['"Hello there says a man', "next"],
        ),
        ('wav\tcaption\nc0.wav\t"Jingle Bells" on a piano\n', ['"Jingle Bells" on a piano']),
    ):
        (clips / "t.tsv").write_text(text)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="audioldm_cli.data"):
            rows = read_manifest(clips / "t.tsv")
        assert [r.caption for r in rows] == captions  # the quotes kept, not the rest of the file swallowed
        assert "t.tsv: not quoted as csv writers quote" in caplog.text


def test_jsonl_captions_may_hold_unicode_line_separators(clips):
    caption = "a tone\u2028with\u0085separators"
    (clips / "u.jsonl").write_text(
        json.dumps({"wav": "c0.wav", "caption": caption}, ensure_ascii=False)
        + "\n"
        + json.dumps({"wav": "c1.wav", "caption": "second"})
        + "\n"
    )
    rows = read_manifest(clips / "u.jsonl")
    assert [(r.caption, r.where) for r in rows] == [(caption, "u.jsonl:1"), ("second", "u.jsonl:2")]


def test_a_caption_that_is_not_text_is_a_bad_row(clips, caplog):
    lines = [
        {"wav": "c0.wav", "caption": ["a dog barks", "a canine barks"]},
        {"wav": "c1.wav", "caption": True},
        {"wav": "c2.wav", "caption": 7},  # a number is text enough
        {"wav": {"x": 1}, "caption": "y"},
    ]
    (clips / "n.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with caplog.at_level(logging.WARNING, logger="audioldm_cli.data"):
        rows = read_manifest(clips / "n.jsonl")
    assert [(r.path.name, r.caption) for r in rows] == [("c2.wav", "7")]
    messages = "\n".join(caplog.messages)
    assert "n.jsonl:1: 'caption' must be text" in messages and "n.jsonl:2: 'caption' must be text" in messages
    assert "n.jsonl:4: 'wav' must be text" in messages


def test_folder_manifests_leave_out_runs_hidden_files_and_take_npy_latents(clips, caplog):
    run = clips / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "val").mkdir()
    write_tone(run / "val" / "recon_0.wav")
    (clips / ".hidden").mkdir()
    write_tone(clips / ".hidden" / "h.wav")
    write_tone(clips / "._c0.wav")
    np.save(clips / "z.latent.npy", np.zeros((4, 3, 2), np.float32))
    with caplog.at_level(logging.WARNING, logger="audioldm_cli.data"):
        rows = read_manifest(clips)
    assert [r.path.name for r in rows] == ["c0.wav", "c1.wav", "c2.wav", "c3.wav", "z.latent.npy"]
    assert rows[-1].is_latent and not rows[0].is_latent
    assert f"{run}: a training run's folder; its files are not read as data" in caplog.messages[0]


def test_the_cache_is_bounded_by_bytes_and_latents_pad_with_silence(tmp_path):
    data = make_dataset(tmp_path, n=4, seconds=0.25, segment=800)
    small = SegmentDataset(data.rows, audio_reader(SR), 800, cache_bytes=2 * 4000 * 4)
    for i in range(4):
        small.load(i)
    assert list(small._cache) == [2, 3]  # two 4000-sample clips fit
    rows = [Row(tmp_path / "x.latent.safetensors", "x", "m:1")]
    pad = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # [C, F]
    latents = SegmentDataset(rows, lambda p: torch.zeros(2, 3, 2), 800, latent_segment=5, latent_pad=pad)
    seg = latents.sample(0, 0, 1)[0]
    assert seg.shape == (2, 5, 2)
    assert torch.equal(seg[:, :3], torch.zeros(2, 3, 2)) and torch.equal(
        seg[:, 3:], pad[:, None].expand(2, 2, 2)
    )


def test_bad_latent_files_are_skipped_and_kinds_are_checked_before_training(tmp_path, caplog):
    from audioldm_cli.errors import ModelError
    from audioldm_cli.training.common import make_datasets
    from audioldm_cli.training.config import TrainConfig

    def reader(path):
        raise ModelError(f"{path} is not an audioldm-cli latent file: metadata lacks ['sample_rate']")

    rows = [
        Row(tmp_path / "a.latent.safetensors", "a", "m:1"),
        Row(tmp_path / "b.latent.safetensors", "b", "m:2"),
    ]
    data = SegmentDataset(rows, reader, 800, latent_segment=4)
    with pytest.raises(Exception, match="none of the 2 manifest rows could be read"):
        data.load(0)
    assert len(data.skipped_rows()) == 2
    write_tone(tmp_path / "a.wav")
    for name in ("x.latent.safetensors", "y.latent.npy"):
        (tmp_path / name).write_bytes(b"0")
    (tmp_path / "mixed.jsonl").write_text(
        "".join(
            json.dumps({"wav": w, "caption": "c"}) + "\n"
            for w in ("a.wav", "x.latent.safetensors", "y.latent.npy")
        )
    )
    cfg = TrainConfig()
    with pytest.raises(UsageError, match="mixes audio files and latent files"):
        make_datasets(tmp_path / "mixed.jsonl", cfg, SR, 800, latent_segment=4)
    with caplog.at_level(logging.WARNING, logger="audioldm_cli"):
        train, _ = make_datasets(tmp_path / "mixed.jsonl", cfg, SR, 800)  # a stage on audio
    assert [r.path.name for r in train.rows] == ["a.wav"]
    assert train.skipped_rows() == [
        "mixed.jsonl:2: a latent file; this stage trains on audio (latents: `train ldm`)",
        "mixed.jsonl:3: a latent file; this stage trains on audio (latents: `train ldm`)",
    ]


def test_the_validation_set_shares_the_training_set_s_unreadable_rows(tmp_path, caplog):
    from audioldm_cli.training.common import make_datasets
    from audioldm_cli.training.config import TrainConfig

    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00not really a wav file at all")
    write_tone(tmp_path / "ok.wav")
    (tmp_path / "m.jsonl").write_text(
        "".join(json.dumps({"wav": w, "caption": "c"}) + "\n" for w in ("bad.wav", "ok.wav"))
    )
    train, val = make_datasets(tmp_path / "m.jsonl", TrainConfig(val_items=2), SR, 800)
    with caplog.at_level(logging.WARNING, logger="audioldm_cli.data"):
        val.batch(0, range(2), 2, train=False)
        train.batch(0, range(2), 2)
    assert sum("cannot read" in m for m in caplog.messages) == 1


def test_a_tsv_quote_that_closes_rows_below_is_read_without_quoting(clips, caplog):
    (clips / "h.tsv").write_text(
        'wav\tcaption\nc0.wav\t"Hello there says a man\nc1.wav\tan old 12"\nc2.wav\tthird\n'
    )
    with caplog.at_level(logging.WARNING, logger="audioldm_cli.data"):
        rows = read_manifest(clips / "h.tsv")
    assert [(r.caption, r.where) for r in rows] == [
        ('"Hello there says a man', "h.tsv:2"),
        ('an old 12"', "h.tsv:3"),
        ("third", "h.tsv:4"),
    ]
    assert "h.tsv: a quote opened on line 2 closes on line 3; read without quoting" in caplog.text
