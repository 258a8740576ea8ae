"""SMAX MAPPO's GRU actor: the numpy cell vs torch, the numpy policy's hidden state, JAX vs numpy, the loss's replay."""

import numpy as np
import pytest

from logo_fast.data.policies import ppo_smax
from logo_fast.data.policies.ppo_smax import SMAXPolicy, gru_actor_step, gru_cell


def _gru_params(rng, in_dim, H, A):
    """Random GRU-actor parameters (see ``gru_actor_step``), float32, with non-zero biases."""
    shapes = {
        "actor.0.weight": (H, in_dim),
        "actor.0.bias": (H,),
        "actor.gru.weight_ih": (3 * H, H),
        "actor.gru.weight_hh": (3 * H, H),
        "actor.gru.bias_ih": (3 * H,),
        "actor.gru.bias_hh": (3 * H,),
        "actor.2.weight": (H, H),
        "actor.2.bias": (H,),
        "actor.4.weight": (A, H),
        "actor.4.bias": (A,),
    }
    return {k: (rng.normal(size=s) / np.sqrt(s[-1])).astype(np.float32) for k, s in shapes.items()}


# ---- (a) the numpy GRU cell is torch.nn.GRUCell ---------------------------------------------
def test_gru_cell_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(5, 7).double()
    params = {f"g.{k}": v.detach().numpy() for k, v in cell.state_dict().items()}
    rng = np.random.default_rng(1)
    x, h = rng.normal(size=(4, 5)), rng.normal(size=(4, 7))
    want = cell(torch.from_numpy(x), torch.from_numpy(h)).detach().numpy()
    np.testing.assert_allclose(gru_cell(params, x, h, "g"), want, rtol=1e-12, atol=1e-12)
    # leading batch axes (battles, agents) as the policy uses them
    x3, h3 = x.reshape(2, 2, 5), h.reshape(2, 2, 7)
    np.testing.assert_allclose(gru_cell(params, x3, h3, "g"), want.reshape(2, 2, 7), rtol=1e-12, atol=1e-12)


# ---- (b) the numpy policy's hidden state ------------------------------------------------------
def _gru_policy(seed=0, N=3, obs_dim=6, A=5, H=8):
    params = _gru_params(np.random.default_rng(seed), obs_dim + N, H, A)
    return SMAXPolicy(params, N, "test", {}, actor="gru"), params


def test_gru_policy_resets_exactly_the_rows_whose_episode_ended():
    B, N, obs_dim, A = 4, 3, 6, 5
    pol, params = _gru_policy()
    rng = np.random.default_rng(2)
    avail = np.ones((B, N, A), bool)
    avail[:, 0, 1] = False
    assert pol.h is None  # made at the first act, with the batch's shape
    for _ in range(3):
        acts = pol.act(rng.normal(size=(B, N, obs_dim)), None, avail, np.random.default_rng(3))
        assert acts.shape == (B, N) and acts.dtype == np.int64 and not (acts[:, 0] == 1).any()
    assert pol.h.shape == (B, N, 8) and pol.h.dtype == np.float32 and np.abs(pol.h).min() > 0
    h_before = pol.h.copy()
    done = np.array([False, True, False, True])
    pol.on_episode_end(done)
    np.testing.assert_array_equal(pol.h[done], 0.0)
    np.testing.assert_array_equal(pol.h[~done], h_before[~done])
    # The reset rows act as a fresh policy does on its first step; the others remember.
    obs = rng.normal(size=(B, N, obs_dim)).astype(np.float32)
    got = pol.logits(obs, avail)
    fresh, _ = _gru_policy()
    want = fresh.logits(obs, avail)
    np.testing.assert_allclose(got[done], want[done], rtol=1e-6, atol=1e-6)
    keep = avail & ~done[:, None, None]
    assert np.abs(got[keep] - want[keep]).max() > 1e-3
    # ... and so sample the same actions from the same generator.
    pol.h, fresh.h = np.where(done[:, None, None], 0.0, h_before).astype(np.float32), None
    a = pol.act(obs, None, avail, np.random.default_rng(7))
    b = fresh.act(obs, None, avail, np.random.default_rng(7))
    np.testing.assert_array_equal(a[done], b[done])
    # the step by hand: the numpy GRU actor on obs + agent one-hot
    x = np.concatenate([obs, np.broadcast_to(np.eye(N, dtype=np.float32), (B, N, N))], -1)
    by_hand, _ = gru_actor_step(params, x, np.zeros((B, N, 8), np.float32))
    np.testing.assert_allclose(want, np.where(avail, by_hand, -np.inf), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="hidden state"):
        pol.act(obs[:2], None, avail[:2], rng)
    assert pol.describe()["actor"] == "gru" and "gru" in pol.describe()["kind"]


