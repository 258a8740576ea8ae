"""SMAX behaviour policy: jaxmarl's own scripted micromanagement for the allies, epsilon-mixed.

jaxmarl 0.2.0 ships ``create_heuristic_policy(env, team, shoot, attack_mode)`` (the policy
its ``HeuristicEnemySMAX`` uses for the enemies). Here it drives the allies (team 0, attack
the closest enemy in range, otherwise advance). Two adjustments, both so that every recorded
action is legal: a scripted action that the mask forbids (it happens for dead units) becomes
"stop" (index 4, always available); with probability ``epsilon`` an agent takes a uniformly
random *available* action instead. The policy keeps each unit's target memory, cleared when
its battle ends. It runs vmapped and jitted, like the adapter.
"""

from __future__ import annotations

import functools

import numpy as np

STOP_ACTION = 4  # SMAX: 4 moves, then "stop" (always available), then attacks


@functools.lru_cache(maxsize=16)
def _compiled(adapter_key):
    """(jitted act over B copies, jitted per-copy memory reset, initial memory for one copy)."""
    import jax
    import jax.numpy as jnp
    from jaxmarl.environments.smax.heuristic_enemy import create_heuristic_policy, get_heuristic_policy_initial_state

    env, n_agents = adapter_key
    policy = create_heuristic_policy(env._env, 0, shoot=True, attack_mode="closest")
    init_one = jax.tree.map(lambda *xs: jnp.stack(xs), *([get_heuristic_policy_initial_state()] * n_agents))

    def act_one(key, memory, obs, avail, eps):
        k_pol, k_rand, k_mix = jax.random.split(key, 3)
        scripted, memory = jax.vmap(policy)(jax.random.split(k_pol, n_agents), memory, obs)
        scripted = scripted.astype(jnp.int32)
        legal = jnp.take_along_axis(avail, scripted[:, None], axis=-1)[:, 0]
        scripted = jnp.where(legal, scripted, STOP_ACTION)
        random = jax.random.categorical(k_rand, jnp.where(avail, 0.0, -jnp.inf), axis=-1).astype(jnp.int32)
        explore = jax.random.uniform(k_mix, (n_agents,)) < eps
        return jnp.where(explore, random, scripted), memory

    def clear(memory, done):
        return jax.tree.map(
            lambda init, m: jnp.where(done.reshape((-1,) + (1,) * (m.ndim - 1)), init[None], m), init_one, memory
        )

    return jax.jit(jax.vmap(act_one)), jax.jit(clear), init_one


class SMAXHeuristicPolicy:
    """jaxmarl's heuristic for the allies of a ``SMAXAdapter``, with an epsilon-mixture.

    adapter:  the SMAXAdapter it will act in (its env and batch size fix the compiled code)
    epsilon:  scalar, or (B,) per parallel battle (the medium-replay sweep sets it per episode)
    """

    def __init__(self, adapter, epsilon: float | np.ndarray = 0.0):
        import jax
        import jax.numpy as jnp

        self.B = adapter.batch_size
        self.n_agents = adapter.spec.n_agents
        self._act, self._clear, init_one = _compiled((adapter.env, self.n_agents))
        self.memory = jax.tree.map(lambda x: jnp.broadcast_to(x, (self.B, *x.shape)), init_one)
        self.epsilon = epsilon

    def act(self, obs, state, avail, rng):
        import jax

        keys = jax.random.split(jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1))), self.B)
        eps = np.broadcast_to(np.asarray(self.epsilon, np.float32), (self.B,))
        actions, self.memory = self._act(keys, self.memory, np.asarray(obs), np.asarray(avail, bool), eps)
        return np.asarray(actions, dtype=np.int64)

    def on_episode_end(self, done):
        if np.any(done):
            self.memory = self._clear(self.memory, np.asarray(done, bool))

    def describe(self):
        eps = self.epsilon
        return {
            "kind": "jaxmarl_smax_heuristic(team=allies, attack_mode=closest)",
            "epsilon": float(eps) if np.ndim(eps) == 0 else "per-episode sweep",
            "illegal_scripted_action": "replaced by stop (4)",
        }
