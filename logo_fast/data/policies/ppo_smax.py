"""SMAX behaviour policies: MAPPO with parameter sharing on jaxmarl's vmapped SMAX (JAX, CPU).

The allies share one actor (local observation + agent one-hot -> logits over actions, the
unavailable ones masked out) and one centralised critic on the global world state (the team
reward is shared, so one value per battle). A training update is one jitted call: a
``lax.scan`` over ``n_steps`` steps of ``n_envs`` battles, GAE, then ``epochs`` x ``minibatches``
clipped-PPO steps with Adam (optax). Battles that end are reset inside the step; a time-limit
truncation is treated as an end without bootstrap, as most SMAX PPO implementations do.

Checkpoints are the actor's parameters *before* an update, scored by that update's own
rollout (the stochastic policy, which is what a dataset records): mean episode return and
win rate over the battles finished in it. The run is resumable (``resume.pkl`` in the work
directory, written atomically every checkpoint); a resumed run starts fresh battles.

Parameters are stored torch-style (``actor.<2k>.weight`` of shape (out, in)) so the shipped
policy runs in numpy (``SMAXPolicy``) without JAX.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...progress import progress as progress_bar
from .zoo import ZooEntry, choose_checkpoints, export_entry, mlp_forward, save_resume

if TYPE_CHECKING:  # the CLI module imports this one late; no import circle
    from .train import BehaviourArgs

TRAINER_VERSION = 1


@dataclass(frozen=True)
class PPOConfig:
    """MAPPO settings (close to JaxMARL's SMAX baselines, with an MLP instead of a GRU)."""

    n_envs: int = 64
    """Parallel battles per rollout."""
    n_steps: int = 128
    """Steps per battle per rollout (an update sees n_envs * n_steps steps)."""
    hidden: int = 128
    """Width of the two hidden layers of actor and critic."""
    lr: float = 5e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """PPO ratio clip."""
    ent_coef: float = 0.01
    """Entropy bonus."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    epochs: int = 4
    """Passes over each rollout."""
    minibatches: int = 4
    """Minibatches per pass (split over battles)."""
    checkpoint_every: int = 10
    """Updates between checkpoints."""
    time_limit: int = 100
    """Episode length limit (the adapter's default)."""


def _init_mlp(key, sizes: list[int], prefix: str, last_scale: float) -> dict[str, Any]:
    """Orthogonal init (sqrt 2 gain, ``last_scale`` on the output layer), zero biases."""
    import jax
    import jax.numpy as jnp

    params = {}
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        gain = last_scale if k == len(sizes) - 2 else np.sqrt(2.0)
        params[f"{prefix}.{2 * k}.weight"] = jax.nn.initializers.orthogonal(gain)(keys[k], (o, i), jnp.float32)
        params[f"{prefix}.{2 * k}.bias"] = jnp.zeros(o, jnp.float32)
    return params


def _mlp(params, x, prefix: str, n_layers: int = 3):
    import jax.numpy as jnp

    return mlp_forward(params, x, prefix, n_layers, maximum=jnp.maximum)


def make_update(map_name: str, cfg: PPOConfig):
    """(init(key) -> runner, jitted update(runner) -> (runner, metrics), fresh battles, settle, sizes) for one map."""
    import jax
    import jax.numpy as jnp
    import optax

    from ..envs.smax import battle_functions

    env, reset_one, step_one = battle_functions(map_name, cfg.time_limit)
    N = env.num_allies
    a0 = env.agents[0]
    obs_dim = int(env.observation_space(a0).shape[0])
    n_actions = int(env.action_space(a0).n)
    _, _, ws0, _ = reset_one(jax.random.PRNGKey(0))
    state_dim = int(ws0.shape[0])
    E, T = cfg.n_envs, cfg.n_steps
    eye = jnp.eye(N, dtype=jnp.float32)
    tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr, eps=1e-5))
    v_reset, v_step = jax.vmap(reset_one), jax.vmap(step_one)

    def actor_logits(params, obs, avail):
        """obs (..., N, obs_dim), avail (..., N, A) -> masked logits (..., N, A)."""
        ids = jnp.broadcast_to(eye, (*obs.shape[:-1], N))
        logits = _mlp(params, jnp.concatenate([obs, ids], -1), "actor")
        return jnp.where(avail, logits, -1e9)

    def value(params, ws):
        return _mlp(params, ws, "critic")[..., 0]

    def init(key):
        k_a, k_c, k_env, key = jax.random.split(key, 4)
        params = {
            **_init_mlp(k_a, [obs_dim + N, cfg.hidden, cfg.hidden, n_actions], "actor", 0.01),
            **_init_mlp(k_c, [state_dim, cfg.hidden, cfg.hidden, 1], "critic", 1.0),
        }
        return {"params": params, "opt": tx.init(params), **_fresh_battles(k_env), "key": key}

    def _fresh_battles(key):
        st, obs, ws, avail = v_reset(jax.random.split(key, E))
        return {"env": st, "obs": obs, "ws": ws, "avail": avail, "ep_ret": jnp.zeros(E)}

    def rollout_step(carry, _):
        params, r = carry
        key, k_act, k_env = jax.random.split(r["key"], 3)
        logits = actor_logits(params, r["obs"], r["avail"])
        action = jax.random.categorical(k_act, logits, axis=-1)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[..., None], -1)[..., 0]  # (E, N)
        v = value(params, r["ws"])
        out = v_step(jax.random.split(k_env, E), r["env"], action.astype(jnp.int32))
        st, obs, ws, avail, rew, term, trunc = out[:7]
        won = out[11]
        done = term | trunc
        ep_ret = r["ep_ret"] + rew
        tr = {
            "obs": r["obs"],
            "ws": r["ws"],
            "avail": r["avail"],
            "action": action,
            "logp": logp,
            "value": v,
            "reward": rew,
            "done": done,
            "ep_done": done,
            "ep_ret": ep_ret,
            "won": won,
        }
        r = {**r, "env": st, "obs": obs, "ws": ws, "avail": avail, "ep_ret": jnp.where(done, 0.0, ep_ret), "key": key}
        return (params, r), tr

    def loss_fn(params, mb):
        logits = actor_logits(params, mb["obs"], mb["avail"])
        logp_all = jax.nn.log_softmax(logits)
        logp = jnp.take_along_axis(logp_all, mb["action"][..., None], -1)[..., 0]
        # One clipped ratio per agent, all with the battle's (shared-reward) advantage.
        ratio = jnp.exp(logp - mb["logp"])
        adv = mb["adv"][..., None]
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip, 1 + cfg.clip) * adv).mean()
        probs = jnp.exp(logp_all)
        ent = -(jnp.where(mb["avail"], probs * logp_all, 0.0)).sum(-1).mean()
        v = value(params, mb["ws"])
        v_clip = mb["value"] + jnp.clip(v - mb["value"], -cfg.clip, cfg.clip)
        vf = 0.5 * jnp.maximum((v - mb["ret"]) ** 2, (v_clip - mb["ret"]) ** 2).mean()
        return pg + cfg.vf_coef * vf - cfg.ent_coef * ent, (pg, vf, ent)

    @jax.jit
    def update(runner):
        params = runner["params"]
        (_, r), traj = jax.lax.scan(
            rollout_step, (params, {k: v for k, v in runner.items() if k not in ("params", "opt")}), None, T
        )
        last_v = value(params, r["ws"])

        def gae(carry, tr):
            adv_next, v_next = carry
            nd = 1.0 - tr["done"]
            delta = tr["reward"] + cfg.gamma * v_next * nd - tr["value"]
            adv = delta + cfg.gamma * cfg.gae_lambda * nd * adv_next
            return (adv, tr["value"]), adv

        _, adv = jax.lax.scan(gae, (jnp.zeros(E), last_v), traj, reverse=True)
        data = {k: traj[k] for k in ("obs", "ws", "avail", "action", "logp", "value")}
        data["ret"] = adv + traj["value"]
        data["adv"] = (adv - adv.mean()) / (adv.std() + 1e-8)

        def epoch(carry, key):
            params, opt = carry
            perm = jax.random.permutation(key, E)
            # (T, E, ...) -> minibatches of whole battles: (M, T, E/M, ...)
            mbs = jax.tree.map(
                lambda x: jnp.swapaxes(x[:, perm].reshape(T, cfg.minibatches, -1, *x.shape[2:]), 0, 1), data
            )

            def mb_step(carry, mb):
                params, opt = carry
                grads, aux = jax.grad(loss_fn, has_aux=True)(params, mb)
                upd, opt = tx.update(grads, opt, params)
                return (optax.apply_updates(params, upd), opt), aux

            return jax.lax.scan(mb_step, (params, opt), mbs)

        key, k_ep = jax.random.split(r["key"])
        (params, opt), aux = jax.lax.scan(epoch, (params, runner["opt"]), jax.random.split(k_ep, cfg.epochs))
        n_done = traj["ep_done"].sum()
        metrics = {
            "episodes": n_done,
            "return_sum": jnp.where(traj["ep_done"], traj["ep_ret"], 0.0).sum(),
            "won": traj["won"].sum(),
            "pg_loss": aux[0].mean(),
            "vf_loss": aux[1].mean(),
            "entropy": aux[2].mean(),
        }
        return {**r, "params": params, "opt": opt, "key": key}, metrics

    def settle(runner):
        """``runner`` with the dtypes ``update`` returns: jaxmarl's reset leaves weak-typed fields
        that the step makes strong, and a mismatch would compile ``update`` a second time (minutes)."""
        out = jax.eval_shape(update, runner)[0]
        return jax.tree.map(lambda x, s: jnp.asarray(x, s.dtype).reshape(s.shape), runner, out)

    sizes = {"n_agents": N, "obs_dim": obs_dim, "state_dim": state_dim, "n_actions": n_actions}
    return (lambda key: settle(init(key))), update, _fresh_battles, settle, sizes


