"""The one ``load``/``save`` entry point for every format: detection, reader table, atomic save."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...files import atomic_path, metadata_to_json
from ..formats import READERS, is_omar, is_omiga, is_vault
from ..schema import OfflineDataset
from ..validate import format_problems, validate_dataset
from . import hdf5, npz
from .layout import FORMAT_NAME, FORMATS, HDF5_SUFFIXES


def save(
    ds: OfflineDataset,
    path: str | os.PathLike,
    *,
    compression: str | None = "gzip",
    validate: bool = True,
    extras: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write ``ds`` to ``path`` atomically; the suffix picks the format (.h5/.hdf5/.hdf: HDF5, .npz: npz).

    Validates first (``validate=False`` skips it). ``compression`` (HDF5 only): "gzip" (default,
    level 4 + shuffle), "lzf" or None. Works for lazily loaded (h5py-backed) datasets too: HDF5
    output is copied in chunks. ``extras``: additional per-step arrays (T, ...) stored beside
    the dataset (HDF5 group ``/extra``, npz keys ``extra/<name>``), read back by
    ``load_extras``; ``export_augmented`` keeps ``u`` and ``synthetic`` there. Returns the path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*HDF5_SUFFIXES, ".npz"):
        raise ValueError(
            f"save: unknown file type {path.suffix!r} for {path}; use .h5/.hdf5/.hdf (HDF5) or .npz "
            "(export_augmented writes OG-MARL vaults)"
        )
    if validate:
        validate_dataset(ds)
    metadata_json = metadata_to_json(ds.metadata)  # fail before touching the disk
    hdf5.compression_kwargs(compression)
    extras = {name: np.asarray(a) for name, a in (extras or {}).items()}
    bad = [
        f"extras[{n!r}]: expected {len(ds)} rows, got shape {a.shape}"
        for n, a in extras.items()
        if a.shape[:1] != (len(ds),)
    ]
    bad += [f"extras[{n!r}]: name must be a plain identifier" for n in extras if not n.isidentifier()]
    if bad:
        raise ValueError(format_problems(bad, "extras"))
    with atomic_path(path, suffix) as tmp:
        if suffix == ".npz":
            npz.write_npz(ds, tmp, metadata_json, extras)
        else:
            hdf5.write_hdf5(ds, tmp, compression, extras)
    return path


def detect_format(path: str | os.PathLike) -> str:
    """Which reader handles ``path``: one of ``FORMATS``. Raises ValueError saying what was looked for."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"load: {path} does not exist")
    if path.is_dir():
        if is_vault(path):
            return "vault"
        if is_omar(path):
            return "omar"
        raise ValueError(
            f"load: directory {path} is neither an OG-MARL vault (metadata.json + OCDBT store, possibly one "
            "uid level down) nor an OMAR-style directory (obs_0.npy/acs_0.npy/rews_0.npy/dones_0.npy or agent_0.npz)"
        )
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        try:
            h5 = h5py.File(path, "r")
        except OSError as err:
            raise ValueError(f"load: {path} is not a readable HDF5 file ({err})") from err
        with h5:
            if h5.attrs.get("format") == FORMAT_NAME:
                return "hdf5"
            if is_omiga(h5):
                return "omiga"
            keys = sorted(h5.keys())
        raise ValueError(
            f"load: {path} is neither a logo_fast HDF5 file (attribute format={FORMAT_NAME!r}) nor an "
            f"OMIGA-style file (datasets s, o, a, r, d); it holds {keys}"
        )
    if suffix == ".npz":
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"load: {path} is not a readable .npz file ({err})") from err
        with z:
            if "__spec__" in z.files:
                return "npz"
        raise ValueError(f"load: {path} is an .npz without __spec__, not a logo_fast npz dataset")
    if path.name == "metadata.json" and is_vault(path.parent):
        return "vault"
    raise ValueError(f"load: cannot tell the format of {path} (suffix {path.suffix!r}); supported: {FORMATS}")


def load(
    path: str | os.PathLike,
    lazy: bool = False,
    *,
    validate: bool = True,
    format: str | None = None,
    **reader_options: Any,
) -> OfflineDataset:
    """Read a dataset in any supported format and validate it (``validate=False`` skips that).

    path:            a file (.h5/.hdf5/.hdf native or OMIGA-style, .npz native) or a directory
                     (OG-MARL vault, OMAR-style per-agent numpy files)
    lazy:            native HDF5 only: arrays stay on disk as h5py datasets (see ``logo_fast.data.io.lazy``);
                     ignored for other formats (they are read into memory)
    format:          force a reader instead of detecting it: one of ``FORMATS``
    reader_options:  passed to the format's reader (e.g. ``env=...`` or ``n_actions=...``;
                     see ``logo_fast.data.formats``)

    A missing, unreadable or invalid file raises one ValueError that names the file (and the field).
    """
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"load: unknown format {fmt!r}; supported: {FORMATS}")
    if fmt in ("hdf5", "npz") and reader_options:
        raise ValueError(f"load: native {fmt} files take no reader options, got {sorted(reader_options)}")
    if fmt == "hdf5":
        ds = hdf5.read_hdf5(path, lazy)
    elif fmt == "npz":
        ds = npz.read_npz(path)
    else:
        ds = READERS[fmt](path, **reader_options)
    if validate:
        validate_dataset(ds)
    return ds


def load_extras(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The extra per-step arrays saved with ``save(..., extras=...)`` in a native HDF5/npz file ({} if none)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return npz.read_npz_extras(path)
    return hdf5.read_hdf5_extras(path)
