"""The distributed pieces without a process group: shard arithmetic, slice reads, one-process fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo_fast.data import load, make_toy_dataset, save
from logo_fast.distributed import (
    ShardedWeightedSampler,
    current_context,
    fit_distributed,
    init_distributed,
    read_episodes,
    shard_ranges,
)
from logo_fast.model import LogoWorldModel, WorldModelConfig


def test_shard_ranges_cover_balance_and_keep_a_training_episode_each():
    lengths = np.array([5, 50, 5, 5, 40, 5, 5, 30, 5, 10])
    train = np.ones(10, dtype=bool)
    train[[1, 4]] = False  # held out: they cost no training and must not skew the balance
    ranges = shard_ranges(lengths, 3, train)
    assert ranges[0][0] == 0 and ranges[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True))  # contiguous, in order, no gap
    per_rank = [int((lengths * train)[e0:e1].sum()) for e0, e1 in ranges]
    assert sum(per_rank) == int((lengths * train).sum())
    assert all(p > 0 for p in per_rank)
    assert max(per_rank) - min(per_rank) <= 30  # within one (largest) training episode
    # as many ranks as training episodes: one each
    r = shard_ranges(lengths, 8, train)
    assert [int(train[e0:e1].sum()) for e0, e1 in r] == [1] * 8
    with pytest.raises(ValueError, match="8 training episodes cannot be split over 9 ranks"):
        shard_ranges(lengths, 9, train)


@pytest.mark.parametrize("lazy", [False, True])
def test_read_episodes_equals_select_episodes(tmp_path, lazy):
    ds = make_toy_dataset(n_agents=2, n_episodes=6, episode_len=7, action_type="continuous", seed=5)
    path = tmp_path / "ds.h5"
    save(ds, path)
    src = load(path, lazy=lazy)
    if lazy:
        assert not isinstance(src.obs, np.ndarray)  # really h5py-backed: a whole-array read would be a copy
    part = read_episodes(src, 2, 5)
    ref = ds.select_episodes(np.arange(2, 5))
    assert part.n_episodes == 3
    for name, a in ref.arrays().items():
        np.testing.assert_array_equal(part.arrays()[name], a, err_msg=name)
    with pytest.raises(ValueError, match="need 0 <= e0 <= e1 <= 6"):
        read_episodes(src, 4, 7)


def test_without_process_group_everything_is_one_process():
    ctx = init_distributed()  # no torchrun variables, no init_method: starts nothing
    assert (ctx.rank, ctx.world_size, ctx.active) == (0, 1, False)
    assert current_context().world_size == 1
    with pytest.raises(ValueError, match="rank and world_size"):
        init_distributed(rank=0)
    ds = make_toy_dataset(n_agents=2, n_episodes=6, episode_len=8, seed=0)
    cfg = WorldModelConfig(hidden=16, latent=8, agent_embed=4, layers=1, batch_size=16, max_steps=4, seed=1)
    a = fit_distributed(LogoWorldModel(config=cfg), ds, progress=False)
    b = LogoWorldModel(config=cfg).fit(ds, progress=False)
    for k, v in a.net.state_dict().items():
        assert torch.equal(v, b.net.state_dict()[k]), k


def test_sharded_sampler_on_one_process_is_the_local_sampler():
    s = ShardedWeightedSampler(capacity=8, seed=3)
    w = torch.tensor([0.0, 1.0, 3.0, 0.0, 6.0], dtype=torch.float64)
    s.extend(w)
    d = s.sample(20_000)
    assert d.counts.tolist() == [20_000] and d.loss_weight == 1.0
    freq = torch.bincount(d.indices, minlength=8).double() / 20_000
    torch.testing.assert_close(freq[:5], w / w.sum(), atol=0.02, rtol=0)
    torch.testing.assert_close(d.probabilities, w[d.indices] / w.sum())
    # same seed, same draws; the state round-trips
    state = s.state_dict()
    again = s.sample(16).indices
    s.load_state_dict(state)
    assert torch.equal(s.sample(16).indices, again)
    assert s.sample(0).indices.numel() == 0
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        s.sample(-1)
    with pytest.raises(ValueError, match="nothing to sample"):
        ShardedWeightedSampler(capacity=4).sample(3)