def test_mlp_policy_has_no_hidden_state():
    from tests.envs.test_zoo import _smax_policy

    pol, _ = _smax_policy()
    pol.act(np.zeros((2, 3, 6), np.float32), None, np.ones((2, 3, 5), bool), np.random.default_rng(0))
    pol.on_episode_end(np.array([True, False]))
    assert pol.h is None and pol.actor == "mlp" and pol.describe()["kind"] == "mappo_shared_actor (sampled)"
    with pytest.raises(ValueError, match="actor must be one of"):
        SMAXPolicy({}, 3, "x", {}, actor="lstm")


# ---- (e) the shipped cards load with the actor their config names -----------------------------
def test_shipped_smax_cards_load_as_their_actor():
    from logo_fast.data.policies.zoo import ZOO_DIR, load_entry

    entries = sorted(p.name for p in ZOO_DIR.glob("smax_*_seed*") if (p / "card.json").is_file())
    assert entries, "the package ships SMAX behaviour policies"
    for name in entries:
        env_id, seed = name.rsplit("_seed", 1)
        entry = load_entry(env_id.replace("smax_", "smax:", 1), int(seed))
        config = entry.card["config"]
        actor = config.get("actor", "mlp")  # cards from before the GRU actor are MLPs
        other = "gru" if actor == "mlp" else "mlp"
        assert ppo_smax.same_config(config, ppo_smax.PPOConfig(**config))
        assert not ppo_smax.same_config(config, ppo_smax.PPOConfig(**{**config, "actor": other}))
        pol = ppo_smax.policy_from_entry(entry, entry.card["expert"], "expert")
        assert pol.actor == actor and pol.describe()["actor"] == actor
        sizes = entry.card["sizes"]
        B, N = 2, sizes["n_agents"]
        acts = pol.act(np.zeros((B, N, sizes["obs_dim"])), None, np.ones((B, N, sizes["n_actions"]), bool),
                       np.random.default_rng(0))
        assert acts.shape == (B, N) and (pol.h is None) == (actor == "mlp")


def test_gru_policy_from_a_gru_card(tmp_path):
    from logo_fast.data.policies.zoo import export_entry, load_entry

    params = _gru_params(np.random.default_rng(0), 6 + 3, 8, 5)
    ck = {"return": 1.0, "win_rate": 0.5, "env_step": 64}
    card = {"config": {"actor": "gru", "hidden": 8}, "sizes": {"n_agents": 3}, "checkpoints": [ck]}
    export_entry("smax:3m", 0, {**card, "expert": 0, "medium": 0, "replay": [0]}, {0: params}, tmp_path)
    pol = ppo_smax.policy_from_entry(load_entry("smax:3m", 0, tmp_path), 0, "expert")
    assert pol.actor == "gru" and pol.describe()["kind"] == "mappo_shared_gru_actor (sampled)"
    assert pol.act(np.zeros((2, 3, 6)), None, np.ones((2, 3, 5), bool), np.random.default_rng(0)).shape == (2, 3)


def test_actor_flag_is_smax_only():
    from logo_fast.data.policies.train import BehaviourArgs, run_behaviour, run_dir

    with pytest.raises(ValueError, match="only SMAX"):
        run_behaviour(BehaviourArgs(env="mamujoco:Hopper-3x1", actor="gru", progress=False))
    # a GRU run resumes from its own directory, not the same scenario's MLP run
    mlp, gru = BehaviourArgs(env="smax:5m_vs_6m"), BehaviourArgs(env="smax:5m_vs_6m", actor="gru")
    assert run_dir(mlp).name == "smax_5m_vs_6m_seed0" and run_dir(gru).name == "smax_5m_vs_6m_gru_seed0"


# ---- (c) the JAX GRU of training is the numpy policy's ----------------------------------------
def test_jax_gru_rollout_matches_the_numpy_policy_with_resets():
    pytest.importorskip("jax")
    import jax.numpy as jnp

    T, B, N, obs_dim, A, H = 6, 3, 2, 4, 5, 8
    pol, params = _gru_policy(seed=4, N=N, obs_dim=obs_dim, A=A, H=H)
    rng = np.random.default_rng(5)
    obs = rng.normal(size=(T, B, N, obs_dim)).astype(np.float32)
    avail = rng.random((T, B, N, A)) < 0.7
    avail[..., 4] = True  # "stop" is always available
    done = rng.random((T, B)) < 0.3
    want = []
    for t in range(T):  # the collector's loop: act, step, on_episode_end
        want.append(pol.logits(obs[t], avail[t]))
        pol.on_episode_end(done[t])
    want = np.stack(want)
    x = np.concatenate([obs, np.broadcast_to(np.eye(N, dtype=np.float32), (T, B, N, N))], -1)
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    got = np.asarray(ppo_smax.gru_actor_rollout(jparams, jnp.zeros((B, N, H)), x, avail, done))
    assert done.any()
    np.testing.assert_allclose(got[avail], want[avail], rtol=1e-5, atol=1e-5)
    assert (got[~avail] == -1e9).all()


