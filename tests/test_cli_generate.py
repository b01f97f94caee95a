"""`audioldm generate` through the CLI on the tiny model: lengths, seeds, names, prompt files, errors."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audioldm_cli.cli import app
from audioldm_cli.frontend import frame_level

runner = CliRunner()
FAST = ["--steps", "2", "--device", "cpu"]


def run(model, *args):
    return runner.invoke(app, ["generate", "--model", str(model), *FAST, *map(str, args)])


def files_in(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_one_output_with_exact_duration(tiny_model, tmp_path):
    out = tmp_path / "dog.wav"
    result = run(tiny_model, "a dog barking", "-o", out, "--duration", "0.31", "--seed", "0")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out)]
    info = sf.info(out)
    assert (info.samplerate, info.frames, info.channels) == (16000, round(0.31 * 16000), 1)
    assert files_in(tmp_path) == ["dog.wav"]  # no temporary files left behind


def test_same_seed_same_file_and_batch_items_match_lone_runs(tiny_model, tmp_path):
    """--num-samples 2 --seed 7: sample 1 equals a lone run with --seed 8 (within float tolerance)."""
    (tmp_path / "batch").mkdir()
    result = run(
        tiny_model,
        "wind",
        "--out-dir",
        tmp_path / "batch",
        "--num-samples",
        "2",
        "--seed",
        "7",
        "--duration",
        "0.1",
        "--batch-size",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "batch") == ["wind_0.wav", "wind_1.wav"]
    lone = tmp_path / "lone.wav"
    assert run(tiny_model, "wind", "-o", lone, "--seed", "8", "--duration", "0.1").exit_code == 0
    item, _ = sf.read(tmp_path / "batch" / "wind_1.wav", dtype="int16")
    alone, _ = sf.read(lone, dtype="int16")
    assert np.abs(item.astype(int) - alone.astype(int)).max() <= 2  # 16-bit PCM: a couple of LSBs
    again = tmp_path / "again.wav"
    assert run(tiny_model, "wind", "-o", again, "--seed", "8", "--duration", "0.1").exit_code == 0
    assert again.read_bytes() == lone.read_bytes()


def test_prompts_file_names_and_negative_prompt(tiny_model, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# sound effects\nrain\tRain on a tin roof!\n\nA car horn\nrain\tlight rain\n")
    out = tmp_path / "out"
    out.mkdir()
    result = run(
        tiny_model,
        "--prompts-file",
        prompts,
        "--out-dir",
        out,
        "--duration",
        "0.05",
        "--seed",
        "1",
        "--negative-prompt",
        "music",
        "--batch-size",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert files_in(out) == ["a-car-horn_0.wav", "rain-2_0.wav", "rain_0.wav"]
    assert result.stdout.splitlines() == [
        str(out / n) for n in ("rain_0.wav", "a-car-horn_0.wav", "rain-2_0.wav")
    ]
    assert all(sf.info(out / n).frames == 800 for n in files_in(out))


def test_existing_output_needs_overwrite(tiny_model, tmp_path):
    out = tmp_path / "x.wav"
    out.write_bytes(b"keep me")
    result = run(tiny_model, "x", "-o", out, "--duration", "0.05")
    assert result.exit_code == 2
    assert "already exists; pass -y/--overwrite" in result.stderr
    assert out.read_bytes() == b"keep me"
    result = run(tiny_model, "x", "-o", out, "--duration", "0.05", "-y")
    assert result.exit_code == 0, result.output
    assert sf.info(out).frames == 800


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_outputs_are_readable_like_any_new_file(tiny_model, tmp_path):
    """The temp file + rename gives the clip the umask's permissions (0o644 under 022), not mkstemp's
    private 0o600; an overwritten file keeps its own mode."""
    old = os.umask(0o022)
    try:
        out = tmp_path / "x.wav"
        assert run(tiny_model, "x", "-o", out, "--duration", "0.05").exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        out.chmod(0o664)
        assert run(tiny_model, "x", "-o", out, "--duration", "0.05", "-y").exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o664
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["", "-o", "{tmp}/a.wav"], 2, "prompt '' is empty"),
        (["x", "-o", "{tmp}/a.wav", "--duration", "-1"], 2, "--duration -1.0: must be > 0"),
        (["x", "-o", "{tmp}/a.wav", "--duration", "0"], 2, "--duration 0.0: must be > 0"),
        (["x", "-o", "{tmp}/a.wav", "--duration", "nan"], 2, "--duration nan: must be > 0"),
        (["x", "-o", "{tmp}/a.wav", "--steps", "0"], 2, "--steps 0"),
        (
            ["x", "-o", "{tmp}/a.wav", "--guidance-scale", "-1"],
            2,
            "--guidance-scale -1.0: must be a finite number >= 0",
        ),
        (
            ["x", "-o", "{tmp}/a.wav", "--sampler", "euler"],
            2,
            "--sampler 'euler': choose one of ddim, dpmpp-2m",
        ),
        (["x", "y", "-o", "{tmp}/a.wav"], 2, "use --out-dir"),
        (["x", "-o", "{tmp}/a.mp4"], 2, "output {tmp}/a.mp4: unknown audio extension '.mp4'"),
        (["--out-dir", "{tmp}"], 2, "no prompt given"),
        (["--prompts-file", "{tmp}/nope.txt"], 2, "--prompts-file {tmp}/nope.txt: file not found"),
    ],
)
def test_bad_inputs(tiny_model, tmp_path, args, code, message):
    result = run(tiny_model, *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == code, result.output
    assert message.format(tmp=tmp_path) in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_missing_out_dir_is_created(tiny_model, tmp_path):
    target = tmp_path / "new" / "sounds"
    result = run(tiny_model, "a dog", "--out-dir", target)
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.stdout.split()]
    assert written and all(p.parent == target and p.is_file() for p in written)


def test_missing_model_folder_is_named(tmp_path):
    result = runner.invoke(
        app, ["generate", "x", "-o", str(tmp_path / "a.wav"), "--model", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert f"model folder not found: {tmp_path / 'm'}" in result.stderr


def test_default_model_folder_is_named_when_absent(tmp_path, monkeypatch):
    from audioldm_cli import cli

    monkeypatch.setattr(cli, "default_model_dir", lambda: tmp_path / "checkpoints" / "default")
    result = runner.invoke(app, ["generate", "x", "-o", str(tmp_path / "a.wav")])
    assert result.exit_code == 1
    assert f"default model folder not found: {tmp_path / 'checkpoints' / 'default'}" in result.stderr


def test_cuda_without_gpu_is_a_usage_error(tiny_model, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(
        app, ["generate", "x", "-o", str(tmp_path / "a.wav"), "--model", str(tiny_model), "--device", "cuda"]
    )
    assert result.exit_code == 2
    assert "no CUDA GPU is available" in result.stderr


def test_model_without_unet_cannot_generate(tmp_path):
    from audioldm_cli.testing import make_tiny_model

    model = make_tiny_model(tmp_path / "m", with_unet=False)
    result = run(model, "x", "-o", tmp_path / "a.wav", "--duration", "0.05")
    assert result.exit_code == 1
    assert "no UNet" in result.stderr
    assert not (tmp_path / "a.wav").exists()


def with_sampling(tiny_model, folder: Path, sampling) -> Path:
    """A copy of the tiny model whose pipeline.json recommends `sampling`."""
    import json
    import shutil

    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "pipeline.json").read_text())
    config["sampling"] = sampling
    (folder / "pipeline.json").write_text(json.dumps(config))
    return folder


def outputs_by_flags(model: Path, common: list, flags: dict, tmp_path: Path) -> dict:
    """{name: audio} of one `generate` run per entry of flags ({name: extra arguments})."""
    outs = {}
    for name, extra in flags.items():
        result = run(model, *common, "-o", tmp_path / f"{name}.wav", *extra)
        assert result.exit_code == 0, result.output
        outs[name] = sf.read(tmp_path / f"{name}.wav")[0]
    return outs


def test_model_recommended_guidance_is_the_default(tiny_model, tmp_path):
    """pipeline.json sampling.guidance_scale replaces 3 when --guidance-scale is not given; the flag wins."""
    from audioldm_cli import AudioLDM

    model = with_sampling(tiny_model, tmp_path / "m", {"guidance_scale": 6.5})
    common = ["a dog barking", "--duration", "0.2", "--seed", "3"]
    flags = {"default": [], "g6.5": ["--guidance-scale", "6.5"], "g3": ["--guidance-scale", "3"]}
    outs = outputs_by_flags(model, common, flags, tmp_path)
    np.testing.assert_allclose(outs["default"], outs["g6.5"], atol=1e-6)
    assert np.abs(outs["default"] - outs["g3"]).max() > 1e-3  # guidance changes the audio

    assert AudioLDM.from_pretrained(model).default_guidance_scale == 6.5
    assert AudioLDM.from_pretrained(tiny_model).default_guidance_scale == 3.0  # no recommendation
    info = runner.invoke(app, ["info", str(model)])
    assert info.exit_code == 0, info.output
    assert "generate and edits: guidance scale 6.5 unless --guidance-scale is given" in info.stdout
    info = runner.invoke(app, ["info", str(tiny_model)])  # no recommendation: each command's own
    assert "generate: guidance scale 3, edits: 2.5, unless --guidance-scale is given" in info.stdout


def test_model_recommended_steps_are_the_default(tiny_model, tmp_path):
    """pipeline.json sampling.steps replaces 50 when --steps is not given (CLI and library); the flag wins."""
    from audioldm_cli import AudioLDM

    model = with_sampling(tiny_model, tmp_path / "m", {"steps": 3})
    outs = {}
    for name, extra in {"default": [], "s3": ["--steps", "3"], "s4": ["--steps", "4"]}.items():
        out = tmp_path / f"{name}.wav"
        args = ["generate", "a dog barking", "--model", model, "--duration", "0.2", "--seed", "3", "-o", out]
        result = runner.invoke(app, [*map(str, args), "--device", "cpu", *extra])  # not FAST: no --steps
        assert result.exit_code == 0, result.output
        outs[name] = sf.read(out)[0]
    np.testing.assert_allclose(outs["default"], outs["s3"], atol=1e-6)
    assert np.abs(outs["default"] - outs["s4"]).max() > 1e-3
    pipe = AudioLDM.from_pretrained(model)
    assert pipe.default_steps == 3 and AudioLDM.from_pretrained(tiny_model).default_steps == 50
    calls = []
    pipe.generate("rain", duration=0.2, seed=1, progress=lambda done, total: calls.append(total))
    assert calls[-1] == 3  # the library takes the same default
    info = runner.invoke(app, ["info", str(model)])
    assert info.exit_code == 0 and "generate and edits: 3 steps unless --steps is given" in info.stdout
    bad = with_sampling(tiny_model, tmp_path / "bad", {"steps": 0})
    result = run(bad, "x", "-o", tmp_path / "x.wav", "--duration", "0.05")
    assert (
        result.exit_code == 1 and "pipeline sampling.steps 0 must be an integer in [1, 999]" in result.stderr
    )


def test_a_short_schedule_without_a_steps_recommendation_still_loads(tiny_model, tmp_path):
    """sampling.steps is checked against the schedule only when pipeline.json gives it."""
    import json

    from audioldm_cli import AudioLDM

    model = with_sampling(tiny_model, tmp_path / "m", {})
    config = json.loads((model / "pipeline.json").read_text())
    config["schedule"] = {**config.get("schedule", {}), "timesteps": 20}
    (model / "pipeline.json").write_text(json.dumps(config))
    pipe = AudioLDM.from_pretrained(model)
    assert pipe.schedule.timesteps == 20
    assert pipe.generate("rain", duration=0.1, steps=19, seed=0).shape == (1, 1600)
    info = runner.invoke(app, ["info", str(model)])
    assert info.exit_code == 0, info.output


def test_library_generate_takes_the_model_guidance_when_none(tiny_model, tmp_path):
    from audioldm_cli import AudioLDM

    pipe = AudioLDM.from_pretrained(with_sampling(tiny_model, tmp_path / "m", {"guidance_scale": 6.5}))
    kwargs = {"duration": 0.2, "steps": 2, "seed": 1}
    default = pipe.generate("rain", **kwargs)
    assert np.abs(default - pipe.generate("rain", guidance_scale=6.5, **kwargs)).max() < 1e-6
    assert np.abs(default - pipe.generate("rain", guidance_scale=3.0, **kwargs)).max() > 1e-3


def test_model_guidance_rescale_is_the_default_and_the_flag_overrides_it(tiny_model, tmp_path):
    """pipeline.json sampling.guidance_rescale applies when --guidance-rescale is not given; the flag wins."""
    from audioldm_cli import AudioLDM

    model = with_sampling(tiny_model, tmp_path / "m", {"guidance_scale": 8, "guidance_rescale": 0.7})
    common = ["a dog barking", "--duration", "0.2", "--seed", "3", "--steps", "3"]
    flags = {"default": [], "same": ["--guidance-rescale", "0.7"], "off": ["--guidance-rescale", "0"]}
    outs = outputs_by_flags(model, common, flags, tmp_path)
    np.testing.assert_allclose(outs["default"], outs["same"], atol=1e-6)
    assert np.abs(outs["default"] - outs["off"]).max() > 1e-3  # the rescale changes the audio

    pipe = AudioLDM.from_pretrained(model)
    assert pipe.default_guidance_rescale == 0.7 and pipe.describe()["sampling"]["guidance_rescale"] == 0.7
    assert AudioLDM.from_pretrained(tiny_model).default_guidance_rescale == 0.0  # no recommendation: off
    kwargs = {"duration": 0.2, "steps": 3, "seed": 3}
    np.testing.assert_allclose(
        pipe.generate("a dog barking", **kwargs).numpy(), outs["default"][None], atol=1e-4
    )  # the library takes the same default
    info = runner.invoke(app, ["info", str(model)])
    assert info.exit_code == 0, info.output
    assert "generate and edits: guidance rescale 0.7 unless --guidance-rescale is given" in info.stdout
    assert "guidance-rescale" not in runner.invoke(app, ["info", str(tiny_model)]).stdout


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_bad_guidance_rescale_flag_is_one_clear_error(tiny_model, tmp_path, value):
    out = tmp_path / "a.wav"
    result = run(tiny_model, "x", "-o", out, "--duration", "0.05", "--guidance-rescale", value)
    assert result.exit_code == 2
    assert f"--guidance-rescale {value}: must be between 0 and 1" in result.stderr
    assert "Traceback" not in result.output and not out.exists()


def test_model_frame_level_limit_is_the_default_and_the_flag_overrides_it(tiny_model, tmp_path):
    """pipeline.json sampling.frame_level_limit limits generated frames; --frame-level-limit overrides it."""
    from audioldm_cli import AudioLDM

    pipe = AudioLDM.from_pretrained(tiny_model)
    assert pipe.default_frame_level_limit == math.inf  # no recommendation: no limit
    # a limit that bites: the median level of the frames the tiny model decodes for this prompt and seed
    mels = []
    decode = pipe.vae.decode
    pipe.vae.decode = lambda z: mels.append(decode(z)) or mels[-1]
    pipe.generate("a dog barking", duration=0.2, steps=2, seed=3, guidance_scale=3)
    limit = round(float(frame_level(mels[0]).median()), 3)

    model = with_sampling(tiny_model, tmp_path / "m", {"frame_level_limit": limit})
    common = ["a dog barking", "--duration", "0.2", "--seed", "3", "--guidance-scale", "3"]
    flag = "--frame-level-limit"
    flags = {"default": [], "same": [flag, str(limit)], "off": [flag, "inf"]}
    outs = outputs_by_flags(model, common, flags, tmp_path)
    np.testing.assert_allclose(outs["default"], outs["same"], atol=1e-6)
    assert np.abs(outs["default"] - outs["off"]).max() > 1e-3  # the limit changes the audio
    info = runner.invoke(app, ["info", str(model)])
    assert info.exit_code == 0, info.output
    assert f"generate: mel frames limited to level {limit:g} unless {flag} is given" in info.stdout
    assert "frame-level-limit" not in runner.invoke(app, ["info", str(tiny_model)]).stdout


def test_decode_latent_limits_the_decoded_mel_before_the_vocoder(tiny_model):
    """decode_latent(frame_level_limit=L) vocodes exactly limit_frame_level(VAE decode, L)."""
    import torch

    from audioldm_cli import AudioLDM
    from audioldm_cli.frontend import limit_frame_level

    pipe = AudioLDM.from_pretrained(tiny_model)
    latent = torch.randn(1, pipe.latent_channels, 8, pipe.mel_config.n_mels // pipe.freq_factor)
    with torch.inference_mode():
        mel = pipe.vae.decode(latent / pipe.scale_factor)
    level = frame_level(mel)
    limit = float(level.median())
    assert bool((level > limit).any())
    n = 8 * pipe.time_factor * pipe.hop_length
    expected = pipe.vocode(limit_frame_level(mel, limit), n)
    limited = pipe.decode_latent(latent, frame_level_limit=limit)
    torch.testing.assert_close(limited, expected, atol=1e-6, rtol=0)
    unlimited = pipe.decode_latent(latent)
    torch.testing.assert_close(unlimited, pipe.vocode(mel, n), atol=1e-6, rtol=0)
    assert (unlimited - expected).abs().max() > 1e-4


def test_bad_frame_level_limit_flag_is_one_clear_error(tiny_model, tmp_path):
    out = tmp_path / "a.wav"
    for value in ("nan", "-1e30"):
        result = run(tiny_model, "x", "-o", out, "--duration", "0.05", "--frame-level-limit", value)
        assert result.exit_code == 2
        message = f"--frame-level-limit {float(value):g}: must be a number >= -11.51, the level of silence"
        assert message in result.stderr
        assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize(
    "sampling, message",
    [
        ({"guidance_scale": -1}, "sampling.guidance_scale -1 must be a finite number >= 0"),
        ({"guidance_scale": "high"}, "sampling.guidance_scale 'high' must be a finite number >= 0"),
        ({"frame_level_limit": "loud"}, "sampling.frame_level_limit 'loud' must be a finite number"),
        ({"frame_level_limit": True}, "sampling.frame_level_limit True must be a finite number"),
        ({"frame_level_limit": -20}, "sampling.frame_level_limit -20 is below the level of silence (-11.51"),
        ({"guidance_rescale": 2}, "sampling.guidance_rescale 2 must be a number in [0, 1]"),
        ({"guidance_rescale": "some"}, "sampling.guidance_rescale 'some' must be a number in [0, 1]"),
        ({"sampler": "ddim"}, "pipeline sampling has unknown keys ['sampler']"),
        ({"steps": 2.5}, "sampling.steps 2.5 must be an integer in [1, 999]"),
        ({"steps": 1000}, "sampling.steps 1000 must be an integer in [1, 999]"),
        ([5], "pipeline sampling [5]: must be a JSON object"),
    ],
)
def test_bad_sampling_in_pipeline_json_is_one_clear_error(tiny_model, tmp_path, sampling, message):
    model = with_sampling(tiny_model, tmp_path / "m", sampling)
    result = run(model, "x", "-o", tmp_path / "a.wav", "--duration", "0.05")
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "a.wav").exists()


def test_pipeline_json_keeps_sampling_and_omits_it_when_empty():
    from audioldm_cli.checkpoint import PipelineConfig

    base = {"frontend": {}, "components": {"vae": "vae", "vocoder": "vocoder"}}
    assert "sampling" not in PipelineConfig.from_dict(base).to_dict()  # so earlier releases read it
    sampling = {"guidance_scale": 5, "guidance_rescale": 0.7, "frame_level_limit": -0.69}
    data = PipelineConfig.from_dict({**base, "sampling": sampling}).to_dict()
    assert data["sampling"] == sampling
    assert PipelineConfig.from_dict(data).sampling == sampling


# ---------------------------------------------------------------------------------------------- naming helpers


def test_slugs_are_stable_and_safe():
    from audioldm_cli.batch import slugify, unique_stems

    assert slugify("A dog barking, far away!") == "a-dog-barking-far-away"
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify("???") == "prompt"
    assert len(slugify("x" * 500)) == 60
    assert unique_stems(["a", "b", "a", "a"]) == ["a", "b", "a-2", "a-3"]
    assert unique_stems(["dog", "dog", "dog-2"]) == ["dog", "dog-3", "dog-2"]  # no clash with a real name
    assert unique_stems(["Dog", "dog"]) == ["Dog", "dog-2"]  # one file where case is not told apart


def test_given_names_are_kept_as_written_where_a_file_name_allows():
    from audioldm_cli.batch import safe_name

    assert safe_name("Track_01.v2") == "Track_01.v2"
    assert safe_name("café noir") == "café-noir"
    assert safe_name("../../etc/passwd") == "etc-passwd"
    assert safe_name(".hidden") == "hidden" and safe_name("...") == "prompt"


def test_prompts_file_with_a_bom_skips_its_first_comment(tmp_path):
    from audioldm_cli.batch import read_prompts_file

    path = tmp_path / "p.txt"
    path.write_bytes("\ufeff# my prompts\nMy Dog\ta dog\n".encode())
    assert read_prompts_file(path) == [("My Dog", "a dog")]


def test_claimed_output_is_never_clobbered(tmp_path):
    from audioldm_cli.batch import claim_output
    from audioldm_cli.errors import AudioLDMError

    target = tmp_path / "x.wav"
    target.write_bytes(b"another process wrote this")
    with pytest.raises(AudioLDMError, match="appeared while running"), claim_output(target, overwrite=False):
        raise AssertionError("the block must not run")
    assert target.read_bytes() == b"another process wrote this"
    fresh = tmp_path / "y.wav"
    with pytest.raises(RuntimeError), claim_output(fresh, overwrite=False):
        assert fresh.exists() and fresh.stat().st_size == 0  # the name is reserved while writing
        raise RuntimeError("write failed")
    assert not fresh.exists()  # a failed write leaves no claim behind


def test_file_taken_by_another_process_meanwhile_is_kept(tiny_model, tmp_path, monkeypatch):
    """Outputs are created exclusively: a name taken while generating is reported, not replaced."""
    from audioldm_cli import audio

    real_write = audio.write_audio

    def write_and_race(path, wav, rate, **kwargs):  # another process creates b_0.wav while a_0.wav is written
        (tmp_path / "b_0.wav").write_bytes(b"theirs")
        return real_write(path, wav, rate, **kwargs)

    monkeypatch.setattr(audio, "write_audio", write_and_race)
    result = run(tiny_model, "a", "b", "--out-dir", tmp_path, "--duration", "0.05", "--seed", "0")
    assert result.exit_code == 1
    assert "b_0.wav appeared while running" in result.stderr
    assert result.stdout.splitlines() == [str(tmp_path / "a_0.wav")]
    assert (tmp_path / "b_0.wav").read_bytes() == b"theirs"
    assert sf.info(tmp_path / "a_0.wav").frames == 800


def test_a_prompt_the_text_encoder_cannot_read_is_a_usage_error(tiny_model, tmp_path):
    result = runner.invoke(
        app, ["generate", "\u200b", "--model", str(tiny_model), "-o", str(tmp_path / "a.wav")]
    )
    assert result.exit_code == 2 and "has no text the text encoder can read" in result.output
    assert not (tmp_path / "a.wav").exists()
