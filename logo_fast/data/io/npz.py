"""Native ``.npz`` files: the same arrays by name plus the header as 0-d string arrays.

``__format__``, ``__format_version__``, ``__spec__`` and ``__metadata__`` are 0-d string
arrays, so the file loads with ``allow_pickle=False``; extra per-step arrays are stored as
``extra/<name>``. For small data only: it is read whole into memory.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..schema import OfflineDataset
from .layout import (
    FINAL_ARRAYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    REQUIRED_ARRAYS,
    STATIC_ARRAYS,
    STEP_ARRAYS,
    check_version,
    parse_header,
    spec_to_json,
)

_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def write_npz(ds: OfflineDataset, tmp: Path, metadata_json: str, extras: Mapping[str, np.ndarray]) -> None:
    arrays = {name: np.asarray(a) for name, a in ds.arrays().items()}
    arrays.update({f"extra/{name}": a for name, a in extras.items()})
    arrays["__format__"] = np.array(FORMAT_NAME)
    arrays["__format_version__"] = np.array(FORMAT_VERSION)
    arrays["__spec__"] = np.array(spec_to_json(ds.spec))
    arrays["__metadata__"] = np.array(metadata_json)
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def _member(z, name: str, path: Path) -> np.ndarray:
    try:
        return z[name]
    except _READ_ERRORS as err:
        raise ValueError(f"load: {path}: array {name!r} cannot be read ({err})") from err


def read_npz(path: Path) -> OfflineDataset:
    """Read a native npz dataset; ValueError naming the file and the field for anything damaged or missing."""
    try:
        z = np.load(path, allow_pickle=False)
    except _READ_ERRORS as err:
        raise ValueError(f"load: {path} is not a readable .npz file ({err})") from err
    with z:
        header = [k for k in ("__format__", "__format_version__", "__spec__", "__metadata__") if k not in z.files]
        if header:
            raise ValueError(f"load: {path}: header entries {header} missing (not a logo_fast npz dataset?)")
        if str(_member(z, "__format__", path)) != FORMAT_NAME:
            raise ValueError(f"load: {path} is not a logo_fast npz dataset")
        check_version(_member(z, "__format_version__", path).item(), path)
        spec, metadata = parse_header(str(_member(z, "__spec__", path)), str(_member(z, "__metadata__", path)), path)
        missing = [name for name in REQUIRED_ARRAYS if name not in z.files]
        if missing:
            raise ValueError(f"load: {path}: required array(s) {missing} missing")
        fields = {
            name: _member(z, name, path) for name in (*STEP_ARRAYS, *FINAL_ARRAYS, *STATIC_ARRAYS) if name in z.files
        }
    return OfflineDataset(spec=spec, metadata=metadata, **fields)


def read_npz_extras(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k.removeprefix("extra/"): _member(z, k, path) for k in z.files if k.startswith("extra/")}
