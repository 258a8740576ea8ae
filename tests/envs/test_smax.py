"""SMAX adapter tests. jax compiles the batched step once per (map, time limit, B): one shared env."""

import numpy as np
import pytest

from .helpers import check_reset, check_step

pytest.importorskip("jaxmarl")

B, LIMIT = 8, 40


@pytest.fixture(scope="module")
def env():
    from logo_fast.data.envs import make_env

    return make_env("smax:2s3z", batch_size=B, time_limit=LIMIT)


@pytest.fixture(scope="module")
def random_run(env):
    """120 steps of uniformly random available actions from seed 0 (shared by several tests)."""
    from logo_fast.data.policies.base import random_available

    rng = np.random.default_rng(0)
    obs, state, avail = env.reset(0)
    check_reset(env, obs, state, avail)
    steps = []
    for _ in range(120):
        act = random_available(avail, rng)
        out = env.step(act)
        steps.append((obs, state, avail, act, out))
        obs, state, avail = out[0], out[1], out[2]
    return steps


@pytest.mark.slow
def test_spec(env):
    s = env.spec
    assert (s.n_agents, s.obs_dim, s.state_dim, s.n_actions, s.discrete) == (5, 127, 120, 10, True)


@pytest.mark.slow
def test_steps_shapes_masks_and_flags(env, random_run):
    lengths = np.zeros(B, int)
    terminal_seen = truncated_seen = 0
    for _obs, _state, avail, _act, out in random_run:
        check_step(env, out)
        # "stop" (index 4) is always legal; dead units can only stop.
        assert avail[..., 4].all()
        lengths += 1
        done = out[6]["done"]
        assert (lengths[done] <= LIMIT).all()
        # A truncation happens exactly at the time limit, a termination before it.
        assert (lengths[out[5]] == LIMIT).all()
        terminal_seen += out[4].sum()
        truncated_seen += out[5].sum()
        lengths[done] = 0
    assert terminal_seen > 0 and truncated_seen > 0


@pytest.mark.slow
def test_avail_matches_legal_attacks(env, random_run):
    """An attack is available exactly when that enemy is alive and in range (read from the jax state)."""
    import jax

    env.reset(3)
    st = jax.tree.map(np.asarray, env.jax_state.state)
    avail = env.step(np.full((B, 5), 4))[2]  # everyone stops, then compare with the new state
    st = jax.tree.map(np.asarray, env.jax_state.state)
    n_allies = 5
    ranges = np.asarray(env.env.unit_type_attack_ranges)[st.unit_types[:, :n_allies]]  # (B, 5)
    pos = st.unit_positions
    dist = np.linalg.norm(pos[:, :n_allies, None] - pos[:, None, n_allies:], axis=-1)  # (B, 5, 5)
    legal = (dist < ranges[..., None]) & st.unit_alive[:, None, n_allies:] & st.unit_alive[:, :n_allies, None]
    np.testing.assert_array_equal(avail[..., 5:], legal)


@pytest.mark.slow
def test_final_obs_recorded_on_episode_ends(env, random_run):
    for *_, out in random_run:
        info = out[6]
        if info["done"].any():
            d = info["done"]
            # The final state belongs to the old battle; the returned state starts a new one.
            assert not np.allclose(info["final_state"][d], out[1][d])
            assert info["final_avail"][d].any(-1).all()


@pytest.mark.slow
def test_same_seed_same_battles(env):
    from logo_fast.data.policies.base import random_available

    def run(seed):
        rng = np.random.default_rng(5)
        obs, state, avail = env.reset(seed)
        rewards = []
        for _ in range(15):
            out = env.step(random_available(avail, rng))
            avail = out[2]
            rewards.append(out[3])
        return state, np.stack(rewards)

    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.slow
def test_heuristic_policy_is_legal_and_beats_random(env):
    from logo_fast.data.collect import mean_return
    from logo_fast.data.policies.base import RandomPolicy
    from logo_fast.data.policies.smax_heuristic import SMAXHeuristicPolicy

    policy = SMAXHeuristicPolicy(env, 0.0)
    obs, state, avail = env.reset(0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        act = policy.act(obs, state, avail, rng)
        assert np.take_along_axis(avail, act[..., None], -1).all(), "scripted actions must be available"
        obs, state, avail, _, _, _, info = env.step(act)
        policy.on_episode_end(info["done"])
    heuristic = mean_return(env, SMAXHeuristicPolicy(env, 0.05), seed=1, n_episodes=16)
    random = mean_return(env, RandomPolicy(), seed=1, n_episodes=16)
    assert heuristic > random + 0.2, (heuristic, random)


@pytest.mark.slow
def test_bad_actions_raise(env):
    env.reset(0)
    with pytest.raises(ValueError, match="outside"):
        env.step(np.full((B, 5), 10))
