"""Backend registry: what can run here, why not, and which implementation an op uses.

Backends:
  torch      the pure-PyTorch reference (logo_fast/reference); always available
  triton     the Triton kernels (logo_fast.kernels); needs Triton 3.6-3.9 and a CUDA GPU
  cuda       the CUDA path of the compiled extension; needs _C built with CUDA and a CUDA GPU
  extension  the compiled extension logo_fast._C itself (its C++ path serves CPU tensors)

``LOGO_FAST_BACKEND=auto|torch|triton|cuda`` chooses. ``auto`` picks the fastest available for the
tensor's device and logs the choice once. Triton's CPU interpreter (``TRITON_INTERPRET=1``) is
only used when ``triton`` is asked for explicitly (tests), never by ``auto``. Nothing here imports
Triton or loads the extension at ``import logo_fast`` time: the first query does.

Run ``python -m logo_fast.backend`` for a readable summary.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("logo_fast")

BACKENDS = ("torch", "triton", "cuda", "extension")
REQUESTABLE = ("auto", "torch", "triton", "cuda")
TRITON_SUPPORTED = ((3, 6), (3, 9))  # inclusive (major, minor) range


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run here; the message says why."""


def _version_tuple(v: str) -> tuple[int, int]:
    parts = v.split("+")[0].split(".")
    return int(parts[0]), int(parts[1])


@functools.cache
def extension() -> Any | None:
    """The loaded ``logo_fast._C`` module, or None (the reason is in ``backend_info()``)."""
    try:
        return importlib.import_module("logo_fast._C")
    except Exception as err:  # noqa: BLE001 - any load failure is a logged reason, never a crash
        _extension_error.append(f"{type(err).__name__}: {err}")
        log.info("logo_fast._C not loaded: %s", err)
        return None


_extension_error: list[str] = []


@functools.cache
def _cuda_device() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return False, f"no CUDA GPU (torch {torch.__version__} is a CPU build)"
        return False, "no CUDA GPU visible to torch"
    return True, torch.cuda.get_device_name(0)


@functools.cache
def _triton_status() -> tuple[bool, str, str | None]:
    """-> (importable and supported, reason or version, version)."""
    try:
        import triton
    except Exception as err:  # noqa: BLE001
        return False, f"Triton not importable ({type(err).__name__}: {err})", None
    version = getattr(triton, "__version__", "0.0")
    lo, hi = TRITON_SUPPORTED
    if not lo <= _version_tuple(version) <= hi:
        return False, f"Triton {version} outside the supported range 3.6-3.9", version
    return True, f"Triton {version}", version


