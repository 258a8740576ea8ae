"""logo_fast.files: stale temp files of a target are swept by the next write of every writer; one json_default."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from logo_fast import files
from logo_fast.data import HDF5Writer, load, make_toy_dataset, save
from logo_fast.data.formats.omar import write_omar
from logo_fast.data.formats.omiga import write_omiga


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # finished and reaped: no process has this pid (until the OS reuses it)


def _plant(directory: Path, target: str, suffix: str = "") -> dict[str, Path]:
    """Temp leftovers of ``target``: stale ones (old name form, dead pid) and ones that must survive."""
    host = files._host()
    names = {
        "old_form": f".{target}.0123456789ab.tmp{suffix}",
        "dead_pid": f".{target}.0123456789ac.{host}-{_dead_pid()}.tmp{suffix}",
        "dead_aside": f".{target}.0123456789ad.{host}-{_dead_pid()}.old",
        "live_pid": f".{target}.0123456789ae.{host}-{os.getppid()}.tmp{suffix}",
        "other_host_recent": f".{target}.0123456789af.elsewhere-1.tmp{suffix}",
        "other_host_old": f".{target}.0123456789b0.elsewhere-2.tmp{suffix}",
        "other_target": f".not-{target}.0123456789b1.tmp{suffix}",
    }
    paths = {}
    for key, name in names.items():
        p = directory / name
        if key == "dead_aside":
            p.mkdir()
            (p / "leaf").write_text("x")
        else:
            p.write_bytes(b"partial")
        paths[key] = p
    old = time.time() - files.STALE_FOREIGN_S - 60
    os.utime(paths["other_host_old"], (old, old))
    return paths


STALE = ("old_form", "dead_pid", "dead_aside", "other_host_old")
KEPT = ("live_pid", "other_host_recent", "other_target")


def _check_swept(paths: dict[str, Path]) -> None:
    for key in STALE:
        assert not paths[key].exists(), key
    for key in KEPT:
        assert paths[key].exists(), key


def _toy():
    return make_toy_dataset(n_agents=2, n_episodes=3, episode_len=5, seed=0)


def test_save_sweeps_stale_temps(tmp_path):
    for name in ("d.h5", "d.npz"):
        paths = _plant(tmp_path, name, Path(name).suffix)
        save(_toy(), tmp_path / name)
        _check_swept(paths)


def test_streaming_writer_sweeps_stale_temps(tmp_path):
    ds = _toy()
    paths = _plant(tmp_path, "w.h5", ".h5")
    with HDF5Writer(tmp_path / "w.h5", ds.spec) as w:
        _check_swept(paths)  # at the start: a killed earlier run of the same target is cleaned up first
        w.append(dict(ds.arrays()))
    assert len(load(tmp_path / "w.h5")) == len(ds)


def test_directory_and_peer_writers_sweep_stale_temps(tmp_path):
    ds = _toy()
    paths = _plant(tmp_path, "omar_dir")
    write_omar(ds, tmp_path / "omar_dir")
    _check_swept(paths)
    paths = _plant(tmp_path, "o.h5", ".h5")
    write_omiga(ds, tmp_path / "o.h5")
    _check_swept(paths)


def test_checkpoint_style_write_sweeps_a_zero_byte_leftover(tmp_path):
    """A killed checkpoint save leaves a 0-byte .pt temp; the next atomic_path write of that .pt removes it."""
    leftover = tmp_path / ".model.pt.0123456789ab.tmp"
    leftover.write_bytes(b"")
    with files.atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_bytes(b"weights")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_temp_names_carry_host_and_pid(tmp_path):
    name = files.temp_name(tmp_path / "x.h5", "tmp", ".h5").name
    assert name.startswith(".x.h5.") and name.endswith(f".{files._host()}-{os.getpid()}.tmp.h5")
    assert files._host() == "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:32]


def test_failed_write_names_the_target_not_the_temp(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError) as err:
        save(_toy(), blocker / "x.h5")
    assert ".tmp" not in str(err.value) and "x.h5" in str(err.value)
    assert files.writable_problem(blocker / "x.h5") == f"out: {blocker} is not a directory, so {blocker / 'x.h5'} " \
        "cannot be created"
    assert files.writable_problem(tmp_path / "new" / "deeper" / "x.h5") is None


def test_one_json_default():
    """numpy scalars and arrays become numbers and lists, paths strings; anything else is an error."""
    text = files.metadata_to_json({"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(3), "p": Path("a/b")})
    assert json.loads(text) == {"n": 3, "x": 0.5, "v": [0, 1, 2], "p": "a/b"}
    with pytest.raises(ValueError, match="metadata: cannot be stored as JSON"):
        files.metadata_to_json({"bad": object()})
    from logo_fast.data import io

    assert io.json_default is files.json_default and io.atomic_path is files.atomic_path
