"""Shared test fixtures: reference data location, offline mode, deterministic CPU threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
# The reference outputs live in ../shared/fixtures beside the clone; AUDIOLDM_FIXTURES overrides.
FIXTURES = Path(os.environ.get("AUDIOLDM_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not (FIXTURES / "audioldm").is_dir():
        pytest.fail(f"reference fixtures not found at {FIXTURES}; set AUDIOLDM_FIXTURES to the fixtures folder")
    return FIXTURES


@pytest.fixture(scope="session")
def oracle(fixtures_dir):
    """Load `fixtures/audioldm/oracle/NAME.safetensors` split into (state_dict, tensors by '__' prefix)."""
    from safetensors.torch import load_file

    def load(name: str) -> tuple[dict, dict]:
        t = load_file(str(fixtures_dir / "audioldm" / "oracle" / f"{name}.safetensors"))
        state = {k: v for k, v in t.items() if not k.startswith("__")}
        extra = {k: v for k, v in t.items() if k.startswith("__")}
        return state, extra

    return load


def read_key_list(path: Path) -> dict[str, tuple[int, ...]]:
    """Parse a `name<TAB>shape` key list from fixtures/audioldm/keys/."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        name, _, shape = line.partition("\t")
        out[name] = tuple(int(s) for s in shape.split(",") if s.strip())
    return out
