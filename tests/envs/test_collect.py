import json
import warnings

import numpy as np
import pytest

from logo_fast.data.collect import CollectArgs, check_args, collect, output_path, run_collect

pytest.importorskip("mpe2")
warnings.filterwarnings("ignore")


def test_mpe_medium_in_memory_is_valid_and_sized():
    ds = collect("mpe:simple_spread", "medium", seed=0, n_episodes=20)
    assert ds.n_episodes == 20 and len(ds) == 20 * 25
    assert ds.truncations.sum() == 20 and not ds.terminals.any()
    assert ds.final_obs.shape == (20, 3, 18) and ds.final_avail.shape == (20, 3, 5)
    assert ds.agent_rewards.shape == (500, 3)
    np.testing.assert_allclose(ds.rewards, ds.agent_rewards.mean(1), rtol=1e-6)
    meta = ds.metadata
    assert meta["n_episodes"] == 20 and meta["quality"] == "medium"
    assert meta["behaviour"]["epsilon"] == 0.78
    np.testing.assert_allclose(meta["episode_return"]["mean"], ds.episode_returns().mean())
    # Next-step fields come from the recorded final observations at episode ends.
    nxt = ds.next_fields()
    assert len(nxt["index"]) == len(ds)
    np.testing.assert_array_equal(nxt["next_obs"][24], ds.final_obs[0])
    np.testing.assert_array_equal(nxt["next_obs"][23], ds.obs[24])


def test_same_seed_identical_other_seed_differs():
    a = collect("mpe:simple_spread", "medium-replay", seed=3, n_episodes=12)
    b = collect("mpe:simple_spread", "medium-replay", seed=3, n_episodes=12)
    c = collect("mpe:simple_spread", "medium-replay", seed=4, n_episodes=12)
    for name, arr in a.arrays().items():
        np.testing.assert_array_equal(arr, b.arrays()[name], err_msg=name)
    assert not np.array_equal(a.obs, c.obs)


def test_qualities_are_ordered():
    returns = {
        q: collect("mpe:simple_spread", q, seed=0, n_episodes=48).episode_returns()
        for q in ("expert", "medium", "medium-replay", "mixed")
    }
    assert returns["expert"].mean() > returns["mixed"].mean() > returns["medium"].mean()
    # medium-replay spans the sweep: its first episodes are near-random, its last near-expert.
    mr = returns["medium-replay"]
    assert mr[-12:].mean() > mr[:12].mean() + 3.0
    assert returns["medium-replay"].std() > returns["medium"].std() * 0.8


def test_mixed_is_half_replay_half_expert():
    ds = collect("mpe:simple_spread", "mixed", seed=1, n_episodes=10)
    parts = ds.metadata["episode_return_by_part"]
    assert parts["medium-replay"]["episodes"] == 5 and parts["expert"]["episodes"] == 5
    assert ds.n_episodes == 10


def test_n_steps_keeps_whole_episodes():
    ds = collect("mpe:simple_spread", "expert", seed=0, n_steps=110)
    assert len(ds) == 125 and ds.n_episodes == 5  # 5 x 25 >= 110


def test_run_collect_writes_h5_and_manifest(tmp_path):
    from logo_fast.data.io import load

    args = CollectArgs(
        env="mpe:simple_spread", quality="expert", seed=0, n_episodes=6, out=str(tmp_path), progress=False
    )
    path = run_collect(args)
    assert path == tmp_path / "mpe_simple_spread_expert_s0.h5" == output_path(args)
    ds = load(path)
    assert ds.n_episodes == 6
    manifest = json.loads((tmp_path / "mpe_simple_spread_expert_s0.manifest.json").read_text())
    for key in (
        "env",
        "quality",
        "seed",
        "n_steps",
        "n_episodes",
        "episode_return",
        "versions",
        "behaviour",
        "generation_wall_s",
        "file_bytes",
    ):
        assert key in manifest
    assert manifest["n_steps"] == len(ds) == 150
    assert {"numpy", "torch", "mpe2", "pettingzoo"} <= set(manifest["versions"])
    same = collect("mpe:simple_spread", "expert", seed=0, n_episodes=6)
    np.testing.assert_array_equal(ds.obs, same.obs)
    # No temp files left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, "mpe_simple_spread_expert_s0.manifest.json"]


def test_run_collect_npz(tmp_path):
    from logo_fast.data.io import load

    path = run_collect(
        CollectArgs(
            env="mpe:simple_reference",
            quality="medium",
            medium_epsilon=0.5,
            n_episodes=4,
            out=str(tmp_path / "ref.npz"),
            progress=False,
        )
    )
    ds = load(path)
    assert ds.spec.n_actions == 50 and ds.n_episodes == 4


def test_bad_arguments_listed_together():
    with pytest.raises(ValueError) as err:
        check_args(
            CollectArgs(
                env="nope:x", quality="great", n_steps=0, n_episodes=3, batch_size=0, expert_epsilon=2.0, out="x.csv"
            )
        )
    msg = str(err.value)
    for part in (
        "unknown env id",
        "quality must be",
        "not both",
        "n_steps must be",
        "batch_size",
        "expert_epsilon",
        "x.csv",
    ):
        assert part in msg


@pytest.mark.slow
def test_mamujoco_qualities_from_a_tiny_cached_run(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    common = dict(
        seed=0, cache_dir=str(tmp_path), train_minutes=0.05, time_limit=20, batch_size=2, behaviour="quick-td3"
    )
    med = collect("mamujoco:Hopper-3x1", "medium", n_episodes=3, **common)
    assert med.n_episodes == 3 and med.action_low.shape == (3, 1)
    trainer = med.metadata["behaviour"]["trainer"]
    assert trainer["train_minutes_budget"] == 0.05 and trainer["checkpoint_returns"]
    assert len(list(tmp_path.glob("*.pt"))) == 1
    expert = collect("mamujoco:Hopper-3x1", "expert", n_episodes=3, **common)
    assert expert.metadata["behaviour"]["trainer"] == trainer  # the same cached run
    replay = collect("mamujoco:Hopper-3x1", "medium-replay", n_episodes=4, **common)
    assert 1 <= replay.n_episodes <= 4
    mixed = collect("mamujoco:Hopper-3x1", "mixed", n_episodes=4, **common)
    assert set(mixed.metadata["episode_return_by_part"]) == {"medium-replay", "expert"}
