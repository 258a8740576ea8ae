import warnings

import numpy as np
import pytest

from logo_fast.data.envs import make_env

from .helpers import rollout

pytest.importorskip("gymnasium_robotics")
warnings.filterwarnings("ignore")


def _uniform(env, rng):
    return lambda obs, state, avail: rng.uniform(-1, 1, (env.batch_size, *env.action_low.shape)).astype(np.float32)


def test_heterogeneous_hopper_spec_and_padding():
    env = make_env("mamujoco:Hopper-3x1", batch_size=2, time_limit=20)
    spec = env.spec
    assert spec.agent_obs_dims == (8, 9, 8) and spec.obs_dim == 9 and spec.heterogeneous
    assert spec.agent_act_dims == (1, 1, 1) and spec.act_dim == 1 and not spec.discrete
    assert env.action_low.shape == env.action_high.shape == (3, 1)
    assert (env.action_low == -1).all() and (env.action_high == 1).all()
    rollout(env, _uniform(env, np.random.default_rng(0)), seed=0, steps=25)  # padding checked per step


@pytest.mark.parametrize(
    "scenario, n_agents, act_dims",
    [("HalfCheetah-6x1", 6, (1,) * 6), ("Ant-2x4", 2, (4, 4)), ("Walker2d-2x3", 2, (3, 3))],
)
def test_other_tasks_specs(scenario, n_agents, act_dims):
    env = make_env(f"mamujoco:{scenario}", batch_size=1, time_limit=5)
    assert env.spec.n_agents == n_agents and env.spec.agent_act_dims == act_dims
    outs = rollout(env, _uniform(env, np.random.default_rng(0)), seed=0, steps=5)
    assert outs[-1][5][0] or outs[-1][4][0], "the 5-step limit ends the episode"


def test_time_limit_truncates_and_falling_terminates():
    env = make_env("mamujoco:Hopper-3x1", batch_size=1, time_limit=8)
    zero = lambda obs, state, avail: np.zeros((1, 3, 1), np.float32)
    outs = rollout(env, zero, seed=0, steps=8)
    # Standing still for 8 steps: healthy, so cut by the time limit only.
    assert [bool(o[5][0]) for o in outs] == [False] * 7 + [True]
    assert not any(o[4][0] for o in outs)

    env = make_env("mamujoco:Hopper-3x1", batch_size=4, time_limit=1000)
    outs = rollout(env, _uniform(env, np.random.default_rng(0)), seed=0, steps=120)
    # Random torques make the hopper fall long before 1000 steps: terminal, never truncated.
    assert sum(o[4].sum() for o in outs) >= 4
    assert not any(o[5].any() for o in outs)


def test_same_seed_same_trajectory():
    def run(seed):
        env = make_env("mamujoco:Hopper-3x1", batch_size=2, time_limit=6)
        outs = rollout(env, _uniform(env, np.random.default_rng(2)), seed=seed, steps=10)
        return np.stack([o[0] for o in outs])

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_bad_actions_raise():
    env = make_env("mamujoco:Hopper-3x1", batch_size=1)
    env.reset(0)
    with pytest.raises(ValueError, match=r"\(1, 3, 1\)"):
        env.step(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full((1, 3, 1), np.nan, np.float32))
