"""The audio-text ranker: the module, its contrastive loss, `train ranker`, and `generate --num-candidates`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_training import metrics
from typer.testing import CliRunner

from audioldm_cli.cli import app
from audioldm_cli.errors import ModelError, UsageError
from audioldm_cli.pipeline import AudioLDM
from audioldm_cli.ranker import AudioTextRanker, RankerConfig, contrastive_loss
from audioldm_cli.training.run import train

runner = CliRunner()
SR = 16000
TINY = {"channels": 16, "blocks": 1, "embed_dim": 8}


def test_embeddings_are_unit_vectors_and_ignore_the_level():
    torch.manual_seed(0)
    ranker = AudioTextRanker(RankerConfig(n_mels=64, text_dim=12, **TINY)).eval()
    mel = torch.randn(3, 40, 64)
    a = ranker.embed_audio(mel)
    t = ranker.embed_text(torch.randn(5, 12))
    assert a.shape == (3, 8) and t.shape == (5, 8)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(5))
    # a louder copy (log-mel + c) embeds the same: generated clips are not loudness-normalised
    torch.testing.assert_close(ranker.embed_audio(mel + 3.0), a, atol=1e-5, rtol=0)
    assert ranker(mel, torch.randn(5, 12)).shape == (3, 5)
    with pytest.raises(ValueError, match="log-mel"):
        ranker.embed_audio(torch.randn(2, 40, 80))
    # without a text projection the text side is the (normalised) pooled vector itself
    plain = AudioTextRanker(RankerConfig(n_mels=64, text_dim=8, text_projection=False, **TINY))
    pooled = torch.randn(2, 8)
    torch.testing.assert_close(plain.embed_text(pooled), torch.nn.functional.normalize(pooled, dim=-1))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"channels": 12}, "multiple of 8"),
        ({"blocks": 0}, "positive integer"),
        ({"width": 3}, "unknown"),
        ({"text_projection": False, "embed_dim": 16}, "must equal text_dim"),
        ({"text_projection": "no"}, "true or false"),
    ],
)
def test_config_is_validated(bad, match):
    with pytest.raises(ValueError, match=match):
        RankerConfig.from_dict({"n_mels": 64, **bad})


def test_contrastive_loss_is_clip_cross_entropy_and_spreads_repeated_captions():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1)
    scale = torch.tensor(math.log(10.0))
    logits = 10.0 * a @ t.T
    labels = torch.arange(4)
    expected = 0.5 * (
        torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)
    )
    torch.testing.assert_close(contrastive_loss(a @ t.T, scale, torch.eye(4, dtype=torch.bool)), expected)
    # clips 0 and 1 share a caption: each one's target is half on either text, in both directions
    same = torch.eye(4, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True
    target = same.float() / same.float().sum(1, keepdim=True)
    by_hand = 0.5 * (
        -(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.log_softmax(0)).sum(0).mean()
    )
    torch.testing.assert_close(contrastive_loss(a @ t.T, scale, same), by_hand)
    assert not torch.allclose(by_hand, expected)


def _two_kinds_manifest(folder: Path, n: int = 8, seconds: float = 0.5) -> Path:
    """Tones captioned as tones and noise captioned as noise, two phrasings each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(SR * seconds)) / SR
    captions = {"tone": ["a steady sine tone", "a pure beep"], "noise": ["loud white noise", "static hiss"]}
    lines = []
    for i in range(n):
        kind = "tone" if i % 2 == 0 else "noise"
        wave = 0.3 * np.sin(2 * np.pi * 400 * (1 + i) * t) if kind == "tone" else 0.2 * rng.standard_normal(t.size)
        sf.write(folder / f"c{i}.wav", wave.astype(np.float32), SR)
        lines.append(json.dumps({"wav": f"c{i}.wav", "caption": captions[kind][(i // 2) % 2]}))
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "train.jsonl"


def _config(folder: Path, **train_section) -> Path:
    doc = {
        "model": TINY,
        "train": {
            "max_steps": 30,
            "batch_size": 8,
            "lr": 3e-3,
            "segment_seconds": 0.4,
            "log_every": 5,
            "save_every": 0,
            "cpu": True,
            "ema_decay": 0.0,
            **train_section,
        },
    }
    path = folder / "ranker.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory) -> Path:
    """`train ranker` on tones vs noise, --init-from the tiny model: its run folder."""
    folder = tmp_path_factory.mktemp("ranker")
    run = folder / "run"
    # lr 1e-3: at 3e-3 the 30 steps ranked a new phrasing right on an Intel CPU, wrong on an AMD one
    config = _config(folder, lr=1e-3)
    train("ranker", _two_kinds_manifest(folder / "data"), run, config=config, init_from=str(tiny_model))
    return run


def test_train_ranker_learns_and_exports_the_model_plus_ranker(trained, tiny_model):
    records = [m for m in metrics(trained) if "loss/contrastive" in m]
    assert records[-1]["loss/contrastive"] < records[0]["loss/contrastive"]
    pipe = AudioLDM.from_pretrained(trained / "export")
    base = AudioLDM.from_pretrained(tiny_model)
    assert pipe.ranker is not None and base.ranker is None
    assert pipe.config.components == {**base.config.components, "ranker": "ranker"}
    assert pipe.ranker.config["text_dim"] == pipe.text_encoder.dim
    for k, v in base.unet.state_dict().items():  # the rest of the model is the --init-from one
        assert torch.equal(pipe.unet.state_dict()[k], v)
    # it ranks new clips of each kind above the other kind, for phrasings it never saw
    t = np.arange(int(SR * 0.5)) / SR
    tone = torch.tensor(0.3 * np.sin(2 * np.pi * 700 * t), dtype=torch.float32)
    noise = 0.2 * torch.randn(t.size, generator=torch.Generator().manual_seed(5))
    wavs = torch.stack([tone, noise])
    assert pipe.rank("a sine wave beeping", wavs).argmax() == 0
    assert pipe.rank("noisy static", wavs).argmax() == 1


def test_generate_num_candidates_keeps_the_ranker_s_best(trained, tmp_path):
    model = trained / "export"

    def gen(*args):
        return runner.invoke(
            app,
            ["generate", "--model", str(model), "--steps", "2", "--duration", "0.5", "--seed", "0", *map(str, args)],
        )

    result = gen("a pure beep", "-o", tmp_path / "best.wav", "--num-candidates", "3")
    assert result.exit_code == 0, result.output
    pipe = AudioLDM.from_pretrained(model)
    cands = pipe.generate(["a pure beep"], duration=0.5, steps=2, seed=0, num_samples=3)
    best = sf.read(tmp_path / "best.wav", dtype="float32")[0]
    scores = pipe.rank("a pure beep", cands)
    assert scores.shape == (3,)
    np.testing.assert_allclose(best, cands[int(scores.argmax())].numpy(), atol=1e-4)


def test_a_seed_too_large_for_the_candidates_names_the_candidate(trained, tmp_path):
    """Candidate i takes seed + i: one output of 3 candidates needs seeds up to seed + 2."""
    base = ["generate", "--model", str(trained / "export"), "a beep", "--steps", "2", "--duration", "0.5"]
    out = tmp_path / "c.wav"
    result = runner.invoke(app, [*base, "-o", str(out), "--num-candidates", "3", "--seed", str(2**32 - 2)])
    assert result.exit_code == 2
    assert "--seed 4294967294: candidate 2 would take seed 4294967296, beyond 2**32 - 1" in result.stderr
    assert not out.exists()
    ok = runner.invoke(app, [*base, "-o", str(out), "--num-candidates", "3", "--seed", str(2**32 - 3)])
    assert ok.exit_code == 0, ok.output


def test_num_candidates_without_a_ranker_is_a_clear_error(tiny_model, tmp_path):
    result = runner.invoke(
        app, ["generate", "--model", str(tiny_model), "rain", "-o", str(tmp_path / "r.wav"), "--num-candidates", "3"]
    )
    assert result.exit_code == 2
    assert "audioldm train ranker" in result.output and "CLAP" in result.output
    assert [line.startswith("error:") for line in result.output.splitlines()].count(True) == 1
    assert not (tmp_path / "r.wav").exists()


def test_train_ranker_needs_a_model_and_checks_its_config(tiny_model, tmp_path):
    data = _two_kinds_manifest(tmp_path / "data", n=2)
    with pytest.raises(UsageError, match="init_from=None: train ranker needs the model folder"):
        train("ranker", data, tmp_path / "a", config=_config(tmp_path))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"channels": 12}, "train": {"cpu": True}}))
    with pytest.raises(UsageError, match="multiple of 8"):
        train("ranker", data, tmp_path / "b", config=bad, init_from=str(tiny_model))
    assert not (tmp_path / "b").exists()
    result = runner.invoke(app, ["train", "ranker", "--data", str(data), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "--init-from" in result.output


def test_a_ranker_for_other_mels_is_refused(trained, tmp_path):
    pipe = AudioLDM.from_pretrained(trained / "export")
    wrong = AudioTextRanker(RankerConfig(n_mels=pipe.mel_config.n_mels + 8, text_dim=384, **TINY))
    with pytest.raises(ModelError, match="ranker n_mels"):
        AudioLDM(pipe.config, vae=pipe.vae, vocoder=pipe.vocoder, unet=pipe.unet, ranker=wrong)


def _with_sampling(model: Path, dest: Path, **sampling) -> Path:
    import shutil

    shutil.copytree(model, dest)
    doc = json.loads((dest / "pipeline.json").read_text())
    doc["sampling"] = {**doc.get("sampling", {}), **sampling}
    (dest / "pipeline.json").write_text(json.dumps(doc))
    return dest


def test_the_model_s_num_candidates_is_the_default(trained, tiny_model, tmp_path):
    model = _with_sampling(trained / "export", tmp_path / "m", num_candidates=2)
    base = ["generate", "--model", str(model), "a pure beep", "--steps", "2", "--duration", "0.5", "--seed", "0"]
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "d.wav")]).exit_code == 0
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "k2.wav"), "--num-candidates", "2"]).exit_code == 0
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "k1.wav"), "--num-candidates", "1"]).exit_code == 0
    d, k2, k1 = (sf.read(tmp_path / f"{n}.wav", dtype="float32")[0] for n in ("d", "k2", "k1"))
    np.testing.assert_array_equal(d, k2)
    pipe = AudioLDM.from_pretrained(model)
    assert pipe.default_num_candidates == 2
    cands = pipe.generate(["a pure beep"], duration=0.5, steps=2, seed=0, num_samples=2)
    np.testing.assert_allclose(k1, cands[0].numpy(), atol=1e-4)  # --num-candidates 1: the first, unranked
    info = runner.invoke(app, ["info", str(model)])
    assert "best of 2 candidates" in info.output
    # a model that cannot rank makes one candidate whatever it recommends
    assert AudioLDM.from_pretrained(_with_sampling(tiny_model, tmp_path / "n", num_candidates=3)).default_num_candidates == 1