class SMAXPolicy:
    """A shipped MAPPO actor as a behaviour policy, in numpy: samples from its masked softmax.

    act(obs (B, N, obs_dim), state, avail (B, N, A), rng) -> actions (B, N) int64.
    """

    def __init__(self, params: dict[str, np.ndarray], n_agents: int, label: str, score: dict[str, Any]):
        self.params, self.n_agents, self.label, self.score = params, n_agents, label, score
        self.eye = np.eye(n_agents, dtype=np.float32)

    def act(self, obs, state, avail, rng):
        obs = np.asarray(obs, np.float32)
        ids = np.broadcast_to(self.eye, (*obs.shape[:-1], self.n_agents))
        x = np.concatenate([obs, ids], -1).reshape(-1, obs.shape[-1] + self.n_agents)
        logits = mlp_forward(self.params, x, "actor", 3).reshape(*obs.shape[:-1], -1)
        logits = np.where(np.asarray(avail, bool), logits, -np.inf)
        # Gumbel-max: a categorical draw per agent from the numpy generator.
        g = rng.gumbel(size=logits.shape)
        return np.argmax(logits + g, axis=-1).astype(np.int64)

    def on_episode_end(self, done):
        pass

    def describe(self):
        return {"kind": "mappo_shared_actor (sampled)", "checkpoint": self.label, **self.score}


