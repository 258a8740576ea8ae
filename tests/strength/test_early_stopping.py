"""Early stopping reaches patience, stops there, and leaves the model with its best weights (issue 17).

Breakages these tests were checked against: the final ``net.load_state_dict(state.best_state)``
removed (the model keeps its last, worse weights), the best snapshot taken at every evaluation
instead of at improvements, and ``bad_evals > patience`` instead of ``>=``.
"""

from __future__ import annotations

import pytest
import torch

from logo_fast.data import make_toy_dataset
from logo_fast.model import LogoWorldModel
from logo_fast.model.training import holdout_score
from logo_fast.model.transitions import TransitionStore, TransitionTable

from .conftest import small_config


@pytest.fixture(scope="module")
def stopped():
    train = make_toy_dataset(n_agents=2, n_episodes=8, episode_len=12, action_type="discrete", seed=21)
    hold = make_toy_dataset(n_agents=2, n_episodes=3, episode_len=12, action_type="discrete", seed=22)
    # A large learning rate makes the holdout score go up within a few steps, so patience 1 fires early.
    cfg = small_config(patience=1, eval_every=1, epochs=50, lr=0.03, min_improvement=0.0, batch_size=32)
    model = LogoWorldModel(config=cfg).fit(train, holdout=hold, progress=False)
    steps_per_epoch = -(-len(TransitionTable(TransitionStore(train))) // cfg.batch_size)
    return model, hold, cfg.epochs * steps_per_epoch


def test_patience_is_reached_and_training_stops_there(stopped):
    model, _, total_steps = stopped
    state = model.train_state
    assert state.done, "early stopping never fired"
    assert state.step < total_steps
    hist = state.history
    assert len(hist) == state.step  # eval_every=1: one evaluation per step
    assert [h["step"] for h in hist] == list(range(1, state.step + 1))
    # It stopped at the first evaluation that did not improve (patience 1), not before, not after.
    best = [h["best_holdout"] for h in hist]
    assert hist[-1]["holdout"] >= best[-2], "the last evaluation improved, so patience was not reached"
    assert all(hist[i]["holdout"] < best[i - 1] for i in range(1, len(hist) - 1)), "stopped late"
    assert state.bad_evals == 1


def test_restored_weights_are_the_best_ones(stopped):
    model, hold, _ = stopped
    state = model.train_state
    hist = state.history
    best_i = min(range(len(hist)), key=lambda i: hist[i]["holdout"])
    assert hist[best_i]["holdout"] == pytest.approx(hist[-1]["best_holdout"])
    # The case is only a test if the last weights were worse than the best ones.
    assert hist[-1]["holdout"] > hist[best_i]["holdout"] * (1 + 1e-3)
    table = TransitionTable(TransitionStore(hold))
    score = float(holdout_score(model.net, table, torch.arange(len(table)), model.device)[0])
    assert score == pytest.approx(hist[best_i]["holdout"], rel=1e-5), (
        f"restored model scores {score}, best evaluation {hist[best_i]['holdout']}, last {hist[-1]['holdout']}")
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, state.best_state[k]), k


def test_restored_weights_survive_save_and_load(stopped, tmp_path):
    model, hold, _ = stopped
    path = tmp_path / "wm.pt"
    model.save(str(path))
    loaded = LogoWorldModel.load(str(path))
    b = TransitionTable(TransitionStore(hold)).batch(torch.arange(8))
    a, c = model.step(b["obs"], b["state"], b["actions"]), loaded.step(b["obs"], b["state"], b["actions"])
    assert torch.equal(a.next_state, c.next_state) and torch.equal(a.u, c.u)
