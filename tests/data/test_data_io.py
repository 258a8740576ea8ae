"""Native HDF5/npz files: exact round trips, atomic writes, lazy loading, the streaming writer."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from logo_fast.data import HDF5Writer, load, load_extras, make_toy_dataset, materialize, save, validate_dataset
from logo_fast.data import io as data_io

from .dataset_strategies import assert_same, datasets, random_dataset

TOYS = [
    ("discrete", False),
    ("continuous", False),
    ("discrete", True),
    ("continuous", True),
]


def _leftovers(directory):
    return sorted(p for p in os.listdir(directory) if ".tmp" in p or p.startswith("."))


@pytest.mark.parametrize("action_type,heterogeneous", TOYS)
@pytest.mark.parametrize("suffix", [".h5", ".hdf5", ".npz"])
@pytest.mark.parametrize("lazy", [False, True])
def test_round_trip_is_exact(tmp_path, action_type, heterogeneous, suffix, lazy):
    ds = make_toy_dataset(n_agents=3, n_episodes=5, action_type=action_type, heterogeneous=heterogeneous, seed=3)
    path = save(ds, tmp_path / f"toy{suffix}")
    back = load(path, lazy=lazy)
    assert_same(ds, back)
    if lazy and suffix != ".npz":
        assert isinstance(back.obs, h5py.Dataset) and isinstance(back.final_obs, h5py.Dataset)
        assert isinstance(back.action_low, (np.ndarray, type(None)))
    assert _leftovers(tmp_path) == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=datasets())
def test_random_datasets_round_trip(tmp_path, ds):
    for suffix in (".h5", ".npz"):
        assert_same(ds, load(save(ds, tmp_path / f"r{suffix}")))


def test_hdf5_layout(tmp_path):
    ds = make_toy_dataset(n_episodes=40, episode_len=50, epsilon=1.0)
    path = save(ds, tmp_path / "toy.h5", compression="lzf")
    with h5py.File(path, "r") as h5:
        assert h5.attrs["format"] == "logo_fast.dataset"
        assert h5.attrs["format_version"] == data_io.FORMAT_VERSION
        assert json.loads(h5.attrs["spec"]) == ds.spec.to_dict()
        assert json.loads(h5.attrs["metadata"]) == ds.metadata
        obs = h5["obs"]
        assert obs.compression == "lzf" and obs.chunks[1:] == obs.shape[1:]
        assert obs.maxshape[0] is None
    with h5py.File(save(ds, tmp_path / "g.h5"), "r") as h5:
        assert h5["obs"].compression == "gzip"


def test_save_validates_first_and_writes_nothing(tmp_path):
    ds = make_toy_dataset()
    ds.obs[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="obs: 1 non-finite"):
        save(ds, tmp_path / "bad.h5")
    assert os.listdir(tmp_path) == []
    save(ds, tmp_path / "bad.h5", validate=False)
    with pytest.raises(ValueError, match="obs: 1 non-finite"):
        load(tmp_path / "bad.h5")
    assert np.isnan(load(tmp_path / "bad.h5", validate=False).obs[0, 0, 0])


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_failed_write_leaves_existing_file_untouched(tmp_path, monkeypatch, suffix):
    old = make_toy_dataset(seed=1)
    path = save(old, tmp_path / f"data{suffix}")
    before = path.read_bytes()
    module, writer = (data_io.npz, "write_npz") if suffix == ".npz" else (data_io.hdf5, "write_hdf5")
    real_writer = getattr(module, writer)

    def write_then_fail(ds, tmp, *args):
        real_writer(ds, tmp, *args)  # a complete temp file exists at this point
        raise OSError("disk full")

    monkeypatch.setattr(module, writer, write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save(make_toy_dataset(seed=2), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]
    monkeypatch.undo()
    new = make_toy_dataset(seed=2)
    save(new, path)  # a successful save replaces the file
    assert_same(new, load(path))


def test_save_rejects_bad_arguments(tmp_path):
    ds = make_toy_dataset()
    with pytest.raises(ValueError, match="unknown file type"):
        save(ds, tmp_path / "x.pkl")
    ds.metadata["bad"] = object()
    with pytest.raises(ValueError, match="metadata: cannot be stored as JSON"):
        save(ds, tmp_path / "x.h5")
    assert os.listdir(tmp_path) == []


def test_numpy_metadata_is_stored_as_plain_json(tmp_path):
    ds = make_toy_dataset()
    ds.metadata.update({"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(3)})
    back = load(save(ds, tmp_path / "m.h5"))
    assert back.metadata["n"] == 3 and back.metadata["x"] == 0.5 and back.metadata["v"] == [0, 1, 2]


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_extras_round_trip(tmp_path, suffix):
    ds = make_toy_dataset()
    u = np.linspace(0, 1, len(ds), dtype=np.float32)
    path = save(ds, tmp_path / f"e{suffix}", extras={"u": u, "flag": u > 0.5})
    extras = load_extras(path)
    assert np.array_equal(extras["u"], u) and np.array_equal(extras["flag"], u > 0.5)
    assert_same(ds, load(path))
    with pytest.raises(ValueError, match=r"extras\['u'\]: expected"):
        save(ds, tmp_path / f"f{suffix}", extras={"u": u[:-1]})


def test_format_version_and_detection_errors(tmp_path):
    path = save(make_toy_dataset(), tmp_path / "v.h5")
    with h5py.File(path, "a") as h5:
        h5.attrs["format_version"] = data_io.FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="format_version"):
        load(path)
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match="neither a logo_fast HDF5 file"):
        load(tmp_path / "other.h5")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match="neither an OG-MARL vault"):
        load(tmp_path / "empty_dir")
    with pytest.raises(ValueError, match="does not exist"):
        load(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        load(tmp_path / "junk.h5")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        load(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="without __spec__"):
        load(tmp_path / "plain.npz")


def test_lazy_dataset_validates_slices_and_materializes(tmp_path):
    ds = make_toy_dataset(n_episodes=6, action_type="continuous", heterogeneous=True)
    lazy = load(save(ds, tmp_path / "l.h5"), lazy=True)
    validate_dataset(lazy, chunk_steps=7)
    assert len(lazy) == len(ds) and lazy.n_episodes == ds.n_episodes
    assert np.array_equal(lazy.obs[5:9], ds.obs[5:9])
    assert np.allclose(lazy.episode_returns(), ds.episode_returns())
    mem = materialize(lazy)
    assert isinstance(mem.obs, np.ndarray)
    assert_same(ds, mem)
    for k, v in ds.next_fields(np.array([4, 1, 1])).items():
        assert np.array_equal(mem.next_fields(np.array([4, 1, 1]))[k], v)
    lazy.obs.file.close()


# ---- HDF5Writer ---------------------------------------------------------------------------
STEP_KEYS = ("obs", "state", "actions", "rewards", "terminals", "truncations", "avail_actions", "agent_rewards")


def _episodes(ds):
    starts, ends = ds.episode_bounds()
    for e, (s, t) in enumerate(zip(starts, ends, strict=True)):
        ep = {k: np.asarray(getattr(ds, k))[s:t] for k in STEP_KEYS if getattr(ds, k) is not None}
        for k in ("final_obs", "final_state", "final_avail"):
            if getattr(ds, k) is not None:
                ep[k] = getattr(ds, k)[e]
        yield ep


def _writer(ds, path, **kw):
    return HDF5Writer(path, ds.spec, metadata=ds.metadata, action_low=ds.action_low, action_high=ds.action_high, **kw)


@pytest.mark.parametrize("action_type,heterogeneous", TOYS)
def test_writer_episodes_equal_save(tmp_path, action_type, heterogeneous):
    ds = make_toy_dataset(n_episodes=7, action_type=action_type, heterogeneous=heterogeneous)
    with _writer(ds, tmp_path / "w.h5", flush_steps=10) as w:
        for ep in _episodes(ds):
            w.append_episode(**ep)
        assert not (tmp_path / "w.h5").exists()  # only on close
        assert w.n_episodes == ds.n_episodes and w.n_steps == len(ds)
    assert_same(ds, load(tmp_path / "w.h5"))
    assert _leftovers(tmp_path) == []


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=datasets())
def test_writer_blocks_cut_anywhere(tmp_path, ds):
    """Blocks that split episodes anywhere give the same file as whole-dataset save."""
    rng = np.random.default_rng(len(ds))
    cuts = np.sort(rng.choice(np.arange(1, len(ds)), size=min(3, len(ds) - 1), replace=False)) if len(ds) > 1 else []
    bounds = [0, *cuts, len(ds)]
    ends = ds.episode_ends()
    episode_at = np.cumsum(ends) - 1
    with _writer(ds, tmp_path / "b.h5", flush_steps=3) as w:
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            block = {k: np.asarray(getattr(ds, k))[a:b] for k in STEP_KEYS if getattr(ds, k) is not None}
            eps = episode_at[a:b][ends[a:b]]
            for k in ("final_obs", "final_state", "final_avail"):
                if getattr(ds, k) is not None:
                    block[k] = getattr(ds, k)[eps]
            w.append(block)
    back = load(tmp_path / "b.h5")
    assert_same(ds, back)


def test_writer_casts_to_schema_dtypes(tmp_path):
    ds = make_toy_dataset(n_episodes=2)
    with _writer(ds, tmp_path / "c.h5") as w:
        for ep in _episodes(ds):
            ep["obs"] = ep["obs"].astype(np.float64)
            ep["actions"] = ep["actions"].astype(np.int32)
            ep["terminals"] = ep["terminals"].astype(np.uint8)
            w.append_episode(**ep)
    back = load(tmp_path / "c.h5")
    assert back.obs.dtype == np.float32 and back.actions.dtype == np.int64 and back.terminals.dtype == bool
    assert_same(ds, back)


def test_writer_rejects_bad_appends_and_keeps_going(tmp_path):
    ds = make_toy_dataset(n_episodes=3)
    eps = list(_episodes(ds))
    with _writer(ds, tmp_path / "r.h5") as w:
        w.append_episode(**eps[0])
        bad = dict(eps[1])
        bad["obs"] = bad["obs"].copy()
        bad["obs"][0, 0, 0] = np.inf
        bad["actions"] = bad["actions"] + 10
        with pytest.raises(ValueError) as err:
            w.append_episode(**bad)
        assert "obs: 1 non-finite" in str(err.value) and "discrete actions outside" in str(err.value)
        mid = dict(eps[1])
        mid["truncations"] = mid["truncations"].copy()
        mid["truncations"][0] = True
        with pytest.raises(ValueError, match="must end exactly at its last step"):
            w.append_episode(**mid)
        no_final = {k: v for k, v in eps[1].items() if not k.startswith("final_")}
        with pytest.raises(ValueError, match="final fields"):
            w.append_episode(**no_final)
        wrong_agents = dict(eps[1])
        wrong_agents["state"] = wrong_agents["state"][:, :-1]
        with pytest.raises(ValueError, match="state: size"):
            w.append_episode(**wrong_agents)
        w.append_episode(**eps[1])
        w.append_episode(**eps[2])
    assert_same(ds, load(tmp_path / "r.h5"))


def test_writer_is_atomic(tmp_path):
    ds = make_toy_dataset(n_episodes=3)
    old = save(make_toy_dataset(seed=9), tmp_path / "a.h5")
    before = old.read_bytes()
    with pytest.raises(RuntimeError, match="collector crashed"):
        with _writer(ds, old) as w:
            w.append_episode(**next(_episodes(ds)))
            raise RuntimeError("collector crashed")
    assert old.read_bytes() == before
    # close() refuses an unfinished last episode and leaves no file behind
    ep = next(_episodes(ds))
    half = {k: v[:-1] for k, v in ep.items() if not k.startswith("final_") and len(v) == len(ep["rewards"])}
    w = _writer(ds, tmp_path / "u.h5")
    w.append(half)
    with pytest.raises(ValueError, match="the last episode has no end"):
        w.close()
    assert not (tmp_path / "u.h5").exists()
    with pytest.raises(ValueError, match="empty"):
        _writer(ds, tmp_path / "e.h5").close()
    assert sorted(os.listdir(tmp_path)) == ["a.h5"]


def test_writer_argument_checks(tmp_path):
    ds = make_toy_dataset(action_type="continuous")
    with pytest.raises(ValueError, match="action_low: missing"):
        HDF5Writer(tmp_path / "x.h5", ds.spec)
    with pytest.raises(ValueError, match="must end in"):
        HDF5Writer(tmp_path / "x.npz", ds.spec)
    with pytest.raises(ValueError, match="unknown field names"):
        w = _writer(ds, tmp_path / "x.h5")
        w.append({"obs": ds.obs, "nonsense": ds.rewards})
    w.abort()
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_writer_streams_large_file_and_lazy_validation(tmp_path):
    """200k steps written in 1k-step episodes, then validated lazily in chunks (memory stays bounded)."""
    rng = np.random.default_rng(0)
    spec = random_dataset(0, n_agents=3).spec
    L, E = 1000, 200
    with HDF5Writer(tmp_path / "big.h5", spec, compression="lzf", flush_steps=20_000) as w:
        for _ in range(E):
            avail = np.ones((L, 3, spec.n_actions), bool)
            w.append_episode(
                obs=(rng.standard_normal((L, 3, spec.obs_dim)) * spec.obs_mask()).astype(np.float32),
                state=rng.standard_normal((L, spec.state_dim)).astype(np.float32),
                actions=rng.integers(0, spec.n_actions, size=(L, 3)),
                rewards=rng.standard_normal(L).astype(np.float32),
                terminals=np.arange(L) == L - 1,
                truncations=np.zeros(L, bool),
                avail_actions=avail,
            )
    lazy = load(tmp_path / "big.h5", lazy=True, validate=False)
    assert len(lazy) == L * E and lazy.n_episodes == E
    assert lazy.obs.chunks[0] < len(lazy)
    validate_dataset(lazy, chunk_steps=30_000)
    lazy.obs.file.close()


def _rewrite_npz(src, dst, drop=(), replace=None):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k not in drop}
    arrays.update(replace or {})
    np.savez(dst, **arrays)


def test_damaged_native_files_give_one_error_naming_file_and_field(tmp_path):
    ds = make_toy_dataset(n_agents=2, n_episodes=4, seed=0)
    h5_path = save(ds, tmp_path / "ok.h5")
    npz_path = save(ds, tmp_path / "ok.npz")
    cases = []
    p = tmp_path / "no_state.h5"
    p.write_bytes(h5_path.read_bytes())
    with h5py.File(p, "a") as h5:
        del h5["state"]
    cases.append((p, "required dataset(s) ['state'] missing"))
    p = tmp_path / "bad_spec.h5"
    p.write_bytes(h5_path.read_bytes())
    with h5py.File(p, "a") as h5:
        h5.attrs["spec"] = json.dumps(dict(ds.spec.to_dict(), n_agents=0))
    cases.append((p, "attribute 'spec' is not a valid dataset spec (invalid DatasetSpec:\n  - n_agents must be >= 1"))
    p = tmp_path / "bad_meta.h5"
    p.write_bytes(h5_path.read_bytes())
    with h5py.File(p, "a") as h5:
        h5.attrs["metadata"] = "[1, 2"
    cases.append((p, "attribute 'metadata' is not valid JSON"))
    p = tmp_path / "group.h5"
    p.write_bytes(h5_path.read_bytes())
    with h5py.File(p, "a") as h5:
        del h5["rewards"]
        h5.create_group("rewards")
    cases.append((p, "'rewards' is an HDF5 Group, not a dataset"))
    p = tmp_path / "no_state.npz"
    _rewrite_npz(npz_path, p, drop=("state",))
    cases.append((p, "required array(s) ['state'] missing"))
    p = tmp_path / "bad_spec.npz"
    _rewrite_npz(npz_path, p, replace={"__spec__": np.array("{oops")})
    cases.append((p, "attribute 'spec' is not valid JSON"))
    p = tmp_path / "truncated.npz"
    p.write_bytes(npz_path.read_bytes()[: npz_path.stat().st_size // 2])
    cases.append((p, "truncated.npz"))
    for path, needle in cases:
        with pytest.raises(ValueError) as err:
            load(path)
        message = str(err.value)
        assert path.name in message and needle in message, message
