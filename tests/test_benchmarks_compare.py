"""benchmarks/compare.py: the helpers that do not need the reference package (weights, timing, results)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("benchmarks_compare", REPO / "benchmarks" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv1d(4, 8, 3), nn.GroupNorm(2, 8), nn.ConvTranspose1d(8, 2, 8, stride=4))


def test_randomize_redraws_every_parameter_deterministically(compare):
    a, b = compare.randomize_(_net(), seed=7), compare.randomize_(_net(), seed=7)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    conv_w, conv_b, norm_w, norm_b, up_w, _ = [p.detach() for p in a.parameters()]
    # weights N(0, 1/fan_in): fan_in 4*3 for the conv, 8*8/4 for the transposed conv (stride 4)
    assert abs(conv_w.std().item() - 12**-0.5) < 0.12
    assert abs(up_w.std().item() - 16**-0.5) < 0.06
    assert conv_b.abs().max() < 0.05 * 5 and norm_b.abs().max() < 0.5
    assert (norm_w - 1).abs().max() < 0.5 and not torch.equal(norm_w, torch.ones_like(norm_w))
    c = compare.randomize_(_net(), seed=8)
    assert not torch.equal(next(c.parameters()), conv_w)


def test_load_same_weights_is_strict(compare):
    ours, ref = compare.randomize_(_net(), seed=1), _net()
    compare.load_same_weights(ours, ref)
    x = torch.randn(2, 4, 16)
    assert torch.equal(ours(x), ref(x))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        compare.load_same_weights(
            nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), nn.Sequential(nn.Linear(2, 2))
        )


def test_agreement_uses_atol_plus_rtol(compare):
    ref = torch.tensor([0.0, 100.0])
    assert compare.agreement(ref + torch.tensor([9e-5, 9e-3]), ref)[2]  # 9e-3 <= 1e-4 + 1e-4 * 100
    max_abs, max_ref, ok = compare.agreement(ref + torch.tensor([2e-4, 0.0]), ref)
    assert not ok and max_abs == pytest.approx(2e-4) and max_ref == 100.0
    with pytest.raises(SystemExit, match="shapes differ"):
        compare.agreement(torch.zeros(3), torch.zeros(2))


def test_time_pair_alternates_and_takes_medians(compare):
    calls = []

    def ours():
        calls.append("o")
        return 1

    def ref():
        calls.append("r")
        return 2

    medians, out_ours, out_ref = compare.time_pair(ours, ref, repeats=3)
    assert (out_ours, out_ref) == (1, 2)
    assert "".join(calls) == "or" + "or" + "ro" + "or"  # warm-up, then who goes first alternates
    assert set(medians) == {"ours", "ref", "ours_cpu", "ref_cpu"} and min(medians.values()) >= 0


def test_write_section_replaces_only_the_compare_section(compare, tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\n## Whole job\n\nkeep 1\n\n## Compare\n\nold\n\n## GPU\n\nkeep 2\n")
    compare.write_section(path, "## Compare\n\nnew table\n")
    text = path.read_text()
    assert text == "# Results\n\n## Whole job\n\nkeep 1\n\n## Compare\n\nnew table\n\n## GPU\n\nkeep 2\n"
    compare.write_section(path, "## Compare\n\nnewer\n")
    assert path.read_text().count("## Compare") == 1 and "newer" in path.read_text()
    fresh = tmp_path / "none.md"
    compare.write_section(fresh, "## Compare\n\nx\n")
    assert fresh.read_text() == "# Benchmark results\n\n## Compare\n\nx\n"


def test_report_marks_targets(compare):
    rows = [
        compare.Row(
            "UNet call",
            "latent",
            ours=1.0,
            ref=1.5,
            max_abs=1e-6,
            max_ref=2.0,
            ok=True,
            ours_cpu=2,
            ref_cpu=5,
        ),
        compare.Row("HiFi-GAN", "mel", ours=1.0, ref=1.1, max_abs=0.0, max_ref=1.0, ok=False),
    ]
    text = compare.report(rows, "test machine", 2, "benchmarks/compare.py --quick", pending=("vocoder",))
    assert text.startswith("## Compare\n\n`benchmarks/compare.py --quick`, ")
    assert "**Partial run**: not measured yet: vocoder." in text
    assert "| UNet call | latent | 1.000 | 1.500 | 1.50x | ≥ 1.3x met | 2.50x |" in text
    assert "| HiFi-GAN | mel | 1.000 | 1.100 | 1.10x | ≥ 1.3x **not met** |" in text and "**NO**" in text
    assert "test machine" in text


def test_bad_arguments_are_refused(compare, capsys):
    with pytest.raises(SystemExit) as exc:
        compare.parse_args(["--only", "vae,gpu"])
    assert exc.value.code == 2 and "unknown stage(s) ['gpu']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.parse_args(["--repeats", "0"])
    assert compare.parse_args(["--quick", "--only", "unet"]).stages == ["unet"]
