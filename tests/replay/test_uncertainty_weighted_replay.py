"""UncertaintyWeightedReplay: real/synthetic mix, exp(clip(C - u)) weighting, FIFO, resume, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from logo_fast.data import make_toy_dataset
from logo_fast.replay import REQUIRED_FIELDS, UncertaintyWeightedReplay

P_MIN = 1e-4


@pytest.fixture(scope="module")
def discrete_ds():
    return make_toy_dataset(n_agents=3, n_episodes=6, episode_len=12, action_type="discrete", seed=1)


@pytest.fixture(scope="module")
def continuous_ds():
    return make_toy_dataset(n_agents=2, n_episodes=4, episode_len=10, action_type="continuous",
                            heterogeneous=True, seed=2)


def _synthetic(replay: UncertaintyWeightedReplay, u: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """K synthetic rows shaped like the real data (values drawn from the real rows), plus u."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, replay.n_real, (u.numel(),), generator=g)
    batch = {k: v[pick].clone() for k, v in replay._real.items()}
    batch["state"] = batch["state"] + 100.0  # tell synthetic rows apart from real ones
    batch["state"][:, 0] = 1000.0 + torch.arange(u.numel())  # and from each other
    batch["u"] = u
    return batch


def test_real_transitions_from_dataset(discrete_ds):
    r = UncertaintyWeightedReplay(discrete_ds, capacity=100, C=1.0)
    nxt = discrete_ds.next_fields()
    assert r.n_real == nxt["index"].size
    assert set(r.fields) == {*REQUIRED_FIELDS, "avail_actions", "next_avail"}
    assert torch.equal(r._real["next_state"], torch.as_tensor(nxt["next_state"]))
    assert torch.equal(r._real["obs"], torch.as_tensor(discrete_ds.obs[nxt["index"]]))
    assert r._real["terminals"].dtype == torch.bool and r._real["actions"].dtype == torch.int64


def test_only_real_rows_while_synthetic_is_empty(discrete_ds):
    r = UncertaintyWeightedReplay(discrete_ds, capacity=100, C=1.0, real_ratio=0.25)
    b = r.sample(64)
    assert bool((b["source"] == 0).all())
    assert torch.allclose(b["prob"], torch.full((64,), 1.0 / r.n_real))
    assert all(b[k].shape[0] == 64 for k in r.fields)


@pytest.mark.parametrize("batch_size,ratio,n_real", [(256, 0.5, 128), (9, 0.5, 4), (11, 0.5, 6), (10, 0.0, 0),
                                                     (10, 1.0, 10), (7, 0.3, 2)])
def test_exact_real_count_per_batch(continuous_ds, batch_size, ratio, n_real):
    r = UncertaintyWeightedReplay(continuous_ds, capacity=50, C=2.0, real_ratio=ratio)
    r.add_synthetic(_synthetic(r, torch.rand(20)))
    b = r.sample(batch_size)
    assert n_real == round(batch_size * ratio)
    assert int((b["source"] == 0).sum()) == n_real and int((b["source"] == 1).sum()) == batch_size - n_real
    assert bool((b["state"][b["source"] == 1] > 50).all()) and bool((b["state"][b["source"] == 0] < 50).all())


def test_synthetic_rows_drawn_in_proportion_to_exp_priority(continuous_ds):
    C = 3.0
    r = UncertaintyWeightedReplay(continuous_ds, capacity=40, C=C, real_ratio=0.0, seed=3)
    u = torch.tensor([0.0, 0.5, 1.0, 2.0, 2.9, 3.0, 5.0, 100.0] * 5)
    slots = r.add_synthetic(_synthetic(r, u))
    assert torch.equal(slots, torch.arange(40))
    P = torch.clamp(C - u.double(), 0, C)
    target = torch.exp(P) / torch.exp(P).sum()
    assert torch.allclose(r.synthetic_weights(u) / r.synthetic_weights(u).sum(), target, rtol=1e-12)
    draws, probs = [], []
    for _ in range(40):
        b = r.sample(2000)
        draws.append(b["state"][:, 0])  # identify the slot by its (unique) state row
        probs.append(b["prob"])
    prob = torch.cat(probs)
    # The prob column is each row's exact probability: it must take only the target values.
    assert torch.allclose(torch.unique(prob).double(), torch.unique(target.float()).double(), rtol=1e-6)
    # Per u level, the share of draws matches the level's total probability.
    slot = (torch.cat(draws) - 1000.0).long()
    level = slot % 8
    counts = np.bincount(level.numpy(), minlength=8)
    expected = np.array([float(target[level_i::8].sum()) for level_i in range(8)])
    # levels 5, 6, 7 (u >= C) all have weight exp(0): pool them into one bin.
    counts = np.append(counts[:5], counts[5:].sum())
    expected = np.append(expected[:5], expected[5:].sum()) * counts.sum()
    assert stats.chisquare(counts, expected).pvalue > P_MIN


