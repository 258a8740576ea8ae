"""The offline multi-agent dataset: one schema every reader, writer, collector and model shares.

Layout (T steps, N agents, E episodes; steps of one episode are contiguous and in order):

    obs            (T, N, obs_dim)    float32   per-agent local observation, zero-padded to the
                                                largest agent; ``obs_mask`` says which entries exist
    obs_mask       (N, obs_dim)       bool      True where agent i really has feature j
    state          (T, state_dim)     float32   global state
    actions        (T, N)             int64     discrete actions, or
                   (T, N, act_dim)    float32   continuous actions (padded like obs, ``act_mask``)
    avail_actions  (T, N, n_actions)  bool      discrete only: actions available at step t
    rewards        (T,)               float32   team reward
    agent_rewards  (T, N)             float32   optional per-agent rewards
    terminals      (T,)               bool      the environment ended the episode (no bootstrap)
    truncations    (T,)               bool      the episode was cut (time limit); bootstrap allowed
    final_obs      (E, N, obs_dim)    float32   optional: observation after each episode's last step
    final_state    (E, state_dim)     float32   optional: state after each episode's last step
    final_avail    (E, N, n_actions)  bool      optional (discrete): avail after the last step

Every episode ends with a step whose ``terminals`` or ``truncations`` flag is set. Next-step
fields (``next_obs`` ...) are derived inside an episode only: step t's next observation is
step t+1's when t is not an episode end, else the episode's ``final_*`` entry; where an
episode has no final entry its last step has no next step and ``valid`` is False for it.
Nothing is ever taken across an episode boundary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ActionType = Literal["discrete", "continuous"]

# Field name -> expected number of dimensions and dtype kind; used by validation and readers.
STEP_FIELDS = ("obs", "state", "actions", "rewards", "terminals", "truncations")
OPTIONAL_STEP_FIELDS = ("avail_actions", "agent_rewards")
FINAL_FIELDS = ("final_obs", "final_state", "final_avail")


@dataclass(frozen=True)
class DatasetSpec:
    """Dimensions of a multi-agent task; saved with every dataset and checkpoint."""

    n_agents: int
    """Number of agents N."""
    obs_dim: int
    """Per-agent observation size after padding to the largest agent."""
    state_dim: int
    """Global state size."""
    action_type: ActionType
    """Either "discrete" (one action index per agent) or "continuous"."""
    n_actions: int = 0
    """Discrete: number of actions per agent (0 for continuous)."""
    act_dim: int = 0
    """Continuous: per-agent action size after padding (0 for discrete)."""
    agent_obs_dims: tuple[int, ...] = ()
    """True observation size of each agent (all equal to obs_dim when homogeneous)."""
    agent_act_dims: tuple[int, ...] = ()
    """Continuous: true action size of each agent."""
    env: str = ""
    """Scenario id such as "mpe:simple_spread" (informational)."""

    def __post_init__(self) -> None:
        problems = []
        if self.n_agents < 1:
            problems.append(f"n_agents must be >= 1, got {self.n_agents}")
        if self.obs_dim < 1:
            problems.append(f"obs_dim must be >= 1, got {self.obs_dim}")
        if self.state_dim < 1:
            problems.append(f"state_dim must be >= 1, got {self.state_dim}")
        if self.action_type not in ("discrete", "continuous"):
            problems.append(
                f"action_type must be 'discrete' or 'continuous', got {self.action_type!r}"
            )
        if self.action_type == "discrete" and (self.n_actions < 1 or self.act_dim != 0):
            problems.append("discrete spec needs n_actions >= 1 and act_dim == 0")
        if self.action_type == "continuous" and (self.act_dim < 1 or self.n_actions != 0):
            problems.append("continuous spec needs act_dim >= 1 and n_actions == 0")
        # Fill per-agent sizes for homogeneous tasks so callers never special-case them.
        if not self.agent_obs_dims:
            object.__setattr__(self, "agent_obs_dims", (self.obs_dim,) * max(self.n_agents, 0))
        if self.action_type == "continuous" and not self.agent_act_dims:
            object.__setattr__(self, "agent_act_dims", (self.act_dim,) * max(self.n_agents, 0))
        object.__setattr__(self, "agent_obs_dims", tuple(int(d) for d in self.agent_obs_dims))
        object.__setattr__(self, "agent_act_dims", tuple(int(d) for d in self.agent_act_dims))
        if len(self.agent_obs_dims) != self.n_agents:
            problems.append(f"agent_obs_dims has {len(self.agent_obs_dims)} entries for {self.n_agents} agents")
        elif self.agent_obs_dims and max(self.agent_obs_dims) != self.obs_dim:
            problems.append(f"obs_dim {self.obs_dim} must equal the largest agent_obs_dims {max(self.agent_obs_dims)}")
        if self.action_type == "continuous":
            if len(self.agent_act_dims) != self.n_agents:
                problems.append(f"agent_act_dims has {len(self.agent_act_dims)} entries for {self.n_agents} agents")
            elif max(self.agent_act_dims) != self.act_dim:
                largest = max(self.agent_act_dims)
                problems.append(f"act_dim {self.act_dim} must equal the largest agent_act_dims {largest}")
        if problems:
            raise ValueError("invalid DatasetSpec:\n  - " + "\n  - ".join(problems))

    @property
    def discrete(self) -> bool:
        return self.action_type == "discrete"

    @property
    def action_size(self) -> int:
        """Per-agent width of an action as a model input (one-hot size or act_dim)."""
        return self.n_actions if self.discrete else self.act_dim

    @property
    def heterogeneous(self) -> bool:
        return len(set(self.agent_obs_dims)) > 1 or len(set(self.agent_act_dims)) > 1

    def obs_mask(self) -> np.ndarray:
        """(N, obs_dim) bool: True where agent i has observation feature j."""
        return np.arange(self.obs_dim)[None, :] < np.asarray(self.agent_obs_dims)[:, None]

    def act_mask(self) -> np.ndarray | None:
        """(N, act_dim) bool for continuous tasks, None for discrete ones."""
        if self.discrete:
            return None
        return np.arange(self.act_dim)[None, :] < np.asarray(self.agent_act_dims)[:, None]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["agent_obs_dims"] = list(self.agent_obs_dims)
        d["agent_act_dims"] = list(self.agent_act_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"DatasetSpec.from_dict: unknown keys {sorted(unknown)}")
        d = dict(d)
        d["agent_obs_dims"] = tuple(d.get("agent_obs_dims", ()))
        d["agent_act_dims"] = tuple(d.get("agent_act_dims", ()))
        return cls(**d)

    def check_compatible(self, other: DatasetSpec) -> None:
        """Raise ValueError naming every dimension where ``other`` differs (env name ignored)."""
        diffs = [
            f"{f.name}: {getattr(self, f.name)!r} vs {getattr(other, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name != "env" and getattr(self, f.name) != getattr(other, f.name)
        ]
        if diffs:
            raise ValueError("dataset spec mismatch:\n  - " + "\n  - ".join(diffs))


@dataclass
class OfflineDataset:
    """A multi-agent offline dataset (see the module docstring for every field's shape).

    Arrays are numpy arrays (or array-likes that slice like them, e.g. h5py datasets for
    data that does not fit in memory). Construct, then call
    ``logo_fast.data.validate_dataset(ds)`` before any work; loaders do that for you.
    """

    spec: DatasetSpec
    """Dimensions of the task."""
    obs: np.ndarray
    """(T, N, obs_dim) float32 per-agent observations, zero-padded to the largest agent."""
    state: np.ndarray
    """(T, state_dim) float32 global state."""
    actions: np.ndarray
    """(T, N) int64 discrete actions or (T, N, act_dim) float32 continuous ones (padded like obs)."""
    rewards: np.ndarray
    """(T,) float32 team reward."""
    terminals: np.ndarray
    """(T,) bool: the environment ended the episode (no bootstrap)."""
    truncations: np.ndarray
    """(T,) bool: the episode was cut (time limit); bootstrapping allowed."""
    avail_actions: np.ndarray | None = None
    """(T, N, n_actions) bool, discrete only: the actions available at each step."""
    agent_rewards: np.ndarray | None = None
    """(T, N) float32 optional per-agent rewards."""
    action_low: np.ndarray | None = None
    """(N, act_dim) float32 lower action bounds, continuous only."""
    action_high: np.ndarray | None = None
    """(N, act_dim) float32 upper action bounds, continuous only."""
    final_obs: np.ndarray | None = None
    """(E, N, obs_dim) float32 optional: the observation after each episode's last step."""
    final_state: np.ndarray | None = None
    """(E, state_dim) float32 optional: the state after each episode's last step."""
    final_avail: np.ndarray | None = None
    """(E, N, n_actions) bool optional (discrete): availability after each episode's last step."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """JSON-serialisable facts about the data (env, quality, seed, behaviour policy, ...)."""

    # ---- sizes ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def n_steps(self) -> int:
        return len(self)

    @property
    def obs_mask(self) -> np.ndarray:
        return self.spec.obs_mask()

    def episode_ends(self) -> np.ndarray:
        """(T,) bool: True on the last step of each episode."""
        return np.asarray(self.terminals, dtype=bool) | np.asarray(self.truncations, dtype=bool)

    def episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) int64 arrays of shape (E,): episode e spans steps [starts[e], ends[e])."""
        ends = np.flatnonzero(self.episode_ends()) + 1
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        return starts, ends.astype(np.int64)

    @property
    def n_episodes(self) -> int:
        return int(self.episode_ends().sum())

    def episode_returns(self) -> np.ndarray:
        """(E,) float64: sum of team reward over each episode."""
        starts, _ = self.episode_bounds()
        if len(starts) == 0:
            return np.zeros(0)
        return np.add.reduceat(np.asarray(self.rewards, dtype=np.float64), starts)

    # ---- next-step fields ----------------------------------------------------------------
    def next_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where each step's next observation lives, never across an episode boundary.

        Returns ``(valid, next_step, final_episode)``, each (T,):
          valid[t]          step t has a next observation
          next_step[t]      index of step t+1 when t is not an episode end, else -1
          final_episode[t]  episode index e whose final_* entry is t's next obs, else -1
        """
        ends = self.episode_ends()
        T = len(self)
        next_step = np.where(~ends, np.arange(1, T + 1), -1).astype(np.int64)
        episode_of_end = np.cumsum(ends) - 1  # episode index for end steps
        has_final = self.final_obs is not None and self.final_state is not None
        final_episode = np.where(ends & has_final, episode_of_end, -1).astype(np.int64)
        valid = (next_step >= 0) | (final_episode >= 0)
        return valid, next_step, final_episode

    def next_fields(self, indices: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Next obs/state/avail for the valid steps among ``indices`` (all steps if None).

        Returns a dict with ``index`` (K,) of the steps kept and ``next_obs`` (K, N, obs_dim),
        ``next_state`` (K, state_dim) and, for discrete tasks, ``next_avail`` (K, N, n_actions).
        """
        valid, next_step, final_episode = self.next_index()
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        idx = idx[valid[idx]]
        nxt = next_step[idx]
        fin = final_episode[idx]
        from_step = nxt >= 0
        out: dict[str, np.ndarray] = {"index": idx}

        def gather(step_arr, final_arr):
            first = np.asarray(step_arr[np.where(from_step, nxt, 0)])
            if final_arr is not None and (~from_step).any():
                first[~from_step] = np.asarray(final_arr)[fin[~from_step]]
            return first

        out["next_obs"] = gather(self.obs, self.final_obs)
        out["next_state"] = gather(self.state, self.final_state)
        if self.spec.discrete and self.avail_actions is not None:
            if self.final_avail is None and (~from_step).any():
                # Without a recorded final mask, every action is available after the end.
                final_avail = np.ones((self.n_episodes, self.spec.n_agents, self.spec.n_actions), dtype=bool)
            else:
                final_avail = self.final_avail
            out["next_avail"] = gather(self.avail_actions, final_avail)
        return out

    # ---- slicing -------------------------------------------------------------------------
    def select_episodes(self, episodes: np.ndarray) -> OfflineDataset:
        """A new in-memory dataset holding the given episodes (in the given order)."""
        episodes = np.asarray(episodes, dtype=np.int64)
        starts, ends = self.episode_bounds()
        if len(episodes) and (episodes.min() < 0 or episodes.max() >= len(starts)):
            raise ValueError(f"episode index out of range [0, {len(starts)})")
        if len(episodes):
            steps = np.concatenate([np.arange(starts[e], ends[e]) for e in episodes])
        else:
            steps = np.zeros(0, np.int64)

        def take(a):
            return None if a is None else np.asarray(a)[steps]

        def take_final(a):
            return None if a is None else np.asarray(a)[episodes]

        return OfflineDataset(
            spec=self.spec,
            obs=take(self.obs),
            state=take(self.state),
            actions=take(self.actions),
            rewards=take(self.rewards),
            terminals=take(self.terminals),
            truncations=take(self.truncations),
            avail_actions=take(self.avail_actions),
            agent_rewards=take(self.agent_rewards),
            action_low=self.action_low,
            action_high=self.action_high,
            final_obs=take_final(self.final_obs),
            final_state=take_final(self.final_state),
            final_avail=take_final(self.final_avail),
            metadata=dict(self.metadata),
        )

    def split_episodes(self, holdout_fraction: float, seed: int) -> tuple[OfflineDataset, OfflineDataset]:
        """(train, holdout) split by whole episodes, shuffled with ``seed``; holdout gets >= 1 episode."""
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
        E = self.n_episodes
        if E < 2:
            raise ValueError(f"need at least 2 episodes to split, dataset has {E}")
        perm = np.random.default_rng(seed).permutation(E)
        n_hold = min(E - 1, max(1, int(round(E * holdout_fraction))))
        return self.select_episodes(np.sort(perm[n_hold:])), self.select_episodes(np.sort(perm[:n_hold]))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array field that is set, by name (spec and metadata excluded)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("spec", "metadata"):
                continue
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = v
        return out
