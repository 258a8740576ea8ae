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
    replay: OfflineDataset | None
    """Every training transition as whole episodes (the unfinished last one dropped); None when not recorded."""
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


class TD3Trainer:
    """TD3 on the joint action of a B=1 MaMuJoCo adapter, resumable.

    ``run(until_step, deadline_s)`` advances the run; ``state_dict()`` / ``load_state_dict()``
    hold everything needed to go on later in another process (networks, optimisers, replay
    buffer, generator states, checkpoints). A resumed run starts a fresh episode (a simulator's
    mid-episode state is not saved), so it is deterministic for a seed and a sequence of stop
    points, not across different stop points.
    """

    def __init__(self, env_factory, cfg: TD3Config, seed: int, record: bool = True):
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(seed)  # network initialisation
        self.cfg, self.seed = cfg, seed
        self.rng = np.random.default_rng(seed)
        # The target-smoothing noise has a generator of its own (the global one is anyone's), saved on resume.
        self.gen = torch.Generator().manual_seed(seed + 17)
        self.env = env_factory(cfg.time_limit)
        self.eval_env = env_factory(cfg.time_limit)
        if self.env.batch_size != 1:
            raise ValueError("TD3Trainer needs a B=1 adapter")
        spec = self.env.spec
        self.codec = JointActionCodec(spec.agent_act_dims, spec.act_dim, self.env.action_low, self.env.action_high)
        S, A = spec.state_dim, self.codec.joint_dim
        self.S, self.A = S, A
        self.actor = JointActor(S, A, cfg.hidden)
        self.critic = TwinCritic(S, A, cfg.hidden)
        self.actor_t, self.critic_t = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.opt_a = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.opt_c = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        cap = cfg.max_env_steps
        self.buf_s = np.zeros((cap, S), np.float32)
        self.buf_a = np.zeros((cap, A), np.float32)
        self.buf_r = np.zeros(cap, np.float32)
        self.buf_s2 = np.zeros((cap, S), np.float32)
        self.buf_nd = np.zeros(cap, np.float32)  # 1 - terminal: truncation still bootstraps
        self.recorder = _EpisodeRecorder() if record else None
        self.random_return = _evaluate(
            self.eval_env,
            lambda o, s: self.codec.to_agents(self.rng.uniform(-1, 1, (1, A))),
            cfg.eval_episodes,
            seed + 1,
        )
        self.checkpoints: list[dict[str, Any]] = []
        self.actor_states: list[dict[str, torch.Tensor]] = []
        self.t = 0
        self.updates = 0
        self.wall_s = 0.0
        self.episodes_started = 0
        self._obs = self._state = None

    @property
    def done(self) -> bool:
        return self.t >= self.cfg.max_env_steps

    @torch.no_grad()
    def greedy(self, obs, state):
        return self.codec.to_agents(self.actor(torch.as_tensor(state)).numpy())

    def _update(self) -> None:
        cfg, rng = self.cfg, self.rng
        idx = torch.as_tensor(rng.integers(0, self.t, cfg.batch_size))
        s, a = torch.as_tensor(self.buf_s)[idx], torch.as_tensor(self.buf_a)[idx]
        rr, s2 = torch.as_tensor(self.buf_r)[idx], torch.as_tensor(self.buf_s2)[idx]
        nd = torch.as_tensor(self.buf_nd)[idx]
        with torch.no_grad():
            noise = torch.randn(a.shape, generator=self.gen) * cfg.policy_noise
            a2 = (self.actor_t(s2) + noise.clamp(-cfg.noise_clip, cfg.noise_clip)).clamp(-1, 1)
            q1t, q2t = self.critic_t(s2, a2)
            target = rr + cfg.gamma * nd * torch.min(q1t, q2t)
        q1, q2 = self.critic(s, a)
        loss_c = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
        self.opt_c.zero_grad(set_to_none=True)
        loss_c.backward()
        self.opt_c.step()
        self.updates += 1
        if self.updates % cfg.policy_delay == 0:
            loss_a = -self.critic.q1(torch.cat([s, self.actor(s)], -1)).mean()
            self.opt_a.zero_grad(set_to_none=True)
            loss_a.backward()
            self.opt_a.step()
            with torch.no_grad():
                for net, tgt in ((self.actor, self.actor_t), (self.critic, self.critic_t)):
                    for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                        pt.lerp_(p, cfg.tau)

    def _checkpoint(self) -> float:
        ret = _evaluate(self.eval_env, self.greedy, self.cfg.eval_episodes, self.seed + 1000 + len(self.checkpoints))
        self.checkpoints.append({"env_step": self.t, "eval_return": ret, "wall_s": round(self.wall_s, 1)})
        self.actor_states.append({k: v.detach().clone() for k, v in self.actor.state_dict().items()})
        return ret

    def run(
        self, until_step: int | None = None, deadline_s: float | None = None, progress: bool = True, on_checkpoint=None
    ) -> None:
        """Step until ``until_step`` env steps (default: ``max_env_steps``) or ``deadline_s`` seconds of this call.

        A checkpoint is evaluated every ``eval_every`` steps and when the call stops;
        ``on_checkpoint(trainer)`` runs after each (e.g. to save a resume file).
        """
        cfg, rng, codec = self.cfg, self.rng, self.codec
        until = min(until_step or cfg.max_env_steps, cfg.max_env_steps)
        if self._obs is None:
            self._obs, self._state, _ = self.env.reset(self.seed + 7919 * self.episodes_started)
            self.episodes_started += 1
        start = time.perf_counter()
        wall0 = self.wall_s
        bar = progress_bar(total=until, desc=f"TD3 {self.env.spec.env}", unit="step") if progress else None
        if bar is not None:
            bar.update(self.t)
        while self.t < until:
            if self.t < cfg.start_steps:
                unit = rng.uniform(-1, 1, (1, self.A)).astype(np.float32)
            else:
                with torch.no_grad():
                    unit = self.actor(torch.as_tensor(self._state)).numpy()
                unit = np.clip(unit + rng.normal(0, cfg.expl_noise, unit.shape), -1, 1).astype(np.float32)
            actions = codec.to_agents(unit)
            nobs, nstate, _, r, term, trunc, info = self.env.step(actions)
            done = bool(info["done"][0])
            t = self.t
            self.buf_s[t], self.buf_a[t], self.buf_r[t] = self._state[0], unit[0], r[0]
            self.buf_s2[t] = info["final_state"][0] if done else nstate[0]
            self.buf_nd[t] = 0.0 if term[0] else 1.0
            self.t += 1
            if self.recorder is not None:
                self.recorder.add(
                    self._obs[0], self._state[0], actions[0], r[0], bool(term[0]), bool(trunc[0]), info, self.t
                )
            self._obs, self._state = nobs, nstate
            if self.t >= cfg.start_steps:
                self._update()
            now = time.perf_counter()
            self.wall_s = wall0 + now - start
            out_of_time = deadline_s is not None and now - start >= deadline_s
            if self.t % cfg.eval_every == 0 or out_of_time or self.t == until:
                ret = self._checkpoint()
                if bar is not None:
                    bar.set_postfix(ret=f"{ret:.1f}")
                if on_checkpoint is not None:
                    on_checkpoint(self)
            if bar is not None:
                bar.update(1)
            if out_of_time:
                break
        if bar is not None:
            bar.close()

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume (the replay buffer up to the current step included)."""
        t = self.t
        return {
            "trainer_version": TRAINER_VERSION,
            "config": asdict(self.cfg),
            "seed": self.seed,
            "t": t,
            "updates": self.updates,
            "wall_s": self.wall_s,
            "episodes_started": self.episodes_started,
            "random_return": self.random_return,
            "checkpoints": self.checkpoints,
            "actor_states": self.actor_states,
            "nets": {
                k: getattr(self, k).state_dict() for k in ("actor", "critic", "actor_t", "critic_t", "opt_a", "opt_c")
            },
            "buffers": {k: getattr(self, k)[:t].copy() for k in ("buf_s", "buf_a", "buf_r", "buf_s2", "buf_nd")},
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": self.gen.get_state(),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd.get("trainer_version") != TRAINER_VERSION:
            raise ValueError(
                f"resume file is from TD3 trainer v{sd.get('trainer_version')}, this is v{TRAINER_VERSION}"
            )
        mine, theirs = asdict(self.cfg), dict(sd["config"])
        for key in ("train_minutes", "threads", "max_env_steps"):  # budgets may grow between sessions
            mine.pop(key), theirs.pop(key, None)
        if mine != theirs or sd["seed"] != self.seed:
            raise ValueError("resume file was written with another TD3 config or seed; use a new work directory")
        t = int(sd["t"])
        if t > self.cfg.max_env_steps:
            raise ValueError(f"resume file is at step {t}, beyond max_env_steps={self.cfg.max_env_steps}")
        self.t, self.updates, self.wall_s = t, int(sd["updates"]), float(sd["wall_s"])
        self.episodes_started = int(sd["episodes_started"])
        self.random_return = float(sd["random_return"])
        self.checkpoints, self.actor_states = list(sd["checkpoints"]), list(sd["actor_states"])
        for k, v in sd["nets"].items():
            getattr(self, k).load_state_dict(v)
        for k, v in sd["buffers"].items():
            getattr(self, k)[:t] = v
        self.rng.bit_generator.state = sd["numpy_rng"]
        self.gen.set_state(sd["torch_rng"])
        self._obs = self._state = None

    def result(self) -> TrainResult:
        spec = self.env.spec
        if self.recorder is not None:
            replay, end_steps = self.recorder.dataset(
                spec,
                self.env.action_low,
                self.env.action_high,
                {"env": spec.env, "quality": "td3-replay", "seed": self.seed},
            )
        else:
            replay, end_steps = None, np.zeros(0, np.int64)
        return TrainResult(
            checkpoints=self.checkpoints,
            actor_states=self.actor_states,
            random_return=self.random_return,
            replay=replay,
            replay_env_step=end_steps,
            env_steps=self.t,
            updates=self.updates,
            wall_s=self.wall_s,
            config=asdict(self.cfg),
            state_dim=self.S,
            joint_dim=self.A,
        )

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


def train_td3(env_factory, cfg: TD3Config, seed: int, progress: bool = True) -> TrainResult:
    """Train TD3 on the joint action of a B=1 MaMuJoCo adapter made by ``env_factory(time_limit)``.

    Stops at ``cfg.train_minutes`` wall time or ``cfg.max_env_steps`` steps. Deterministic in
    its random choices for a seed (torch and numpy generators seeded), though the wall-clock
    budget decides where it stops.
    """
    trainer = TD3Trainer(env_factory, cfg, seed)
    try:
        trainer.run(deadline_s=cfg.train_minutes * 60.0, progress=progress)
        return trainer.result()
    finally:
        trainer.close()


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
