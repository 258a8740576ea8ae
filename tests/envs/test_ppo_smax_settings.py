"""SMAX MAPPO's settings flags (--lr, --ent-coef, --max-grad-norm, --anneal-lr): checks, resume dirs, the schedule."""

from dataclasses import asdict

import numpy as np
import pytest

from logo_fast.data.policies import ppo_smax
from logo_fast.data.policies.train import BehaviourArgs, ppo_overrides, run_behaviour, run_dir

JAXMARL = dict(lr=2e-3, ent_coef=0.0, max_grad_norm=0.25, anneal_lr=True)


def test_settings_change_the_config_the_resume_dir_and_nothing_else():
    args = BehaviourArgs(env="smax:5m_vs_6m", actor="gru", steps=81_920, **JAXMARL)
    cfg = ppo_smax.ppo_config(args)
    assert (cfg.lr, cfg.ent_coef, cfg.max_grad_norm, cfg.actor) == (2e-3, 0.0, 0.25, "gru")
    assert cfg.anneal_updates == 81_920 // (cfg.n_envs * cfg.n_steps) == 10
    # a budget that is not a whole number of updates anneals over the updates the run makes
    assert ppo_smax.ppo_config(BehaviourArgs(env="smax:3m", steps=8193, anneal_lr=True)).anneal_updates == 2
    default = ppo_smax.ppo_config(BehaviourArgs(env="smax:5m_vs_6m"))
    assert default == ppo_smax.PPOConfig() and default.anneal_updates == 0
    # 0.0 is a setting, not "unset"
    assert ppo_overrides(BehaviourArgs(env="smax:3m", ent_coef=0.0)) == [("ent_coef", "0.0")]
    assert run_dir(args).name == "smax_5m_vs_6m_gru_lr0.002_ent_coef0.0_max_grad_norm0.25_anneal_lr_seed0"
    assert run_dir(BehaviourArgs(env="smax:5m_vs_6m")).name == "smax_5m_vs_6m_seed0"
    assert run_dir(BehaviourArgs(env="smax:5m_vs_6m", lr=1e-3)).name == "smax_5m_vs_6m_lr0.001_seed0"


def test_resume_files_from_before_the_schedule_are_constant_rate_runs():
    saved = {k: v for k, v in asdict(ppo_smax.PPOConfig()).items() if k not in ("actor", "anneal_updates")}
    assert ppo_smax.same_config(saved, ppo_smax.PPOConfig())
    assert not ppo_smax.same_config(saved, ppo_smax.PPOConfig(anneal_updates=10))
    assert not ppo_smax.same_config({**saved, "anneal_updates": 10}, ppo_smax.PPOConfig(anneal_updates=20))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(env="mamujoco:Hopper-3x1", lr=1e-3), "--lr: MAPPO settings apply to SMAX only"),
        (dict(env="mamujoco:Hopper-3x1", anneal_lr=True), "--anneal-lr: MAPPO settings apply to SMAX only"),
        (dict(env="smax:3m", lr=0.0), "--lr must be a finite number > 0"),
        (dict(env="smax:3m", lr=float("inf")), "--lr must be a finite number > 0"),
        (dict(env="smax:3m", max_grad_norm=float("nan")), "--max-grad-norm must be a finite number > 0"),
        (dict(env="smax:3m", ent_coef=-0.1), "--ent-coef must be a finite number >= 0"),
        (dict(env="smax:3m", ent_coef=float("inf")), "--ent-coef must be a finite number >= 0"),
    ],
)
def test_bad_settings_fail_before_any_work(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_behaviour(BehaviourArgs(**kwargs, work_dir=str(tmp_path), progress=False))
    assert not any(tmp_path.iterdir())  # nothing written


def test_annealed_rate_reaches_zero_after_the_budget():
    pytest.importorskip("jaxmarl")
    import jax

    # one update of 1 epoch x 2 minibatches: the rate falls to 0 over those 2 Adam steps
    cfg = ppo_smax.PPOConfig(n_envs=4, n_steps=4, hidden=8, epochs=1, minibatches=2, time_limit=3, anneal_updates=1)
    f = ppo_smax.mappo_functions("3m", cfg)
    runner = f.init(jax.random.PRNGKey(0))
    r, traj = jax.jit(f.rollout)(runner)
    learn = jax.jit(f.learn)
    first, _ = learn(runner, r, traj)
    assert any(not np.array_equal(runner["params"][k], first["params"][k]) for k in runner["params"])
    # past the schedule's end every step is lr 0: the same data moves nothing (a constant rate would)
    second, _ = learn(first, r, traj)
    for k in first["params"]:
        np.testing.assert_array_equal(np.asarray(second["params"][k]), np.asarray(first["params"][k]), err_msg=k)
    with pytest.raises(ValueError, match="anneal_updates must be >= 0"):
        ppo_smax.mappo_functions("3m", ppo_smax.PPOConfig(anneal_updates=-1))
