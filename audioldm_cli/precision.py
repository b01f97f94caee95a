"""Inference speed options: `--dtype` (the UNet under autocast) and `--compile` (torch.compile of the UNet).

Only the UNet runs in reduced precision. It is called `steps` times per clip (twice the batch with
guidance), the text encoder, VAE decoder and vocoder once, so that is where the time goes:

    text encoder (fp32) -> [autocast fp16|bf16: UNet] -> output cast to fp32 -> sampler update (fp32)
                        -> latent (fp32) -> VAE decode (fp32) -> vocoder (fp32)

`torch.autocast` runs matmuls and convolutions in the low dtype and keeps reductions (norms, softmax)
in fp32; the weights themselves stay fp32, so one loaded pipeline serves every `--dtype`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import torch
from torch import nn

from .errors import AudioLDMError, UsageError
from .runtime import resolve_device

logger = logging.getLogger(__name__)

DTYPES = ("auto", "fp32", "fp16", "bf16")
_LOW = {"fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_dtype(name: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of `--dtype name` on `device`; None means plain fp32 (no autocast).

    "auto" is bf16 on a CUDA GPU with native bfloat16 (Ampere and newer), fp16 on older GPUs, and
    fp32 elsewhere (CPU, MPS), where reduced precision seldom pays. An explicit fp16/bf16 that
    torch's autocast cannot do on this device is a UsageError rather than a silent fp32 run.
    """
    if not isinstance(name, str) or name.strip().lower() not in DTYPES:
        raise UsageError(f"choose one of {', '.join(DTYPES)}", dtype=name)
    name, device = name.strip().lower(), resolve_device(device)
    if name == "fp32":
        return None
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if _cuda_native_bf16() else torch.float16
    dtype = _LOW[name]
    if not _autocast_supports(device.type, dtype):
        raise UsageError(
            f"torch {torch.__version__} cannot autocast to it on {device.type}; use fp32", dtype=name
        )
    if device.type == "cuda" and dtype is torch.bfloat16 and not _cuda_native_bf16():
        logger.warning(
            "dtype bf16: this GPU has no native bfloat16, it is emulated (slow); fp16 may be faster"
        )
    return dtype


def autocast(device: str | torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """`torch.autocast` to `dtype` on `device`'s type, or a no-op for None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _autocast_supports(device_type: str, dtype: torch.dtype) -> bool:
    """Probe torch: entering autocast with a dtype it cannot do on `device_type` warns and disables it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autocast(device_type=device_type, dtype=dtype):
                pass
        except (RuntimeError, ValueError):  # device type without autocast
            return False
    return not any("disabl" in str(w.message).lower() for w in caught)


def _cuda_native_bf16() -> bool:
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no including_emulation (and then reports native support only)
        return torch.cuda.is_bf16_supported()


# ----------------------------------------------------------------------------------------------
# torch.compile


def check_compile_available() -> None:
    """Fail early, with the reason, where torch.compile cannot work (e.g. an unsupported Python)."""
    supported = getattr(getattr(torch, "_dynamo", None), "is_dynamo_supported", None)
    if not hasattr(torch, "compile") or supported is None:
        raise UsageError(
            f"torch {torch.__version__} has no torch.compile; run without compiling", compile=True
        )
    if not supported():
        raise UsageError(
            "torch.compile does not support this Python version; run without compiling", compile=True
        )


def check_compile(value) -> bool | str:
    """A `compile=` argument, checked before any work: False, True (inductor) or the name of a
    torch.compile backend this torch has (a UsageError otherwise)."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value:
        raise UsageError("expected True, False or a torch.compile backend name", compile=value)
    check_compile_available()
    from torch._dynamo import list_backends

    if value not in list_backends(exclude_tags=()):
        try:  # older torch lists only its own backends; lookup also finds those of installed plugins
            from torch._dynamo.backends.registry import lookup_backend

            lookup_backend(value)
        except (RuntimeError, ImportError, KeyError):  # InvalidBackend is a RuntimeError
            usual = ", ".join(list_backends())  # without the debugging and experimental ones
            raise UsageError(
                f"unknown torch.compile backend; choose True or one of {usual}", compile=value
            ) from None
    return value


def compile_module(module: nn.Module, backend: str = "inductor") -> nn.Module:
    """torch.compile(module, backend=backend) (lazy: the work happens at the first call)."""
    check_compile_available()
    try:
        return torch.compile(module, backend=backend)
    except (RuntimeError, ImportError) as e:  # unknown backend, missing dependency
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(  # compile=True stands for inductor (the CLI's bare --compile)
            f"torch.compile is unavailable here ({reason}); run without compiling",
            compile=True if backend == "inductor" else backend,
        ) from None


def compile_failure_types() -> tuple[type[Exception], ...]:
    """The exceptions a compiled module raises when compiling itself fails (no C++ compiler, ...)."""
    try:
        from torch._dynamo.exc import BackendCompilerFailed
    except ImportError:
        return ()
    return (BackendCompilerFailed,)


def compile_failure(error: Exception, compile: bool | str = True) -> AudioLDMError:
    """A one-line error for a failed compilation (of `compile=`'s value), naming the backend's own error."""
    cause = getattr(error, "inner_exception", None) or error
    lines = str(cause).strip().splitlines()
    reason = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    return AudioLDMError(f"compiling the UNet failed ({reason}); run without compiling", compile=compile)


__all__ = [
    "DTYPES",
    "autocast",
    "autocast_dtype",
    "check_compile",
    "check_compile_available",
    "compile_module",
]
