"""SMAX behaviour policies: MAPPO with parameter sharing on jaxmarl's vmapped SMAX (JAX, CPU).

The allies share one actor (local observation + agent one-hot -> logits over actions, the
unavailable ones masked out) and one centralised critic on the global world state (the team
reward is shared, so one value per battle). The actor is an MLP (``PPOConfig.actor == "mlp"``,
the default) or recurrent (``"gru"``: Dense -> GRU cell -> Dense -> logits, JaxMARL's MAPPO-RNN
and the MAPPO paper's choice for SMAC). The GRU's hidden state is carried per battle and agent
through the rollout and zeroed after a step whose battle ended; the loss rescans each minibatch
of whole battles from the hidden state stored at the rollout's start, with the same resets, so
its log-probs are the rollout's. A training update is one jitted call: a
``lax.scan`` over ``n_steps`` steps of ``n_envs`` battles, GAE, then ``epochs`` x ``minibatches``
clipped-PPO steps with Adam (optax). Battles that end are reset inside the step; a time-limit
truncation is treated as an end without bootstrap, as most SMAX PPO implementations do.

Checkpoints are the actor's parameters *before* an update, scored by that update's own
rollout (the stochastic policy, which is what a dataset records): mean episode return and
win rate over the battles finished in it. The run is resumable (``resume.pkl`` in the work
directory, written atomically every checkpoint); a resumed run starts fresh battles.

Parameters are stored torch-style (``actor.<2k>.weight`` of shape (out, in); the GRU cell as
``torch.nn.GRUCell``'s ``actor.gru.weight_ih`` etc.) so the shipped policy runs in numpy
(``SMAXPolicy``) without JAX.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ...progress import progress as progress_bar
from .zoo import ZooEntry, choose_checkpoints, export_entry, mlp_forward, save_resume

if TYPE_CHECKING:  # the CLI module imports this one late; no import circle
    from .train import BehaviourArgs

TRAINER_VERSION = 1
ACTORS = ("mlp", "gru")


@dataclass(frozen=True)
class PPOConfig:
    """MAPPO settings (close to JaxMARL's SMAX baselines; the actor an MLP by default, or their GRU)."""

    n_envs: int = 64
    """Parallel battles per rollout."""
    n_steps: int = 128
    """Steps per battle per rollout (an update sees n_envs * n_steps steps)."""
    hidden: int = 128
    """Width of the two hidden layers of actor and critic (and the GRU actor's hidden state)."""
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
    actor: str = "mlp"
    """Actor network: "mlp" (obs + id -> 2 ReLU layers -> logits) or "gru" (Dense -> GRU cell -> Dense -> logits)."""
    anneal_updates: int = 0
    """Decay the learning rate linearly to 0 over so many updates (JaxMARL's ANNEAL_LR); 0: a constant rate."""


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


def _dense(params, x, name: str):
    """x (..., in) -> (..., out) with torch-style ``<name>.weight`` (out, in) and ``<name>.bias`` (out,)."""
    return x @ params[f"{name}.weight"].T + params[f"{name}.bias"]


def gru_cell(params, x, h, prefix: str = "actor.gru", xp=np):
    """torch.nn.GRUCell's step: x (..., in), h (..., H) -> h' (..., H); numpy, or JAX with ``xp=jax.numpy``.

    Parameters as torch names them: ``<prefix>.weight_ih`` (3H, in), ``weight_hh`` (3H, H),
    ``bias_ih`` and ``bias_hh`` (3H,), the gates stacked in the order r, z, n.
    """
    gi = x @ params[f"{prefix}.weight_ih"].T + params[f"{prefix}.bias_ih"]
    gh = h @ params[f"{prefix}.weight_hh"].T + params[f"{prefix}.bias_hh"]
    H = h.shape[-1]
    # sigmoid(a) = (1 + tanh(a / 2)) / 2: the same expression in numpy and JAX, and no overflow in exp.
    r = 0.5 * (1.0 + xp.tanh(0.5 * (gi[..., :H] + gh[..., :H])))
    z = 0.5 * (1.0 + xp.tanh(0.5 * (gi[..., H : 2 * H] + gh[..., H : 2 * H])))
    n = xp.tanh(gi[..., 2 * H :] + r * gh[..., 2 * H :])
    return (1.0 - z) * n + z * h


def gru_actor_step(params, x, h, xp=np):
    """The GRU actor: x (..., obs_dim + N) obs + agent one-hot, h (..., H) -> (logits (..., A) unmasked, h' (..., H)).

    Dense(H) ReLU (``actor.0``) -> GRU cell (``actor.gru``) -> Dense(H) ReLU (``actor.2``) -> Dense(A) (``actor.4``).
    """
    h = gru_cell(params, xp.maximum(_dense(params, x, "actor.0"), 0.0), h, "actor.gru", xp)
    return _dense(params, xp.maximum(_dense(params, h, "actor.2"), 0.0), "actor.4"), h


def gru_actor_rollout(params, h0, x, avail, done):
    """JAX: the GRU actor's masked logits (T, B, N, A) over T steps from h0 (B, N, H) (B battles of N agents).

    x (T, B, N, obs_dim + N) actor inputs, avail (T, B, N, A) bool, done (T, B) bool: the hidden state
    is zeroed after a step whose battle ended, before the next step (the rollout's rule, so the loss
    recomputes the rollout's log-probs).
    """
    import jax
    import jax.numpy as jnp

    def step(h, inp):
        x_t, avail_t, done_t = inp
        logits, h = gru_actor_step(params, x_t, h, jnp)
        return jnp.where(done_t[..., None, None], 0.0, h), jnp.where(avail_t, logits, -1e9)

    return jax.lax.scan(step, h0, (x, avail, done))[1]


def _init_gru_actor(key, in_dim: int, hidden: int, n_actions: int) -> dict[str, Any]:
    """GRU actor parameters (see ``gru_actor_step``): orthogonal Dense layers as ``_init_mlp`` (0.01 on the logits),
    each GRU gate's input and recurrent matrix orthogonal (gain 1), zero biases."""
    import jax
    import jax.numpy as jnp

    orth = jax.nn.initializers.orthogonal
    k0, k2, k4, k_ih, k_hh = jax.random.split(key, 5)
    H = hidden
    gates = lambda k, cols: jnp.concatenate([orth(1.0)(kg, (H, cols), jnp.float32) for kg in jax.random.split(k, 3)])
    return {
        "actor.0.weight": orth(np.sqrt(2.0))(k0, (H, in_dim), jnp.float32),
        "actor.0.bias": jnp.zeros(H, jnp.float32),
        "actor.gru.weight_ih": gates(k_ih, H),
        "actor.gru.weight_hh": gates(k_hh, H),
        "actor.gru.bias_ih": jnp.zeros(3 * H, jnp.float32),
        "actor.gru.bias_hh": jnp.zeros(3 * H, jnp.float32),
        "actor.2.weight": orth(np.sqrt(2.0))(k2, (H, H), jnp.float32),
        "actor.2.bias": jnp.zeros(H, jnp.float32),
        "actor.4.weight": orth(0.01)(k4, (n_actions, H), jnp.float32),
        "actor.4.bias": jnp.zeros(n_actions, jnp.float32),
    }


class MAPPOFunctions(NamedTuple):
    """One map's MAPPO update in pieces, pure and unjitted (``make_update`` jits ``learn(runner, *rollout(runner))``).

    E battles of N agents, T steps, M minibatches, H hidden units, A actions.
    """

    init: Callable
    """init(key) -> runner: params, Adam state, fresh battles (and the GRU's zero hidden state "h" (E, N, H)), key."""
    rollout: Callable
    """rollout(runner) -> (runner's battles after T steps, trajectory of (T, E, ...) arrays)."""
    learn: Callable
    """learn(runner, battles, trajectory) -> (next runner, metrics): GAE and the PPO epochs."""
    fresh: Callable
    """fresh(key) -> new battles (and zero hidden states), to put into a runner."""
    split: Callable
    """split(data, h0, perm) -> minibatches of whole battles: (T, E, ...) -> (M, T, E/M, ...), h0 (E, N, H) ->
    "h0" (M, E/M, N, H) (GRU only; None for the MLP)."""
    logp: Callable
    """logp(params, mb) -> (log-probs (T, B, N) of mb["action"], log-softmax (T, B, N, A)), the loss's way."""
    sizes: dict[str, int]
    """n_agents, obs_dim, state_dim, n_actions."""


def mappo_functions(map_name: str, cfg: PPOConfig) -> MAPPOFunctions:
    """The pieces of one map's MAPPO update (see ``MAPPOFunctions``); ``make_update`` assembles them."""
    import jax
    import jax.numpy as jnp
    import optax

    from ..envs.smax import battle_functions

    if cfg.actor not in ACTORS:
        raise ValueError(f"PPOConfig.actor must be one of {ACTORS}, got {cfg.actor!r}")
    if cfg.anneal_updates < 0:
        raise ValueError(f"PPOConfig.anneal_updates must be >= 0, got {cfg.anneal_updates}")
    gru = cfg.actor == "gru"
    env, reset_one, step_one = battle_functions(map_name, cfg.time_limit)
    N = env.num_allies
    a0 = env.agents[0]
    obs_dim = int(env.observation_space(a0).shape[0])
    n_actions = int(env.action_space(a0).n)
    _, _, ws0, _ = reset_one(jax.random.PRNGKey(0))
    state_dim = int(ws0.shape[0])
    E, T = cfg.n_envs, cfg.n_steps
    eye = jnp.eye(N, dtype=jnp.float32)
    # Adam steps once per minibatch: the schedule counts epochs * minibatches steps per update.
    lr = (
        optax.linear_schedule(cfg.lr, 0.0, cfg.anneal_updates * cfg.epochs * cfg.minibatches)
        if cfg.anneal_updates
        else cfg.lr
    )
    tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(lr, eps=1e-5))
    v_reset, v_step = jax.vmap(reset_one), jax.vmap(step_one)

    def actor_input(obs):
        """obs (..., N, obs_dim) -> obs + agent one-hot (..., N, obs_dim + N)."""
        ids = jnp.broadcast_to(eye, (*obs.shape[:-1], N))
        return jnp.concatenate([obs, ids], -1)

    def actor_logits(params, obs, avail):
        """MLP actor: obs (..., N, obs_dim), avail (..., N, A) -> masked logits (..., N, A)."""
        logits = _mlp(params, actor_input(obs), "actor")
        return jnp.where(avail, logits, -1e9)

    def value(params, ws):
        """ws (..., state_dim) -> (...,) the critic's value of the battle."""
        return _mlp(params, ws, "critic")[..., 0]

    def init(key):
        """PRNG key -> runner with fresh parameters, Adam state and battles."""
        k_a, k_c, k_env, key = jax.random.split(key, 4)
        if gru:
            actor = _init_gru_actor(k_a, obs_dim + N, cfg.hidden, n_actions)
        else:
            actor = _init_mlp(k_a, [obs_dim + N, cfg.hidden, cfg.hidden, n_actions], "actor", 0.01)
        params = {**actor, **_init_mlp(k_c, [state_dim, cfg.hidden, cfg.hidden, 1], "critic", 1.0)}
        return {"params": params, "opt": tx.init(params), **_fresh_battles(k_env), "key": key}

    def _fresh_battles(key):
        """PRNG key -> E new battles: env state, obs (E, N, obs_dim), ws (E, state_dim), avail (E, N, A), returns."""
        st, obs, ws, avail = v_reset(jax.random.split(key, E))
        battles = {"env": st, "obs": obs, "ws": ws, "avail": avail, "ep_ret": jnp.zeros(E)}
        if gru:  # new battles start from the zero hidden state
            battles["h"] = jnp.zeros((E, N, cfg.hidden), jnp.float32)
        return battles

    def rollout_step(carry, _):
        params, r = carry
        key, k_act, k_env = jax.random.split(r["key"], 3)
        if gru:
            logits, h = gru_actor_step(params, actor_input(r["obs"]), r["h"], jnp)
            logits = jnp.where(r["avail"], logits, -1e9)
        else:
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
        if gru:  # the battle reset itself inside the step: its next step starts from the zero state
            r["h"] = jnp.where(done[:, None, None], 0.0, h)
        return (params, r), tr

    def rollout(runner):
        """runner -> (its battles (and hidden states) after T steps, trajectory dict of (T, E, ...) arrays)."""
        params = runner["params"]
        (_, r), traj = jax.lax.scan(
            rollout_step, (params, {k: v for k, v in runner.items() if k not in ("params", "opt")}), None, T
        )
        return r, traj

    def action_logp(params, mb):
        """mb: (T, B, ...) arrays of B whole battles (GRU: with "done" and the start state "h0" (B, N, H))
        -> (log-probs (T, B, N) of mb["action"], log-softmax (T, B, N, A))."""
        if gru:
            logits = gru_actor_rollout(params, mb["h0"], actor_input(mb["obs"]), mb["avail"], mb["done"])
        else:
            logits = actor_logits(params, mb["obs"], mb["avail"])
        logp_all = jax.nn.log_softmax(logits)
        return jnp.take_along_axis(logp_all, mb["action"][..., None], -1)[..., 0], logp_all

    def loss_fn(params, mb):
        logp, logp_all = action_logp(params, mb)
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

    def split(data, h0, perm):
        """data (T, E, ...), h0 (E, N, H) or None, perm (E,) -> minibatches (M, T, E/M, ...) (+ "h0" (M, E/M, N, H))."""
        # (T, E, ...) -> minibatches of whole battles: (M, T, E/M, ...)
        mbs = jax.tree.map(
            lambda x: jnp.swapaxes(x[:, perm].reshape(T, cfg.minibatches, -1, *x.shape[2:]), 0, 1), data
        )
        if gru:  # each minibatch's battles with their hidden states at the rollout's start
            mbs["h0"] = h0[perm].reshape(cfg.minibatches, -1, *h0.shape[1:])
        return mbs

    def learn(runner, r, traj):
        """runner (at the rollout's start), r, traj = rollout(runner) -> (next runner, scalar metrics)."""
        params = runner["params"]
        last_v = value(params, r["ws"])

        def gae(carry, tr):
            adv_next, v_next = carry
            nd = 1.0 - tr["done"]
            delta = tr["reward"] + cfg.gamma * v_next * nd - tr["value"]
            adv = delta + cfg.gamma * cfg.gae_lambda * nd * adv_next
            return (adv, tr["value"]), adv

        _, adv = jax.lax.scan(gae, (jnp.zeros(E), last_v), traj, reverse=True)
        data = {k: traj[k] for k in ("obs", "ws", "avail", "action", "logp", "value")}
        if gru:
            data["done"] = traj["done"]
        data["ret"] = adv + traj["value"]
        data["adv"] = (adv - adv.mean()) / (adv.std() + 1e-8)
        h0 = runner["h"] if gru else None  # the hidden state the rollout started from

        def epoch(carry, key):
            params, opt = carry
            perm = jax.random.permutation(key, E)
            mbs = split(data, h0, perm)

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

    sizes = {"n_agents": N, "obs_dim": obs_dim, "state_dim": state_dim, "n_actions": n_actions}
    return MAPPOFunctions(init, rollout, learn, _fresh_battles, split, action_logp, sizes)


