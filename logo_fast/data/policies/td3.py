"""A compact online TD3 trainer for Multi-Agent MuJoCo behaviour policies (PyTorch, CPU).

No scripted controller exists for the MuJoCo robots, so the dataset qualities come from one
online training run, as in D4RL: a TD3 agent (Fujimoto et al. 2018) acts on the *joint*
action from the *global* state (a centralised behaviour policy; the dataset still records
each agent's local observation). During training it keeps

  - checkpoints of the actor, each scored by deterministic evaluation episodes;
  - every transition it collected (the replay), as whole episodes in the dataset schema.

From these the collector takes: expert = best checkpoint within the budget; medium = the
checkpoint whose return is closest to 40% of the way from random to expert (D4RL's "about a
third to a half of expert"); medium-replay = the replay up to the medium checkpoint.

The run is bounded by wall time (``train_minutes``) and by environment steps, whichever comes
first, so its length depends on the machine; the result (checkpoints + replay) is cached in
``cache_dir`` and every quality reuses it, which is what makes datasets reproducible. Returns
reached and the budget go into the dataset manifest.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...files import atomic_path
from ...progress import progress as progress_bar
from ..envs.registry import make_env
from ..io import load, save
from ..schema import OfflineDataset

TRAINER_VERSION = 1


@dataclass
class TD3Config:
    """TD3 trainer settings (defaults follow the TD3 paper, sized for a small CPU budget)."""

    train_minutes: float = 10.0
    """Wall-clock budget of the run, minutes."""
    max_env_steps: int = 1_000_000
    """Hard cap on environment steps."""
    start_steps: int = 5_000
    """Uniformly random actions before the actor takes over (fills the replay)."""
    eval_every: int = 5_000
    """Environment steps between checkpoint evaluations."""
    eval_episodes: int = 3
    """Deterministic episodes per evaluation."""
    batch_size: int = 256
    """Minibatch size per gradient step."""
    hidden: int = 256
    """Width of the two hidden layers of actor and critics."""
    lr: float = 3e-4
    """Adam learning rate (actor and critics)."""
    gamma: float = 0.99
    """Discount."""
    tau: float = 0.005
    """Target-network Polyak rate."""
    expl_noise: float = 0.1
    """Std of the Gaussian exploration noise (actions scaled to [-1, 1])."""
    policy_noise: float = 0.2
    """Std of the target-policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target-policy smoothing noise."""
    policy_delay: int = 2
    """Critic updates per actor update."""
    time_limit: int = 1000
    """Episode length limit during training and evaluation."""
    threads: int = 1
    """Torch CPU threads (1: the machine is shared)."""


def _mlp(inp: int, out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out)
    )


class JointActor(nn.Module):
    """state (B, state_dim) -> joint action (B, joint_dim) in [-1, 1] (scaled to bounds outside)."""

    def __init__(self, state_dim: int, joint_dim: int, hidden: int):
        super().__init__()
        self.net = _mlp(state_dim, joint_dim, hidden)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(state))


class TwinCritic(nn.Module):
    """(state, joint action) -> two Q estimates, each (B,)."""

    def __init__(self, state_dim: int, joint_dim: int, hidden: int):
        super().__init__()
        self.q1 = _mlp(state_dim + joint_dim, 1, hidden)
        self.q2 = _mlp(state_dim + joint_dim, 1, hidden)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([state, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class JointActionCodec:
    """Maps between the padded per-agent action array (B, N, act_dim) and the joint vector (B, joint_dim)."""

    def __init__(self, agent_act_dims: tuple[int, ...], act_dim: int, low: np.ndarray, high: np.ndarray):
        self.agent_act_dims = agent_act_dims
        self.act_dim = act_dim
        self.mask = np.arange(act_dim)[None, :] < np.asarray(agent_act_dims)[:, None]  # (N, act_dim)
        self.low = np.asarray(low, np.float32)[self.mask]  # (joint_dim,)
        self.high = np.asarray(high, np.float32)[self.mask]
        self.joint_dim = int(self.mask.sum())

    def to_agents(self, unit: np.ndarray) -> np.ndarray:
        """unit: (B, joint_dim) in [-1, 1] -> (B, N, act_dim) in the bounds, zero in padding."""
        scaled = self.low + (np.clip(unit, -1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)
        out = np.zeros((unit.shape[0], *self.mask.shape), np.float32)
        out[:, self.mask] = scaled
        return out

    def to_unit(self, actions: np.ndarray) -> np.ndarray:
        """(B, N, act_dim) in the bounds -> (B, joint_dim) in [-1, 1]."""
        joint = actions[:, self.mask]
        return (2.0 * (joint - self.low) / (self.high - self.low) - 1.0).astype(np.float32)


class TD3BehaviourPolicy:
    """A trained joint actor as a behaviour policy, with Gaussian action noise of std ``noise``.

    Acts from the global state: state (B, state_dim) -> actions (B, N, act_dim).
    """

    def __init__(self, actor: JointActor, codec: JointActionCodec, noise: float, label: str, eval_return: float):
        self.actor = actor.eval()
        self.codec = codec
        self.noise = noise
        self.label = label
        self.eval_return = eval_return

    @torch.no_grad()
    def act(self, obs, state, avail, rng):
        unit = self.actor(torch.as_tensor(state, dtype=torch.float32)).numpy()
        if self.noise > 0:
            unit = unit + rng.normal(0.0, self.noise, size=unit.shape)
        return self.codec.to_agents(unit)

    def on_episode_end(self, done):
        pass

    def describe(self):
        return {
            "kind": "td3_joint_actor",
            "checkpoint": self.label,
            "action_noise_std": self.noise,
            "checkpoint_eval_return": self.eval_return,
        }


@dataclass
class TrainResult:
    """What a training run leaves behind (also what the cache file holds)."""

    checkpoints: list[dict[str, Any]]
    """One {"env_step", "eval_return", "wall_s"} per checkpoint; the actors are in actor_states."""
    actor_states: list[dict[str, torch.Tensor]]
    """One actor state_dict per checkpoint."""
    random_return: float
    """Mean return of uniformly random actions (the 0 of normalised scores)."""
    replay: OfflineDataset
    """Every training transition as whole episodes (the unfinished last one dropped)."""
    replay_env_step: np.ndarray
    """(E,) environment step at which each replay episode ended."""
    env_steps: int
    """Environment steps of the run."""
    updates: int
    """Gradient updates of the run."""
    wall_s: float
    """Wall-clock seconds of the run."""
    config: dict[str, Any]
    """The TD3Config used, as a dict."""
    state_dim: int
    """Input size of the actor (the global state)."""
    joint_dim: int
    """Output size of the actor (the joint action)."""

    def candidates(self) -> list[int]:
        """Checkpoints taken after learning started (env_step > start_steps).

        Earlier ones hold a nearly untrained actor; on Ant and Walker2d such an actor stands
        still and collects the healthy bonus for 1000 steps, which can out-score a walking
        policy of a short run, so it must not become "expert".
        """
        start = self.config.get("start_steps", 0)
        trained = [i for i, c in enumerate(self.checkpoints) if c["env_step"] > start]
        return trained or list(range(len(self.checkpoints)))

    def best_index(self) -> int:
        """Expert: the trained checkpoint with the highest evaluation return."""
        cand = self.candidates()
        return cand[int(np.argmax([self.checkpoints[i]["eval_return"] for i in cand]))]

    def medium_index(self, target: float = 0.4) -> int:
        """Trained checkpoint whose normalised return (random 0, expert 1) is closest to ``target``."""
        best = self.checkpoints[self.best_index()]["eval_return"]
        span = max(best - self.random_return, 1e-8)
        cand = self.candidates()
        scores = [(self.checkpoints[i]["eval_return"] - self.random_return) / span for i in cand]
        return cand[int(np.argmin([abs(s - target) for s in scores]))]

    def summary(self) -> dict[str, Any]:
        b, m = self.best_index(), self.medium_index()
        return {
            "trainer": f"td3 v{TRAINER_VERSION}",
            "train_minutes_budget": self.config["train_minutes"],
            "train_wall_s": round(self.wall_s, 1),
            "env_steps": self.env_steps,
            "gradient_updates": self.updates,
            "random_return": self.random_return,
            "expert_checkpoint": self.checkpoints[b],
            "medium_checkpoint": self.checkpoints[m],
            "checkpoint_returns": [(c["env_step"], round(c["eval_return"], 2)) for c in self.checkpoints],
        }


def _evaluate(env, policy_fn, episodes: int, seed: int) -> float:
    """Mean undiscounted return of ``episodes`` episodes on a B=1 adapter."""
    obs, state, avail = env.reset(seed)
    returns, ret = [], 0.0
    while len(returns) < episodes:
        obs, state, avail, r, term, trunc, info = env.step(policy_fn(obs, state))
        ret += float(r[0])
        if info["done"][0]:
            returns.append(ret)
            ret = 0.0
    return float(np.mean(returns))


class _EpisodeRecorder:
    """Accumulates the B=1 training stream into whole schema episodes."""

    def __init__(self):
        self.cols: dict[str, list] = {k: [] for k in ("obs", "state", "actions", "rewards", "terminals", "truncations")}
        self.finals: dict[str, list] = {"final_obs": [], "final_state": []}
        self.current: dict[str, list] = {k: [] for k in self.cols}
        self.end_steps: list[int] = []

    def add(self, obs, state, action, reward, term, trunc, info, env_step: int) -> None:
        # Copies, not views: a view would keep the whole per-step batch array (and what the
        # actor's torch.as_tensor attached to it) alive for the entire run.
        for k, v in zip(self.current, (obs, state, action, reward, term, trunc), strict=True):
            self.current[k].append(np.array(v))
        if info["done"][0]:
            for k in self.cols:
                self.cols[k].extend(self.current[k])
                self.current[k] = []
            self.finals["final_obs"].append(np.array(info["final_obs"][0]))
            self.finals["final_state"].append(np.array(info["final_state"][0]))
            self.end_steps.append(env_step)

    def dataset(self, spec, low, high, metadata) -> tuple[OfflineDataset, np.ndarray]:
        c = self.cols
        ds = OfflineDataset(
            spec=spec,
            obs=np.asarray(c["obs"], np.float32),
            state=np.asarray(c["state"], np.float32),
            actions=np.asarray(c["actions"], np.float32),
            rewards=np.asarray(c["rewards"], np.float32),
            terminals=np.asarray(c["terminals"], bool),
            truncations=np.asarray(c["truncations"], bool),
            action_low=low,
            action_high=high,
            final_obs=np.asarray(self.finals["final_obs"], np.float32),
            final_state=np.asarray(self.finals["final_state"], np.float32),
            metadata=metadata,
        )
        return ds, np.asarray(self.end_steps, np.int64)


def train_td3(env_factory, cfg: TD3Config, seed: int, progress: bool = True) -> TrainResult:
    """Train TD3 on the joint action of a B=1 MaMuJoCo adapter made by ``env_factory(time_limit)``.

    Stops at ``cfg.train_minutes`` wall time or ``cfg.max_env_steps`` steps. Deterministic in
    its random choices for a seed (torch and numpy generators seeded), though the wall-clock
    budget decides where it stops.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = env_factory(cfg.time_limit)
    eval_env = env_factory(cfg.time_limit)
    if env.batch_size != 1:
        raise ValueError("train_td3 needs a B=1 adapter")
    spec = env.spec
    codec = JointActionCodec(spec.agent_act_dims, spec.act_dim, env.action_low, env.action_high)
    S, A = spec.state_dim, codec.joint_dim
    actor = JointActor(S, A, cfg.hidden)
    critic = TwinCritic(S, A, cfg.hidden)
    actor_t, critic_t = copy.deepcopy(actor), copy.deepcopy(critic)
    opt_a = torch.optim.Adam(actor.parameters(), lr=cfg.lr)
    opt_c = torch.optim.Adam(critic.parameters(), lr=cfg.lr)

    cap = cfg.max_env_steps
    buf_s = np.zeros((cap, S), np.float32)
    buf_a = np.zeros((cap, A), np.float32)
    buf_r = np.zeros(cap, np.float32)
    buf_s2 = np.zeros((cap, S), np.float32)
    buf_nd = np.zeros(cap, np.float32)  # 1 - terminal: truncation still bootstraps
    recorder = _EpisodeRecorder()

    @torch.no_grad()
    def greedy(obs, state):
        return codec.to_agents(actor(torch.as_tensor(state)).numpy())

    random_return = _evaluate(
        eval_env, lambda o, s: codec.to_agents(rng.uniform(-1, 1, (1, A))), cfg.eval_episodes, seed + 1
    )
    checkpoints: list[dict[str, Any]] = []
    actor_states: list[dict[str, torch.Tensor]] = []
    start = time.perf_counter()
    budget_s = cfg.train_minutes * 60.0
    obs, state, _ = env.reset(seed)
    updates = 0
    t = 0
    bar = progress_bar(total=int(budget_s), desc=f"TD3 {spec.env}", unit="s") if progress else None
    last_tick = start
    while t < cap:
        if t < cfg.start_steps:
            unit = rng.uniform(-1, 1, (1, A)).astype(np.float32)
        else:
            with torch.no_grad():
                unit = actor(torch.as_tensor(state)).numpy()
            unit = np.clip(unit + rng.normal(0, cfg.expl_noise, unit.shape), -1, 1).astype(np.float32)
        actions = codec.to_agents(unit)
        nobs, nstate, _, r, term, trunc, info = env.step(actions)
        done = bool(info["done"][0])
        buf_s[t], buf_a[t], buf_r[t] = state[0], unit[0], r[0]
        buf_s2[t] = info["final_state"][0] if done else nstate[0]
        buf_nd[t] = 0.0 if term[0] else 1.0
        t += 1
        recorder.add(obs[0], state[0], actions[0], r[0], bool(term[0]), bool(trunc[0]), info, t)
        obs, state = nobs, nstate

        if t >= cfg.start_steps:
            idx = torch.as_tensor(rng.integers(0, t, cfg.batch_size))
            s, a = torch.as_tensor(buf_s)[idx], torch.as_tensor(buf_a)[idx]
            rr, s2, nd = torch.as_tensor(buf_r)[idx], torch.as_tensor(buf_s2)[idx], torch.as_tensor(buf_nd)[idx]
            with torch.no_grad():
                noise = (torch.randn_like(a) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
                a2 = (actor_t(s2) + noise).clamp(-1, 1)
                q1t, q2t = critic_t(s2, a2)
                target = rr + cfg.gamma * nd * torch.min(q1t, q2t)
            q1, q2 = critic(s, a)
            loss_c = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_c.step()
            updates += 1
            if updates % cfg.policy_delay == 0:
                loss_a = -critic.q1(torch.cat([s, actor(s)], -1)).mean()
                opt_a.zero_grad(set_to_none=True)
                loss_a.backward()
                opt_a.step()
                with torch.no_grad():
                    for net, tgt in ((actor, actor_t), (critic, critic_t)):
                        for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                            pt.lerp_(p, cfg.tau)

        now = time.perf_counter()
        out_of_time = now - start >= budget_s
        if t % cfg.eval_every == 0 or out_of_time or t == cap:
            ret = _evaluate(eval_env, greedy, cfg.eval_episodes, seed + 1000 + len(checkpoints))
            checkpoints.append({"env_step": t, "eval_return": ret, "wall_s": round(now - start, 1)})
            actor_states.append({k: v.detach().clone() for k, v in actor.state_dict().items()})
            if bar is not None:
                bar.set_postfix(step=t, ret=f"{ret:.1f}")
        if bar is not None and now - last_tick >= 1.0:
            bar.update(int(now - last_tick))
            last_tick = now
        if out_of_time:
            break
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - start
    replay, end_steps = recorder.dataset(
        spec, env.action_low, env.action_high, {"env": spec.env, "quality": "td3-replay", "seed": seed}
    )
    env.close()
    eval_env.close()
    return TrainResult(
        checkpoints=checkpoints,
        actor_states=actor_states,
        random_return=random_return,
        replay=replay,
        replay_env_step=end_steps,
        env_steps=t,
        updates=updates,
        wall_s=wall,
        config=asdict(cfg),
        state_dim=S,
        joint_dim=A,
    )


# ---- cache -----------------------------------------------------------------------------------
def cache_paths(cache_dir: Path, env_id: str, seed: int, cfg: TD3Config) -> tuple[Path, Path]:
    """(checkpoint file, replay file) for one run; the name carries what changes the result."""
    tag = f"{env_id.replace(':', '_')}_seed{seed}_td3v{TRAINER_VERSION}_{cfg.train_minutes:g}min_tl{cfg.time_limit}"
    return cache_dir / f"{tag}.pt", cache_dir / f"{tag}_replay.h5"


def save_result(result: TrainResult, ckpt_path: Path, replay_path: Path) -> None:
    """Write checkpoints (torch) and replay (HDF5) atomically."""
    save(result.replay, replay_path)
    payload = {
        "checkpoints": result.checkpoints,
        "actor_states": result.actor_states,
        "random_return": result.random_return,
        "replay_env_step": result.replay_env_step,
        "env_steps": result.env_steps,
        "updates": result.updates,
        "wall_s": result.wall_s,
        "config": result.config,
        "state_dim": result.state_dim,
        "joint_dim": result.joint_dim,
        "trainer_version": TRAINER_VERSION,
    }
    with atomic_path(ckpt_path, ".pt") as tmp:
        torch.save(payload, tmp)


def load_result(ckpt_path: Path, replay_path: Path) -> TrainResult:
    payload = torch.load(ckpt_path, weights_only=False)
    payload.pop("trainer_version", None)
    return TrainResult(replay=load(replay_path), **payload)


def make_actor(result: TrainResult, index: int) -> JointActor:
    actor = JointActor(result.state_dim, result.joint_dim, result.config["hidden"])
    actor.load_state_dict(result.actor_states[index])
    return actor


def describe_result(result: TrainResult) -> str:
    return json.dumps(result.summary(), default=float)


def train_or_load(env_id: str, seed: int, cfg: TD3Config, cache_dir: str | Path, progress: bool = True) -> TrainResult:
    """The cached run for (env, seed, budget, time limit) if there is one, else train and cache it."""
    import fcntl  # POSIX only; needed just for the cache lock

    ckpt, replay = cache_paths(Path(cache_dir), env_id, seed, cfg)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    # A lock file so that two collectors needing the same run train it once: the second waits.
    with open(ckpt.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ckpt.exists() and replay.exists():
            return load_result(ckpt, replay)
        result = train_td3(lambda tl: make_env(env_id, batch_size=1, time_limit=tl), cfg, seed, progress)
        save_result(result, ckpt, replay)
        return result
