"""2 gloo ranks launched by torchrun: DDP training equals one process at the same global batch,
the checkpoint loads in one process, and the sharded sampler has the global distribution."""

from __future__ import annotations

import torch
from scipy.stats import chisquare

from logo_fast.data import load
from logo_fast.model import LogoWorldModel, WorldModel

from ._job import BATCH, DRAWS, SHARD_WEIGHTS, fit_config


def _ranks(out):
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel()), default=0.0)


def test_ddp_fit_matches_single_process(two_rank_job):
    torch.set_num_threads(1)
    r0, r1 = _ranks(two_rank_job)
    train, holdout = load(two_rank_job / "train.h5"), load(two_rank_job / "holdout.h5")
    single = LogoWorldModel(config=fit_config()).fit(train, holdout=holdout, progress=False)
    # DDP keeps the replicas identical, bit for bit
    assert _max_diff(r0["state_dict"], r1["state_dict"]) == 0.0
    # normalisers reduced over the shards = one process over the whole training split
    assert _max_diff(single.net.statistics(), r0["statistics"]) < 1e-6
    # 6 Adam steps at lr 1e-3: a missing gradient sync would move weights by ~1e-3; summation order ~1e-6
    assert _max_diff(single.net.state_dict(), r0["state_dict"]) < 5e-5
    h1, h2 = single.train_state.history, r0["history"]
    assert [h["step"] for h in h1] == [h["step"] for h in h2] == [2, 4, 6]
    # every logged number (loss, its parts, holdout score) is the global one, as in one process
    for a, b in zip(h1, h2, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-5 * abs(a[k]), (a["step"], k, a[k], b[k])


def test_rank0_checkpoint_loads_in_one_process(two_rank_job):
    r0, _ = _ranks(two_rank_job)
    model = WorldModel.load(str(two_rank_job / "ckpt.pt"))
    state = model.train_state
    assert state.step == 6 and len(state.rank_states) == 2
    assert {s["n"] for s in state.rank_states} == {24}  # 4 episodes x 6 transitions per rank
    # the best weights the checkpoint carries are the ones both ranks ended with
    assert _max_diff(state.best_state, r0["state_dict"]) == 0.0
    holdout = load(two_rank_job / "holdout.h5")
    out = model.step(holdout.obs[:5], holdout.state[:5], holdout.actions[:5], holdout.avail_actions[:5])
    assert torch.isfinite(out.next_state).all()
    # and a one-process fit resumes from it (with a fresh epoch order), continuing the step count and history
    train = load(two_rank_job / "train.h5")
    more = LogoWorldModel(config=fit_config().replace(max_steps=8)).fit(
        train, holdout=holdout, progress=False, resume_from=str(two_rank_job / "ckpt.pt"))
    assert more.train_state.step == 8
    assert [h["step"] for h in more.train_state.history] == [2, 4, 6, 8]


def test_resumed_fit_continues_every_ranks_sequence(two_rank_job):
    for r in _ranks(two_rank_job):
        assert r["whole_history"] == r["resumed_history"]
        assert [h["step"] for h in r["whole_history"]] == [3, 6, 9, 10]
        assert _max_diff(r["whole"], r["resumed"]) == 0.0


def test_bad_input_on_one_rank_fails_every_rank_alike(two_rank_job):
    r0, r1 = _ranks(two_rank_job)
    assert r0["errors"].keys() == r1["errors"].keys() == {"nan", "batch", "nan_loss"}
    assert {k: v for k, v in r0["errors"].items() if k != "nan_loss"} == {
        k: v for k, v in r1["errors"].items() if k != "nan_loss"}
    assert "rank 1: dataset episodes [4, 8)" in r0["errors"]["nan"] and "rank 0:" not in r0["errors"]["nan"]
    assert "batch_size 15 must be divisible by the 2 processes" in r0["errors"]["batch"]


def test_non_finite_loss_on_one_rank_stops_every_rank_at_that_step(two_rank_job):
    r0, r1 = _ranks(two_rank_job)
    # rank 1's 4th step (step index 3) had a NaN loss; rank 0's own loss was finite and it stopped too
    for r in (r0, r1):
        assert "non-finite gradient at step 3" in r["errors"]["nan_loss"], r["errors"]["nan_loss"]
        assert r["nan_weights_finite"]  # raised before the optimiser step
    assert "this rank's loss nan" in r1["errors"]["nan_loss"]
    assert "this rank's loss nan" not in r0["errors"]["nan_loss"]


def test_sharded_sampler_matches_global_distribution(two_rank_job):
    r0, r1 = _ranks(two_rank_job)
    # every rank computed the same split of every batch, and the split adds up to the batch
    assert torch.equal(r0["splits"], r1["splits"])
    assert (r0["splits"].sum(1) == BATCH).all()
    w = torch.tensor(SHARD_WEIGHTS[0] + SHARD_WEIGHTS[1], dtype=torch.float64)
    n0, n1 = len(SHARD_WEIGHTS[0]), len(SHARD_WEIGHTS[1])
    counts = torch.cat([r0["slot_counts"][:n0], r1["slot_counts"][:n1]])
    assert int(counts.sum()) == DRAWS * BATCH
    assert int(r0["slot_counts"][n0:].sum() + r1["slot_counts"][n1:].sum()) == 0  # empty slots never drawn
    assert int(counts[w == 0].sum()) == 0  # zero weights never drawn
    pos = w > 0
    expected = (w[pos] / w.sum() * DRAWS * BATCH).numpy()
    assert chisquare(counts[pos].double().numpy(), expected).pvalue > 1e-3
    # the reported probabilities are the global ones, w_i / (sum over both shards)
    for r, off in ((r0, 0), (r1, n0)):
        slot, prob = r["probs"][:, 0].long(), r["probs"][:, 1]
        torch.testing.assert_close(prob, w[slot + off] / w.sum(), rtol=1e-12, atol=0)