def test_fifo_eviction_keeps_the_newest(continuous_ds):
    r = UncertaintyWeightedReplay(continuous_ds, capacity=10, C=1.0, real_ratio=0.0)
    first = _synthetic(r, torch.zeros(8), seed=1)
    second = _synthetic(r, torch.full((5,), 0.5), seed=2)
    r.add_synthetic(first)
    slots = r.add_synthetic(second)
    assert torch.equal(slots, torch.tensor([8, 9, 0, 1, 2]))
    assert r.n_synthetic == 10
    assert torch.equal(r._synthetic["state"][[8, 9, 0, 1, 2]], second["state"])
    assert torch.equal(r._synthetic["state"][3:8], first["state"][3:8])
    assert torch.allclose(r.synthetic_u(), torch.tensor([0.5, 0.5, 0.5, 0, 0, 0, 0, 0, 0.5, 0.5]))
    big = _synthetic(r, torch.arange(25, dtype=torch.float32) / 10, seed=3)  # more than capacity
    slots = r.add_synthetic(big)
    assert slots.numel() == 10
    assert torch.equal(r._synthetic["state"][slots], big["state"][15:])


def test_extra_keys_ignored_and_dtypes_converted(discrete_ds):
    r = UncertaintyWeightedReplay(discrete_ds, capacity=20, C=1.0)
    batch = _synthetic(r, torch.rand(6, dtype=torch.float64))
    batch["extra_debug_field"] = torch.zeros(3)
    batch["terminals"] = batch["terminals"].float()  # a model may emit 0/1 floats
    batch["actions"] = batch["actions"].double()  # integer-valued floats are fine
    r.add_synthetic(batch)
    b = r.sample(12)
    assert b["terminals"].dtype == torch.bool and b["actions"].dtype == torch.int64


def test_state_dict_resume_gives_the_same_batches(discrete_ds):
    def make():
        r = UncertaintyWeightedReplay(discrete_ds, capacity=30, C=1.5, seed=11)
        r.add_synthetic(_synthetic(r, torch.rand(40), seed=4))
        r.sample(16)
        return r

    a = make()
    state = a.state_dict()
    b = UncertaintyWeightedReplay(discrete_ds, capacity=30, C=1.5, seed=11)
    b.load_state_dict(state)
    for _ in range(3):
        x, y = a.sample(33), b.sample(33)
        assert all(torch.equal(x[k], y[k]) for k in x)
    with pytest.raises(ValueError, match="C 1.5 != this replay's 2.0"):
        UncertaintyWeightedReplay(discrete_ds, capacity=30, C=2.0).load_state_dict(state)


def test_same_seed_same_batches(continuous_ds):
    out = []
    for _ in range(2):
        r = UncertaintyWeightedReplay(continuous_ds, capacity=30, C=1.0, seed=5)
        r.add_synthetic(_synthetic(r, torch.rand(30, generator=torch.Generator().manual_seed(0))))
        out.append(r.sample(40))
    assert all(torch.equal(out[0][k], out[1][k]) for k in out[0])
    r = UncertaintyWeightedReplay(continuous_ds, capacity=30, C=1.0, seed=6)
    r.add_synthetic(_synthetic(r, torch.rand(30, generator=torch.Generator().manual_seed(0))))
    assert not torch.equal(r.sample(40)["state"], out[0]["state"])  # another seed, other rows


def test_dict_real_data_and_validation():
    R, N = 20, 2
    real = {
        "obs": np.zeros((R, N, 4), np.float32),
        "state": np.zeros((R, 6), np.float32),
        "actions": np.zeros((R, N), np.int64),
        "rewards": np.zeros(R, np.float32),
        "terminals": np.zeros(R, bool),
        "next_obs": np.zeros((R, N, 4), np.float32),
        "next_state": np.zeros((R, 6), np.float32),
    }
    r = UncertaintyWeightedReplay(real, capacity=8, C=1.0)
    assert r.n_real == R and "avail_actions" not in r.fields
    bad = dict(real, state=np.full((R, 6), np.nan, np.float32))
    bad.pop("rewards")
    with pytest.raises(ValueError) as err:
        UncertaintyWeightedReplay(bad, capacity=0, C=-1.0, real_ratio=1.5)
    msg = str(err.value)
    for needle in ("capacity", "C must be", "real_ratio", "lacks fields ['rewards']", "NaN/Inf"):
        assert needle in msg
    with pytest.raises(ValueError, match="differ in length"):
        UncertaintyWeightedReplay(dict(real, obs=np.zeros((R + 1, N, 4))), capacity=8, C=1.0)
    with pytest.raises(ValueError, match="both or neither"):
        UncertaintyWeightedReplay(dict(real, avail_actions=np.ones((R, N, 3), bool)), capacity=8, C=1.0)