# ---- (d) one tiny GRU update; the loss replays the rollout's log-probs -------------------------
@pytest.mark.slow
def test_gru_update_runs_and_the_loss_recomputes_the_rollouts_logp():
    pytest.importorskip("jaxmarl")
    import jax
    import jax.numpy as jnp

    # time_limit 3 < n_steps: battles end (and hidden states reset) inside the rollout
    cfg = ppo_smax.PPOConfig(n_envs=4, n_steps=8, hidden=16, epochs=1, minibatches=2, time_limit=3, actor="gru")
    f = ppo_smax.mappo_functions("3m", cfg)
    N, H = f.sizes["n_agents"], cfg.hidden
    runner = f.init(jax.random.PRNGKey(0))
    assert runner["h"].shape == (4, N, H) and not np.asarray(runner["h"]).any()
    assert "actor.gru.weight_hh" in runner["params"] and runner["params"]["actor.gru.weight_ih"].shape == (3 * H, H)
    # start from a non-zero hidden state, as every rollout after the first does
    runner["h"] = jax.random.normal(jax.random.PRNGKey(1), runner["h"].shape, jnp.float32)
    # logits of order 1 (the init's 0.01 gain makes them near-uniform), so a wrong replay would show
    runner["params"] = {**runner["params"], "actor.4.weight": 100.0 * runner["params"]["actor.4.weight"]}
    r, traj = jax.jit(f.rollout)(runner)  # the one compile of SMAX's step
    done = np.asarray(traj["done"])
    assert done[:-1].any()
    # after the last step, battles that ended start from zero; the others carry a state
    h_end = np.asarray(r["h"])
    assert not h_end[done[-1]].any() and (np.abs(h_end[~done[-1]]).sum(axis=(1, 2)) > 0).all()

    data = {k: traj[k] for k in ("obs", "avail", "action", "logp", "done")}
    perm = jnp.array([2, 0, 3, 1])
    mbs = f.split(data, runner["h"], perm)
    assert mbs["obs"].shape[:3] == (2, 8, 2) and mbs["h0"].shape == (2, 2, N, H)
    logp_fn = jax.jit(f.logp)
    for m in range(cfg.minibatches):
        mb = jax.tree.map(lambda x, m=m: x[m], mbs)
        logp, _ = logp_fn(runner["params"], mb)
        ratio = np.exp(np.asarray(logp) - np.asarray(mb["logp"]))
        np.testing.assert_allclose(ratio, 1.0, rtol=0, atol=1e-5)
    # without the resets at done (or from the zero state) the replay would not be the rollout
    wrong = jax.tree.map(lambda x: x[0], mbs)
    assert np.abs(np.asarray(logp_fn(runner["params"], {**wrong, "done": wrong["done"] & False})[0]) -
                  np.asarray(wrong["logp"])).max() > 1e-4
    assert np.abs(np.asarray(logp_fn(runner["params"], {**wrong, "h0": 0 * wrong["h0"]})[0]) -
                  np.asarray(wrong["logp"])).max() > 1e-4

    new, metrics = jax.jit(f.learn)(runner, r, traj)
    m = {k: float(v) for k, v in metrics.items()}
    assert all(np.isfinite(list(m.values()))) and m["episodes"] >= 4
    assert 0 < m["entropy"] <= np.log(f.sizes["n_actions"]) + 1e-5
    assert any(not np.array_equal(runner["params"][k], new["params"][k]) for k in runner["params"])
    np.testing.assert_array_equal(new["h"], r["h"])  # the next rollout starts where this one stopped
    # the trained JAX actor runs as the numpy policy (shipped weights are only the actor's)
    shipped = {k: np.asarray(v) for k, v in new["params"].items() if k.startswith("actor.")}
    pol = SMAXPolicy(shipped, N, "c0", {}, actor="gru")
    obs0, avail0 = np.asarray(r["obs"]), np.asarray(r["avail"])
    x0 = jnp.concatenate([obs0, jnp.broadcast_to(jnp.eye(N), (*obs0.shape[:-1], N))], -1)
    want, _ = gru_actor_step(new["params"], x0, jnp.zeros((4, N, H)), jnp)
    np.testing.assert_allclose(pol.logits(obs0, avail0)[avail0], np.asarray(want)[avail0], rtol=1e-4, atol=1e-5)