@pytest.mark.parametrize("k", [0, 1.5, True, "3"])
def test_a_bad_num_candidates_in_pipeline_json_is_refused(tiny_model, tmp_path, k):
    model = _with_sampling(tiny_model, tmp_path / "m", num_candidates=k)
    with pytest.raises(ModelError, match="num_candidates"):
        AudioLDM.from_pretrained(model)


def test_train_ranker_cli_without_a_config_uses_the_defaults(tiny_model, tmp_path):
    data = _two_kinds_manifest(tmp_path / "data", n=4)
    out = tmp_path / "rank"
    result = runner.invoke(
        app,
        ["train", "ranker", "--data", str(data), "--out", str(out), "--init-from", str(tiny_model),
         "--max-steps", "2", "--batch-size", "2", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out / "export")
    pipe = AudioLDM.from_pretrained(out / "export")
    assert pipe.ranker.config == {**RankerConfig().__dict__, "n_mels": pipe.mel_config.n_mels, "text_dim": 384}
    gen = runner.invoke(
        app,
        ["generate", "--model", str(out / "export"), "rain", "-o", str(tmp_path / "r.wav"), "--steps", "2",
         "--duration", "0.5", "--num-candidates", "2"],
    )
    assert gen.exit_code == 0, gen.output
    assert sf.info(str(tmp_path / "r.wav")).frames == 8000


def test_a_clap_model_needs_no_ranker(tiny_model, tmp_path):
    import shutil

    model = tmp_path / "clap_model"
    shutil.copytree(tiny_model, model)
    doc = json.loads((model / "pipeline.json").read_text())
    doc["text_encoder"] = {"type": "clap", "name": "clap_text", "audio": "clap_audio"}
    (model / "pipeline.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="its own CLAP model"):
        train("ranker", _two_kinds_manifest(tmp_path / "data", n=2), tmp_path / "run", init_from=str(model))
    assert not (tmp_path / "run").exists()


def test_the_ranker_must_use_the_unet_s_text_encoder(tiny_model, tmp_path):
    spec = json.loads((tiny_model / "pipeline.json").read_text())["text_encoder"]
    cfg = tmp_path / "te.json"
    cfg.write_text(json.dumps({"text_encoder": {**spec, "max_length": spec.get("max_length", 64) - 1}}))
    with pytest.raises(UsageError, match="differs from the one of the model it starts from"):
        train("ranker", _two_kinds_manifest(tmp_path / "data", n=2), tmp_path / "run", config=cfg, init_from=str(tiny_model))