def test_add_synthetic_rejects_bad_batches(discrete_ds):
    r = UncertaintyWeightedReplay(discrete_ds, capacity=20, C=1.0)
    good = _synthetic(r, torch.rand(5))
    cases = [
        (dict(good, u=torch.tensor([0.1, float("nan"), 0.2, 0.3, 0.4])), "NaN/Inf"),
        (dict(good, u=-torch.ones(5)), "negative"),
        (dict(good, u=torch.rand(5, 1)), "u must be (K,)"),
        (dict(good, obs=good["obs"][:, :2]), "obs must have shape"),
        (dict(good, next_state=good["next_state"][:4]), "next_state must have shape (5,"),
        (dict(good, terminals=torch.full((5,), 0.5)), "terminals must be boolean"),
        (dict(good, actions=good["actions"].double() + 0.5), "actions must hold integers"),
        (dict(good, rewards=torch.full((5,), float("inf"))), "rewards has 5 NaN/Inf"),
        ({k: v for k, v in good.items() if k != "next_avail"}, "lacks fields ['next_avail']"),
    ]
    for batch, needle in cases:
        with pytest.raises(ValueError) as err:
            r.add_synthetic(batch)
        assert needle in str(err.value), (needle, str(err.value))
    assert r.n_synthetic == 0  # nothing was written by a rejected batch
    with pytest.raises(ValueError, match="batch_size"):
        r.sample(-1)


def _discrete_real(R=12, N=2, A=5, seed=0):
    rng = np.random.default_rng(seed)
    avail = rng.random((R, N, A)) < 0.6
    avail[..., 0] = True  # every agent keeps action 0
    actions = np.where(avail[..., 1], 1, 0).astype(np.int64)
    return {
        "obs": rng.standard_normal((R, N, 4)).astype(np.float32),
        "state": rng.standard_normal((R, 6)).astype(np.float32),
        "actions": actions,
        "rewards": np.zeros(R, np.float32),
        "terminals": np.zeros(R, bool),
        "next_obs": np.zeros((R, N, 4), np.float32),
        "next_state": np.zeros((R, 6), np.float32),
        "avail_actions": avail,
        "next_avail": avail.copy(),
    }


def test_discrete_actions_are_checked_on_the_way_in(discrete_ds):
    r = UncertaintyWeightedReplay(discrete_ds, capacity=20, C=1.0)
    assert r.n_actions == discrete_ds.spec.n_actions == 5
    good = _synthetic(r, torch.rand(4))
    r.add_synthetic(good)
    before = {k: v[: r.n_synthetic].clone() for k, v in r._synthetic.items()}
    out_of_range = dict(good, actions=good["actions"].clone())
    out_of_range["actions"][2, 1] = 99
    unavailable = {k: v.clone() for k, v in good.items()}
    unavailable["avail_actions"][1, 0] = False
    unavailable["avail_actions"][1, 0, 0] = True
    unavailable["actions"][1, 0] = 3  # not available: only action 0 is
    dead_row = {k: v.clone() for k, v in good.items()}
    dead_row["next_avail"][3, 2] = False
    for batch, needle in (
        (out_of_range, "actions: 1 entries outside [0, 5)"),
        (unavailable, "1 chosen actions not available"),
        (dead_row, "next_avail: 1 agent rows with no available action (first at row 3)"),
    ):
        with pytest.raises(ValueError) as err:
            r.add_synthetic(batch)
        assert needle in str(err.value), str(err.value)
    assert r.n_synthetic == 4  # rejected batches changed nothing
    for k, v in before.items():
        assert torch.equal(r._synthetic[k][:4], v)


def test_real_data_is_checked_at_construction():
    real = _discrete_real()
    UncertaintyWeightedReplay(real, capacity=8, C=1.0)  # valid
    cases = []
    bad = {k: v.copy() for k, v in real.items()}
    bad["actions"][3, 0] = 42
    cases.append((bad, {}, "actions: 1 entries outside [0, 5)"))
    bad = {k: v.copy() for k, v in real.items()}
    bad["avail_actions"][5, 1] = False
    cases.append((bad, {}, "avail_actions: 1 agent rows with no available action (first at row 5)"))
    bad = {k: v.copy() for k, v in real.items()}
    bad["avail_actions"][7, 0, 1:] = False
    bad["actions"][7, 0] = 2
    cases.append((bad, {}, "1 chosen actions not available"))
    no_avail = {k: v for k, v in real.items() if k not in ("avail_actions", "next_avail")}
    no_avail["actions"] = no_avail["actions"].copy()
    no_avail["actions"][0, 0] = 7
    cases.append((no_avail, {"n_actions": 5}, "actions: 1 entries outside [0, 5)"))
    cases.append((real, {"n_actions": 4}, "n_actions 4 != avail_actions' last axis 5"))
    for data, kwargs, needle in cases:
        with pytest.raises(ValueError) as err:
            UncertaintyWeightedReplay(data, capacity=8, C=1.0, **kwargs)
        assert needle in str(err.value), str(err.value)


