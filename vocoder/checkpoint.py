"""The on-disk component format shared by `vocoder` and `audioldm_cli`, plus safe loading helpers.

A component is a folder holding

    config.json         {"_class_name": ..., "format_version": 1, "config": {...constructor keys...}}
    model.safetensors   the state_dict (never a pickle)

Everything here raises `CheckpointError` with a one-line, human-readable message on bad input.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path`, on error delete it.

    Readers never see a half-written file, and a crash leaves any previous `path` intact.
    `suffix` defaults to the target's own suffix so that format-by-extension writers still work.
    The file gets the permissions an ordinary write would give it: those of the file it replaces, or
    0o666 less the umask for a new one (not mkstemp's private 0o600).
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_component(
    folder: str | os.PathLike,
    class_name: str,
    config: Mapping,
    state_dict: Mapping[str, torch.Tensor],
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `config.json` + `model.safetensors` into `folder` (created if needed), each atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, value in state_dict.items():
        value = value.detach().to("cpu")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[name] = value.contiguous()
    meta = {"_class_name": class_name, "format_version": FORMAT_VERSION, "config": dict(config)}
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"_class_name": class_name})
    with atomic_path(folder / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def read_folder_json(
    folder: str | os.PathLike, name: str, error: type[Exception] | None = None
) -> tuple[Path, object]:
    """Return (path, parsed JSON) of `folder/name`, with one-line errors for a missing folder or file and bad JSON.

    `error` is the exception class to raise (default `CheckpointError`).
    """
    error = error or CheckpointError
    folder = Path(folder)
    if not folder.exists():
        raise error(f"model folder not found: {folder}")
    if not folder.is_dir():
        raise error(f"expected a model folder, got a file: {folder}")
    path = folder / name
    if not path.is_file():
        if name != CONFIG_NAME and (folder / CONFIG_NAME).is_file():  # a component where a model was asked
            raise error(
                f"{folder} is not a model folder ({name} is missing) but a single component, e.g. the "
                "export of `train vocoder` (use it as --vocoder, or --init-from of a vocoder run)"
            )
        raise error(f"{folder} is not a model folder: {name} is missing")
    try:
        return path, json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path} is not valid JSON: {e}") from None


def read_config(folder: str | os.PathLike, expected_class: str | None = None) -> dict:
    """Return the constructor config stored in `folder/config.json`."""
    path, meta = read_folder_json(folder, CONFIG_NAME)
    folder = Path(folder)
    if not isinstance(meta, dict) or "config" not in meta or "_class_name" not in meta:
        raise CheckpointError(f"{path} lacks '_class_name'/'config': not an audioldm-cli component")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(
            f"{path}: format_version {version!r} must be an integer (this version writes 1)"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version}; this audioldm-cli reads up to {FORMAT_VERSION}: upgrade it"
        )
    if expected_class is not None and meta["_class_name"] != expected_class:
        raise CheckpointError(f"{folder} holds a {meta['_class_name']}, expected a {expected_class}")
    return meta["config"]


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file with a one-line error for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path} (truncated or not a safetensors file): {e}") from None


def read_component(folder: str | os.PathLike, expected_class: str | None = None) -> tuple[dict, dict]:
    """Return (config, state_dict) of a component folder."""
    config = read_config(folder, expected_class)
    return config, read_safetensors(Path(folder) / WEIGHTS_NAME)


def torch_load_safe(path: str | os.PathLike) -> dict:
    """`torch.load` restricted to tensors and plain containers (`weights_only=True`).

    A pickle that would run code, a truncated file or a non-checkpoint file is refused with a
    one-line `CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols it may not read; the error says it
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickling_reason(e)
        if reason.startswith("Unsupported operand"):
            with open(path, "rb") as fh:
                head = fh.read(2)
            if head[:1] == b"\x80":  # a pickle's PROTO opcode: a raw pickle, not torch.save's zip file
                protocol = head[1] if len(head) > 1 else "?"
                raise CheckpointError(
                    f"refusing to load {path}: a raw pickle (protocol {protocol}) that the "
                    f"weights-only loader cannot read ({reason}); re-save a checkpoint you trust with torch.save"
                ) from None
            raise CheckpointError(  # bytes that are no pickle at all (text, audio, ...)
                f"cannot read {path} (truncated or not a PyTorch checkpoint): {reason}"
            ) from None
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain weights file ({reason[:200]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as e:
        # KeyError / IndexError: text or other bytes read as pickle opcodes (e.g. KeyError: 101 for 'e')
        raise CheckpointError(f"cannot read {path} (truncated or not a PyTorch checkpoint): {e!r}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a dict of weights (got {type(obj).__name__})")
    return obj


def _unpickling_reason(e: Exception) -> str:
    """What torch's weights-only unpickler refused (e.g. "Unsupported global: GLOBAL posix.system ..."),
    without the paragraphs about its `weights_only` default around it."""
    text = str(e)
    _, marker, after = text.partition("WeightsUnpickler error:")
    for line in (after if marker else text).splitlines():
        line = line.strip()
        if "unsupported" in line.lower():
            return line.split(". ")[0].rstrip(".")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "unsupported content"


def _summarise(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def load_state_dict_strict(
    module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, hint: str = ""
) -> None:
    """`module.load_state_dict(strict=True)` with one clear error naming what does not fit.

    Float tensors are cast to the module's dtype (so fp16-stored weights load into fp32 models).
    """
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"cannot load {source}: {len(bad)} entries are not named tensors (e.g. {bad[0]!r}): "
            "not a weights file"
        )
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_summarise(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_summarise(unexpected)}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (file vs model): {_summarise(wrong, 3)}")
        msg = f"{source} does not fit {type(module).__name__}: " + "; ".join(parts)
        raise CheckpointError(msg + (f". {hint}" if hint else ""))
    cast = {
        k: (v.to(own[k].dtype) if v.is_floating_point() and own[k].is_floating_point() else v)
        for k, v in state_dict.items()
    }
    module.load_state_dict(cast, strict=True)
