"""`audioldm transfer / inpaint / superres` through the CLI on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audioldm_cli.audio import read_audio
from audioldm_cli.cli import app

runner = CliRunner()
FAST = ["--steps", "3", "--device", "cpu", "--seed", "0"]


def _tone(path, sr, seconds, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 330 * t)
    sf.write(path, np.stack([x] * channels, axis=1) if channels > 1 else x, sr)
    return path


def run(command, model, *args):
    return runner.invoke(app, [command, "--model", str(model), *FAST, *map(str, args)])


def test_transfer_any_format_keeps_the_length(tiny_model, tmp_path):
    src = _tone(tmp_path / "in.flac", 44100, 0.77, channels=2)
    result = run("transfer", tiny_model, src, "a cat meowing", "--strength", "0.7")
    out = tmp_path / "in_transfer.wav"
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out)]
    info = sf.info(out)
    assert (info.samplerate, info.channels) == (16000, 1)
    assert info.frames == read_audio(src, 16000)[0].shape[-1]
    again = run("transfer", tiny_model, src, "a cat meowing", "--strength", "0.7")
    assert again.exit_code == 2 and "--overwrite" in again.output
    again = run(
        "transfer", tiny_model, src, "a cat meowing", "--strength", "0.7", "-y", "-o", tmp_path / "b.wav"
    )
    assert again.exit_code == 0
    np.testing.assert_allclose(sf.read(tmp_path / "b.wav")[0], sf.read(out)[0], atol=1e-4)


@pytest.mark.parametrize("strength", ["0", "1.5"])
def test_transfer_bad_strength_is_a_usage_error(tiny_model, tmp_path, strength):
    src = _tone(tmp_path / "in.wav", 16000, 0.5)
    result = run("transfer", tiny_model, src, "rain", "--strength", strength)
    assert result.exit_code == 2 and "--strength" in result.output
    assert not (tmp_path / "in_transfer.wav").exists()


def test_inpaint_writes_the_input_length(tiny_model, tmp_path):
    src = _tone(tmp_path / "in.wav", 16000, 0.9)
    out = tmp_path / "fixed.wav"
    result = run("inpaint", tiny_model, src, "a door slam", "--start", "0.2", "--end", "0.5", "-o", out)
    assert result.exit_code == 0, result.output
    assert sf.info(out).frames == 14400
    result = run("inpaint", tiny_model, src, "--start", "0.1", "--end", "0.3", "-o", tmp_path / "u.wav")
    assert result.exit_code == 0, result.output  # no text: unconditional
    result = run("inpaint", tiny_model, src, "--start", "0.1", "--end", "0.3", "--refine-steps", "-1")
    assert result.exit_code == 2 and "--refine-steps" in result.output


def test_inpaint_keeps_the_input_outside_the_range_unless_told_not_to(tiny_model, tmp_path):
    src = _tone(tmp_path / "in.wav", 16000, 0.9)
    args = [src, "a door slam", "--start", "0.4", "--end", "0.5"]
    assert run("inpaint", tiny_model, *args, "-o", tmp_path / "s.wav").exit_code == 0
    assert run("inpaint", tiny_model, *args, "--no-splice", "-o", tmp_path / "w.wav").exit_code == 0
    given, spliced, whole = (sf.read(tmp_path / n, dtype="int16")[0] for n in ("in.wav", "s.wav", "w.wav"))
    # frames 10-12 (640 samples each) regenerated, 800 samples of crossfade on each side
    assert np.array_equal(spliced[: 6400 - 800], given[: 6400 - 800])
    assert np.array_equal(spliced[8320 + 800 :], given[8320 + 800 :])
    assert not np.array_equal(whole[: 6400 - 800], given[: 6400 - 800])  # a VAE round trip


@pytest.mark.parametrize("start,end", [("0.5", "0.2"), ("1.0", "1.2"), ("-1", "0.2")])
def test_inpaint_bad_range(tiny_model, tmp_path, start, end):
    src = _tone(tmp_path / "in.wav", 16000, 0.9)
    result = run("inpaint", tiny_model, src, "--start", start, "--end", end)
    assert result.exit_code == 2
    assert "--start" in result.output and result.output.count("error:") == 1


def test_superres_from_8k(tiny_model, tmp_path):
    src = _tone(tmp_path / "low.wav", 8000, 0.6)
    result = run("superres", tiny_model, src)
    out = tmp_path / "low_superres.wav"
    assert result.exit_code == 0, result.output
    info = sf.info(out)
    assert (info.samplerate, info.frames) == (16000, 9600)
    full = _tone(tmp_path / "full.wav", 16000, 0.6)
    result = run("superres", tiny_model, full)
    assert result.exit_code == 2 and "already holds every band of the model (up to 8000 Hz)" in result.output
    result = run("superres", tiny_model, full, "--cutoff", "3000", "-o", tmp_path / "c.wav")
    assert result.exit_code == 0, result.output
    result = run(
        "superres", tiny_model, full, "--cutoff", "3000", "--refine-steps", "3", "-o", tmp_path / "r.wav"
    )
    assert result.exit_code == 0, result.output
    plain, _ = sf.read(tmp_path / "c.wav")
    refined, _ = sf.read(tmp_path / "r.wav")
    assert refined.shape == plain.shape and np.abs(refined - plain).max() > 0  # the option reaches the edit


def test_missing_input_is_one_error_line(tiny_model, tmp_path):
    result = run("transfer", tiny_model, tmp_path / "nope.wav", "rain")
    assert result.exit_code in (1, 2) and result.output.count("error:") == 1


def test_zero_steps_is_a_usage_error_for_every_edit(tiny_model, tmp_path):
    src = _tone(tmp_path / "a.wav", 16000, 0.3)
    for command, extra in (
        ("transfer", ["rain"]),
        ("inpaint", ["rain", "--start", "0", "--end", "0.1"]),
        ("superres", []),
    ):
        args = [
            command,
            str(src),
            *extra,
            "--steps",
            "0",
            "--model",
            str(tiny_model),
            "-o",
            str(tmp_path / "x.wav"),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "--steps" in result.output and "Traceback" not in result.output
        assert not (tmp_path / "x.wav").exists()


def test_edits_take_the_model_s_recommended_guidance(tiny_model, tmp_path):
    """transfer / inpaint / superres use the guidance scale and rescale the model recommends for
    generate when given none (a model trained to need strong guidance needs it to edit too), else
    AudioLDM's 2.5 with no rescale; the flags win. The model's frame level limit applies only when
    given: an edit keeps an input that may be louder than the model's corpus."""
    from test_cli_generate import with_sampling

    from audioldm_cli import AudioLDM
    from audioldm_cli.editing import EditSampling, edit_sampling

    rec = {"guidance_scale": 6.5, "guidance_rescale": 0.7, "frame_level_limit": -1.0}
    model = with_sampling(tiny_model, tmp_path / "m", rec)
    inf = float("inf")
    assert edit_sampling(AudioLDM.from_pretrained(model)) == EditSampling(6.5, 0.7, inf)
    assert edit_sampling(AudioLDM.from_pretrained(tiny_model)) == EditSampling(2.5, 0.0, inf)
    assert edit_sampling(AudioLDM.from_pretrained(model), 3.0, 0.0, 2.0) == EditSampling(3.0, 0.0, 2.0)
    src = _tone(tmp_path / "in.wav", 16000, 0.6)
    explicit = ["--guidance-scale", "6.5", "--guidance-rescale", "0.7"]
    plain = ["--guidance-scale", "2.5", "--guidance-rescale", "0"]
    limited = ["--frame-level-limit", "-3"]
    for command, args in (
        ("transfer", [src, "a cat meowing", "--strength", "0.7"]),
        ("inpaint", [src, "a door slam", "--start", "0.1", "--end", "0.4"]),
        ("superres", [src, "a bell", "--cutoff", "3000"]),
    ):
        outs = {}
        for name, m, extra in (
            ("default", model, []),
            ("explicit", tiny_model, explicit),
            ("plain", model, plain),
            ("limited", model, limited),
        ):
            out = tmp_path / f"{command}_{name}.wav"
            result = run(command, m, *args, *extra, "-o", out)
            assert result.exit_code == 0, result.output
            outs[name] = sf.read(out)[0]
        np.testing.assert_allclose(outs["default"], outs["explicit"], atol=1e-5, err_msg=command)
        assert np.abs(outs["default"] - outs["plain"]).max() > 1e-3, command
        # the limit is applied when given (and the default, equal to a model without one, has none)
        assert np.abs(outs["limited"] - outs["default"]).max() > 1e-3, command
    result = run("transfer", model, src, "rain", "--guidance-rescale", "1.5", "-o", tmp_path / "bad.wav")
    assert result.exit_code == 2 and "--guidance-rescale 1.5: must be between 0 and 1" in result.output
    assert not (tmp_path / "bad.wav").exists()


