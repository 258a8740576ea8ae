import numpy as np
import pytest

from logo_fast.data.envs import make_env

from .helpers import rollout

pytest.importorskip("mpe2")


def _random(env, rng):
    return lambda obs, state, avail: rng.integers(0, env.spec.n_actions, (env.batch_size, env.spec.n_agents))


@pytest.mark.parametrize(
    "scenario, n_agents, obs_dim, n_actions",
    [("simple_spread", 3, 18, 5), ("simple_tag", 3, 16, 5), ("simple_reference", 2, 21, 50)],
)
def test_spec_and_truncation(scenario, n_agents, obs_dim, n_actions):
    env = make_env(f"mpe:{scenario}", batch_size=3, time_limit=4)
    spec = env.spec
    assert (spec.n_agents, spec.obs_dim, spec.n_actions, spec.discrete) == (n_agents, obs_dim, n_actions, True)
    outs = rollout(env, _random(env, np.random.default_rng(0)), seed=0, steps=9)
    truncated = np.stack([o[5] for o in outs])
    terminal = np.stack([o[4] for o in outs])
    # MPE never terminates; every copy is truncated exactly at steps 4 and 8.
    assert not terminal.any()
    assert truncated[[3, 7]].all() and truncated.sum() == 2 * env.batch_size
    for o in outs:
        assert o[2].all(), "every MPE action is always available"
        # Team reward is the mean of the controlled agents' rewards.
        np.testing.assert_allclose(o[3], o[6]["agent_rewards"].mean(1), rtol=1e-6)


def test_auto_reset_returns_the_next_episode_and_the_final_obs():
    env = make_env("mpe:simple_spread", batch_size=2, time_limit=3)
    obs0, state0, _ = env.reset(5)
    rng = np.random.default_rng(0)
    out = None
    for _ in range(3):
        out = env.step(rng.integers(0, 5, (2, 3)))
    obs, state, _, _, _, trunc, info = out
    assert trunc.all()
    # After the auto-reset, the observation is a fresh start (zero velocity), not the final one.
    assert np.allclose(obs[:, :, 0:2], 0.0)
    assert not np.allclose(info["final_obs"], obs)
    np.testing.assert_array_equal(info["final_state"][:, :18], info["final_obs"][:, 0])


def test_same_seed_same_trajectory_other_seed_differs():
    def run(seed):
        env = make_env("mpe:simple_tag", batch_size=2, time_limit=5)  # the random prey is seeded too
        rng = np.random.default_rng(1)
        outs = rollout(env, _random(env, rng), seed=seed, steps=7)
        return np.stack([o[1] for o in outs]), np.stack([o[3] for o in outs])

    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_bad_actions_raise_one_error():
    env = make_env("mpe:simple_spread", batch_size=2)
    env.reset(0)
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\)"):
        env.step(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="outside"):
        env.step(np.full((2, 3), 7))
    with pytest.raises(ValueError, match="integer"):
        env.step(np.zeros((2, 3), dtype=np.float32))
