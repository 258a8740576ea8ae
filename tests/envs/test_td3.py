import warnings

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")
warnings.filterwarnings("ignore")


def _tiny():
    from logo_fast.data.policies.td3 import TD3Config

    return TD3Config(
        train_minutes=5.0,
        max_env_steps=400,
        start_steps=150,
        eval_every=100,
        eval_episodes=1,
        batch_size=32,
        hidden=16,
        time_limit=30,
    )


def test_joint_action_codec_round_trip():
    from logo_fast.data.policies.td3 import JointActionCodec

    low = np.array([[-1, -1, 0], [-2, 0, 0]], np.float32)
    high = np.array([[1, 1, 0], [2, 0, 0]], np.float32)
    codec = JointActionCodec((2, 1), 3, low, high)
    assert codec.joint_dim == 3
    unit = np.array([[-1.0, 0.5, 1.0]], np.float32)
    acts = codec.to_agents(unit)
    np.testing.assert_allclose(acts, [[[-1, 0.5, 0], [2, 0, 0]]])
    np.testing.assert_allclose(codec.to_unit(acts), unit, atol=1e-6)


@pytest.mark.slow
def test_train_td3_small_run_and_cache(tmp_path, monkeypatch):
    from logo_fast.data.envs import make_env
    from logo_fast.data.policies import td3
    from logo_fast.data.validate import validate_dataset

    cfg = _tiny()
    result = td3.train_td3(lambda tl: make_env("mamujoco:Hopper-3x1", 1, tl), cfg, seed=0, progress=False)
    assert result.env_steps == 400 and result.updates == 400 - 150 + 1
    assert [c["env_step"] for c in result.checkpoints] == [100, 200, 300, 400]
    assert all(np.isfinite(c["eval_return"]) for c in result.checkpoints)
    validate_dataset(result.replay)
    # The replay holds whole episodes of the run, in order, ending no later than the last step.
    assert 0 < len(result.replay) <= 400 and result.replay_env_step[-1] <= 400
    assert np.all(np.diff(result.replay_env_step) > 0)
    assert result.replay.spec.agent_obs_dims == (8, 9, 8)
    b, m = result.best_index(), result.medium_index()
    trained = [c["eval_return"] for c in result.checkpoints if c["env_step"] > cfg.start_steps]
    assert result.checkpoints[b]["eval_return"] == max(trained)
    assert result.checkpoints[m]["env_step"] > cfg.start_steps

    ckpt, replay = td3.cache_paths(tmp_path, "mamujoco:Hopper-3x1", 0, cfg)
    td3.save_result(result, ckpt, replay)
    again = td3.load_result(ckpt, replay)
    assert again.checkpoints == result.checkpoints
    np.testing.assert_array_equal(again.replay.obs, result.replay.obs)
    actor = td3.make_actor(again, b)
    for k, v in actor.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), result.actor_states[b][k].numpy())

    # train_or_load finds the cached run and does not train again.
    def boom(*a, **k):
        raise AssertionError("should have used the cache")

    monkeypatch.setattr(td3, "train_td3", boom)
    cached = td3.train_or_load("mamujoco:Hopper-3x1", 0, cfg, tmp_path, progress=False)
    assert cached.checkpoints == result.checkpoints


def test_expert_and_medium_skip_untrained_checkpoints():
    """A checkpoint from before learning started never becomes expert or medium (Ant stands still for ~1000)."""
    from logo_fast.data.policies.td3 import TD3Config, TrainResult
    from logo_fast.data.toy import make_toy_dataset

    returns = [(5000, 984.0), (10000, 223.0), (20000, 556.0), (30000, 806.0)]
    result = TrainResult(
        checkpoints=[{"env_step": s, "eval_return": r, "wall_s": 0.0} for s, r in returns],
        actor_states=[{} for _ in returns],
        random_return=-10.0,
        replay=make_toy_dataset(action_type="continuous"),
        replay_env_step=np.zeros(8, np.int64),
        env_steps=30000,
        updates=25001,
        wall_s=1.0,
        config={**TD3Config().__dict__, "start_steps": 5000},
        state_dim=4,
        joint_dim=2,
    )
    assert result.best_index() == 3
    # Goal 0.4 of the way from -10 to 806 is 316: 223 (10k) is the closest trained checkpoint.
    assert result.medium_index(0.4) == 1
    assert result.medium_index(0.7) == 2