def test_unvalidated_dataset_with_a_bad_action_is_refused():
    ds = make_toy_dataset(n_agents=2, n_episodes=3, episode_len=6, action_type="discrete", seed=4)
    ds.actions = ds.actions.copy()
    ds.actions[4, 1] = 42  # built by hand, never validated
    with pytest.raises(ValueError, match=r"real actions: 1 entries outside \[0, 5\)"):
        UncertaintyWeightedReplay(ds, capacity=8, C=1.0)


def test_sample_sizes(discrete_ds):
    r = UncertaintyWeightedReplay(discrete_ds, capacity=20, C=1.0, seed=3)
    r.add_synthetic(_synthetic(r, torch.rand(10)))
    for n in (np.int64(8), np.int32(8), torch.tensor(8), 8):
        batch = r.sample(n)
        assert batch["rewards"].shape == (8,) and int((batch["source"] == 1).sum()) == 4
    empty = r.sample(0)
    assert set(empty) == set(r.fields) | {"source", "prob"}
    for k, v in empty.items():
        assert v.shape[0] == 0
        if k in r.fields:
            assert v.shape[1:] == r._real[k].shape[1:] and v.dtype == r._real[k].dtype
    for bad in (-1, 2.0, True, "8"):
        with pytest.raises(ValueError, match="batch_size must be an int >= 0"):
            r.sample(bad)
    with pytest.raises(ValueError, match="batch_size 9223372036854775808 is too large"):
        r.sample(2**63)
    with pytest.raises(ValueError, match="too large"):
        r.sample(2**40)  # ~100 TiB: more than any machine here


def test_storage_grows_on_demand(continuous_ds):
    """A million-row capacity costs only the rows filled (amortised doubling); FIFO order is unchanged."""
    big = UncertaintyWeightedReplay(continuous_ds, capacity=1_000_000, C=1.0, seed=0)
    assert big.allocated_rows == 0
    sizes = []
    for k in range(6):
        big.add_synthetic(_synthetic(big, torch.rand(700), seed=k))
        sizes.append(big.allocated_rows)
        assert big.n_synthetic <= big.allocated_rows <= max(2 * big.n_synthetic, 1024)
    assert big.n_synthetic == 4200 and sizes == sorted(sizes) and len(set(sizes)) <= 4  # doubling, not per add
    stored = sum(v.numel() * v.element_size() for v in big._synthetic.values())
    assert stored <= 2 * 4200 * big.row_bytes()
    # A small ring wraps exactly as before: growth stops at capacity and old rows are overwritten in order.
    ring = UncertaintyWeightedReplay(continuous_ds, capacity=1500, C=1.0, seed=0)
    first = _synthetic(ring, torch.rand(1000), seed=1)
    second = _synthetic(ring, torch.rand(1000), seed=2)
    ring.add_synthetic(first)
    slots = ring.add_synthetic(second)
    assert ring.allocated_rows == 1500 and ring.n_synthetic == 1500
    assert torch.equal(slots, torch.cat([torch.arange(1000, 1500), torch.arange(0, 500)]))
    assert torch.equal(ring._synthetic["state"][slots], second["state"])
    assert torch.equal(ring._synthetic["state"][500:1000], first["state"][500:])
    state = ring.state_dict()
    again = UncertaintyWeightedReplay(continuous_ds, capacity=1500, C=1.0, seed=0)
    again.load_state_dict(state)
    assert again.allocated_rows == 1500
    assert torch.equal(again.sample(64)["state"], ring.sample(64)["state"])


def test_weights_never_overflow_and_stay_positive(continuous_ds):
    r = UncertaintyWeightedReplay(continuous_ds, capacity=10, C=700.0)
    w = r.synthetic_weights(torch.tensor([0.0, 1e6, 699.0]))
    assert bool(torch.isfinite(w).all()) and bool((w > 0).all())
    assert float(w[0]) == 1.0 and math.isclose(float(w[2]), math.exp(-699.0))


@pytest.mark.gpu
def test_cuda_replay_batches_live_on_the_device(continuous_ds):
    r = UncertaintyWeightedReplay(continuous_ds, capacity=30, C=1.0, device="cuda")
    r.add_synthetic(_synthetic(r, torch.rand(30)))
    b = r.sample(32)
    assert all(v.is_cuda for v in b.values())
    assert int((b["source"] == 0).sum()) == 16
