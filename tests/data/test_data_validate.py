"""validate_dataset: valid data passes; every class of corruption is caught, named by field, all in one error."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from logo_fast.data import make_toy_dataset, validate_dataset
from logo_fast.data.validate import ChunkChecker, dataset_problems

from .dataset_strategies import datasets, random_dataset

# filter_too_much: discrete-only corruptions assume() away the continuous half of the generated
# datasets, which trips Hypothesis's filtering health check on unlucky runs (flaky, not a failure).
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


def _copy(ds):
    return copy.deepcopy(ds)


# Each corruption mutates a copy and returns the text the error must contain (None: not applicable).
def nan_in_float_field(ds, rng):
    names = [
        n
        for n in ("obs", "state", "rewards", "agent_rewards", "final_obs", "final_state")
        if getattr(ds, n) is not None
    ]
    name = names[rng.integers(len(names))]
    a = getattr(ds, name)
    idx = tuple(rng.integers(s) for s in a.shape)
    a[idx] = rng.choice([np.nan, np.inf, -np.inf])
    return f"{name}: 1 non-finite"


def nonzero_obs_padding(ds, rng):
    pad = ~ds.spec.obs_mask()
    if not pad.any():
        return None
    agents, feats = np.nonzero(pad)
    k = rng.integers(len(agents))
    ds.obs[rng.integers(len(ds)), agents[k], feats[k]] = 0.5
    return "obs: 1 non-zero values in padding"


def wrong_row_count(ds, rng):
    name = ["obs", "state", "actions", "terminals"][rng.integers(4)]
    setattr(ds, name, getattr(ds, name)[:-1] if len(ds) > 1 else np.concatenate([getattr(ds, name)] * 2))
    return f"{name}: has"


def agent_count_mismatch(ds, rng):
    ds.obs = np.concatenate([ds.obs, np.zeros_like(ds.obs[:, :1])], axis=1)
    return f"obs: agent count {ds.spec.n_agents + 1} != spec.n_agents {ds.spec.n_agents}"


def empty_dataset(ds, rng):
    for name in ("obs", "state", "actions", "rewards", "terminals", "truncations", "avail_actions", "agent_rewards"):
        if getattr(ds, name) is not None:
            setattr(ds, name, getattr(ds, name)[:0])
    ds.final_obs = ds.final_state = ds.final_avail = None
    return "empty (T == 0"


def discrete_out_of_range(ds, rng):
    if not ds.spec.discrete:
        return None
    ds.actions[rng.integers(len(ds)), rng.integers(ds.spec.n_agents)] = rng.choice([-1, ds.spec.n_actions])
    return "actions: 1 discrete actions outside"


def action_not_available(ds, rng):
    if not ds.spec.discrete or ds.avail_actions is None:
        return None
    t, i = rng.integers(len(ds)), rng.integers(ds.spec.n_agents)
    ds.avail_actions[t, i] = True
    ds.avail_actions[t, i, ds.actions[t, i]] = False
    return "actions: 1 actions not available"


def avail_row_empty(ds, rng):
    if not ds.spec.discrete or ds.avail_actions is None:
        return None
    ds.avail_actions[rng.integers(len(ds)), rng.integers(ds.spec.n_agents)] = False
    return "avail_actions: 1 agent rows with no available action"


def continuous_out_of_bounds(ds, rng):
    if ds.spec.discrete:
        return None
    i = rng.integers(ds.spec.n_agents)
    j = rng.integers(ds.spec.agent_act_dims[i])
    ds.actions[rng.integers(len(ds)), i, j] = ds.action_high[i, j] + 0.01
    return "actions: 1 continuous actions outside"


def missing_bounds(ds, rng):
    if ds.spec.discrete:
        return None
    ds.action_high = None
    return "action_high: missing"


def no_episode_end(ds, rng):
    ds.terminals[-1] = ds.truncations[-1] = False
    return "the last episode has no end"


def terminal_and_truncated(ds, rng):
    ds.terminals[-1] = ds.truncations[-1] = True
    return "truncations: 1 steps both terminal and truncated"


def wrong_dtype(ds, rng):
    choices = [
        ("obs", np.int32, "obs: dtype int32 is not floating"),
        ("terminals", np.int8, "terminals: dtype int8 is not bool"),
    ]
    if ds.spec.discrete:
        choices.append(("actions", np.float32, "actions: dtype float32 is not an integer"))
    name, dtype, msg = choices[rng.integers(len(choices))]
    setattr(ds, name, getattr(ds, name).astype(dtype))
    return msg


def final_rows_mismatch(ds, rng):
    if ds.final_obs is None:
        return None
    ds.final_state = np.concatenate([ds.final_state, ds.final_state[:1]])
    return f"final_state: has {ds.n_episodes + 1} rows but the dataset has {ds.n_episodes} episodes"


CORRUPTIONS = [
    nan_in_float_field,
    nonzero_obs_padding,
    wrong_row_count,
    agent_count_mismatch,
    empty_dataset,
    discrete_out_of_range,
    action_not_available,
    avail_row_empty,
    continuous_out_of_bounds,
    missing_bounds,
    no_episode_end,
    terminal_and_truncated,
    wrong_dtype,
    final_rows_mismatch,
]


@SETTINGS
@given(datasets())
def test_valid_datasets_pass(ds):
    validate_dataset(ds)
    assert dataset_problems(ds, chunk_steps=1) == []


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
@pytest.mark.parametrize("heterogeneous", [False, True])
def test_toy_datasets_are_valid(action_type, heterogeneous):
    validate_dataset(make_toy_dataset(action_type=action_type, heterogeneous=heterogeneous))


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
@SETTINGS
@given(ds=datasets(), seed=st.integers(0, 2**31 - 1))
def test_each_corruption_is_caught_and_named(corrupt, ds, seed):
    bad = _copy(ds)
    expected = corrupt(bad, np.random.default_rng(seed))
    assume(expected is not None)
    with pytest.raises(ValueError) as err:
        validate_dataset(bad)
    assert expected in str(err.value), str(err.value)
    # The chunked walk finds the same problems whatever the chunk size.
    assert dataset_problems(bad, chunk_steps=1) == dataset_problems(bad)


@SETTINGS
@given(ds=datasets(), seed=st.integers(0, 2**31 - 1))
def test_all_problems_reported_in_one_error(ds, seed):
    rng = np.random.default_rng(seed)
    bad = _copy(ds)
    applied = []
    for corrupt in (nan_in_float_field, discrete_out_of_range, continuous_out_of_bounds, terminal_and_truncated):
        msg = corrupt(bad, rng)
        if msg is not None:
            applied.append(msg)
    with pytest.raises(ValueError) as err:
        validate_dataset(bad)
    text = str(err.value)
    for msg in applied:
        assert msg in text or msg.split(":")[0] in text, (msg, text)
    n = int(re.search(r"\((\d+) problems?\)", text).group(1))
    assert n == len(text.strip().splitlines()) - 1


def test_first_offending_step_is_reported():
    ds = random_dataset(0, n_episodes=4, max_len=6)
    ds.obs[3, 0, 0] = np.nan
    ds.obs[1, 1, 0] = np.inf
    problems = dataset_problems(ds, chunk_steps=2)
    assert problems == ["obs: 2 non-finite values (NaN/Inf) (first at step 1)"]


def test_nan_padding_counts_as_non_finite_not_padding():
    ds = random_dataset(1, heterogeneous=True)
    pad = np.argwhere(~ds.spec.obs_mask())[0]
    ds.obs[0, pad[0], pad[1]] = np.nan
    problems = dataset_problems(ds)
    assert any(p.startswith("obs: 1 non-finite") for p in problems)
    assert not any("padding" in p for p in problems)


def test_bound_tolerance_and_padded_actions():
    ds = random_dataset(2, action_type="continuous", heterogeneous=True)
    ds.actions[0, 0, 0] = ds.action_high[0, 0] + 1e-7  # inside the tolerance
    validate_dataset(ds)
    pad = np.argwhere(~ds.spec.act_mask())
    if len(pad):
        ds.actions[0, pad[0][0], pad[0][1]] = 0.25
        with pytest.raises(ValueError, match="actions: 1 non-zero values in padding outside act_mask"):
            validate_dataset(ds)


def test_inverted_or_nan_bounds():
    ds = random_dataset(3, action_type="continuous")
    ds.action_low = ds.action_high + 1
    ds.action_high = ds.action_high.copy()
    ds.action_high[0, 0] = np.nan
    problems = dataset_problems(ds)
    assert any(p.startswith("action_high: 1 non-finite") for p in problems)
    assert any(p.startswith("action_low:") and "greater than action_high" in p for p in problems)


def test_structure_problems():
    ds = random_dataset(4, action_type="discrete", with_finals=True)
    ds.final_state = None
    ds.action_low = np.zeros((3, 1), np.float32)
    problems = "\n".join(dataset_problems(ds))
    assert "final_obs/final_state: give both or neither" in problems
    assert "action_low: given for a discrete task" in problems
    ds2 = random_dataset(5, action_type="continuous", with_finals=False)
    ds2.avail_actions = np.ones((len(ds2), 3, 2), bool)
    assert any("avail_actions: given for a continuous task" in p for p in dataset_problems(ds2))
    ds3 = random_dataset(6)
    ds3.rewards = None
    assert "rewards: missing (required)" in dataset_problems(ds3)


def test_state_dim_mismatch_is_named():
    ds = random_dataset(7)
    ds.state = np.zeros((len(ds), ds.spec.state_dim + 2), np.float32)
    (p,) = dataset_problems(ds)
    assert p.startswith("state: size") and f"state_dim axis, spec expects {ds.spec.state_dim}" in p
    ds = random_dataset(8, action_type="discrete")
    ds.avail_actions = ds.avail_actions[..., :-1]
    (p,) = dataset_problems(ds)
    assert p.startswith("avail_actions: size") and f"n_actions axis, spec expects {ds.spec.n_actions}" in p


def test_chunk_checker_alone_counts_across_blocks():
    ds = random_dataset(8, n_episodes=4, max_len=6)
    ds.actions[0, 0] = 99
    ds.actions[-1, 0] = -3
    checker = ChunkChecker(ds.spec)
    for start in range(0, len(ds), 3):
        block = {k: getattr(ds, k)[start : start + 3] for k in ("actions", "avail_actions")}
        checker.check_steps(block, start)
    assert checker.messages() == [f"actions: 2 discrete actions outside [0, {ds.spec.n_actions}) (first at step 0)"]
