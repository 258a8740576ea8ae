"""Rollout start states and seeding the older tests left open (found by the rollout mutation run, issue 17).

Public API only (``model.rollout``). Each docstring names the breakage (a mutmut mutant) it was checked against.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from logo_fast.data import make_toy_dataset
from logo_fast.model import EnsembleWorldModel, LogoWorldModel

from .conftest import first_available, small_config


def test_starts_come_from_the_dataset_passed(quick_logo, train_ds, heldout_ds):
    """``dataset=`` decides where start indices point: mutant ``gather_starts(model, starts, None, ...)`` read
    the fitted dataset instead and no test rolled out from another one."""
    idx = np.array([3, 50, 120, 7])
    out = quick_logo.rollout(first_available, starts=idx, horizon=1, dataset=heldout_ds)
    same = {"obs": heldout_ds.obs[idx], "state": heldout_ds.state[idx], "avail": heldout_ds.avail_actions[idx]}
    want = quick_logo.rollout(first_available, starts=same, horizon=1)
    assert torch.equal(out["state"], want["state"]) and torch.equal(out["obs"], want["obs"])
    assert not np.allclose(train_ds.state[idx], heldout_ds.state[idx])  # the two datasets differ there


def test_a_discrete_dataset_without_avail_means_every_action_is_available(quick_logo, train_ds):
    """A discrete dataset may omit avail_actions (every action available): mutant ``... is not None or True``
    indexed the missing array and no test rolled out from such a dataset."""
    bare = dataclasses.replace(train_ds, avail_actions=None, final_avail=None)
    out = quick_logo.rollout(first_available, starts=np.arange(6), horizon=1, dataset=bare)
    assert out["avail_actions"].shape == (6, 3, train_ds.spec.n_actions)
    assert bool(out["avail_actions"].all())


def test_bad_start_indices_list_every_problem_one_per_line(quick_logo):
    """mutants ``"XXstarts is emptyXX"`` and ``"XX\\n  - XX".join``: the messages were only matched loosely."""
    with pytest.raises(ValueError) as err:
        quick_logo.rollout(first_available, starts=np.zeros((2, 2)), horizon=1)
    assert str(err.value).split("\n  - ") == [
        "rollout: bad starts:",
        "starts must be 1-d indices, got shape (2, 2)",
        "starts must be integer indices, got dtype torch.float64",
    ]
    with pytest.raises(ValueError) as err:
        quick_logo.rollout(first_available, starts=np.array([], dtype=np.int64), horizon=1)
    assert str(err.value) == "rollout: bad starts:\n  - starts is empty"


def test_continuous_actions_bounded_away_from_zero_roll_out():
    """The start states are checked with a zero action clamped into the action bounds: mutant ``if spec.discrete
    and action_low is not None`` skipped the clamp, so a task whose actions exclude 0 could not roll out at all
    (the toy tasks' bounds are [-1, 1], which contain 0)."""
    ds = make_toy_dataset(n_agents=2, n_episodes=4, episode_len=10, action_type="continuous", seed=5)
    ds = dataclasses.replace(
        ds,
        actions=(0.25 * ds.actions + 1.0).astype(np.float32),
        action_low=np.full_like(ds.action_low, 0.75),
        action_high=np.full_like(ds.action_high, 1.25),
    )
    model = LogoWorldModel(config=small_config(epochs=1)).fit(ds, progress=False)

    def middle(obs, avail):
        return torch.ones(obs.shape[0], 2, ds.spec.act_dim)

    out = model.rollout(middle, starts=np.arange(5), horizon=2)
    assert out["actions"].shape[0] >= 5 and bool((out["actions"] == 1.0).all())


def test_an_ensemble_rollout_without_a_generator_samples_from_the_config_seed(train_ds):
    """With sample_members and no generator the ensemble still samples (a random elite and Gaussian noise per
    row), from a generator seeded by config.seed: mutants ``kind != "ensemble"``, ``== "ENSEMBLE"`` and
    ``manual_seed(None)`` fell back to the elites' mean (or raised), and only rollouts given a generator were
    tested."""
    model = EnsembleWorldModel(config=small_config(epochs=1, seed=3)).fit(train_ds, progress=False)
    assert model.config.sample_members
    a = model.rollout(first_available, starts=np.arange(8), horizon=3)
    torch.manual_seed(12345)  # the global RNG must play no part
    b = model.rollout(first_available, starts=np.arange(8), horizon=3)
    assert torch.equal(a["next_state"], b["next_state"]) and torch.equal(a["u"], b["u"])
    seeded = model.rollout(first_available, starts=np.arange(8), horizon=3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a["next_state"], seeded["next_state"])
    model.config.sample_members = False  # the elites' mean, what the mutants gave
    try:
        mean = model.rollout(first_available, starts=np.arange(8), horizon=1)
    finally:
        model.config.sample_members = True
    assert not torch.allclose(a["next_state"][:8], mean["next_state"][:8])
