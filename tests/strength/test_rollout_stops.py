"""A rollout's u threshold drops the transition *and* ends its trajectory.

The gap in tests/model's test_rollout_u_threshold_drops_and_stops.

Breakage this test was checked against: ``stop = res.terminal`` (the uncertain transition is
dropped but its trajectory goes on from the dropped prediction). The old test only checked that
fewer transitions come out and that none exceeds the threshold, which that breakage satisfies.

LOGO's rollouts are deterministic for a deterministic policy, so the rollout with a threshold
must be, start by start, exactly the prefix of the free rollout before its first u above it.
"""

from __future__ import annotations

import numpy as np
import torch

from .conftest import first_available

H = 6


def _by_start(out: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    trajectories = {}
    for s in torch.unique(out["start"]).tolist():
        rows = torch.nonzero(out["start"] == s).flatten()
        rows = rows[torch.argsort(out["horizon_step"][rows])]
        trajectories[s] = {k: v[rows] for k, v in out.items()}
    return trajectories


def test_rollout_stops_after_the_first_dropped_transition(quick_logo):
    starts = np.arange(60)
    free = _by_start(quick_logo.rollout(first_available, starts=starts, horizon=H))
    assert sorted(free) == list(starts)
    u_all = torch.cat([t["u"] for t in free.values()]).sort().values
    # A threshold halfway between two neighbouring u values near the median: no u sits on it.
    mid = len(u_all) // 2
    thr = float((u_all[mid] + u_all[mid + 1]) / 2)
    assert float(u_all[mid + 1] - u_all[mid]) > 0
    cut = _by_start(quick_logo.rollout(first_available, starts=starts, horizon=H, u_threshold=thr))

    resumed_after_drop = 0  # trajectories whose free version goes back under thr after its first drop
    for s, f in free.items():
        over = torch.nonzero(f["u"] > thr).flatten()
        k = int(over[0]) if over.numel() else len(f["u"])  # the transitions kept: those before the first drop
        if over.numel() and bool((f["u"][k + 1 :] <= thr).any()):
            resumed_after_drop += 1
        if k == 0:
            assert s not in cut, f"start {s}: its first transition was dropped, nothing may be emitted"
            continue
        c = cut[s]
        assert c["horizon_step"].tolist() == list(range(k)), f"start {s}: kept steps {c['horizon_step'].tolist()}"
        torch.testing.assert_close(c["u"], f["u"][:k])
        torch.testing.assert_close(c["next_state"], f["next_state"][:k])
    # The case tests the stop only if some trajectories would have emitted more after their drop.
    assert resumed_after_drop >= 3, resumed_after_drop
    assert set(cut) <= set(free)


def test_terminated_trajectories_stop_with_the_terminal_kept(quick_logo):
    out = _by_start(quick_logo.rollout(first_available, starts=np.arange(60), horizon=H))
    for s, t in out.items():
        assert t["horizon_step"].tolist() == list(range(len(t["u"]))), s
        term = torch.nonzero(t["terminals"]).flatten()
        if term.numel():
            assert int(term[0]) == len(t["u"]) - 1, f"start {s} continued after a predicted termination"
        else:
            assert len(t["u"]) == H
