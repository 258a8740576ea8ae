"""The policy zoo: checkpoint choice, export/load, resumable TD3, the numpy SMAX policy, collection from the zoo."""

import json

import numpy as np
import pytest

from logo_fast.data.policies import zoo
from logo_fast.data.policies.zoo import choose_checkpoints, export_entry, load_entry


# ---- which checkpoints are expert, medium, medium-replay --------------------------------------
def test_choose_checkpoints_by_hand():
    scores = [0.1, 5.0, 2.0, 4.9, 10.0, 6.0, 10.0]
    steps = [1000, 2000, 3000, 4000, 5000, 6000, 7000]
    got = choose_checkpoints(scores, steps)
    # expert: the first of the best; medium: closest to half of it (5.0, not 4.9) and not after expert
    assert got["expert"] == 4 and got["medium"] == 1
    assert got["replay"] == [0, 1]


def test_choose_checkpoints_skips_the_random_warmup_and_spreads_replay():
    # The warm-up checkpoint (step <= 1000) scores best but is not a candidate.
    scores = [50.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 20.0]
    steps = list(range(1000, 12000, 1000))
    got = choose_checkpoints(scores, steps, min_step=1000)
    assert got["expert"] == 10
    assert scores[got["medium"]] == 9.0  # |9 - 10| beats |8 - 10|
    assert got["replay"][0] == 0 and got["replay"][-1] == got["medium"]
    assert len(got["replay"]) <= zoo.N_REPLAY + 1 and got["replay"] == sorted(set(got["replay"]))


