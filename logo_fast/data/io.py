"""Native dataset files (HDF5, npz) and the one ``load``/``save`` entry point for every format.

Native HDF5 layout (``.h5``/``.hdf5``/``.hdf``), format version ``FORMAT_VERSION``::

    /                      attrs: format="logo_fast.dataset", format_version=1,
                                  spec=<DatasetSpec JSON>, metadata=<metadata JSON>
    /obs /state /actions /rewards /terminals /truncations [/avail_actions] [/agent_rewards]
                           (T, ...) datasets, chunked along T (~1 MiB chunks), compressed
    [/final_obs /final_state /final_avail]   (E, ...) datasets, chunked along E
    [/action_low /action_high]               (N, act_dim), continuous only

Every array keeps its dtype, so ``save`` then ``load`` round-trips exactly. Native ``.npz``
holds the same arrays by name plus ``__format__``, ``__format_version__``, ``__spec__`` and
``__metadata__`` as 0-d string arrays (loadable with ``allow_pickle=False``); use it for small
data only (it is read whole into memory).

Metadata must be JSON-serialisable: numpy scalars and arrays are stored as numbers and
lists, tuples come back as lists.

Lazy loading (``load(path, lazy=True)``, native HDF5 only): every (T, ...) and (E, ...)
array of the returned dataset is an ``h5py.Dataset`` (the file stays open while they are
referenced; ``ds.obs.file.close()`` closes it). What works lazily: ``len(ds)``, ``.shape``,
``.dtype``, slicing with ranges (``ds.obs[a:b]``) and with sorted, duplicate-free integer
index arrays, ``validate_dataset`` (chunked), ``episode_bounds``/``episode_returns``/
``n_episodes`` (they read only the flags or rewards), and ``run_info``. What does not:
arbitrary fancy indexing (unsorted or repeated indices, which ``next_fields`` and
``select_episodes`` use) and in-place edits; call ``materialize(ds)`` first for those.
``action_low``/``action_high`` are always loaded into memory. For other formats ``lazy``
is ignored (they are read into memory).

Writes are atomic: data goes to a temp file in the destination directory and is moved over
``path`` with ``os.replace`` only once complete; on any error the temp file is removed and
an existing file at ``path`` is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .schema import DatasetSpec, OfflineDataset
from .validate import (
    ChunkChecker,
    _shape_problems,
    expected_shapes,
    format_problems,
    validate_dataset,
)

FORMAT_NAME = "logo_fast.dataset"
FORMAT_VERSION = 1
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
STEP_ARRAYS = ("obs", "state", "actions", "rewards", "terminals", "truncations", "avail_actions", "agent_rewards")
FINAL_ARRAYS = ("final_obs", "final_state", "final_avail")
STATIC_ARRAYS = ("action_low", "action_high")
FORMATS = ("hdf5", "npz", "omiga", "vault", "omar")
_H5_CHUNK_BYTES = 1 << 20


# ---- helpers shared by the writers ------------------------------------------------------
def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def metadata_to_json(metadata: Mapping[str, Any]) -> str:
    """JSON text for ``metadata``; raises ValueError naming the problem when it cannot be stored."""
    try:
        return json.dumps(dict(metadata), default=_json_default, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata: cannot be stored as JSON ({err})") from err


def spec_to_json(spec: DatasetSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path``, on any error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temp directory next to ``path``; on success it becomes ``path``, on error it is removed.

    An existing directory at ``path`` is swapped out (renamed aside, the new one renamed in,
    the old one deleted), so readers see either the old or the new tree, never a partial one;
    if the swap fails the old directory is put back.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            aside = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.old"
            os.replace(path, aside)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(aside, path)
                raise
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _h5_chunks(row_shape: tuple[int, ...], dtype: np.dtype, n_rows: int = 0) -> tuple[int, ...]:
    """~1 MiB chunks along the row axis (no taller than a known, smaller ``n_rows``)."""
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    rows = max(1, _H5_CHUNK_BYTES // row_bytes)
    return (min(rows, n_rows) if n_rows > 0 else rows, *row_shape)


def _compression_kwargs(compression: str | None) -> dict[str, Any]:
    if compression is None or compression == "none":
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"compression must be 'gzip', 'lzf' or None, got {compression!r}")


def _create_rows_dataset(h5, name: str, n_rows: int, row_shape: tuple[int, ...], dtype, compression: str | None):
    """A (n_rows, *row_shape) dataset, chunked and resizable along its first axis."""
    return h5.create_dataset(
        name,
        shape=(n_rows, *row_shape),
        maxshape=(None, *row_shape),
        dtype=dtype,
        chunks=_h5_chunks(row_shape, dtype, n_rows),
        **_compression_kwargs(compression),
    )


def _write_header(h5, spec: DatasetSpec, metadata: Mapping[str, Any]) -> None:
    h5.attrs["format"] = FORMAT_NAME
    h5.attrs["format_version"] = FORMAT_VERSION
    h5.attrs["spec"] = spec_to_json(spec)
    h5.attrs["metadata"] = metadata_to_json(metadata)


# ---- save ---------------------------------------------------------------------------------
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
            _write_npz(ds, tmp, metadata_json, extras)
        else:
            _write_hdf5(ds, tmp, compression, extras)
    return path


def _write_hdf5(ds: OfflineDataset, tmp: Path, compression: str | None, extras: Mapping[str, np.ndarray]) -> None:
    import h5py

    with h5py.File(tmp, "w") as h5:
        _write_header(h5, ds.spec, ds.metadata)
        arrays = dict(ds.arrays())
        arrays.update({f"extra/{name}": a for name, a in extras.items()})
        for name, a in arrays.items():
            if name in STATIC_ARRAYS:
                h5.create_dataset(name, data=np.asarray(a))
                continue
            rows = a.shape[0]
            dset = _create_rows_dataset(h5, name, rows, tuple(a.shape[1:]), a.dtype, compression)
            step = max(dset.chunks[0], (64 << 20) // max(1, dset.dtype.itemsize * int(np.prod(a.shape[1:]))))
            for start in range(0, rows, step):
                dset[start : start + step] = np.asarray(a[start : start + step])


def _write_npz(ds: OfflineDataset, tmp: Path, metadata_json: str, extras: Mapping[str, np.ndarray]) -> None:
    arrays = {name: np.asarray(a) for name, a in ds.arrays().items()}
    arrays.update({f"extra/{name}": a for name, a in extras.items()})
    arrays["__format__"] = np.array(FORMAT_NAME)
    arrays["__format_version__"] = np.array(FORMAT_VERSION)
    arrays["__spec__"] = np.array(spec_to_json(ds.spec))
    arrays["__metadata__"] = np.array(metadata_json)
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


# ---- load ---------------------------------------------------------------------------------
def detect_format(path: str | os.PathLike) -> str:
    """Which reader handles ``path``: one of ``FORMATS``. Raises ValueError saying what was looked for."""
    from .formats import omar, omiga, vault

    path = Path(path)
    if not path.exists():
        raise ValueError(f"load: {path} does not exist")
    if path.is_dir():
        if vault.is_vault(path):
            return "vault"
        if omar.is_omar(path):
            return "omar"
        raise ValueError(
            f"load: directory {path} is neither an OG-MARL vault (metadata.json + OCDBT store, possibly one "
            "uid level down) nor an OMAR-style directory (obs_0.npy/acs_0.npy/rews_0.npy/dones_0.npy or agent_0.npz)"
        )
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        import h5py

        try:
            h5 = h5py.File(path, "r")
        except OSError as err:
            raise ValueError(f"load: {path} is not a readable HDF5 file ({err})") from err
        with h5:
            if h5.attrs.get("format") == FORMAT_NAME:
                return "hdf5"
            if omiga.is_omiga(h5):
                return "omiga"
            keys = sorted(h5.keys())
        raise ValueError(
            f"load: {path} is neither a logo_fast HDF5 file (attribute format={FORMAT_NAME!r}) nor an "
            f"OMIGA-style file (datasets s, o, a, r, d); it holds {keys}"
        )
    if suffix == ".npz":
        import zipfile

        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"load: {path} is not a readable .npz file ({err})") from err
        with z:
            if "__spec__" in z.files:
                return "npz"
        raise ValueError(f"load: {path} is an .npz without __spec__, not a logo_fast npz dataset")
    if path.name == "metadata.json" and vault.is_vault(path.parent):
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
    lazy:            native HDF5 only: arrays stay on disk as h5py datasets (see module docstring)
    format:          force a reader instead of detecting it: one of ``FORMATS``
    reader_options:  passed to the format's reader (e.g. ``env=...`` or ``n_actions=...``;
                     see ``logo_fast.data.formats``)
    """
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"load: unknown format {fmt!r}; supported: {FORMATS}")
    if fmt in ("hdf5", "npz") and reader_options:
        raise ValueError(f"load: native {fmt} files take no reader options, got {sorted(reader_options)}")
    if fmt == "hdf5":
        ds = _read_hdf5(path, lazy)
    elif fmt == "npz":
        ds = _read_npz(path)
    elif fmt == "omiga":
        from .formats.omiga import read_omiga

        ds = read_omiga(path, **reader_options)
    elif fmt == "vault":
        from .formats.vault import read_vault

        ds = read_vault(path, **reader_options)
    else:
        from .formats.omar import read_omar

        ds = read_omar(path, **reader_options)
    if validate:
        validate_dataset(ds)
    return ds


