"""2 gloo ranks launched by torchrun: data-parallel learner steps equal one process at the same global
batch, every rank holds the same weights, targets and optimiser states, and the sharded replay hands
each rank its slice of one global batch with the single-process distribution."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import chisquare

from ._learner_job import REPLAY_BATCH, REPLAY_C, REPLAY_DRAWS, SHARD_U, STEPS, make, spec_and_data, train_steps
from .conftest import ROOT, torchrun


@pytest.fixture(scope="module")
def learner_job(tmp_path_factory):
    out = tmp_path_factory.mktemp("learner_job")
    torchrun([str(ROOT / "tests" / "distributed" / "_learner_job.py"), str(out)])
    return [torch.load(out / f"learner_rank{r}.pt", weights_only=False) for r in (0, 1)]


def _tensors(state, prefix=""):
    """Every tensor (and number) of a nested learner state, by path; the rank's own generator left out."""
    out = {}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list | tuple) else ()
    for k, v in items:
        path = f"{prefix}/{k}"
        if k == "generator":
            continue
        if isinstance(v, torch.Tensor):
            out[path] = v
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[path] = torch.tensor(v, dtype=torch.float64)
        else:
            out.update(_tensors(v, path))
    return out


@pytest.mark.parametrize("kind", ["macql_discrete", "bc_continuous"])
def test_data_parallel_steps_match_one_process_at_the_same_global_batch(learner_job, kind):
    torch.set_num_threads(1)
    single = _tensors(train_steps(kind, 1, 0))
    start = _tensors(make(kind, spec_and_data("discrete" if kind == "macql_discrete" else "continuous")).state_dict())
    dp = _tensors(learner_job[0][kind])
    assert dp.keys() == single.keys()
    moved = 0.0
    for k, v in single.items():
        torch.testing.assert_close(dp[k].double(), v.double(), rtol=1e-5, atol=1e-6, msg=k)
        if k in start and v.is_floating_point():
            moved = max(moved, float((v.double() - start[k].double()).abs().max()))
    assert moved > 1e-3  # the steps really trained (the comparison is not between two untouched copies)
    assert int(learner_job[0][kind]["n_updates"]) == STEPS


@pytest.mark.parametrize("kind", ["macql_discrete", "bc_continuous", "macql_continuous"])
def test_every_rank_holds_identical_weights_targets_and_optimiser_states(learner_job, kind):
    r0, r1 = (_tensors(r[kind]) for r in learner_job)
    assert r0.keys() == r1.keys()
    names = " ".join(r0)
    assert "optimizer" in names and ("target" in names or kind.startswith("bc"))
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    if kind == "macql_continuous":
        # the ranks drew different action noise (own generators) yet stay identical: gradients averaged
        g0, g1 = (r[kind]["generator"] for r in learner_job)
        assert not torch.equal(g0, g1)


def _weights(u):
    return [math.exp(min(max(REPLAY_C - x, 0.0), REPLAY_C) - REPLAY_C) for x in u]


def _synthetic(batch):
    syn = batch["source"] == 1
    return batch["rewards"][syn].long(), batch["obs"][syn][:, 0, 0], batch["prob"][syn]


def test_sharded_replay_batches_before_any_synthetic_row_are_all_real(learner_job):
    for r in learner_job:
        b = r["replay"]["empty"]
        assert b["obs"].shape[0] == REPLAY_BATCH // 2 and int(b["source"].sum()) == 0


def test_a_rank_with_an_empty_shard_gets_its_share_from_the_other(learner_job):
    w0 = _weights(SHARD_U[0])
    for r in learner_job:
        for b in r["replay"]["one_sided"]:
            assert b["source"].tolist() == [0] * 8 + [1] * 8  # every rank: 8 real rows, then 8 synthetic
            ids, obs, prob = _synthetic(b)
            assert ((ids >= 0) & (ids < len(w0))).all()  # all from rank 0's shard
            assert torch.equal(obs.long(), ids)  # the fields of a row travelled together
            torch.testing.assert_close(prob, torch.tensor([w0[i] for i in ids]) / sum(w0))


def test_sharded_replay_draws_have_the_global_distribution(learner_job):
    w = _weights(SHARD_U[0]) + _weights(SHARD_U[1])
    n0 = len(SHARD_U[0])
    keys = list(range(n0)) + [100 + i for i in range(len(SHARD_U[1]))]
    counts = dict.fromkeys(keys, 0)
    for r in learner_job:
        for b in r["replay"]["both"]:
            ids, obs, prob = _synthetic(b)
            assert ids.numel() == REPLAY_BATCH // 4 and torch.equal(obs.long(), ids)
            for i, p in zip(ids.tolist(), prob.tolist(), strict=True):
                counts[i] += 1
                assert p == pytest.approx(w[keys.index(i)] / sum(w), rel=1e-6)
    total = REPLAY_DRAWS * REPLAY_BATCH // 2
    assert sum(counts.values()) == total
    expected = [wi / sum(w) * total for wi in w]
    assert chisquare([counts[k] for k in keys], expected).pvalue > 1e-3
    assert all(r["replay"]["restored_equal"] for r in learner_job)