def policy_from_entry(entry: ZooEntry, index: int, label: str) -> SMAXPolicy:
    ck = entry.card["checkpoints"][index]
    score = {"checkpoint_return": ck["return"], "checkpoint_win_rate": ck["win_rate"], "env_steps": ck["env_step"]}
    return SMAXPolicy(entry.params(index), entry.card["sizes"]["n_agents"], label, score)


def _numpy_tree(tree):
    import jax

    return jax.tree.map(np.asarray, jax.device_get(tree))


def _pickle(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def _export(state: dict[str, Any], args: BehaviourArgs, command: str, cfg: PPOConfig, sizes) -> Path:
    ck = state["checkpoints"]
    chosen = choose_checkpoints([c["return"] for c in ck], [c["env_step"] for c in ck])
    shipped = sorted({chosen["expert"], chosen["medium"], *chosen["replay"]})
    card = {
        "env": args.env,
        "seed": args.seed,
        "trainer": "mappo (shared actor on obs + agent id, critic on the world state; data.policies.ppo_smax)",
        "command": command,
        "budget": {
            "env_steps": state["env_steps"],
            "updates": state["updates"],
            "train_wall_s": round(state["wall_s"], 1),
        },
        "config": asdict(cfg),
        "sizes": sizes,
        "score": "mean episode return and win rate of the sampled policy over one update's rollout (n_envs battles)",
        "random": state["random"],
        "curve": state["curve"],
        "checkpoints": [{k: v for k, v in c.items() if k != "params"} for c in ck],
        **chosen,
        "shipped": shipped,
    }
    # Only the actor acts; the critic stays in the resume file.
    weights = {i: {k: v for k, v in ck[i]["params"].items() if k.startswith("actor.")} for i in shipped}
    return export_entry(args.env, args.seed, card, weights, Path(args.zoo_dir) if args.zoo_dir else None)


def train_and_export(args: BehaviourArgs, work: Path, command: str) -> int:
    import os

    os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}")
    import jax

    _, map_name = args.env.split(":", 1)
    cfg = PPOConfig()
    # Compiling the update takes minutes (SMAX's step is a large program): keep it across resumes.
    jax.config.update("jax_compilation_cache_dir", str(Path(args.work_dir).expanduser() / "xla_cache"))
    init, update, fresh, settle, sizes = make_update(map_name, cfg)
    per_update = cfg.n_envs * cfg.n_steps
    resume = work / "resume.pkl"
    if resume.exists():
        with open(resume, "rb") as f:
            state = pickle.load(f)
        if (
            state.get("trainer_version") != TRAINER_VERSION
            or state["config"] != asdict(cfg)
            or state["seed"] != args.seed
        ):
            raise ValueError(f"{resume} was written by another trainer version, config or seed; use a new --work-dir")
        if not args.export_only:
            battles = fresh(jax.random.PRNGKey(args.seed + 7919 * (state["updates"] + 1)))
            runner = settle({**state["runner"], **battles})
        print(f"resumed {args.env} at update {state['updates']} ({state['env_steps']} env steps)", flush=True)
    elif args.export_only:
        raise ValueError(f"{resume}: no run to export yet")
    else:
        runner = init(jax.random.PRNGKey(args.seed))
        state = {
            "trainer_version": TRAINER_VERSION,
            "config": asdict(cfg),
            "seed": args.seed,
            "updates": 0,
            "env_steps": 0,
            "wall_s": 0.0,
            "curve": [],
            "checkpoints": [],
            "random": None,
        }
    if state["random"] is None:
        state["random"] = _random_score(map_name, cfg, args.seed)
    n_updates = -(-args.steps // per_update)
    start = time.perf_counter()
    wall0 = state["wall_s"]
    show = args.progress and not args.export_only
    bar = progress_bar(total=n_updates, desc=f"MAPPO {args.env}", unit="update") if show else None
    if bar is not None:
        bar.update(min(state["updates"], n_updates))
    while not args.export_only and state["updates"] < n_updates:
        if args.minutes is not None and time.perf_counter() - start >= args.minutes * 60:
            # Out of time between checkpoints: keep the updates since the last one for the next call.
            state["runner"] = _numpy_tree({k: runner[k] for k in ("params", "opt", "key")})
            save_resume(state, resume, _pickle)
            break
        before = runner["params"]
        runner, m = update(runner)
        m = {k: float(v) for k, v in m.items()}
        state["updates"] += 1
        state["env_steps"] += per_update
        state["wall_s"] = wall0 + time.perf_counter() - start
        eps = max(m["episodes"], 1.0)
        point = {
            "env_step": state["env_steps"],
            "return": m["return_sum"] / eps,
            "win_rate": m["won"] / eps,
            "episodes": int(m["episodes"]),
            "entropy": m["entropy"],
        }
        state["curve"].append(point)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(ret=f"{point['return']:.2f}", win=f"{point['win_rate']:.2f}")
        if state["updates"] % cfg.checkpoint_every == 0 or state["updates"] == n_updates:
            # The parameters that produced this update's rollout, scored by it.
            state["checkpoints"].append(
                {
                    "env_step": state["env_steps"] - per_update,
                    "return": point["return"],
                    "win_rate": point["win_rate"],
                    "episodes": point["episodes"],
                    "update": state["updates"] - 1,
                    "params": _numpy_tree(before),
                }
            )
            state["runner"] = _numpy_tree({k: runner[k] for k in ("params", "opt", "key")})
            save_resume(state, resume, _pickle)
            _export(state, args, command, cfg, sizes)
    if bar is not None:
        bar.close()
    if not state["checkpoints"]:
        raise ValueError(f"{resume}: no checkpoint to export yet")
    path = _export(state, args, command, cfg, sizes)
    ck = state["checkpoints"]
    best = max(ck, key=lambda c: c["return"])
    print(
        f"{args.env}: {state['env_steps']} env steps, {state['updates']} updates, {state['wall_s'] / 60:.1f} min; "
        f"random return {state['random']['return']:.3f} (win {state['random']['win_rate']:.2f}), "
        f"best checkpoint return {best['return']:.3f} (win {best['win_rate']:.2f}); exported {path}",
        flush=True,
    )
    return 0


def _random_score(map_name: str, cfg: PPOConfig, seed: int, n_steps: int = 200) -> dict[str, float]:
    """Mean return and win rate of uniformly random available actions (the 0 of normalised scores)."""
    import jax
    import jax.numpy as jnp

    from ..envs.smax import battle_functions

    _, reset_one, step_one = battle_functions(map_name, cfg.time_limit)
    v_step = jax.jit(jax.vmap(step_one))
    key = jax.random.PRNGKey(seed + 1)
    st, obs, ws, avail = jax.jit(jax.vmap(reset_one))(jax.random.split(key, cfg.n_envs))
    ep_ret = np.zeros(cfg.n_envs)
    rets, wins = [], 0
    for _ in range(n_steps):
        key, k_a, k_e = jax.random.split(key, 3)
        action = jax.random.categorical(k_a, jnp.where(avail, 0.0, -jnp.inf), axis=-1).astype(jnp.int32)
        st, obs, ws, avail, rew, term, trunc, *_, won = v_step(jax.random.split(k_e, cfg.n_envs), st, action)
        ep_ret += np.asarray(rew)
        done = np.asarray(term | trunc)
        rets.extend(ep_ret[done].tolist())
        wins += int(np.asarray(won).sum())
        ep_ret[done] = 0.0
    n = max(len(rets), 1)
    return {"return": float(np.sum(rets) / n), "win_rate": wins / n, "episodes": len(rets)}
