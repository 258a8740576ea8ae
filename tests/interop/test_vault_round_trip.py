"""Exported rollouts read by flashbax's own ``Vault(...).read()``, and flashbax's vaults read by logo_fast.

The flashbax tests run when flashbax is installed (``pip install flashbax``; it is in the
``dev`` extra) and are skipped with that reason otherwise. The rollout -> export tests that
need no flashbax always run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo_fast.data import export_augmented, load, make_toy_dataset, read_augmented
from logo_fast.data.formats.export import trim_to_final
from logo_fast.model import LogoWorldModel

from .conftest import tiny_config

pytest.importorskip("tensorstore", reason="vaults need tensorstore (extra: vault)")


def _no_finals(ds):
    import dataclasses

    return dataclasses.replace(ds, final_obs=None, final_state=None, final_avail=None)


@pytest.fixture(scope="module", params=["discrete", "continuous"])
def fitted_and_rollout(request):
    """(real dataset, fitted model, rollout output as it comes) for a heterogeneous toy task."""
    real = make_toy_dataset(n_agents=3, n_episodes=6, episode_len=12, action_type=request.param,
                            heterogeneous=True, seed=21)
    model = LogoWorldModel(config=tiny_config()).fit(real, progress=False)
    spec = real.spec

    def policy(obs, avail):
        if spec.discrete:
            return avail.long().argmax(-1)
        return torch.full((obs.shape[0], spec.n_agents, spec.act_dim), 0.3) * torch.as_tensor(spec.act_mask())

    syn = model.rollout(policy, starts=np.arange(0, len(real), 5), horizon=4,
                        generator=torch.Generator().manual_seed(0))
    return real, model, syn


def _fbx_read(uid_dir):
    """Every leaf of the vault at ``uid_dir`` as read by flashbax itself, flattened to {"infos.u": array}."""
    vault_mod = pytest.importorskip("flashbax.vault", reason="flashbax is not installed (pip install flashbax)")
    vault = vault_mod.Vault(vault_name=uid_dir.parent.name, rel_dir=str(uid_dir.parent.parent),
                            vault_uid=uid_dir.name)
    exp = vault.read().experience
    flat = {}

    def walk(tree, prefix=""):
        for k, v in tree.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[prefix + k] = np.asarray(v)

    walk(exp)
    return flat


def _expected_leaves(real, syn):
    """What each vault leaf must hold, built from the real dataset and the rollout dict directly."""
    s = {k: v.cpu().numpy() for k, v in syn.items()}
    T, K, N = len(real), len(s["u"]), real.spec.n_agents
    ends = real.terminals | real.truncations
    term = np.concatenate([real.terminals, s["terminals"]])
    trunc = np.concatenate([real.truncations, ~s["terminals"]])

    def at_ends(final, syn_next):
        out = np.zeros((T, *final.shape[1:]), np.float32)
        out[ends] = final
        return np.concatenate([out, syn_next.astype(np.float32)])

    want = {
        "observations": np.concatenate([real.obs, s["obs"]]),
        "actions": np.concatenate([real.actions, s["actions"]]),
        "rewards": np.repeat(np.concatenate([real.rewards, s["rewards"]])[:, None], N, 1),
        "terminals": np.repeat(term[:, None], N, 1).astype(np.float32),
        "truncations": np.repeat(trunc[:, None], N, 1).astype(np.float32),
        "infos.state": np.concatenate([real.state, s["state"]]),
        "infos.final_obs": at_ends(real.final_obs, s["next_obs"]),
        "infos.final_state": at_ends(real.final_state, s["next_state"]),
        "infos.u": np.concatenate([np.zeros(T, np.float32), s["u"]]),
        "infos.synthetic": np.concatenate([np.zeros(T, bool), np.ones(K, bool)]),
        "infos.horizon_step": np.concatenate([np.full(T, -1), s["horizon_step"]]),
        "infos.start": np.concatenate([np.full(T, -1), s["start"]]),
    }
    if real.spec.discrete:
        want["infos.legals"] = np.concatenate([real.avail_actions, s["avail_actions"]])
        want["infos.final_legals"] = at_ends(real.final_avail, s["next_avail"])
    return want


def test_rollout_output_exports_as_it_comes(tmp_path, fitted_and_rollout):
    real, _, syn = fitted_and_rollout
    assert {"horizon_step", "start"} <= set(syn)  # the fields that used to be refused
    path = export_augmented(real, syn, tmp_path / "aug.h5")
    ds, extras = read_augmented(path)
    T, K = len(real), len(syn["u"])
    assert len(ds) == T + K and extras["synthetic"].sum() == K
    np.testing.assert_array_equal(extras["horizon_step"], np.r_[np.full(T, -1), syn["horizon_step"].numpy()])
    np.testing.assert_array_equal(extras["start"], np.r_[np.full(T, -1), syn["start"].numpy()])
    np.testing.assert_array_equal(ds.obs[T:], syn["obs"].numpy())
    nxt = ds.next_fields(np.arange(T, T + K))
    np.testing.assert_array_equal(nxt["next_obs"], syn["next_obs"].numpy())


def test_unknown_rollout_field_is_still_refused(tmp_path, fitted_and_rollout):
    real, _, syn = fitted_and_rollout
    with pytest.raises(ValueError, match=r"synthetic\['horizon'\]: unknown field"):
        export_augmented(real, {**syn, "horizon": syn["horizon_step"]}, tmp_path / "a.h5")
    with pytest.raises(ValueError, match=r"synthetic\['start'\]: dtype float32 is not an integer type"):
        export_augmented(real, {**syn, "start": syn["start"].float()}, tmp_path / "a.h5")


def test_trim_keeps_every_transition_with_a_known_next_step():
    real = make_toy_dataset(n_agents=2, n_episodes=5, episode_len=6, seed=3)
    bare = _no_finals(real)
    trimmed, kept = trim_to_final(bare)
    assert len(trimmed) == len(real) - real.n_episodes and trimmed.n_episodes == real.n_episodes
    assert not trimmed.terminals.any() and trimmed.truncations.sum() == real.n_episodes
    # Each kept step's transition is the one the bare data had: same next obs/state/avail.
    before = bare.next_fields(np.flatnonzero(kept))
    after = trimmed.next_fields()
    assert len(after["index"]) == len(trimmed) == len(before["index"])
    for k in ("next_obs", "next_state", "next_avail"):
        np.testing.assert_array_equal(after[k], before[k])


def test_export_without_finals_needs_trim(tmp_path, fitted_and_rollout):
    real, _, syn = fitted_and_rollout
    bare = _no_finals(real)
    with pytest.raises(ValueError, match="missing_final='trim'"):
        export_augmented(bare, syn, tmp_path / "a.h5")
    path = export_augmented(bare, syn, tmp_path / "a.h5", missing_final="trim")
    ds, extras = read_augmented(path)
    T = len(real) - real.n_episodes
    info = ds.metadata["augmented"]["real_trimmed_to_final"]
    assert info["dropped_steps"] == real.n_episodes and len(ds) == T + len(syn["u"])
    # start indices follow the renumbering: the kept start steps still point at the same observation.
    start = extras["start"][T:]
    orig = syn["start"].numpy()
    ok = start >= 0
    np.testing.assert_array_equal(ds.obs[start[ok]], real.obs[orig[ok]])
    # -1 exactly where the rollout started from a dropped step (an episode's last step).
    np.testing.assert_array_equal(start == -1, (real.terminals | real.truncations)[orig])


def test_flashbax_reads_the_exported_vault(tmp_path, fitted_and_rollout):
    """collect (toy) -> fit -> rollout -> export_augmented(format="vault") -> flashbax Vault.read()."""
    real, _, syn = fitted_and_rollout
    uid_dir = export_augmented(real, syn, tmp_path / "vaults" / "toy.vlt", format="vault", vault_uid="Augmented")
    got = _fbx_read(uid_dir)
    want = _expected_leaves(real, syn)
    assert set(got) == set(want), (sorted(got), sorted(want))
    for name, w in want.items():
        g = got[name]
        assert g.shape == (1, *w.shape), name
        np.testing.assert_array_equal(g[0], w.astype(g.dtype), err_msg=name)
    # And logo_fast reads back what flashbax read.
    ds, extras = read_augmented(uid_dir)
    np.testing.assert_array_equal(ds.obs, want["observations"])
    np.testing.assert_array_equal(extras["u"], want["infos.u"])


def test_logo_fast_reads_a_flashbax_written_vault_and_augments_it(tmp_path):
    """flashbax writes an OG-MARL-style vault (no final_*); logo_fast reads it, fits, and exports with trim."""
    fbx = pytest.importorskip("flashbax", reason="flashbax is not installed (pip install flashbax)")
    import jax
    import jax.numpy as jnp
    from flashbax.vault import Vault

    src = make_toy_dataset(n_agents=3, n_episodes=5, episode_len=10, seed=5)
    T, N = len(src), src.spec.n_agents
    exp = {
        "observations": src.obs,
        "actions": src.actions.astype(np.int32),
        "rewards": np.repeat(src.rewards[:, None], N, 1),
        "terminals": np.repeat(src.terminals[:, None], N, 1).astype(np.float32),
        "truncations": np.repeat(src.truncations[:, None], N, 1).astype(np.float32),
        "infos": {"legals": src.avail_actions.astype(np.float32), "state": src.state},
    }
    buf = fbx.make_flat_buffer(max_length=T + 5, min_length=1, sample_batch_size=1, add_batch_size=1,
                               add_sequences=True)
    state = buf.init(jax.tree_util.tree_map(lambda x: jnp.asarray(x[0]), exp))
    state = buf.add(state, jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], exp))
    Vault(vault_name="peer.vlt", experience_structure=state.experience, rel_dir=str(tmp_path / "vaults"),
          vault_uid="Good").write(state)

    ds = load(tmp_path / "vaults" / "peer.vlt")
    np.testing.assert_array_equal(ds.obs, src.obs)
    np.testing.assert_array_equal(ds.state, src.state)
    np.testing.assert_array_equal(ds.actions, src.actions)
    np.testing.assert_array_equal(ds.avail_actions, src.avail_actions)
    np.testing.assert_array_equal(ds.rewards, src.rewards)
    np.testing.assert_array_equal(ds.terminals, src.terminals)
    np.testing.assert_array_equal(ds.truncations, src.truncations)
    assert ds.final_obs is None  # OG-MARL vaults have no observation after an episode's end

    model = LogoWorldModel(config=tiny_config()).fit(ds, progress=False)
    syn = model.rollout(lambda o, a: a.long().argmax(-1), starts=8, horizon=3,
                        generator=torch.Generator().manual_seed(1))
    uid_dir = export_augmented(ds, syn, tmp_path / "vaults" / "peer_aug.vlt", format="vault", missing_final="trim")
    got = _fbx_read(uid_dir)
    kept = T - ds.n_episodes
    K = len(syn["u"])
    assert got["observations"].shape == (1, kept + K, N, src.spec.obs_dim)
    np.testing.assert_array_equal(got["observations"][0, kept:], syn["obs"].numpy())
    np.testing.assert_array_equal(got["infos.synthetic"][0], np.r_[np.zeros(kept, bool), np.ones(K, bool)])
    np.testing.assert_array_equal(got["infos.u"][0, kept:], syn["u"].numpy())