def test_edits_take_the_models_recommended_steps(tiny_model, tmp_path):
    """Without --steps an edit runs the denoising steps the model recommends for generate (the default
    model: 25, as good as 50 for edits too: `## Editing`), else 50; --steps wins."""
    from test_cli_generate import with_sampling

    model = with_sampling(tiny_model, tmp_path / "m", {"steps": 4})
    src = _tone(tmp_path / "in.wav", 16000, 0.6)
    common = ["--device", "cpu", "--seed", "0"]
    for command, args in (
        ("transfer", [src, "a cat meowing", "--strength", "0.7"]),
        ("inpaint", [src, "a door slam", "--start", "0.1", "--end", "0.4"]),
        ("superres", [src, "a bell", "--cutoff", "3000"]),
    ):
        outs = {}
        for name, m, extra in (
            ("recommended", model, []),
            ("given", model, ["--steps", "4"]),
            ("other", model, ["--steps", "3"]),
            ("no recommendation", tiny_model, []),
            ("fifty", tiny_model, ["--steps", "50"]),
        ):
            out = tmp_path / f"{command}_{name}.wav"
            result = runner.invoke(
                app, [command, *map(str, args), "--model", str(m), *common, *extra, "-o", str(out)]
            )
            assert result.exit_code == 0, result.output
            outs[name] = sf.read(out)[0]
        np.testing.assert_array_equal(outs["recommended"], outs["given"], err_msg=command)
        assert np.abs(outs["recommended"] - outs["other"]).max() > 1e-4, command
        np.testing.assert_array_equal(outs["no recommendation"], outs["fifty"], err_msg=command)
    # --strength x steps below one step: refused once the recommendation is known, before any output
    result = runner.invoke(
        app, ["transfer", str(src), "rain", "--strength", "0.2", "--model", str(model), *common]
    )
    assert result.exit_code == 2 and "--strength 0.2 --steps 4: their product is below one step" in result.output