def make_update(map_name: str, cfg: PPOConfig):
    """(init(key) -> runner, jitted update(runner) -> (runner, metrics), fresh battles, settle, sizes) for one map."""
    import jax
    import jax.numpy as jnp

    f = mappo_functions(map_name, cfg)

    @jax.jit
    def update(runner):
        return f.learn(runner, *f.rollout(runner))

    def settle(runner):
        """``runner`` with the dtypes ``update`` returns: jaxmarl's reset leaves weak-typed fields
        that the step makes strong, and a mismatch would compile ``update`` a second time (minutes)."""
        out = jax.eval_shape(update, runner)[0]
        return jax.tree.map(lambda x, s: jnp.asarray(x, s.dtype).reshape(s.shape), runner, out)

    return (lambda key: settle(f.init(key))), update, f.fresh, settle, f.sizes


class SMAXPolicy:
    """A shipped MAPPO actor as a behaviour policy, in numpy: samples from its masked softmax.

    act(obs (B, N, obs_dim), state, avail (B, N, A), rng) -> actions (B, N) int64.
    actor "gru": the policy keeps the GRU's hidden state (B, N, H), made at the first ``act`` (zeros)
    and advanced by every one; ``on_episode_end(done (B,))`` zeroes the rows whose battle ended, so
    the next step of those rows starts from the zero state, as in training.
    """

    def __init__(
        self, params: dict[str, np.ndarray], n_agents: int, label: str, score: dict[str, Any], actor: str = "mlp"
    ):
        if actor not in ACTORS:
            raise ValueError(f"SMAXPolicy: actor must be one of {ACTORS}, got {actor!r}")
        self.params, self.n_agents, self.label, self.score, self.actor = params, n_agents, label, score, actor
        self.eye = np.eye(n_agents, dtype=np.float32)
        self.h: np.ndarray | None = None

    def logits(self, obs, avail):
        """obs (B, N, obs_dim), avail (B, N, A) -> logits (B, N, A), -inf where unavailable (GRU: one step)."""
        obs = np.asarray(obs, np.float32)
        ids = np.broadcast_to(self.eye, (*obs.shape[:-1], self.n_agents))
        if self.actor == "gru":
            if self.h is None:
                self.h = np.zeros((*obs.shape[:-1], self.params["actor.gru.weight_hh"].shape[1]), np.float32)
            elif self.h.shape[:-1] != obs.shape[:-1]:
                raise ValueError(f"SMAXPolicy: obs batch {obs.shape[:-1]}, the hidden state is {self.h.shape[:-1]}")
            logits, self.h = gru_actor_step(self.params, np.concatenate([obs, ids], -1), self.h)
        else:
            x = np.concatenate([obs, ids], -1).reshape(-1, obs.shape[-1] + self.n_agents)
            logits = mlp_forward(self.params, x, "actor", 3).reshape(*obs.shape[:-1], -1)
        return np.where(np.asarray(avail, bool), logits, -np.inf)

    def act(self, obs, state, avail, rng):
        logits = self.logits(obs, avail)
        # Gumbel-max: a categorical draw per agent from the numpy generator.
        g = rng.gumbel(size=logits.shape)
        return np.argmax(logits + g, axis=-1).astype(np.int64)

    def on_episode_end(self, done):
        if self.h is not None:
            self.h = np.where(np.asarray(done, bool).reshape(-1, 1, 1), 0.0, self.h).astype(np.float32)

    def describe(self):
        kind = "mappo_shared_actor (sampled)" if self.actor == "mlp" else "mappo_shared_gru_actor (sampled)"
        return {"kind": kind, "actor": self.actor, "checkpoint": self.label, **self.score}


