"""Rollout arguments and bookkeeping the older tests left open (found by mutation testing, issue 17)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .conftest import first_available


def test_one_start_is_allowed(quick_logo):
    out = quick_logo.rollout(first_available, starts=1, horizon=2, generator=torch.Generator().manual_seed(0))
    assert out["start"][out["horizon_step"] == 0].numel() == 1


def test_default_horizon_is_fifteen(quick_logo, train_ds):
    """The paper's horizon: a trajectory that never terminates has exactly 15 steps."""
    out = quick_logo.rollout(first_available, starts=np.arange(40))
    steps = out["horizon_step"]
    assert int(steps.max()) == 14
    lengths = torch.bincount(out["start"], minlength=40)
    ended = torch.zeros(40, dtype=torch.bool)
    ended[out["start"][out["terminals"]]] = True
    assert bool((lengths[~ended] == 15).all()) and bool((~ended).any())


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_u_threshold_is_refused(quick_logo, bad):
    with pytest.raises(ValueError, match="u_threshold must be finite"):
        quick_logo.rollout(first_available, starts=2, horizon=2, u_threshold=bad)


@pytest.mark.parametrize("bad", [2.5, 0, -1, "3"])
def test_bad_horizon_is_refused(quick_logo, bad):
    with pytest.raises(ValueError, match="horizon must be an int >= 1"):
        quick_logo.rollout(first_available, starts=2, horizon=bad)


def test_bad_start_counts_and_indices_are_refused(quick_logo, train_ds):
    with pytest.raises(ValueError, match="number of starts must be >= 1, got 0"):
        quick_logo.rollout(first_available, starts=0, horizon=2)
    with pytest.raises(ValueError, match=r"starts must be 1-d indices, got shape \(2, 2\)"):
        quick_logo.rollout(first_available, starts=np.zeros((2, 2), dtype=np.int64), horizon=2)
    with pytest.raises(ValueError, match="starts is empty"):
        quick_logo.rollout(first_available, starts=np.zeros(0, dtype=np.int64), horizon=2)
    with pytest.raises(ValueError, match="integer indices, got dtype torch.bool"):
        quick_logo.rollout(first_available, starts=np.array([True, False]), horizon=2)
    with pytest.raises(ValueError, match=rf"out of range \[0, {len(train_ds)}\): min -1, max 3"):
        quick_logo.rollout(first_available, starts=np.array([3, -1]), horizon=2)
    # the last index is a valid start
    out = quick_logo.rollout(first_available, starts=torch.tensor([len(train_ds) - 1]), horizon=1)
    assert out["start"].tolist() == [len(train_ds) - 1]


def test_dict_starts_need_obs_and_state(quick_logo, train_ds):
    with pytest.raises(ValueError, match=r"lacks \['state'\]"):
        quick_logo.rollout(first_available, starts={"obs": train_ds.obs[:2]}, horizon=2)
    with pytest.raises(ValueError, match=r"lacks \['obs', 'state'\]"):
        quick_logo.rollout(first_available, starts={}, horizon=2)


def test_dict_starts_without_avail_have_every_action_available(quick_logo, train_ds):
    seen = []

    def policy(obs, avail):
        seen.append(avail.clone())
        return avail.long().argmax(-1)

    out = quick_logo.rollout(policy, starts={"obs": train_ds.obs[:4], "state": train_ds.state[:4]}, horizon=1)
    assert seen[0].shape == (4, 3, train_ds.spec.n_actions) and bool(seen[0].all())
    assert bool(out["avail_actions"].all())


def test_avail_chains_along_each_trajectory(quick_logo, train_ds):
    """The policy sees, at step h + 1, the availability the model predicted at step h."""
    out = quick_logo.rollout(first_available, starts=np.arange(30), horizon=5)
    first = out["horizon_step"] == 0
    assert torch.equal(out["avail_actions"][first], torch.as_tensor(np.asarray(train_ds.avail_actions)[:30]))
    chained = 0
    for s in range(30):
        rows = torch.nonzero(out["start"] == s).flatten()
        rows = rows[torch.argsort(out["horizon_step"][rows])]
        if len(rows) > 1:
            assert torch.equal(out["avail_actions"][rows[1:]], out["next_avail"][rows[:-1]])
            torch.testing.assert_close(out["state"][rows[1:]], out["next_state"][rows[:-1]])
            chained += 1
    assert chained > 0


def test_module_level_rollout_defaults_to_fifteen_steps(quick_logo):
    """``logo_fast.model.rollout.rollout`` is public too: its default horizon is the paper's 15, like the method's."""
    from logo_fast.model.rollout import rollout

    out = rollout(quick_logo, first_available, np.arange(40))
    assert int(out["horizon_step"].max()) == 14


def test_errors_say_where_in_the_rollout_they_happened(quick_logo, train_ds):
    calls = []

    def late_bad_policy(obs, avail):
        calls.append(1)
        act = avail.long().argmax(-1)
        return act if len(calls) == 1 else act + 100  # out of range from the second step on

    with pytest.raises(ValueError, match=r"^rollout: policy actions at horizon step 1: bad input"):
        quick_logo.rollout(late_bad_policy, starts=np.arange(4), horizon=3)
    obs = np.array(train_ds.obs[:2])
    obs[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^rollout \(start states\): bad input"):
        quick_logo.rollout(first_available, starts={"obs": obs, "state": train_ds.state[:2]}, horizon=2)