def test_edit_arguments_are_checked_and_an_unconditional_edit_says_guidance_does_nothing(
    tiny_model, tmp_path, caplog
):
    import torch

    from audioldm_cli import AudioLDM
    from audioldm_cli.editing import edit_sampling, inpaint, transfer
    from audioldm_cli.errors import UsageError

    pipe = AudioLDM.from_pretrained(tiny_model)
    wav = 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UsageError, match="steps=2.5: must be an integer"):
        transfer(pipe, wav, "a dog", steps=2.5)
    with pytest.raises(UsageError, match="guidance_rescale='x': must be a number"):
        edit_sampling(pipe, guidance_rescale="x")
    with pytest.raises(UsageError, match="frame_level_limit=nan"):
        edit_sampling(pipe, frame_level_limit=float("nan"))
    with caplog.at_level("WARNING"):
        inpaint(pipe, wav, "", 0.1, 0.3, steps=2)
    assert "guidance and its rescale do nothing" not in caplog.text  # nothing was asked for
    with caplog.at_level("WARNING"):
        inpaint(pipe, wav, "", 0.1, 0.3, steps=2, guidance_rescale=0.5)
    assert "no prompt: the edit is unconditional" in caplog.text


def test_superres_reads_a_named_pipe_once(tiny_model, tmp_path):
    import os
    import threading

    src = _tone(tmp_path / "low.wav", 8000, 0.5)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(src.read_bytes()))
    writer.start()
    result = run("superres", tiny_model, fifo, "rain", "-o", tmp_path / "full.wav")  # --cutoff: its Nyquist
    writer.join()
    assert result.exit_code == 0, result.output
    assert sf.info(tmp_path / "full.wav").frames == 8000