def test_choose_checkpoints_rejects_bad_curves():
    with pytest.raises(ValueError, match="one score per checkpoint"):
        choose_checkpoints([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="at least one"):
        choose_checkpoints([], [])


# ---- export / load ---------------------------------------------------------------------------
def test_export_load_round_trip_and_replace(tmp_path):
    rng = np.random.default_rng(0)
    w = {2: {"actor.0.weight": rng.normal(size=(4, 3)).astype(np.float32), "actor.0.bias": np.zeros(4, np.float32)}}
    card = {"env": "smax:2s3z", "checkpoints": [{}, {}, {"return": 1.0}], "expert": 2, "medium": 2, "replay": [2]}
    path = export_entry("smax:2s3z", 0, card, w, tmp_path)
    entry = load_entry("smax:2s3z", 0, tmp_path)
    assert entry.path == path and entry.card["expert"] == 2 and entry.checkpoint("expert") == {"return": 1.0}
    # float16 on disk: equal to the float32 original within half precision
    np.testing.assert_allclose(entry.params(2)["actor.0.weight"], w[2]["actor.0.weight"], rtol=1e-3, atol=1e-3)
    assert entry.params(2)["actor.0.weight"].dtype == np.float32
    with pytest.raises(KeyError, match="not shipped"):
        entry.params(0)
    # A second export replaces the entry whole; nothing else is left in the zoo directory.
    export_entry("smax:2s3z", 0, {**card, "expert": 0}, w, tmp_path)
    assert load_entry("smax:2s3z", 0, tmp_path).card["expert"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smax_2s3z_seed0"]
    assert load_entry("smax:3s_vs_5z", 0, tmp_path) is None


def test_default_entry_is_the_lowest_seed_shipped(tmp_path):
    w = {0: {"actor.0.weight": np.zeros((2, 2), np.float32)}}
    card = {"env": "mamujoco:Hopper-3x1", "checkpoints": [{}], "expert": 0, "medium": 0, "replay": [0]}
    assert zoo.entry_seeds("mamujoco:Hopper-3x1", tmp_path) == []
    assert zoo.load_default_entry("mamujoco:Hopper-3x1", tmp_path) is None
    assert zoo.load_default_entry("mamujoco:Hopper-3x1", tmp_path / "missing") is None
    export_entry("mamujoco:Hopper-3x1", 3, card, w, tmp_path)
    export_entry("mamujoco:Hopper-3x1", 1, {**card, "seed": 1}, w, tmp_path)
    export_entry("mamujoco:HalfCheetah-6x1", 0, card, w, tmp_path)  # another scenario is not a candidate
    (tmp_path / "mamujoco_Hopper-3x1_seedx").mkdir()  # not an entry
    assert zoo.entry_seeds("mamujoco:Hopper-3x1", tmp_path) == [1, 3]
    assert zoo.load_default_entry("mamujoco:Hopper-3x1", tmp_path).card["seed"] == 1


def test_load_refuses_another_zoo_version(tmp_path):
    export_entry("smax:2s3z", 0, {"checkpoints": []}, {}, tmp_path)
    card = tmp_path / "smax_2s3z_seed0" / "card.json"
    card.write_text(json.dumps({**json.loads(card.read_text()), "zoo_version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        load_entry("smax:2s3z", 0, tmp_path)


def test_mlp_forward_matches_torch():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    params = {f"net.{k}": v.detach().numpy() for k, v in net.state_dict().items()}
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_allclose(
        zoo.mlp_forward(params, x, "net", 2), net(torch.from_numpy(x)).detach().numpy(), 1e-5, 1e-5
    )


# ---- the shipped SMAX policy in numpy ---------------------------------------------------------
def _smax_policy(seed=0, N=3, obs_dim=6, A=5, hidden=8):
    from logo_fast.data.policies.ppo_smax import SMAXPolicy

    rng = np.random.default_rng(seed)
    sizes = [obs_dim + N, hidden, hidden, A]
    params = {}
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"actor.{2 * k}.weight"] = rng.normal(size=(o, i)).astype(np.float32)
        params[f"actor.{2 * k}.bias"] = rng.normal(size=o).astype(np.float32)
    return SMAXPolicy(params, N, "test", {}), params


def test_smax_policy_samples_only_available_actions_with_softmax_frequencies():
    pol, params = _smax_policy()
    B, N, A = 4000, 3, 5
    obs = np.broadcast_to(np.random.default_rng(2).normal(size=(1, N, 6)).astype(np.float32), (B, N, 6))
    avail = np.ones((B, N, A), bool)
    avail[:, 0, 1] = False  # agent 0 may not take action 1
    avail[:, 2, :4] = False  # agent 2 may only stop
    acts = pol.act(obs, None, avail, np.random.default_rng(3))
    assert acts.shape == (B, N) and acts.dtype == np.int64
    assert not (acts[:, 0] == 1).any() and (acts[:, 2] == 4).all()
    # agent 1: empirical frequencies vs the masked softmax of its logits
    ids = np.eye(N, dtype=np.float32)[1]
    logits = zoo.mlp_forward(params, np.concatenate([obs[0, 1], ids])[None], "actor", 3)[0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    freq = np.bincount(acts[:, 1], minlength=A) / B
    assert np.abs(freq - p).max() < 4 * np.sqrt(p.max() * (1 - p.max()) / B) + 1e-3
    # the same generator seed gives the same actions
    np.testing.assert_array_equal(acts, pol.act(obs, None, avail, np.random.default_rng(3)))


# ---- resumable TD3 ------------------------------------------------------------------------------
def _tiny_td3_cfg(**kw):
    from logo_fast.data.policies.td3 import TD3Config

    base = dict(
        max_env_steps=240, start_steps=40, eval_every=60, eval_episodes=1, batch_size=16, hidden=16, time_limit=20
    )
    return TD3Config(**{**base, **kw})


def _hopper(tl):
    from logo_fast.data.envs.registry import make_env

    return make_env("mamujoco:Hopper-3x1", batch_size=1, time_limit=tl)


@pytest.mark.slow
def test_td3_resume_continues_exactly_from_the_saved_state(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    torch = pytest.importorskip("torch")
    from logo_fast.data.policies.td3 import TD3Trainer

    cfg = _tiny_td3_cfg()
    a = TD3Trainer(_hopper, cfg, seed=3, record=False)
    a.run(120, progress=False)
    torch.save(a.state_dict(), tmp_path / "resume.pt")
    b = TD3Trainer(_hopper, cfg, seed=3, record=False)
    b.load_state_dict(torch.load(tmp_path / "resume.pt", weights_only=False))
    assert (b.t, b.updates, len(b.checkpoints)) == (a.t, a.updates, len(a.checkpoints)) == (120, 81, 2)
    np.testing.assert_array_equal(b.buf_s[:120], a.buf_s[:120])
    a._obs = None  # a resumed run starts a fresh episode; make the original do the same
    a.run(progress=False)
    b.run(progress=False)
    assert a.t == b.t == 240 and len(a.checkpoints) == 4
    for (k, va), vb in zip(a.actor.state_dict().items(), b.actor.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)
    assert [c["eval_return"] for c in a.checkpoints] == [c["eval_return"] for c in b.checkpoints]
    a.close()
    b.close()


@pytest.mark.slow
def test_td3_resume_refuses_another_config(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    from logo_fast.data.policies.td3 import TD3Trainer

    a = TD3Trainer(_hopper, _tiny_td3_cfg(), seed=3, record=False)
    sd = a.state_dict()
    b = TD3Trainer(_hopper, _tiny_td3_cfg(hidden=32), seed=3, record=False)
    with pytest.raises(ValueError, match="another TD3 config"):
        b.load_state_dict(sd)
    # a larger step budget is not another config: a run may be extended
    TD3Trainer(_hopper, _tiny_td3_cfg(max_env_steps=480), seed=3, record=False).load_state_dict(sd)
    a.close()
    b.close()


# ---- collecting from the zoo -------------------------------------------------------------------
@pytest.mark.slow
def test_behaviour_cli_trains_resumes_exports_and_collect_uses_it(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gymnasium_robotics")
    from logo_fast.data.collect import collect
    from logo_fast.data.policies import td3_run
    from logo_fast.data.policies.train import BehaviourArgs, run_behaviour

    monkeypatch.setattr(td3_run, "EVAL_EVERY", 60)
    monkeypatch.setattr(td3_run, "EVAL_EPISODES", 1)
    real_cfg = td3_run.TD3Config
    monkeypatch.setattr(
        td3_run,
        "TD3Config",
        lambda **kw: real_cfg(**{**kw, "start_steps": 60, "batch_size": 16, "hidden": 16, "time_limit": 20}),
    )
    args = BehaviourArgs(
        env="mamujoco:Hopper-3x1",
        steps=120,
        work_dir=str(tmp_path / "w"),
        zoo_dir=str(tmp_path / "zoo"),
        progress=False,
    )
    assert run_behaviour(args) == 0
    first = load_entry("mamujoco:Hopper-3x1", 0, tmp_path / "zoo")
    assert first.card["budget"]["env_steps"] == 120 and len(first.card["checkpoints"]) == 2
    args.steps = 240  # the same command with a larger budget goes on from the resume file
    assert run_behaviour(args) == 0
    assert "resumed mamujoco:Hopper-3x1 at env step 120" in capsys.readouterr().out
    entry = load_entry("mamujoco:Hopper-3x1", 0, tmp_path / "zoo")
    card = entry.card
    assert card["budget"]["env_steps"] == 240 and len(card["checkpoints"]) == 4
    assert card["command"] == "logo-fast data behaviour --env mamujoco:Hopper-3x1 --steps 240 --seed 0"
    assert set(card["shipped"]) == {card["expert"], card["medium"], *card["replay"]}

    common = dict(seed=0, zoo_dir=str(tmp_path / "zoo"), time_limit=20, batch_size=2, behaviour="zoo")
    expert = collect("mamujoco:Hopper-3x1", "expert", n_episodes=3, **common)
    beh = expert.metadata["behaviour"]
    assert beh["policy_source"] == "policy zoo: mamujoco_Hopper-3x1_seed0"
    assert beh["policy"]["checkpoint_eval_return"] == card["checkpoints"][card["expert"]]["eval_return"]
    replay = collect("mamujoco:Hopper-3x1", "medium-replay", n_episodes=len(card["replay"]), **common)
    kinds = [c["kind"] for c in replay.metadata["behaviour"]["medium_replay"]["checkpoints"]]
    assert len(kinds) == len(card["replay"])
    # the checkpoint at the end of the random warm-up stands for uniform random actions
    assert kinds[0] == "random"
    mixed = collect("mamujoco:Hopper-3x1", "mixed", n_episodes=4, **common)
    assert set(mixed.metadata["episode_return_by_part"]) == {"medium-replay", "expert"}


def test_collect_zoo_errors_name_the_way_out(tmp_path):
    pytest.importorskip("mpe2")
    from logo_fast.data.collect import collect

    with pytest.raises(ValueError, match="logo-fast data behaviour --env smax:2s3z"):
        collect("smax:2s3z", "expert", n_episodes=1, behaviour="zoo", zoo_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no entries for MPE"):
        collect("mpe:simple_spread", "expert", n_episodes=1, behaviour="zoo")
    with pytest.raises(ValueError, match="MaMuJoCo has no scripted policy"):
        collect("mamujoco:Hopper-3x1", "expert", n_episodes=1, behaviour="scripted")
    with pytest.raises(ValueError, match="quick-td3 trains MaMuJoCo policies only"):
        collect("smax:2s3z", "expert", n_episodes=1, behaviour="quick-td3")


# ---- the MAPPO update itself (tiny: the SMAX step's compile dominates) --------------------------
@pytest.mark.slow
def test_mappo_update_learns_from_its_rollout_and_compiles_once():
    pytest.importorskip("jaxmarl")
    import jax

    from logo_fast.data.policies.ppo_smax import PPOConfig, make_update

    cfg = PPOConfig(n_envs=2, n_steps=8, hidden=8, epochs=1, minibatches=1, time_limit=10)
    init, update, fresh, settle, sizes = make_update("3m", cfg)
    assert sizes["n_agents"] == 3 and sizes["n_actions"] == 4 + 1 + 3
    runner = init(jax.random.PRNGKey(0))
    before = jax.tree.map(np.asarray, runner["params"])
    runner, m = update(runner)
    runner, m = update(runner)
    # settle() gives init's runner the dtypes update returns, so the second call reused the compile
    assert update._cache_size() == 1
    m = {k: float(v) for k, v in m.items()}
    assert all(np.isfinite(list(m.values())))
    assert m["episodes"] >= 0 and 0 <= m["won"] <= m["episodes"]
    assert 0 < m["entropy"] <= np.log(sizes["n_actions"]) + 1e-5
    after = jax.tree.map(np.asarray, runner["params"])
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    # fresh battles on resume keep the runner's structure (no recompile either)
    runner = settle(
        {**jax.tree.map(np.asarray, {k: runner[k] for k in ("params", "opt", "key")}), **fresh(jax.random.PRNGKey(5))}
    )
    update(runner)
    assert update._cache_size() == 1


@pytest.mark.slow
def test_shipped_smax_entry_collects_every_quality():
    pytest.importorskip("jaxmarl")
    from logo_fast.data.collect import collect

    entry = load_entry("smax:2s3z", 0)
    if entry is None:
        pytest.fail("the package ships a smax:2s3z behaviour policy (logo_fast/data/policies/zoo)")
    card = entry.card
    assert card["checkpoints"][card["expert"]]["win_rate"] >= card["checkpoints"][card["medium"]]["win_rate"]
    common = dict(seed=0, time_limit=20, batch_size=4)
    med = collect("smax:2s3z", "medium", n_episodes=4, **common)  # validated: every action available
    assert med.metadata["behaviour"]["policy_source"] == "policy zoo: smax_2s3z_seed0"
    assert med.metadata["behaviour"]["policy"]["checkpoint"] == "medium"
    mixed = collect("smax:2s3z", "mixed", n_episodes=2 * len(card["replay"]), **common)
    assert set(mixed.metadata["episode_return_by_part"]) == {"medium-replay", "expert"}
    # the scripted heuristic is still there by name
    scripted = collect("smax:2s3z", "medium", n_episodes=4, behaviour="scripted", **common)
    assert "epsilon" in scripted.metadata["behaviour"]


@pytest.mark.slow
def test_smax_behaviour_cli_trains_resumes_and_exports(tmp_path, monkeypatch, capfd):
    pytest.importorskip("jaxmarl")
    from logo_fast.data.policies import ppo_smax
    from logo_fast.data.policies.train import BehaviourArgs, run_behaviour

    tiny = ppo_smax.PPOConfig(n_envs=2, n_steps=8, hidden=8, epochs=1, minibatches=1, time_limit=10, checkpoint_every=2)
    monkeypatch.setattr(ppo_smax, "PPOConfig", lambda: tiny)
    per_update = tiny.n_envs * tiny.n_steps
    args = BehaviourArgs(
        env="smax:3m", steps=4 * per_update, work_dir=str(tmp_path / "w"), zoo_dir=str(tmp_path / "zoo"), progress=False
    )
    assert run_behaviour(args) == 0
    card = load_entry("smax:3m", 0, tmp_path / "zoo").card
    assert card["budget"]["env_steps"] == 4 * per_update and len(card["checkpoints"]) == 2
    # a checkpoint holds the parameters *before* the update whose rollout scored it
    assert [c["update"] for c in card["checkpoints"]] == [1, 3]
    assert [c["env_step"] for c in card["checkpoints"]] == [per_update, 3 * per_update]
    args.steps = 6 * per_update
    assert run_behaviour(args) == 0
    assert "resumed smax:3m at update 4" in capfd.readouterr().out
    entry = load_entry("smax:3m", 0, tmp_path / "zoo")
    assert entry.card["budget"]["env_steps"] == 6 * per_update and len(entry.card["curve"]) == 6
    # only the actor ships; its first layer reads obs + agent one-hot
    shipped = entry.params(entry.card["expert"])
    assert shipped and all(k.startswith("actor.") for k in shipped)
    sizes = entry.card["sizes"]
    assert shipped["actor.0.weight"].shape == (tiny.hidden, sizes["obs_dim"] + sizes["n_agents"])
