"""Peer formats: OMIGA HDF5, OMAR directories, OG-MARL vaults, and the augmented export."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from logo_fast.data import export_augmented, load, make_toy_dataset, read_augmented
from logo_fast.data.formats.export import augmented_dataset
from logo_fast.data.formats.omar import write_omar
from logo_fast.data.formats.omiga import write_omiga
from logo_fast.data.formats.vault import find_vault_dir, read_vault, read_vault_arrays, write_vault
from logo_fast.data.io import detect_format

from .dataset_strategies import assert_same, random_dataset

STEP_FIELDS = ("obs", "state", "actions", "rewards", "terminals", "truncations", "avail_actions")


def _same_steps(a, b, fields=STEP_FIELDS):
    for name in fields:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.array_equal(np.asarray(x), np.asarray(y)), name


# ---- OMIGA -----------------------------------------------------------------------------------
@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_omiga_round_trip(tmp_path, action_type):
    ds = make_toy_dataset(action_type=action_type, heterogeneous=True, n_episodes=5)
    path = write_omiga(ds, tmp_path / "omiga.h5")
    assert detect_format(path) == "omiga"
    back = load(path, agent_obs_dims=ds.spec.agent_obs_dims, env=ds.spec.env)
    _same_steps(ds, back)
    assert back.spec == ds.spec
    assert back.final_obs is None and back.metadata["source_format"] == "omiga"
    if action_type == "continuous":
        assert np.array_equal(back.action_low, ds.action_low) and np.array_equal(back.action_high, ds.action_high)


def test_omiga_peer_layout_conventions(tmp_path):
    """Per-agent r/d with trailing axes, float actions with avail, no truncation flag at all."""
    rng = np.random.default_rng(0)
    T, N, A = 11, 2, 4
    done = np.zeros((T, N, 1), np.float32)
    done[3] = 1.0  # episode 1 terminates at step 3
    done[7, 0] = 1.0  # one agent only: not an episode end
    avail = np.ones((T, N, A), np.int32)
    avail[:, :, 3] = 0
    with h5py.File(tmp_path / "peer.hdf5", "w") as h5:
        h5["s"] = rng.standard_normal((T, 5))
        h5["o"] = rng.standard_normal((T, N, 6))
        h5["a"] = rng.integers(0, 3, size=(T, N, 1)).astype(np.float64)
        h5["r"] = np.repeat(rng.standard_normal((T, 1, 1)), N, axis=1)
        h5["d"] = done
        h5["available_actions"] = avail
    ds = load(tmp_path / "peer.hdf5", episode_len=5)
    assert ds.spec.discrete and ds.spec.n_actions == A and ds.actions.dtype == np.int64
    assert ds.obs.dtype == np.float32 and ds.agent_rewards is None
    # ends: terminal at 3, then truncated by episode_len after 5 more steps (8), last step (10) closed
    assert np.flatnonzero(ds.terminals).tolist() == [3]
    assert np.flatnonzero(ds.truncations).tolist() == [8, 10]
    assert ds.metadata["truncated_last_step"] is True


def test_omiga_rejects_bad_flags(tmp_path):
    with h5py.File(tmp_path / "bad.h5", "w") as h5:
        h5["s"] = np.zeros((3, 2))
        h5["o"] = np.zeros((3, 2, 2))
        h5["a"] = np.zeros((3, 2), np.int64)
        h5["r"] = np.zeros(3)
        h5["d"] = np.array([0, 2, 1])
    with pytest.raises(ValueError, match="d: flags must be 0 or 1"):
        load(tmp_path / "bad.h5")


# ---- OMAR ------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["npy", "npz"])
@pytest.mark.parametrize("action_type,heterogeneous", [("discrete", False), ("continuous", True)])
def test_omar_round_trip(tmp_path, layout, action_type, heterogeneous):
    ds = make_toy_dataset(action_type=action_type, heterogeneous=heterogeneous, n_episodes=4)
    path = write_omar(ds, tmp_path / "omar", layout=layout)
    assert detect_format(path) == "omar"
    back = load(path, env=ds.spec.env)
    _same_steps(ds, back)
    assert back.spec == ds.spec
    for name in ("final_obs", "final_state"):
        assert np.array_equal(getattr(back, name), getattr(ds, name)), name


def test_omar_mpe_layout_finds_fixed_length_episodes(tmp_path):
    """MPE-style data: never done, fixed length 5, episodes only visible through next_obs."""
    rng = np.random.default_rng(1)
    N, L, E = 3, 5, 4
    d = tmp_path / "mpe"
    d.mkdir()
    chains = [rng.standard_normal((E, L + 1, 4 + i)).astype(np.float32) for i in range(N)]
    for i in range(N):
        np.save(d / f"obs_{i}.npy", chains[i][:, :-1].reshape(E * L, -1))
        np.save(d / f"next_obs_{i}.npy", chains[i][:, 1:].reshape(E * L, -1))
        np.save(d / f"acs_{i}.npy", rng.uniform(-1, 1, size=(E * L, 2)).astype(np.float32))
        np.save(d / f"rews_{i}.npy", np.full((E * L, 1), -1.5, np.float32))
        np.save(d / f"dones_{i}.npy", np.zeros((E * L, 1), bool))
    ds = load(d)
    assert ds.n_episodes == E and not ds.terminals.any()
    assert np.flatnonzero(ds.truncations).tolist() == [L - 1 + k * L for k in range(E)]
    assert ds.spec.agent_obs_dims == (4, 5, 6) and ds.spec.state_dim == 15
    assert np.array_equal(ds.state[:, :4], chains[0][:, :-1].reshape(E * L, -1))
    assert np.array_equal(ds.final_obs[:, 2, :6], chains[2][:, -1])
    assert np.all(ds.rewards == -1.5) and ds.agent_rewards is None
    assert not ds.spec.discrete and np.all(ds.action_low == -1)


def test_omar_one_hot_actions_and_errors(tmp_path):
    rng = np.random.default_rng(2)
    d = tmp_path / "oh"
    d.mkdir()
    T = 6
    for i in range(2):
        idx = rng.integers(0, 5, size=T)
        np.savez(
            d / f"agent_{i}.npz",
            obs=rng.standard_normal((T, 3)),
            acs=np.eye(5)[idx],
            rews=rng.standard_normal(T),
            dones=np.eye(T)[T - 1],
        )
    ds = load(d, action_type="discrete")
    assert ds.spec.n_actions == 5 and ds.actions.shape == (T, 2) and ds.terminals[-1]
    assert ds.agent_rewards is not None and np.allclose(ds.rewards, ds.agent_rewards.mean(1))
    np.savez(d / "agent_3.npz", obs=np.zeros((T, 3)))
    with pytest.raises(ValueError, match="numbered 0..N-1"):
        load(d)


# ---- OG-MARL vaults --------------------------------------------------------------------------
@pytest.mark.parametrize("action_type,heterogeneous", [("discrete", False), ("discrete", True), ("continuous", True)])
def test_vault_round_trip_is_exact(tmp_path, action_type, heterogeneous):
    ds = make_toy_dataset(action_type=action_type, heterogeneous=heterogeneous, n_episodes=5)
    uid_dir = write_vault(ds, tmp_path / "toy.vlt", vault_uid="Good")
    assert uid_dir == tmp_path / "toy.vlt" / "Good"
    for where in (tmp_path / "toy.vlt", uid_dir, uid_dir / "metadata.json"):
        assert detect_format(where) == "vault"
        assert_same(ds, load(where))


def test_vault_round_trip_agent_rewards(tmp_path):
    ds = random_dataset(5, n_agents=2, with_agent_rewards=True)
    assert_same(ds, load(write_vault(ds, tmp_path / "r.vlt")))


def test_vault_files_follow_flashbax_layout(tmp_path):
    import tensorstore as ts

    ds = make_toy_dataset(n_episodes=3)
    uid_dir = write_vault(ds, tmp_path / "v.vlt")
    meta = json.loads((uid_dir / "metadata.json").read_text())
    assert meta["version"] == 1.2
    T, N = len(ds), ds.spec.n_agents
    assert meta["structure_shape"]["observations"] == str((1, T, N, ds.spec.obs_dim))
    assert meta["structure_shape"]["infos"]["legals"] == str((1, T, N, ds.spec.n_actions))
    assert meta["structure_dtype"]["actions"] == "int32"
    assert (uid_dir / "manifest.ocdbt").is_file()
    kv = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{uid_dir}"}).result()
    keys = {k.decode().split("/")[0] for k in kv.list().result()}
    assert {
        "observations.",
        "actions.",
        "rewards.",
        "terminals.",
        "truncations.",
        "infos.state.",
        "infos.legals.",
        "vault_index",
    } <= keys
    arrays, _ = read_vault_arrays(uid_dir)
    assert arrays["observations"].shape == (1, T, N, ds.spec.obs_dim)
    assert arrays["terminals"].shape == (1, T, N) and arrays["terminals"].dtype == np.float32
    leaf = ts.open(
        {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{uid_dir}", "path": "observations."}}
    ).result()
    assert leaf.shape[1] == 10**13 and leaf.spec().to_json()["metadata"]["compressor"]["id"] == "gzip"


def _write_peer_vault(uid_dir, leaves, extra_meta=None):
    """A vault the way flashbax lays one out, written with tensorstore only (leaves: name -> (B, T, ...))."""
    import tensorstore as ts

    uid_dir.mkdir(parents=True)
    tree_shape, tree_dtype = {}, {}
    for name, a in leaves.items():
        *parents, leaf = name.split(".")
        s, d = tree_shape, tree_dtype
        for p in parents:
            s, d = s.setdefault(p, {}), d.setdefault(p, {})
        s[leaf], d[leaf] = str(a.shape), a.dtype.name
    (uid_dir / "metadata.json").write_text(
        json.dumps({"version": 1.2, "structure_shape": tree_shape, "structure_dtype": tree_dtype, **(extra_meta or {})})
    )
    T = next(iter(leaves.values())).shape[1]
    for name, a in leaves.items():
        spec = {
            "driver": "zarr",
            "kvstore": {"driver": "ocdbt", "base": f"file://{uid_dir}", "path": name + "."},
            "metadata": {"compressor": {"id": "gzip", "level": 5}},
        }
        store = ts.open(spec, shape=(a.shape[0], 10**13, *a.shape[2:]), dtype=a.dtype.name, create=True).result()
        store[:, :T].write(a).result()
    index = ts.open(
        {
            "driver": "zarr",
            "kvstore": {"driver": "ocdbt", "base": f"file://{uid_dir}", "path": "vault_index"},
            "metadata": {},
        },
        dtype="int32",
        shape=(1,),
        create=True,
    ).result()
    index.write(np.array([T], np.int32)).result()


def test_reads_og_marl_style_vault(tmp_path):
    rng = np.random.default_rng(3)
    B, T, N, O, S, A = 2, 7, 3, 5, 4, 6
    term = np.zeros((B, T, N), np.float32)
    term[0, 2] = 1.0  # row 0: episode ends at 2, then an unfinished one (closed as truncated at 6)
    term[1, 4, :2] = 1.0  # row 1: only two agents: not an end
    trunc = np.zeros((B, T, N), np.float32)
    trunc[1, 6] = 1.0
    legals = rng.random((B, T, N, A)) < 0.5
    legals[..., 0] = True
    actions = np.zeros((B, T, N), np.int32)
    leaves = {
        "observations": rng.standard_normal((B, T, N, O)).astype(np.float32),
        "actions": actions,
        "rewards": np.repeat(rng.standard_normal((B, T, 1)).astype(np.float32), N, axis=2),
        "terminals": term,
        "truncations": trunc,
        "infos.legals": legals.astype(np.float32),
        "infos.state": rng.standard_normal((B, T, S)).astype(np.float32),
    }
    _write_peer_vault(tmp_path / "smac_v1" / "3m.vlt" / "Good", leaves, {"note": "peer"})
    ds = load(tmp_path / "smac_v1" / "3m.vlt")
    assert ds.spec.env == "smac_v1:3m" and ds.spec.n_actions == A and len(ds) == B * T
    assert np.flatnonzero(ds.terminals).tolist() == [2]
    assert np.flatnonzero(ds.truncations).tolist() == [6, 13]
    assert np.array_equal(ds.obs[T:], leaves["observations"][1])
    assert np.array_equal(ds.avail_actions, legals.reshape(B * T, N, A))
    assert np.array_equal(ds.rewards, leaves["rewards"][..., 0].reshape(-1)) and ds.agent_rewards is None
    assert ds.final_obs is None and ds.metadata["vault_metadata"]["note"] == "peer"


def test_reads_continuous_vault_without_state(tmp_path):
    rng = np.random.default_rng(4)
    T, N = 6, 2
    term = np.zeros((1, T, N), bool)
    term[0, -1] = True
    leaves = {
        "observations": rng.standard_normal((1, T, N, 3)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (1, T, N, 2)).astype(np.float32),
        "rewards": rng.standard_normal((1, T, N)).astype(np.float32),
        "terminals": term,
        "truncations": np.zeros((1, T, N), bool),
    }
    _write_peer_vault(tmp_path / "hc" / "Medium", leaves)
    ds = load(tmp_path / "hc" / "Medium", env="mamujoco:2halfcheetah")
    assert not ds.spec.discrete and ds.spec.state_dim == 6 and ds.spec.env == "mamujoco:2halfcheetah"
    assert np.array_equal(ds.state, leaves["observations"][0].reshape(T, -1))
    assert np.array_equal(ds.agent_rewards, leaves["rewards"][0])
    with pytest.raises(ValueError, match="actions outside"):
        load(tmp_path / "hc" / "Medium", action_low=-0.5, action_high=0.5)


def test_vault_with_several_uids_needs_one(tmp_path):
    ds = make_toy_dataset(n_episodes=2)
    write_vault(ds, tmp_path / "m.vlt", vault_uid="a")
    write_vault(ds, tmp_path / "m.vlt", vault_uid="b")
    with pytest.raises(ValueError, match="several uids"):
        load(tmp_path / "m.vlt")
    assert find_vault_dir(tmp_path / "m.vlt", uid="b").name == "b"
    assert_same(ds, read_vault(tmp_path / "m.vlt", uid="a"))


def test_vault_rewrite_replaces_uid_dir(tmp_path):
    write_vault(make_toy_dataset(seed=1), tmp_path / "w.vlt")
    new = make_toy_dataset(seed=2, n_episodes=3)
    write_vault(new, tmp_path / "w.vlt")
    assert_same(new, load(tmp_path / "w.vlt"))
    assert os.listdir(tmp_path / "w.vlt") == ["logo_fast"]


# ---- augmented export ------------------------------------------------------------------------
def _synthetic(real, K, seed=0):
    rng = np.random.default_rng(seed)
    spec = real.spec
    idx = rng.integers(0, len(real), size=K)
    syn = {
        "obs": real.obs[idx],
        "state": real.state[idx],
        "actions": real.actions[idx],
        "rewards": rng.standard_normal(K).astype(np.float32),
        "terminals": rng.random(K) < 0.3,
        "next_obs": (rng.standard_normal((K, spec.n_agents, spec.obs_dim)) * spec.obs_mask()).astype(np.float32),
        "next_state": rng.standard_normal((K, spec.state_dim)).astype(np.float32),
        "u": rng.random(K).astype(np.float32),
    }
    if spec.discrete:
        syn["avail_actions"] = real.avail_actions[idx]
        syn["next_avail"] = real.avail_actions[rng.integers(0, len(real), size=K)]
    return syn


@pytest.mark.parametrize("action_type,heterogeneous", [("discrete", False), ("continuous", True)])
@pytest.mark.parametrize("fmt", ["hdf5", "vault"])
def test_export_augmented_round_trip(tmp_path, action_type, heterogeneous, fmt):
    real = make_toy_dataset(action_type=action_type, heterogeneous=heterogeneous, n_episodes=4)
    K = 9
    syn = _synthetic(real, K)
    path = tmp_path / ("aug.h5" if fmt == "hdf5" else "aug.vlt")
    written = export_augmented(real, syn, path, format=fmt)
    ds, extras = read_augmented(written)
    T = len(real)
    assert len(ds) == T + K and ds.n_episodes == real.n_episodes + K
    assert np.array_equal(extras["synthetic"], np.arange(T + K) >= T)
    assert np.array_equal(extras["u"][T:], syn["u"]) and np.all(extras["u"][:T] == 0)
    assert ds.metadata["augmented"]["n_synthetic"] == K
    # real part unchanged, episodes intact
    real_part = ds.select_episodes(np.arange(real.n_episodes))
    real_part.metadata = real.metadata
    assert_same(real, real_part)
    # each synthetic transition is one episode whose next step is exactly its next_obs/next_state
    nxt = ds.next_fields(np.arange(T, T + K))
    assert np.array_equal(nxt["index"], np.arange(T, T + K))
    assert np.array_equal(nxt["next_obs"], syn["next_obs"]) and np.array_equal(nxt["next_state"], syn["next_state"])
    if real.spec.discrete:
        assert np.array_equal(nxt["next_avail"], syn["next_avail"])
    assert np.array_equal(ds.terminals[T:], syn["terminals"]) and np.array_equal(ds.truncations[T:], ~syn["terminals"])
    assert np.array_equal(ds.actions[T:], syn["actions"]) and np.array_equal(ds.rewards[T:], syn["rewards"])
    # the exported file and the in-memory combination agree exactly
    mem, mem_extras = augmented_dataset(real, syn)
    assert_same(mem, ds)
    assert all(np.array_equal(mem_extras[k], extras[k]) for k in mem_extras)


def test_export_augmented_reports_every_problem(tmp_path):
    real = make_toy_dataset(n_episodes=3)
    syn = _synthetic(real, 5)
    syn["u"] = syn["u"].copy()
    syn["u"][0] = np.nan
    syn["obs"] = syn["obs"][:, :2]
    del syn["next_avail"]
    syn["actions"] = syn["actions"].astype(np.float32)
    with pytest.raises(ValueError) as err:
        export_augmented(real, syn, tmp_path / "a.h5")
    text = str(err.value)
    assert "synthetic['next_avail']: missing" in text
    syn["next_avail"] = real.avail_actions[:5]
    with pytest.raises(ValueError) as err:
        export_augmented(real, syn, tmp_path / "a.h5")
    text = str(err.value)
    assert "synthetic['obs']: shape" in text
    syn["obs"] = real.obs[:5]
    with pytest.raises(ValueError) as err:
        export_augmented(real, syn, tmp_path / "a.h5")
    text = str(err.value)
    assert "synthetic['u']: 1 values not finite" in text and "synthetic['actions']: dtype float32" in text
    no_final = make_toy_dataset(n_episodes=3)
    no_final.final_obs = no_final.final_state = no_final.final_avail = None
    with pytest.raises(ValueError, match="real: no final_obs/final_state"):
        export_augmented(no_final, _synthetic(no_final, 2), tmp_path / "b.h5")
    with pytest.raises(ValueError, match="format must be"):
        export_augmented(real, _synthetic(real, 2), tmp_path / "c.h5", format="zip")
    assert os.listdir(tmp_path) == []


def test_failed_vault_write_keeps_old_vault(tmp_path, monkeypatch):
    from logo_fast.data.formats import vault

    old = make_toy_dataset(seed=1, n_episodes=2)
    write_vault(old, tmp_path / "k.vlt")
    real_leaves = vault._vault_leaves

    def leaves_that_fail(ds, extras):
        out = dict(real_leaves(ds, extras))

        def broken(a, b):
            if b - a == 1:  # the shape probe before writing starts
                return np.zeros(1, np.float32)
            raise OSError("disk full")  # mid-write, after other leaves were written

        out["infos.broken"] = (broken, np.dtype(np.float32))
        return out

    monkeypatch.setattr(vault, "_vault_leaves", leaves_that_fail)
    with pytest.raises(OSError, match="disk full"):
        write_vault(make_toy_dataset(seed=2), tmp_path / "k.vlt")
    monkeypatch.undo()
    assert os.listdir(tmp_path / "k.vlt") == ["logo_fast"]
    assert_same(old, load(tmp_path / "k.vlt"))