def policy_from_entry(entry: ZooEntry, index: int, label: str) -> SMAXPolicy:
    """The zoo entry's checkpoint ``index`` as a numpy policy; a card without config["actor"] is an MLP's."""
    ck = entry.card["checkpoints"][index]
    score = {"checkpoint_return": ck["return"], "checkpoint_win_rate": ck["win_rate"], "env_steps": ck["env_step"]}
    actor = entry.card.get("config", {}).get("actor", "mlp")
    return SMAXPolicy(entry.params(index), entry.card["sizes"]["n_agents"], label, score, actor)


def ppo_config(args: BehaviourArgs) -> PPOConfig:
    """PPOConfig with the run's actor, its MAPPO overrides and, for --anneal-lr, the schedule over its budget."""
    cfg = replace(PPOConfig(), actor=args.actor)
    cfg = replace(cfg, **{k: v for k in args.PPO_FLAGS if (v := getattr(args, k)) is not None})
    if args.anneal_lr:
        cfg = replace(cfg, anneal_updates=-(-args.steps // (cfg.n_envs * cfg.n_steps)))
    return cfg


def same_config(saved: dict[str, Any], cfg: PPOConfig) -> bool:
    """Whether a resume file's config is ``cfg``; files from before ``actor`` / ``anneal_updates`` existed were
    MLP runs at a constant learning rate."""
    return {"actor": "mlp", "anneal_updates": 0, **saved} == asdict(cfg)


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
        "trainer": f"mappo (shared {'GRU ' if cfg.actor == 'gru' else ''}actor on obs + agent id, critic on the world "
        "state; data.policies.ppo_smax)",
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
    cfg = ppo_config(args)
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
            or not same_config(state["config"], cfg)
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
