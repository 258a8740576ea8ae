"""Report metrics against values worked out by hand on a 3-transition case (the README tables come from them).

Breakages these tests were checked against: nMSE divided by the std instead of the variance, the
obs mask dropped (padding counted), an off-by-one in the open-loop horizon. The model is a stand-in
whose predictions are fixed errors on top of the truth, so every expected number below is a
short sum written out in the comments.

The case: 1 episode, 3 steps (the last terminal, with its final observation), N = 2 agents,
obs_dim 2 (agent 1 has one real feature: its second column is padding), state_dim 2.
  state  s_t = [t, 5]                 t = 0..3 (3 = final)  -> next_state rows [1,5], [2,5], [3,5]
  obs    agent 0 [t, 10], agent 1 [2t, 0]                   -> next obs agent 0 [t+1, 10], agent 1 [2t+2, 0]
  reward r_t = t + 1 = [1, 2, 3];  terminal [F, F, T]
Per-feature variances of the targets over the 3 rows (population; constant features count as 1):
  next_state: [var(1,2,3), var(5,5,5)->1] = [2/3, 1]
  next_obs:   agent 0 [2/3, 1], agent 1 [var(2,4,6) = 8/3, padding -> 1]
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo_fast.data.schema import DatasetSpec, OfflineDataset
from logo_fast.model.base import StepResult
from logo_fast.model.metrics import one_step_metrics, open_loop_metrics, variances
from logo_fast.model.transitions import TransitionStore, TransitionTable

SPEC = DatasetSpec(n_agents=2, obs_dim=2, state_dim=2, action_type="continuous", act_dim=1, agent_obs_dims=(2, 1))


def _obs(t: float) -> list[list[float]]:
    return [[t, 10.0], [2 * t, 0.0]]


@pytest.fixture(scope="module")
def dataset() -> OfflineDataset:
    f32 = np.float32
    return OfflineDataset(
        spec=SPEC,
        obs=np.array([_obs(t) for t in range(3)], f32),
        state=np.array([[t, 5.0] for t in range(3)], f32),
        actions=np.zeros((3, 2, 1), f32),
        rewards=np.array([1.0, 2.0, 3.0], f32),
        terminals=np.array([False, False, True]),
        truncations=np.zeros(3, dtype=bool),
        final_obs=np.array([_obs(3)], f32),
        final_state=np.array([[3.0, 5.0]], f32),
    )


class FixedErrorModel:
    """Predicts the truth plus a fixed error per row (row = state[:, 0], the step index)."""

    spec = SPEC
    device = torch.device("cpu")
    has_uncertainty = True

    STATE_ERR = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    OBS_ERR = torch.tensor([
        [[0.0, 0.0], [0.0, 3.0]],  # row 0: an error on agent 1's padding only (must not count)
        [[0.0, 0.0], [2.0, 0.0]],  # row 1: agent 1's real feature off by 2
        [[0.0, 1.0], [0.0, 0.0]],  # row 2: agent 0's second feature off by 1
    ])
    REWARD_ERR = torch.tensor([0.0, 0.0, 3.0])
    TERMINAL = torch.tensor([False, True, True])
    U = torch.tensor([0.1, 0.3, 0.2])

    def __init__(self, u: torch.Tensor | None = None, has_uncertainty: bool = True):
        self.u = self.U if u is None else u
        self.has_uncertainty = has_uncertainty

    def step(self, obs, state, actions, avail=None, state_is_prediction=False) -> StepResult:
        row = state[:, 0].long()
        t = state[:, 0:1]
        true_state = torch.cat([t + 1, torch.full_like(t, 5.0)], 1)
        true_obs = torch.stack([torch.cat([t + 1, torch.full_like(t, 10.0)], 1),
                                torch.cat([2 * t + 2, torch.zeros_like(t)], 1)], 1)
        return StepResult(next_obs=true_obs + self.OBS_ERR[row], next_state=true_state + self.STATE_ERR[row],
                          reward=(t[:, 0] + 1) + self.REWARD_ERR[row], terminal=self.TERMINAL[row],
                          terminal_prob=self.TERMINAL[row].float(), next_avail=None, u=self.u[row])


def _table(dataset) -> TransitionTable:
    return TransitionTable(TransitionStore(dataset))


def test_variances_by_hand(dataset):
    var = variances(_table(dataset))
    torch.testing.assert_close(var["next_state"], torch.tensor([2 / 3, 1.0]))
    torch.testing.assert_close(var["next_obs"], torch.tensor([[2 / 3, 1.0], [8 / 3, 1.0]]))


def test_one_step_metrics_by_hand(dataset):
    table = _table(dataset)
    out = one_step_metrics(FixedErrorModel(), table, torch.arange(3), variances(table))
    expected = {
        "rows": 3,
        # state errors (0,0), (1,0), (0,2): MSE over 6 entries = (1 + 4) / 6
        "state_mse": 5 / 6,
        # per row mean over features of err^2 / var: 0, (1 / (2/3) + 0) / 2 = 0.75, (0 + 4 / 1) / 2 = 2
        "state_nmse": (0 + 0.75 + 2) / 3,
        # obs: over the 3 real features per row; row 0's padding error ignored: (0 + 4 + 1) / (3 * 3)
        "obs_mse": 5 / 9,
        # per row sum of err^2 / var over real features / 3: 0, (4 / (8/3)) / 3 = 0.5, (1 / 1) / 3
        "obs_nmse": (0 + 0.5 + 1 / 3) / 3,
        # reward errors 0, 0, 3: MSE 9 / 3; var(1, 2, 3) = 2/3
        "reward_mse": 3.0,
        "reward_var": 2 / 3,
        "reward_nmse": 3.0 / (2 / 3),
        # predicted terminal [F, T, T] vs true [F, F, T]
        "term_accuracy": 2 / 3,
        "term_recall": 1.0,
        "n_terminal": 1,
        "u_mean": 0.2,
        # ranks of u (0.1, 0.3, 0.2) = (1, 3, 2); of the state error (0, 0.75, 2) = (1, 2, 3):
        # d = (0, 1, -1), rho = 1 - 6 * 2 / (3 * 8) = 0.5
        "spearman_u_state_error": 0.5,
        # obs error (0, 0.5, 1/3) ranks (1, 3, 2), the same as u's: rho = 1
        "spearman_u_obs_error": 1.0,
    }
    assert set(expected) <= set(out)
    for k, v in expected.items():
        assert out[k] == pytest.approx(v, rel=1e-6, abs=1e-9), f"{k}: {out[k]} != {v}"
    assert "avail_accuracy" not in out  # continuous task


def test_spearman_is_none_when_undefined(dataset):
    table = _table(dataset)
    var = variances(table)
    flat = one_step_metrics(FixedErrorModel(u=torch.full((3,), 0.4)), table, torch.arange(3), var)
    assert flat["spearman_u_state_error"] is None and flat["spearman_u_obs_error"] is None
    assert flat["u_mean"] == pytest.approx(0.4)
    none = one_step_metrics(FixedErrorModel(has_uncertainty=False), table, torch.arange(3), var)
    assert none["spearman_u_state_error"] is None
    # two rows are too few for a rank correlation
    two = one_step_metrics(FixedErrorModel(), table, torch.arange(2), var)
    assert two["spearman_u_state_error"] is None and two["rows"] == 2


class DriftModel:
    """Open-loop stand-in: next_state = state + [1.5, 0] (truth + [1, 0]), next obs drifts on agent 0's second
    feature by +1 per step and on agent 1's padding by +1 per step (masked), reward 0."""

    spec = SPEC
    device = torch.device("cpu")
    has_uncertainty = True

    def step(self, obs, state, actions, avail=None, state_is_prediction=False) -> StepResult:
        B = state.shape[0]
        next_obs = obs + torch.tensor([[1.0, 1.0], [2.0, 1.0]])
        return StepResult(next_obs=next_obs, next_state=state + torch.tensor([1.5, 0.0]), reward=torch.zeros(B),
                          terminal=torch.zeros(B, dtype=torch.bool), terminal_prob=torch.zeros(B), next_avail=None,
                          u=torch.zeros(B))


