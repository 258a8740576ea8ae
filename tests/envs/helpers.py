"""Checks every adapter test shares: shapes, dtypes, padding, flags, auto-reset bookkeeping."""

from __future__ import annotations

import numpy as np


def check_reset(env, obs, state, avail):
    spec, B = env.spec, env.batch_size
    assert obs.shape == (B, spec.n_agents, spec.obs_dim) and obs.dtype == np.float32
    assert state.shape == (B, spec.state_dim) and state.dtype == np.float32
    assert np.isfinite(obs).all() and np.isfinite(state).all()
    assert (obs[:, ~spec.obs_mask()] == 0).all(), "padding must be zero"
    if spec.discrete:
        assert avail.shape == (B, spec.n_agents, spec.n_actions) and avail.dtype == np.bool_
        assert avail.any(-1).all(), "every agent needs an available action"
    else:
        assert avail is None


def check_step(env, out):
    obs, state, avail, reward, terminal, truncated, info = out
    spec, B = env.spec, env.batch_size
    check_reset(env, obs, state, avail)
    assert reward.shape == (B,) and reward.dtype == np.float32 and np.isfinite(reward).all()
    assert terminal.shape == truncated.shape == (B,) and terminal.dtype == truncated.dtype == np.bool_
    assert not (terminal & truncated).any(), "a step is never both terminal and truncated"
    assert (info["done"] == (terminal | truncated)).all()
    assert info["final_obs"].shape == obs.shape and info["final_state"].shape == state.shape
    assert (info["final_obs"][~info["done"]] == 0).all(), "final_obs is zero where no episode ended"
    assert (info["final_obs"][:, ~spec.obs_mask()] == 0).all()
    assert info["agent_rewards"].shape == (B, spec.n_agents) and np.isfinite(info["agent_rewards"]).all()
    if spec.discrete:
        assert info["final_avail"].shape == avail.shape


def rollout(env, policy_fn, seed: int, steps: int):
    """Run ``steps`` steps; returns lists of every step output."""
    obs, state, avail = env.reset(seed)
    check_reset(env, obs, state, avail)
    outs = []
    for _ in range(steps):
        out = env.step(policy_fn(obs, state, avail))
        check_step(env, out)
        outs.append(out)
        obs, state, avail = out[0], out[1], out[2]
    return outs
