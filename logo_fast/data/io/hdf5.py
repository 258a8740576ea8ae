"""Native HDF5 files: chunk layout, compression, the whole-dataset writer and the reader.

Layout (``.h5``/``.hdf5``/``.hdf``), format version ``FORMAT_VERSION``::

    /                      attrs: format="logo_fast.dataset", format_version=1,
                                  spec=<DatasetSpec JSON>, metadata=<metadata JSON>
    /obs /state /actions /rewards /terminals /truncations [/avail_actions] [/agent_rewards]
                           (T, ...) datasets, chunked along T (~1 MiB chunks), compressed
    [/final_obs /final_state /final_avail]   (E, ...) datasets, chunked along E
    [/action_low /action_high]               (N, act_dim), continuous only
    [/extra/<name>]                          (T, ...) extra per-step arrays (``save(extras=...)``)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...files import metadata_to_json
from ..schema import DatasetSpec, OfflineDataset
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
from .lazy import read_all

_H5_CHUNK_BYTES = 1 << 20


def h5_chunks(row_shape: tuple[int, ...], dtype: np.dtype, n_rows: int = 0) -> tuple[int, ...]:
    """~1 MiB chunks along the row axis (no taller than a known, smaller ``n_rows``)."""
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    rows = max(1, _H5_CHUNK_BYTES // row_bytes)
    return (min(rows, n_rows) if n_rows > 0 else rows, *row_shape)


def compression_kwargs(compression: str | None) -> dict[str, Any]:
    """h5py ``create_dataset`` options for "gzip" (level 4 + shuffle), "lzf" or None/"none"."""
    if compression is None or compression == "none":
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"compression must be 'gzip', 'lzf' or None, got {compression!r}")


def create_rows_dataset(h5, name: str, n_rows: int, row_shape: tuple[int, ...], dtype, compression: str | None):
    """A (n_rows, *row_shape) dataset, chunked and resizable along its first axis."""
    return h5.create_dataset(
        name,
        shape=(n_rows, *row_shape),
        maxshape=(None, *row_shape),
        dtype=dtype,
        chunks=h5_chunks(row_shape, dtype, n_rows),
        **compression_kwargs(compression),
    )


def write_header(h5, spec: DatasetSpec, metadata: Mapping[str, Any]) -> None:
    h5.attrs["format"] = FORMAT_NAME
    h5.attrs["format_version"] = FORMAT_VERSION
    h5.attrs["spec"] = spec_to_json(spec)
    h5.attrs["metadata"] = metadata_to_json(metadata)


def write_hdf5(ds: OfflineDataset, tmp: Path, compression: str | None, extras: Mapping[str, np.ndarray]) -> None:
    """Write every array of ``ds`` (and ``extras``) to a new file ``tmp``, 64 MiB at a time."""
    with h5py.File(tmp, "w") as h5:
        write_header(h5, ds.spec, ds.metadata)
        arrays = dict(ds.arrays())
        arrays.update({f"extra/{name}": a for name, a in extras.items()})
        for name, a in arrays.items():
            if name in STATIC_ARRAYS:
                h5.create_dataset(name, data=np.asarray(a))
                continue
            rows = a.shape[0]
            dset = create_rows_dataset(h5, name, rows, tuple(a.shape[1:]), a.dtype, compression)
            step = max(dset.chunks[0], (64 << 20) // max(1, dset.dtype.itemsize * int(np.prod(a.shape[1:]))))
            for start in range(0, rows, step):
                dset[start : start + step] = np.asarray(a[start : start + step])


def read_hdf5(path: Path, lazy: bool) -> OfflineDataset:
    """Read a native HDF5 dataset; ValueError naming the file and the field for anything damaged or missing."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"load: {path} is not a readable HDF5 file ({err})") from err
    try:
        if h5.attrs.get("format") != FORMAT_NAME:
            raise ValueError(f"load: {path} is not a logo_fast HDF5 dataset")
        check_version(h5.attrs.get("format_version"), path)
        spec, metadata = parse_header(h5.attrs.get("spec"), h5.attrs.get("metadata"), path)
        missing = [name for name in REQUIRED_ARRAYS if name not in h5]
        if missing:
            raise ValueError(f"load: {path}: required dataset(s) {missing} missing")
        fields: dict[str, Any] = {}
        for name in (*STEP_ARRAYS, *FINAL_ARRAYS, *STATIC_ARRAYS):
            if name not in h5:
                continue
            d = h5[name]
            if not isinstance(d, h5py.Dataset):
                raise ValueError(f"load: {path}: {name!r} is an HDF5 {type(d).__name__}, not a dataset")
            fields[name] = d if lazy and name not in STATIC_ARRAYS else read_all(name, d)
        ds = OfflineDataset(spec=spec, metadata=metadata, **fields)
    except BaseException:
        h5.close()
        raise
    if not lazy:
        h5.close()
    return ds


def read_hdf5_extras(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as h5:
        if "extra" not in h5:
            return {}
        return {name: read_all(f"extra/{name}", h5["extra"][name]) for name in h5["extra"]}