def _check_version(version: Any, path: Path) -> None:
    if version is None or int(version) > FORMAT_VERSION:
        raise ValueError(
            f"load: {path} has format_version {version!r}; this logo_fast reads versions <= {FORMAT_VERSION}"
        )


def _read_hdf5(path: Path, lazy: bool) -> OfflineDataset:
    import h5py

    h5 = h5py.File(path, "r")
    try:
        if h5.attrs.get("format") != FORMAT_NAME:
            raise ValueError(f"load: {path} is not a logo_fast HDF5 dataset")
        _check_version(h5.attrs.get("format_version"), path)
        spec = DatasetSpec.from_dict(json.loads(h5.attrs["spec"]))
        metadata = json.loads(h5.attrs["metadata"])
        fields: dict[str, Any] = {}
        for name in (*STEP_ARRAYS, *FINAL_ARRAYS, *STATIC_ARRAYS):
            if name not in h5:
                continue
            d = h5[name]
            fields[name] = d if lazy and name not in STATIC_ARRAYS else d[()]
        ds = OfflineDataset(spec=spec, metadata=metadata, **fields)
    except BaseException:
        h5.close()
        raise
    if not lazy:
        h5.close()
    return ds


def _read_npz(path: Path) -> OfflineDataset:
    with np.load(path, allow_pickle=False) as z:
        if str(z["__format__"]) != FORMAT_NAME:
            raise ValueError(f"load: {path} is not a logo_fast npz dataset")
        _check_version(int(z["__format_version__"]), path)
        spec = DatasetSpec.from_dict(json.loads(str(z["__spec__"])))
        metadata = json.loads(str(z["__metadata__"]))
        fields = {name: z[name] for name in (*STEP_ARRAYS, *FINAL_ARRAYS, *STATIC_ARRAYS) if name in z.files}
    return OfflineDataset(spec=spec, metadata=metadata, **fields)


