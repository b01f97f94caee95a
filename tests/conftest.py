"""Shared test fixtures: reference data location, offline mode, deterministic CPU threads."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

# Before torch loads OpenMP: idle threads sleep instead of spinning, which matters on 2 shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
# The reference outputs live in ../shared/fixtures beside the clone; AUDIOLDM_FIXTURES overrides.
FIXTURES = Path(os.environ.get("AUDIOLDM_FIXTURES", REPO.parent / "shared" / "fixtures"))


class NetworkAccessError(RuntimeError):
    """Raised by the test-suite guard when code tries to reach a non-loopback address."""


def _is_local(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already be network access


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self, address):
    if not _is_local(address):
        raise NetworkAccessError(f"test tried to open a network connection to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_local(address):
        raise NetworkAccessError(f"test tried to open a network connection to {address!r}")
    return _real_connect_ex(self, address)


_real_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_local((name, 0)):
        raise NetworkAccessError(f"test tried to resolve the host name {name!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


# No network at run time: every test runs with non-loopback connections and name lookups refused.
# Installed once, even when this file is imported a second time as `tests.conftest`.
if not getattr(socket, "_audioldm_network_guard", False):
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.getaddrinfo = _guarded_getaddrinfo
    socket._audioldm_network_guard = True


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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random model folder (VAE, UNet, vocoder; MiniLM text encoder), built once per session."""
    from audioldm_cli.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_model") / "model")


def read_key_list(path: Path) -> dict[str, tuple[int, ...]]:
    """Parse a `name<TAB>shape` key list from fixtures/audioldm/keys/."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        name, _, shape = line.partition("\t")
        out[name] = tuple(int(s) for s in shape.split(",") if s.strip())
    return out
