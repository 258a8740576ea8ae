"""SMAX (JaxMARL's StarCraft-like micromanagement, ported SMAC maps) as a vectorised adapter.

Scenarios (id ``smax:<map>``): 2s3z, 3s_vs_5z, 5m_vs_6m, 6h_vs_8z (any map name jaxmarl's
``map_name_to_scenario`` knows works). The allies are the team; the enemies are driven by
jaxmarl's built-in heuristic (``HeuristicEnemySMAX``).

Observation: each ally's unit observation (zeros once the unit is dead). Global state:
jaxmarl's ``world_state``. Available actions: ``get_avail_actions`` (5 movement actions, of
which index 4 "stop" is always available, then one attack action per enemy in range).
Team reward: SMAX's shared ally reward (normalised enemy health lost, +1 for winning),
identical for every ally (ally_0's value is used).
Terminal: one side was wiped out. Truncated: ``time_limit`` steps (100 by default, as jaxmarl's
``max_steps``) ran out with both sides alive.

The B copies run as one ``jax.vmap``-ed, ``jax.jit``-ed step (CPU), with the auto-reset done
inside the compiled step. The first call compiles for a few seconds; later calls with the same
map and B reuse the compiled code (cached per process).
"""

from __future__ import annotations

import functools

import numpy as np

from ..schema import DatasetSpec
from .base import EnvAdapter, EnvInfo, StepOutput

DEFAULT_TIME_LIMIT = 100


@functools.lru_cache(maxsize=16)
def _compiled(map_name: str, time_limit: int):
    """(env, jitted batched reset, jitted batched step) for one map; cached so compiles happen once."""
    import jax

    env, reset_one, step_one = battle_functions(map_name, time_limit)
    return env, jax.jit(jax.vmap(reset_one)), jax.jit(jax.vmap(step_one))


def battle_functions(map_name: str, time_limit: int):
    """(env, reset_one, step_one): one battle's pure functions, to vmap/jit (the adapter; PPO's rollout).

    reset_one(key) -> (state, obs (N, obs_dim), world_state (state_dim,), avail (N, n_actions)).
    step_one(key, state, actions (N,)) -> (next state, obs, world_state, avail, reward, terminal,
    truncated, final obs, final world_state, final avail, per-agent rewards (N,), won): the
    battle resets itself when it ends, the final_* values are those before that reset, and
    ``won`` says the allies wiped out the enemies in this step.
    """
    import jax
    import jax.numpy as jnp
    from jaxmarl import make
    from jaxmarl.environments.smax import map_name_to_scenario

    # jaxmarl checks its time limit before counting the step, so max_steps=k ends battles after
    # k + 1 steps; k = time_limit - 1 makes the limit mean "time_limit steps per episode".
    env = make("HeuristicEnemySMAX", scenario=map_name_to_scenario(map_name), max_steps=time_limit - 1)
    agents = list(env.agents)
    n_allies = env.num_allies

    def arrays(obs_dict, st):
        obs = jnp.stack([obs_dict[a] for a in agents]).astype(jnp.float32)
        avail_dict = env.get_avail_actions(st)
        avail = jnp.stack([avail_dict[a] for a in agents]).astype(bool)
        return obs, obs_dict["world_state"].astype(jnp.float32), avail

    def reset_one(key):
        obs_dict, st = env.reset(key)
        return (st, *arrays(obs_dict, st))

    def step_one(key, st, actions):
        k_step, k_reset = jax.random.split(key)
        obs_dict, st2, rew, dones, _ = env.step_env(k_step, st, {a: actions[i] for i, a in enumerate(agents)})
        obs, ws, avail = arrays(obs_dict, st2)
        done = dones["__all__"]
        alive = st2.state.unit_alive
        terminal = done & (~alive[:n_allies].any() | ~alive[n_allies:].any())
        truncated = done & ~terminal
        agent_rew = jnp.stack([rew[a] for a in agents]).astype(jnp.float32)
        rst, robs, rws, ravail = reset_one(k_reset)
        pick = lambda new, old: jnp.where(done, new, old)
        nxt = jax.tree.map(pick, rst, st2)
        return (
            nxt,
            pick(robs, obs),
            pick(rws, ws),
            pick(ravail, avail),
            agent_rew[0],
            terminal,
            truncated,
            obs,
            ws,
            avail,
            agent_rew,
            terminal & ~alive[n_allies:].any(),
        )

    return env, reset_one, step_one


class SMAXAdapter(EnvAdapter):
    """B SMAX battles of one map stepped together (vmap + jit on CPU); discrete actions with masks.

    scenario:    SMAX map name, e.g. "2s3z"
    batch_size:  number of parallel battles B
    time_limit:  steps before truncation (jaxmarl ``max_steps``)
    """

    def __init__(self, scenario: str, batch_size: int = 1, time_limit: int = DEFAULT_TIME_LIMIT):
        if batch_size < 1 or time_limit < 1:
            raise ValueError(f"batch_size and time_limit must be >= 1, got {batch_size}, {time_limit}")
        try:
            from jaxmarl.environments.smax import map_name_to_scenario

            map_name_to_scenario(scenario)
        except KeyError as err:
            raise ValueError(f"unknown SMAX map {scenario!r}") from err
        self.scenario = scenario
        self.batch_size = batch_size
        self.time_limit = time_limit
        self.env, self._reset, self._step = _compiled(scenario, time_limit)
        env = self.env
        a0 = env.agents[0]
        self.spec = DatasetSpec(
            n_agents=env.num_allies,
            obs_dim=int(env.observation_space(a0).shape[0]),
            state_dim=int(env.state_size if hasattr(env, "state_size") else 0) or self._probe_state_dim(),
            action_type="discrete",
            n_actions=int(env.action_space(a0).n),
            env=f"smax:{scenario}",
        )
        self.info = EnvInfo(
            env_id=self.spec.env,
            family="smax",
            time_limit=time_limit,
            team_reward="SMAX's shared ally reward (identical for every ally; ally_0's value)",
            packages=("jax", "jaxmarl"),
        )
        self._key = None
        self._state = None

    def _probe_state_dim(self) -> int:
        import jax

        obs_dict, _ = self.env.reset(jax.random.PRNGKey(0))
        return int(obs_dict["world_state"].shape[0])

    def _split(self):
        import jax

        self._key, sub = jax.random.split(self._key)
        return jax.random.split(sub, self.batch_size)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import jax

        self._key = jax.random.PRNGKey(int(seed))
        self._state, obs, ws, avail = self._reset(self._split())
        return np.asarray(obs), np.asarray(ws), np.asarray(avail)

    def step(self, actions: np.ndarray) -> StepOutput:
        if self._state is None:
            raise ValueError(f"{self.info.env_id}: call reset(seed) before step")
        actions = self.check_actions(actions)
        out = self._step(self._split(), self._state, np.asarray(actions, dtype=np.int32))
        self._state = out[0]
        obs, ws, avail, rew, term, trunc, fobs, fws, favail, agent_rew, _won = (np.asarray(x) for x in out[1:])
        done = term | trunc
        # Zero the final_* rows of copies that did not finish, as the interface promises.
        info = {
            "done": done,
            "final_obs": np.where(done[:, None, None], fobs, 0.0).astype(np.float32),
            "final_state": np.where(done[:, None], fws, 0.0).astype(np.float32),
            "final_avail": np.where(done[:, None, None], favail, False),
            "agent_rewards": agent_rew,
        }
        return obs, ws, avail, rew.astype(np.float32), term, trunc, info

    @property
    def jax_state(self):
        """The batched jaxmarl state (for policies that need more than the observation)."""
        return self._state
