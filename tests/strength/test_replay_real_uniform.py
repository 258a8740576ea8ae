"""The replay's real part is drawn uniformly over *every* real row, the last one included (issue 17, breakage 2).

Breakage these tests were checked against: ``randint(0, n_real - 1)`` for the real rows (the last
real transition is never drawn). Every replay test passed with it; nothing looked at which real
rows come out. Rows are told apart through the public API only: each real row carries its own
index as its reward.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from logo_fast.data import make_toy_dataset
from logo_fast.replay import UncertaintyWeightedReplay

# Seeded, so each p-value is a fixed number; a correct replay gives p ~ U(0, 1), the breakage p ~ 0.
P_MIN = 1e-3


def _real_rows(R: int) -> dict[str, torch.Tensor]:
    """R real transitions (1 agent, discrete); rewards = row index (the row's id in every batch)."""
    g = torch.Generator().manual_seed(R)
    return {
        "obs": torch.randn(R, 1, 2, generator=g),
        "state": torch.randn(R, 3, generator=g),
        "actions": torch.zeros(R, 1, dtype=torch.int64),
        "rewards": torch.arange(R, dtype=torch.float32),
        "terminals": torch.zeros(R, dtype=torch.bool),
        "next_obs": torch.randn(R, 1, 2, generator=g),
        "next_state": torch.randn(R, 3, generator=g),
    }


def _synthetic_rows(K: int) -> dict[str, torch.Tensor]:
    """K synthetic transitions; rewards >= 1000 tell them apart from real rows."""
    rows = _real_rows(K)
    rows["rewards"] = 1000.0 + torch.arange(K, dtype=torch.float32)
    rows["u"] = torch.linspace(0.0, 3.0, K)
    return rows


def _real_counts(replay: UncertaintyWeightedReplay, R: int, draws: int, batch: int) -> np.ndarray:
    counts = np.zeros(R, dtype=np.int64)
    seen = 0
    while seen < draws:
        b = replay.sample(batch)
        real = b["source"] == 0
        ids = b["rewards"][real].long()
        assert bool(((ids >= 0) & (ids < R)).all()), "a row marked real is not one of the real rows"
        torch.testing.assert_close(b["prob"][real], torch.full((int(real.sum()),), 1.0 / R))
        counts += np.bincount(ids.numpy(), minlength=R)
        seen += int(real.sum())
    return counts


@pytest.mark.parametrize("R", [2, 7, 97])
@pytest.mark.parametrize("with_synthetic", [False, True])
def test_every_real_row_is_drawn_uniformly(R, with_synthetic):
    replay = UncertaintyWeightedReplay(_real_rows(R), capacity=64, C=2.0, real_ratio=0.5, seed=5)
    if with_synthetic:
        replay.add_synthetic(_synthetic_rows(40))
    draws = 60 * R + 600  # >= 60 expected per row: the chi-square approximation holds, the test is sharp
    counts = _real_counts(replay, R, draws, batch=256)
    assert counts[-1] > 0, "the last real row was never drawn"
    assert counts.min() > 0
    p = stats.chisquare(counts).pvalue  # H0: uniform over all R rows
    assert p > P_MIN, f"real rows not uniform (p = {p:.2e}): counts {counts.tolist()}"


def test_a_single_real_row_is_always_the_real_draw():
    replay = UncertaintyWeightedReplay(_real_rows(1), capacity=8, C=1.0, real_ratio=1.0, seed=0)
    b = replay.sample(32)
    assert torch.equal(b["rewards"], torch.zeros(32))


def test_real_rows_of_a_dataset_are_all_drawn_uniformly():
    """From an OfflineDataset: every step with a next step is a real row, the dataset's last transition included."""
    ds = make_toy_dataset(n_agents=2, n_episodes=3, episode_len=8, action_type="continuous", seed=6)
    nxt = ds.next_fields()
    real_state = torch.as_tensor(np.asarray(ds.state)[nxt["index"]])
    R = real_state.shape[0]
    assert len(torch.unique(real_state, dim=0)) == R  # rows are identifiable by their state
    replay = UncertaintyWeightedReplay(ds, capacity=16, C=1.0, real_ratio=1.0, seed=2)
    assert replay.n_real == R
    counts = np.zeros(R, dtype=np.int64)
    for _ in range(12):
        b = replay.sample(512)
        match = (b["state"][:, None, :] == real_state[None]).all(-1)  # (batch, R)
        assert bool((match.sum(1) == 1).all())
        counts += match.sum(0).numpy()
    assert counts[-1] > 0, "the dataset's last transition was never drawn"
    p = stats.chisquare(counts).pvalue
    assert p > P_MIN, f"real rows not uniform (p = {p:.2e}): counts {counts.tolist()}"
