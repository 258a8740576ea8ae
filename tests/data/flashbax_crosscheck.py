"""Manual cross-check of the vault reader/writer against the real flashbax (not collected by pytest).

flashbax is not a project dependency (it pulls JAX and orbax), so this runs in two
interpreters: one with flashbax (e.g. ``python -m venv /tmp/fbxenv && /tmp/fbxenv/bin/pip
install flashbax``), one with logo_fast. Steps, in order::

    FBX=/tmp/fbxenv/bin/python; LF=/tmp/venv1/bin/python; D=/tmp/fbxcheck
    $LF  tests/data/flashbax_crosscheck.py write-logo $D   # logo_fast writes a vault + reference arrays
    $FBX tests/data/flashbax_crosscheck.py read-fbx   $D   # flashbax Vault reads it and compares
    $FBX tests/data/flashbax_crosscheck.py write-fbx  $D   # flashbax writes an OG-MARL-style vault
    $LF  tests/data/flashbax_crosscheck.py read-logo  $D   # logo_fast reads it and compares

Each step exits non-zero on any mismatch.
"""

from __future__ import annotations

import os
import sys

import numpy as np


def write_logo(d: str) -> None:
    from logo_fast.data import make_toy_dataset
    from logo_fast.data.formats.vault import write_vault

    ds = make_toy_dataset(n_episodes=4, heterogeneous=True)
    write_vault(ds, os.path.join(d, "vaults", "toy.vlt"), vault_uid="Good")
    np.savez(
        os.path.join(d, "toy_ref.npz"), obs=ds.obs, actions=ds.actions, rewards=ds.rewards, terminals=ds.terminals,
        truncations=ds.truncations, avail=ds.avail_actions, state=ds.state,
    )  # fmt: skip


def read_fbx(d: str) -> None:
    from flashbax.vault import Vault

    os.chdir(d)
    exp = Vault(vault_name="toy.vlt", rel_dir="vaults", vault_uid="Good").read().experience
    ref = np.load("toy_ref.npz")
    checks = {
        "observations": np.array_equal(np.asarray(exp["observations"][0]), ref["obs"]),
        "actions": np.array_equal(np.asarray(exp["actions"][0]), ref["actions"]),
        "rewards": np.array_equal(np.asarray(exp["rewards"][0, :, 0]), ref["rewards"]),
        "terminals": np.array_equal(np.asarray(exp["terminals"][0]).all(-1), ref["terminals"]),
        "truncations": np.array_equal(np.asarray(exp["truncations"][0]).all(-1), ref["truncations"]),
        "infos.legals": np.array_equal(np.asarray(exp["infos"]["legals"][0]).astype(bool), ref["avail"]),
        "infos.state": np.array_equal(np.asarray(exp["infos"]["state"][0]), ref["state"]),
    }
    print(checks)
    if not all(checks.values()):
        sys.exit(1)


def write_fbx(d: str) -> None:
    import flashbax as fbx
    import jax
    import jax.numpy as jnp
    from flashbax.vault import Vault

    os.chdir(d)
    rng = np.random.default_rng(0)
    T, N, O, S, A = 40, 3, 7, 5, 4
    term = np.zeros((T, N), np.float32)
    term[[9, 24]] = 1.0
    trunc = np.zeros((T, N), np.float32)
    trunc[T - 1] = 1.0
    legals = (rng.random((T, N, A)) < 0.6).astype(np.float32)
    legals[..., 0] = 1
    exp = {
        "observations": rng.standard_normal((T, N, O)).astype(np.float32),
        "actions": np.zeros((T, N), np.int32),
        "rewards": np.repeat(rng.standard_normal((T, 1)), N, 1).astype(np.float32),
        "terminals": term,
        "truncations": trunc,
        "infos": {"legals": legals, "state": rng.standard_normal((T, S)).astype(np.float32)},
    }
    buf = fbx.make_flat_buffer(max_length=100, min_length=1, sample_batch_size=1, add_batch_size=1, add_sequences=True)
    state = buf.init(jax.tree_util.tree_map(lambda x: jnp.asarray(x[0]), exp))
    state = buf.add(state, jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], exp))
    Vault(vault_name="peer.vlt", experience_structure=state.experience, rel_dir="vaults", vault_uid="Good").write(state)
    np.savez(
        "peer_ref.npz", obs=exp["observations"], rewards=exp["rewards"], legals=legals, state=exp["infos"]["state"]
    )


def read_logo(d: str) -> None:
    from logo_fast.data import load

    ds = load(os.path.join(d, "vaults", "peer.vlt"))
    ref = np.load(os.path.join(d, "peer_ref.npz"))
    checks = {
        "obs": np.array_equal(ds.obs, ref["obs"]),
        "state": np.array_equal(ds.state, ref["state"]),
        "avail": np.array_equal(ds.avail_actions, ref["legals"].astype(bool)),
        "rewards": np.array_equal(ds.rewards, ref["rewards"][:, 0]),
        "terminals": np.flatnonzero(ds.terminals).tolist() == [9, 24],
        "truncations": np.flatnonzero(ds.truncations).tolist() == [39],
    }
    print(checks)
    if not all(checks.values()):
        sys.exit(1)


if __name__ == "__main__":
    step, directory = sys.argv[1], sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    {"write-logo": write_logo, "read-fbx": read_fbx, "write-fbx": write_fbx, "read-logo": read_logo}[step](directory)