def test_open_loop_metrics_by_hand(dataset):
    table = _table(dataset)
    store = table.store
    # Starts at steps 0 and 1 of the episode that ends (exclusive) at 3; horizon 3: the start at 1
    # has no true next step at h = 3 (step 3 does not exist), so h = 3 averages one row.
    out = open_loop_metrics(DriftModel(), store, np.array([0, 1]), np.array([3, 3]), 3, variances(table))
    assert out["rows"] == [2, 2, 1]
    # state error after h steps fed back: 0.5 h on feature 0; nMSE = ((0.5 h)^2 / (2/3)) / 2 features
    assert out["state_nmse"] == pytest.approx([0.25 / (2 / 3) / 2, 1.0 / (2 / 3) / 2, 2.25 / (2 / 3) / 2])
    # obs error after h steps: h on agent 0's second feature (var 1); padding drift ignored; 3 real features
    assert out["obs_nmse"] == pytest.approx([1 / 3, 4 / 3, 9 / 3])
    # reward 0 vs true rewards of the steps taken: h=1 steps (0, 1) -> (1 + 4) / 2; h=2 (1, 2) -> (4 + 9) / 2; h=3 (2)
    assert out["reward_mse"] == pytest.approx([2.5, 6.5, 9.0])


def test_open_loop_stops_at_the_episode_end(dataset):
    table = _table(dataset)
    out = open_loop_metrics(DriftModel(), table.store, np.array([2]), np.array([3]), 5, variances(table))
    assert out["rows"] == [1]  # step 2 has one true next step (the final observation), then the episode is over
