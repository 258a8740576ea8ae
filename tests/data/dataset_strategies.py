"""Random valid datasets for the data tests (hypothesis draws the knobs, numpy fills the arrays)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from logo_fast.data.schema import DatasetSpec, OfflineDataset


def random_dataset(
    seed: int,
    n_agents: int = 3,
    action_type: str = "discrete",
    heterogeneous: bool = False,
    n_episodes: int = 3,
    max_len: int = 5,
    with_finals: bool = True,
    with_avail: bool = True,
    with_agent_rewards: bool = False,
) -> OfflineDataset:
    """A small valid dataset: zero padding, available actions, in-bounds actions, one end per episode."""
    rng = np.random.default_rng(seed)
    N = n_agents
    if heterogeneous and N > 1:
        obs_dims = [int(d) for d in rng.integers(1, 5, size=N)]
        obs_dims[0], obs_dims[-1] = 2, 5  # guarantee two sizes differ
    else:
        obs_dims = [4] * N
    obs_dim = max(obs_dims)
    discrete = action_type == "discrete"
    if discrete:
        n_actions, act_dims = int(rng.integers(2, 6)), ()
    else:
        act_dims = tuple(int(d) for d in rng.integers(1, 4, size=N)) if heterogeneous else (2,) * N
        n_actions = 0
    spec = DatasetSpec(
        n_agents=N,
        obs_dim=obs_dim,
        state_dim=int(rng.integers(1, 7)),
        action_type=action_type,
        n_actions=n_actions,
        act_dim=max(act_dims) if act_dims else 0,
        agent_obs_dims=tuple(obs_dims),
        agent_act_dims=act_dims,
        env="test:random",
    )
    lengths = rng.integers(1, max_len + 1, size=n_episodes)
    T = int(lengths.sum())
    E = n_episodes
    mask = spec.obs_mask()

    def observations(rows):
        return (rng.standard_normal((rows, N, obs_dim)) * mask).astype(np.float32)

    ends = np.cumsum(lengths) - 1
    terminal_end = rng.random(E) < 0.5
    terminals = np.zeros(T, bool)
    truncations = np.zeros(T, bool)
    terminals[ends[terminal_end]] = True
    truncations[ends[~terminal_end]] = True
    fields: dict = {}
    if discrete:
        avail = rng.random((T, N, n_actions)) < 0.6
        chosen = rng.integers(0, n_actions, size=(T, N))
        np.put_along_axis(avail, chosen[..., None], True, axis=-1)
        fields["actions"] = chosen.astype(np.int64)
        if with_avail:
            fields["avail_actions"] = avail
            if with_finals:
                final_avail = rng.random((E, N, n_actions)) < 0.6
                final_avail[..., 0] = True
                fields["final_avail"] = final_avail
    else:
        low = -rng.uniform(0.5, 2.0, size=(N, spec.act_dim)).astype(np.float32)
        high = rng.uniform(0.5, 2.0, size=(N, spec.act_dim)).astype(np.float32)
        u = rng.random((T, N, spec.act_dim)).astype(np.float32)
        fields["actions"] = ((low + u * (high - low)) * spec.act_mask()).astype(np.float32)
        fields["action_low"], fields["action_high"] = low, high
    if with_agent_rewards:
        fields["agent_rewards"] = rng.standard_normal((T, N)).astype(np.float32)
    if with_finals:
        fields["final_obs"] = observations(E)
        fields["final_state"] = rng.standard_normal((E, spec.state_dim)).astype(np.float32)
    return OfflineDataset(
        spec=spec,
        obs=observations(T),
        state=rng.standard_normal((T, spec.state_dim)).astype(np.float32),
        rewards=rng.standard_normal(T).astype(np.float32),
        terminals=terminals,
        truncations=truncations,
        metadata={"seed": seed, "kind": "random"},
        **fields,
    )


@st.composite
def datasets(draw, action_type: str | None = None) -> OfflineDataset:
    """Hypothesis strategy over small valid datasets (discrete/continuous, homogeneous/heterogeneous)."""
    return random_dataset(
        seed=draw(st.integers(0, 2**31 - 1)),
        n_agents=draw(st.integers(1, 4)),
        action_type=action_type or draw(st.sampled_from(["discrete", "continuous"])),
        heterogeneous=draw(st.booleans()),
        n_episodes=draw(st.integers(1, 4)),
        max_len=draw(st.integers(1, 6)),
        with_finals=draw(st.booleans()),
        with_avail=draw(st.booleans()),
        with_agent_rewards=draw(st.booleans()),
    )


def assert_same(a: OfflineDataset, b: OfflineDataset, dtypes: bool = True) -> None:
    """Every array field equal (np.array_equal), spec and metadata equal."""
    fa, fb = a.arrays(), b.arrays()
    assert sorted(fa) == sorted(fb), (sorted(fa), sorted(fb))
    for name in fa:
        x, y = np.asarray(fa[name]), np.asarray(fb[name][()] if hasattr(fb[name], "id") else fb[name])
        assert np.array_equal(x, y), name
        if dtypes:
            assert x.dtype == y.dtype, (name, x.dtype, y.dtype)
    assert a.spec == b.spec
    assert a.metadata == b.metadata
