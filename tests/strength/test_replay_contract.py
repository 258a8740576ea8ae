"""Replay checks and checkpoints the older tests left open (found by mutation testing, issue 17).

Public API only: construction, add_synthetic, sample, state_dict / load_state_dict.
"""

from __future__ import annotations

import pytest
import torch

from logo_fast.replay import UncertaintyWeightedReplay

from .test_replay_real_uniform import _real_rows, _synthetic_rows


@pytest.mark.parametrize("bad", [0, -2, 2.0, True])
def test_n_actions_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match=r"n_actions must be an int >= 1 or None, got"):
        UncertaintyWeightedReplay(_real_rows(4), capacity=4, C=1.0, n_actions=bad)


@pytest.mark.parametrize("field", ["rewards", "terminals"])
def test_per_row_fields_of_the_wrong_rank_are_a_value_error(field):
    """mutant ``tensors['TERMINALS']`` in the message: a KeyError instead of the ValueError."""
    real = _real_rows(4)
    real[field] = real[field][:, None]
    with pytest.raises(ValueError, match=rf"real {field} must be \(R,\), got \(4, 1\)"):
        UncertaintyWeightedReplay(real, capacity=4, C=1.0)


def test_add_synthetic_lists_every_problem_one_per_line():
    replay = UncertaintyWeightedReplay(_real_rows(4), capacity=8, C=1.0)
    bad = _synthetic_rows(3)
    bad["u"] = torch.tensor([0.5, -1.0, 0.2])
    bad["state"] = bad["state"][:, :2]
    with pytest.raises(ValueError) as err:
        replay.add_synthetic(bad)
    lines = str(err.value).split("\n  - ")
    assert lines[0] == "add_synthetic: bad input:"
    assert len(lines) == 3, str(err.value)
    assert any(line.startswith("u has 1 negative entries") for line in lines)
    assert any(line.startswith("state must have shape (3, 3)") for line in lines)
    assert replay.n_synthetic == 0  # nothing stored


def test_state_dict_of_a_partly_filled_replay_round_trips():
    """A checkpoint holds the filled synthetic rows only, and restores the same batches."""
    a = UncertaintyWeightedReplay(_real_rows(5), capacity=100, C=2.0, seed=4)
    a.add_synthetic(_synthetic_rows(30))
    a.sample(16)
    state = a.state_dict()
    assert state["u"].shape == (30,)
    assert all(v.shape[0] == 30 for v in state["synthetic"].values())
    b = UncertaintyWeightedReplay(_real_rows(5), capacity=100, C=2.0, seed=99)
    b.load_state_dict(state)
    assert b.n_synthetic == 30
    assert torch.equal(b.synthetic_u(), a.synthetic_u())
    for _ in range(3):
        x, y = a.sample(32), b.sample(32)
        assert all(torch.equal(x[k], y[k]) for k in x)


def test_load_state_dict_refuses_u_of_the_wrong_shape():
    a = UncertaintyWeightedReplay(_real_rows(5), capacity=10, C=2.0)
    a.add_synthetic(_synthetic_rows(6))
    state = a.state_dict()
    state["u"] = state["u"][:4]
    b = UncertaintyWeightedReplay(_real_rows(5), capacity=10, C=2.0)
    with pytest.raises(ValueError, match=r"u must be \(6,\)"):
        b.load_state_dict(state)
    state["u"] = [0.0] * 6
    with pytest.raises(ValueError, match=r"u must be \(6,\)"):
        b.load_state_dict(state)


def test_load_state_dict_names_an_unknown_version_and_mismatched_fields():
    """A checkpoint of another format version, or with other synthetic fields, is refused with both problems
    listed: mutants reading ``state['XXversionXX']`` / ``state['SYNTHETIC']`` or ``sorted(None)`` in those
    messages raised KeyError / TypeError instead."""
    a = UncertaintyWeightedReplay(_real_rows(5), capacity=10, C=2.0)
    a.add_synthetic(_synthetic_rows(3))
    state = a.state_dict()
    state["version"] = 2
    del state["synthetic"]["next_state"]
    b = UncertaintyWeightedReplay(_real_rows(5), capacity=10, C=2.0)
    with pytest.raises(ValueError) as err:
        b.load_state_dict(state)
    lines = str(err.value).split("\n  - ")
    assert lines[0] == "load_state_dict: bad input:"
    assert "unknown state version 2" in lines
    fields = sorted(a.fields)
    assert f"synthetic fields {sorted(set(fields) - {'next_state'})} != {fields}" in lines
    assert b.n_synthetic == 0  # nothing restored


def test_a_default_device_set_by_the_caller_does_not_move_the_draws():
    """``torch.set_default_device`` elsewhere must not change where (or which) rows a CPU replay draws."""
    a = UncertaintyWeightedReplay(_real_rows(5), capacity=100, C=2.0, seed=4)
    b = UncertaintyWeightedReplay(_real_rows(5), capacity=100, C=2.0, seed=4)
    for r in (a, b):
        r.add_synthetic(_synthetic_rows(30))
    want = a.sample(32)
    with torch.device("meta"):  # stands in for a CUDA default on a CPU-only machine
        got = b.sample(32)
    assert all(got[k].device.type == "cpu" and torch.equal(got[k], want[k]) for k in want)