def load_extras(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The extra per-step arrays saved with ``save(..., extras=...)`` in a native HDF5/npz file ({} if none)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k.removeprefix("extra/"): z[k] for k in z.files if k.startswith("extra/")}
    import h5py

    with h5py.File(path, "r") as h5:
        if "extra" not in h5:
            return {}
        return {name: h5["extra"][name][()] for name in h5["extra"]}


def materialize(ds: OfflineDataset) -> OfflineDataset:
    """An in-memory copy of ``ds`` (reads every h5py-backed array into numpy)."""
    fields = {name: np.asarray(a[()] if hasattr(a, "id") else a) for name, a in ds.arrays().items()}
    return OfflineDataset(spec=ds.spec, metadata=dict(ds.metadata), **fields)


# ---- streaming writer ----------------------------------------------------------------------
_FLOAT_NAMES = ("obs", "state", "rewards", "agent_rewards", "final_obs", "final_state")
_FLAG_NAMES = ("terminals", "truncations", "avail_actions", "final_avail")


class HDF5Writer:
    """Stream a dataset to a native HDF5 file, episode by episode or block by block; atomic on close.

    Usage (the collector's path to disk; nothing is held in memory beyond ``flush_steps`` rows)::

        with HDF5Writer("datasets/spread_expert.h5", spec, metadata={"quality": "expert"}) as w:
            for ep in episodes:
                w.append_episode(
                    obs=ep.obs,                # (L, N, obs_dim)   zero-padded
                    state=ep.state,            # (L, state_dim)
                    actions=ep.actions,        # (L, N) int or (L, N, act_dim) float
                    rewards=ep.rewards,        # (L,)
                    terminals=ep.terminals,    # (L,) bool: only the last step may be set
                    truncations=ep.truncs,     # (L,) bool: only the last step may be set
                    avail_actions=ep.avail,    # (L, N, n_actions) bool, discrete only (optional)
                    final_obs=ep.next_obs,     # (N, obs_dim) obs after the last step (optional)
                    final_state=ep.next_state, # (state_dim,)                          (optional)
                    final_avail=ep.next_avail, # (N, n_actions)                        (optional)
                )
        # the file appears at the path only here, complete and checked

    ``append(block)`` takes the same names with a leading row axis for a block of steps that
    may hold several episodes and may stop mid-episode (the next block continues it); its
    ``final_*`` arrays have one row per episode that ENDS inside the block. Optional fields
    (``avail_actions``, ``agent_rewards``, ``final_*``) are fixed by the first append that
    could carry them: give them always or never.

    Each append is checked before it is written (shapes against ``spec``, NaN/Inf, padding,
    action ranges and availability, terminal-and-truncated steps) and a bad one raises one
    ValueError listing its problems, leaving the file as it was. Arrays are cast to the
    schema's dtypes: float fields to float32, discrete actions to int64, continuous actions to
    float32; flags must be bool (or integers 0/1). ``close()`` checks the whole-file structure
    (at least one step, the last step ends an episode, one ``final_*`` row per episode),
    writes spec and metadata (``writer.metadata`` may be edited until then) and moves the
    temp file onto ``path``. An exception inside the ``with`` block, or ``abort()``, removes
    the temp file and leaves any existing file at ``path`` untouched.

    path:           destination (.h5/.hdf5/.hdf)
    spec:           the task's DatasetSpec
    metadata:       JSON-serialisable dict stored with the data
    action_low/high: (N, act_dim) bounds, required for continuous tasks
    compression:    "gzip" (default), "lzf" or None
    flush_steps:    rows buffered in memory before a write (default: about 32 MiB of obs)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        spec: DatasetSpec,
        *,
        metadata: Mapping[str, Any] | None = None,
        action_low: np.ndarray | None = None,
        action_high: np.ndarray | None = None,
        compression: str | None = "gzip",
        flush_steps: int | None = None,
    ):
        import h5py

        self.path = Path(path)
        if self.path.suffix.lower() not in HDF5_SUFFIXES:
            raise ValueError(f"HDF5Writer: {self.path} must end in one of {HDF5_SUFFIXES}")
        self.spec = spec
        self.metadata: dict[str, Any] = dict(metadata or {})
        metadata_to_json(self.metadata)
        self.compression = compression
        _compression_kwargs(compression)
        self._want = expected_shapes(spec)
        problems = []
        bounds = {}
        for name, value in (("action_low", action_low), ("action_high", action_high)):
            if spec.discrete:
                if value is not None:
                    problems.append(f"{name}: given for a discrete task (continuous only)")
                continue
            if value is None:
                problems.append(f"{name}: missing (continuous tasks need action bounds)")
                continue
            value = np.asarray(value, dtype=np.float32)
            problems += _shape_problems(name, value.shape, self._want[name], None)
            bounds[name] = value
        if not problems and bounds:
            from .validate import bounds_problems

            problems += bounds_problems(spec, bounds["action_low"], bounds["action_high"])
        if problems:
            raise ValueError(format_problems(problems, "HDF5Writer arguments"))
        self._bounds = bounds
        row_bytes = 4 * spec.n_agents * spec.obs_dim
        self.flush_steps = int(flush_steps or max(1024, (32 << 20) // row_bytes))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:12]}.tmp{self.path.suffix}"
        self._h5 = h5py.File(self._tmp, "w")
        self._step_names: tuple[str, ...] | None = None
        self._final_names: tuple[str, ...] | None = None
        self._pending: dict[str, list[np.ndarray]] = {}
        self._pending_steps = 0
        self._n_steps = 0
        self._n_episodes = 0
        self._last_ended = True
        self._closed = False

    # -- sizes --
    @property
    def n_steps(self) -> int:
        """Steps accepted so far (written or buffered)."""
        return self._n_steps

    @property
    def n_episodes(self) -> int:
        """Episodes completed so far."""
        return self._n_episodes

    # -- appends --
    def append_episode(self, **fields: np.ndarray) -> None:
        """Append one whole episode: step fields (L, ...), ``final_*`` without the episode axis."""
        problems = []
        for name in ("terminals", "truncations"):
            if name not in fields:
                problems.append(f"{name}: missing (required)")
        if not problems:
            ends = np.asarray(fields["terminals"]).astype(bool) | np.asarray(fields["truncations"]).astype(bool)
            if ends.ndim != 1 or len(ends) == 0:
                problems.append(f"terminals: expected shape (L,) with L >= 1, got {ends.shape}")
            elif not ends[-1] or ends[:-1].any():
                problems.append(
                    "terminals/truncations: an episode must end exactly at its last step "
                    f"(ends at steps {np.flatnonzero(ends).tolist()} of {len(ends)})"
                )
        if problems:
            raise ValueError(format_problems(problems, "episode"))
        block = dict(fields)
        for name in FINAL_ARRAYS:
            if block.get(name) is not None and name in self._want:
                a = np.asarray(block[name])
                one_row = len(self._want[name]) - 1
                block[name] = a[None] if a.ndim == one_row else a
        self.append(block)

    def append(self, block: Mapping[str, np.ndarray]) -> None:
        """Append a block of steps (L, ...) with ``final_*`` rows for the episodes ending in it."""
        if self._closed:
            raise ValueError("HDF5Writer: append after close/abort")
        block = {k: v for k, v in block.items() if v is not None}
        problems: list[str] = []
        unknown = set(block) - set(STEP_ARRAYS) - set(FINAL_ARRAYS)
        if unknown:
            problems.append(f"{sorted(unknown)}: unknown field names (expected {STEP_ARRAYS + FINAL_ARRAYS})")
        arrays: dict[str, np.ndarray] = {}
        for name, value in block.items():
            if name in unknown:
                continue
            if name not in self._want:
                problems.append(f"{name}: not a field of a {self.spec.action_type} task")
                continue
            cast, issue = self._cast(name, np.asarray(value))
            if issue:
                problems.append(issue)
            else:
                arrays[name] = cast
        step_arrays = {k: v for k, v in arrays.items() if k in STEP_ARRAYS}
        final_arrays = {k: v for k, v in arrays.items() if k in FINAL_ARRAYS}
        for name in ("obs", "state", "actions", "rewards", "terminals", "truncations"):
            if name not in block:
                problems.append(f"{name}: missing (required)")
        L = int(np.shape(block["rewards"])[0]) if "rewards" in block and np.ndim(block["rewards"]) >= 1 else None
        if L == 0:
            problems.append("rewards: empty block (0 steps)")
        step_names = tuple(sorted(step_arrays))
        if self._step_names is not None and not problems and step_names != self._step_names:
            problems.append(f"fields {step_names} differ from the first append's {self._step_names}")
        for name, a in step_arrays.items():
            problems += _shape_problems(name, a.shape, self._want[name], L)
        k = 0
        final_names = tuple(sorted(final_arrays))
        if not problems:
            ends = step_arrays["terminals"] | step_arrays["truncations"]
            k = int(ends.sum())
            if k > 0 and self._final_names is not None and final_names != self._final_names:
                problems.append(f"final fields {final_names} differ from the first episode end's {self._final_names}")
            for name, a in final_arrays.items():
                problems += _shape_problems(name, a.shape, self._want[name], k)
            if "final_obs" in final_arrays and "final_state" not in final_arrays:
                problems.append("final_obs/final_state: give both or neither")
            if "final_avail" in final_arrays and "final_obs" not in final_arrays:
                problems.append("final_avail: given without final_obs/final_state")
        if not problems:
            checker = ChunkChecker(self.spec, self._bounds.get("action_low"), self._bounds.get("action_high"))
            checker.check_steps(step_arrays, self._n_steps)
            checker.check_finals(final_arrays, self._n_episodes)
            problems += checker.messages()
        if problems:
            raise ValueError(format_problems(problems, f"block at step {self._n_steps}"))
        if k > 0 and self._final_names is None:
            self._final_names = final_names
        if self._step_names is None:
            self._step_names = step_names
            for name, a in step_arrays.items():
                _create_rows_dataset(self._h5, name, 0, a.shape[1:], a.dtype, self.compression)
        if self._final_names and not any(n in self._h5 for n in self._final_names):
            for name in self._final_names:
                dtype = np.bool_ if name == "final_avail" else np.float32
                _create_rows_dataset(self._h5, name, 0, self._final_row_shape(name), dtype, self.compression)
        for name, a in arrays.items():
            if len(a):
                self._pending.setdefault(name, []).append(a)
        self._n_steps += L
        self._n_episodes += k
        self._last_ended = bool(ends[-1])
        self._pending_steps += L
        if self._pending_steps >= self.flush_steps:
            self._flush()

    def _final_row_shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self._want[name][1:])

    def _cast(self, name: str, a: np.ndarray) -> tuple[np.ndarray, str | None]:
        if name in _FLAG_NAMES:
            if a.dtype == np.bool_:
                return a, None
            if a.dtype.kind in "iu" and (a.size == 0 or (a.min() >= 0 and a.max() <= 1)):
                return a.astype(bool), None
            return a, f"{name}: dtype {a.dtype} is not bool (integers 0/1 are accepted)"
        if name == "actions" and self.spec.discrete:
            if a.dtype.kind not in "iu":
                return a, f"actions: dtype {a.dtype} is not an integer type (discrete task)"
            return a.astype(np.int64, copy=False), None
        if a.dtype.kind not in "fiu":
            return a, f"{name}: dtype {a.dtype} is not numeric"
        return a.astype(np.float32, copy=False), None

    def _flush(self) -> None:
        for name, parts in self._pending.items():
            data = np.concatenate(parts) if len(parts) > 1 else parts[0]
            dset = self._h5[name]
            start = dset.shape[0]
            dset.resize(start + len(data), axis=0)
            dset[start:] = data
        self._pending = {}
        self._pending_steps = 0

    # -- finish --
    def close(self) -> Path:
        """Flush, check the whole-file structure, write spec/metadata, move onto ``path``; returns it."""
        if self._closed:
            return self.path
        problems = []
        if self._n_steps == 0:
            problems.append("rewards: dataset is empty (no steps appended)")
        elif not self._last_ended:
            problems.append("terminals/truncations: the last episode has no end (append its final step)")
        try:
            metadata_json = metadata_to_json(self.metadata)
        except ValueError as err:
            problems.append(str(err))
        if problems:
            self.abort()
            raise ValueError(format_problems(problems, f"dataset for {self.path}"))
        try:
            self._flush()
            _write_header(self._h5, self.spec, {})
            self._h5.attrs["metadata"] = metadata_json
            for name, value in self._bounds.items():
                self._h5.create_dataset(name, data=value)
            self._h5.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard everything written so far; an existing file at ``path`` is untouched."""
        self._closed = True
        with contextlib.suppress(Exception):
            self._h5.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> HDF5Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # A writer dropped without close() leaves no stray temp file.
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.abort()
