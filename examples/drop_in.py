"""Drop-in use of the LOGO world model from any offline-MARL codebase: numpy in, mixed batches out.

Your data are plain numpy arrays and your policy is any callable; nothing else of logo_fast
is needed. Run: python examples/drop_in.py
"""

import numpy as np
import torch

from logo_fast import DatasetSpec, OfflineDataset
from logo_fast.data import make_toy_dataset  # stand-in for your own data loader
from logo_fast.model import LogoWorldModel, WorldModelConfig
from logo_fast.replay import UncertaintyWeightedReplay

# ---- 1. Your arrays (here made up by the toy task; use your own) ----------------------------
yours = make_toy_dataset(n_agents=3, n_episodes=60, episode_len=25, seed=0)
obs, state, actions = yours.obs, yours.state, yours.actions  # (T, N, D) (T, S) (T, N) int
avail, rewards = yours.avail_actions, yours.rewards  # (T, N, A) bool, (T,)
terminals, truncations = yours.terminals, yours.truncations  # (T,) bool: every episode ends with one


rng = np.random.default_rng(0)


def your_policy(obs: np.ndarray, avail: np.ndarray) -> np.ndarray:
    """Any policy: (B, N, D) obs and (B, N, A) masks in, (B, N) actions out (here: random available)."""
    scores = rng.random(avail.shape) * avail
    return scores.argmax(-1)


# ---- 2. Wrap, fit, roll out -----------------------------------------------------------------
T, N, D = obs.shape
spec = DatasetSpec(n_agents=N, obs_dim=D, state_dim=state.shape[1], action_type="discrete",
                   n_actions=avail.shape[-1])
data = OfflineDataset(spec=spec, obs=obs, state=state, actions=actions, rewards=rewards,
                      terminals=terminals, truncations=truncations, avail_actions=avail)

model = LogoWorldModel(config=WorldModelConfig(hidden=64, latent=32, epochs=200, seed=0))
model.fit(data)  # validates, normalises, early-stops on held-out episodes
synthetic = model.rollout(
    lambda o, a: your_policy(o.numpy(), a.numpy()),  # the model hands you torch tensors
    starts=512,  # 512 random dataset states
    horizon=15,
    generator=torch.Generator().manual_seed(0),
)
print({k: tuple(v.shape) for k, v in synthetic.items()})
print(f"{len(synthetic['u'])} synthetic transitions, mean uncertainty u = {synthetic['u'].mean():.3f}")

# ---- 3. Mixed real/synthetic batches, weighted by uncertainty --------------------------------
replay = UncertaintyWeightedReplay(data, capacity=100_000, C=1.0, real_ratio=0.5, seed=0)
replay.add_synthetic(synthetic)  # the rollout dict goes in as is
batch = replay.sample(256)  # half real, half synthetic; synthetic drawn with weight exp(clip(C - u, 0, C))
print({k: tuple(v.shape) for k, v in batch.items()})
model.save("/tmp/drop_in_world_model.pt")  # reload with LogoWorldModel.load(path)