def triton_interpreter() -> bool:
    """True when Triton's CPU interpreter is switched on (tests only)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def backend_info(print_summary: bool = False) -> dict[str, dict[str, Any]]:
    """What is available, and for what is not, why.

    Returns ``{backend: {"available": bool, "reason": str, ...}}`` for torch, triton, cuda and
    extension, plus ``"selected"`` (the LOGO_FAST_BACKEND request). Prints a summary when asked
    (``python -m logo_fast.backend`` does).
    """
    import torch

    info: dict[str, dict[str, Any]] = {}
    gpu_ok, gpu_text = _cuda_device()
    info["torch"] = {
        "available": True,
        "reason": f"torch {torch.__version__}" + (f", GPU: {gpu_text}" if gpu_ok else f", {gpu_text}"),
        "version": torch.__version__,
        "gpu": gpu_text if gpu_ok else None,
    }

    tri_ok, tri_text, tri_version = _triton_status()
    if tri_ok and not gpu_ok:
        why = f"{tri_text} importable, but {gpu_text}"
        if triton_interpreter():
            why += "; TRITON_INTERPRET=1 set, so kernels run on CPU when triton is requested explicitly (tests)"
        info["triton"] = {"available": False, "reason": why, "version": tri_version}
    else:
        info["triton"] = {"available": tri_ok and gpu_ok, "reason": tri_text, "version": tri_version}

    info["extension"], info["cuda"] = _extension_status()

    info["selected"] = {"available": True, "reason": requested_backend()}
    if print_summary:
        _print_summary(info)
    return info


@functools.cache
def _extension_status() -> tuple[dict[str, Any], dict[str, Any]]:
    """(extension entry, cuda entry) of ``backend_info``; cached, since ops ask on every call."""
    gpu_ok, gpu_text = _cuda_device()
    ext = extension()
    if ext is None:
        err = _extension_error[-1] if _extension_error else "unknown error"
        return ({"available": False, "reason": f"logo_fast._C failed to load: {err}"},
                {"available": False, "reason": "the extension is not loaded"})
    with_cuda = bool(ext.compiled_with_cuda())
    archs = ext.cuda_archs() if with_cuda else ""
    ext_entry = {
        "available": True,
        "reason": "loaded with its C++ CPU path" + (f" and a CUDA path (sm {archs})" if with_cuda else ""),
        "compiled_with_cuda": with_cuda,
        "cuda_archs": archs,
        "path": getattr(ext, "__file__", None),
    }
    runtime_count = int(ext.cuda_device_count()) if with_cuda else 0
    runtime_error = ext.cuda_runtime_error() if with_cuda else ""
    if not with_cuda:
        cuda = {"available": False, "reason": "extension built without CUDA (no nvcc or LOGO_FAST_CUDA=0)"}
    elif runtime_count < 1:
        # The extension links the CUDA runtime statically: it can fail (e.g. a driver older than
        # that runtime needs) where torch's own runtime works, so its own answer decides.
        why = f"CUDA compiled (sm {archs}) but the extension's CUDA runtime sees no device"
        why += f" ({runtime_error})" if runtime_error else ""
        if not gpu_ok:
            why += f"; torch: {gpu_text}"
        cuda = {"available": False, "reason": why, "runtime_error": runtime_error, "device_count": runtime_count}
    elif not gpu_ok:
        cuda = {"available": False, "reason": f"CUDA compiled (sm {archs}) but {gpu_text}",
                "runtime_error": runtime_error, "device_count": runtime_count}
    else:
        cuda = {"available": True, "reason": f"CUDA path (sm {archs}) on {gpu_text}", "runtime_error": "",
                "device_count": runtime_count}
    return ext_entry, cuda


def _print_summary(info: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="logo_fast backends", show_lines=False)
    table.add_column("backend")
    table.add_column("available")
    table.add_column("details / why not")
    for name in BACKENDS:
        entry = info[name]
        table.add_row(name, "[green]yes[/]" if entry["available"] else "[red]no[/]", entry["reason"])
    console = Console()
    console.print(table)
    console.print(f"LOGO_FAST_BACKEND={info['selected']['reason']}")


def requested_backend() -> str:
    value = os.environ.get("LOGO_FAST_BACKEND", "auto").strip().lower() or "auto"
    if value not in REQUESTABLE:
        raise ValueError(f"LOGO_FAST_BACKEND must be one of {', '.join(REQUESTABLE)}; got {value!r}")
    return value


_logged_choices: set[tuple[str, str, str]] = set()
# Successful choices by (op, device, LOGO_FAST_BACKEND value, impls): the availability facts are
# cached already, so the answer only changes with the variable; ops ask on every call.
_choice_cache: dict[tuple[Any, ...], str] = {}


def choose_backend(op: str, device: Any, impls: Sequence[str]) -> str:
    """Which implementation of ``op`` runs for tensors on ``device``.

    ``impls`` lists what the op has, from {"torch", "triton", "cuda", "extension"}. Returns one
    of them. An explicit LOGO_FAST_BACKEND that cannot serve this device raises
    BackendUnavailableError with the reason; ``auto`` falls back and logs the choice once.
    ``LOGO_FAST_BACKEND=cuda`` needs a usable CUDA path (the extension built with CUDA and its own
    runtime seeing a device): without one it raises, also for CPU tensors, which it then serves
    with the extension's C++ path (the CPU twin of the CUDA code).
    """
    env = os.environ.get("LOGO_FAST_BACKEND")
    dev_key = (device.type, device.index) if hasattr(device, "type") else str(device)
    key = (op, dev_key, env, os.environ.get("TRITON_INTERPRET"), tuple(impls))
    hit = _choice_cache.get(key)
    if hit is not None:
        return hit
    choice = _choose_backend(op, device, impls)
    _choice_cache[key] = choice
    return choice


def _choose_backend(op: str, device: Any, impls: Sequence[str]) -> str:
    import torch

    device = torch.device(device)
    on_gpu = device.type == "cuda"
    request = requested_backend()
    bad = set(impls) - set(BACKENDS)
    if bad:
        raise ValueError(f"{op}: unknown implementations {sorted(bad)}")

    def usable(name: str) -> tuple[bool, str]:
        if name not in impls:
            return False, f"{op} has no {name} implementation (it has: {', '.join(impls)})"
        if name == "torch":
            return True, ""
        if name == "extension":
            if on_gpu:
                return False, "the extension's C++ path serves CPU tensors only"
            entry = _extension_status()[0]
            return entry["available"], entry["reason"]
        if name == "cuda":
            if not on_gpu:
                return False, f"tensors are on {device}, the CUDA path needs CUDA tensors"
            entry = _extension_status()[1]
            return entry["available"], entry["reason"]
        # triton
        tri_ok, tri_text, _ = _triton_status()
        if not tri_ok:
            return False, tri_text
        if on_gpu or triton_interpreter():
            return True, ""
        return False, f"tensors are on {device}; Triton needs a CUDA GPU (TRITON_INTERPRET=1 runs it on CPU for tests)"

    if request != "auto":
        if request == "cuda" and not on_gpu:
            # The "cuda" family on CPU tensors is the extension's C++ path, but only where the
            # CUDA path itself could run: an explicit cuda request never silently means CPU.
            if "cuda" not in impls and "extension" not in impls:
                raise BackendUnavailableError(f"LOGO_FAST_BACKEND=cuda cannot run {op} on {device}: {op} has no "
                                              f"cuda implementation (it has: {', '.join(impls)})")
            entry = _extension_status()[1]
            if not entry["available"]:
                raise BackendUnavailableError(f"LOGO_FAST_BACKEND=cuda cannot run {op} on {device}: the CUDA path "
                                              f"is unavailable ({entry['reason']})")
            name = "extension"
        else:
            name = request
        ok, why = usable(name)
        if not ok:
            raise BackendUnavailableError(f"LOGO_FAST_BACKEND={request} cannot run {op} on {device}: {why}")
        choice = name
    else:
        order = ("cuda", "triton", "torch") if on_gpu else ("extension", "torch")
        choice = next(n for n in order if n == "torch" or usable(n)[0])
        if choice == "torch" and "torch" not in impls:
            raise BackendUnavailableError(f"no implementation of {op} can run on {device}")
    key = (op, device.type, choice)
    if key not in _logged_choices:
        _logged_choices.add(key)
        log.info("logo_fast: %s on %s uses the %s backend (LOGO_FAST_BACKEND=%s)", op, device.type, choice, request)
    return choice


@dataclass
class BackendArgs:
    """Print which backends are available here and, for each that is not, why."""

    json: bool = False
    """print the dict as JSON instead of a table"""


def run_backend(args: BackendArgs) -> int:
    info = backend_info(print_summary=not args.json)
    if args.json:
        import json

        print(json.dumps(info, indent=1, default=str))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run_backend(BackendArgs())
