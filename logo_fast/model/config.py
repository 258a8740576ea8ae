"""Configuration of every world model (LOGO, the joint MLP and the ensemble): one dataclass.

The same config is saved with every checkpoint, so a loaded model rebuilds exactly the
network it was trained with. Fields a model does not use (``n_members`` for LOGO, ``pool``
for the joint MLP) are ignored by it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


@dataclass
class WorldModelConfig:
    """Hyper-parameters of a world model and its training run."""

    # ---- architecture -------------------------------------------------------------------------
    hidden: int = 128  # width of every hidden layer of LOGO's encoder, heads and deductive model
    layers: int = 2  # hidden layers per MLP (encoder, deductive encoder, joint MLP, ensemble member)
    latent: int = 64  # size of the per-agent latent z[i]
    agent_embed: int = 8  # size of the learned agent embedding appended to each agent's input
    per_agent_weights: bool = False  # True: every agent gets its own local-model weights (not shared)
    pool: Literal["mean", "attention"] = "mean"  # how the auxiliary-state head pools the agents' latents
    deductive_context: Literal["none", "reward", "all"] = "all"  # extra (state, joint action) input of the
    # deductive model: "none" = local predictions only (the paper's text), "reward" = for the reward,
    # termination and avail heads, "all" = for every head including the next state
    joint_hidden: int = 0  # joint/ensemble MLP width; 0 = solve for LOGO's parameter count (within ~10%)
    # ---- targets and losses -------------------------------------------------------------------
    predict_delta: bool = True  # predict next obs/state as a change from the current one (else absolute)
    obs_loss: Literal["mse", "nll"] = "mse"  # next-local-obs loss: MSE, or Gaussian NLL with a learned std
    nll_beta: float = 0.0  # beta-NLL weight for every Gaussian NLL (ensemble, obs_loss="nll"): 0 = plain NLL
    # (MOPO), 0.5 = beta-NLL, which keeps fitting the means of features given a large variance
    w_obs: float = 1.0  # weight of the next-local-obs loss
    w_recon: float = 0.1  # weight of the reconstruction (autoencoder) loss on the input obs
    w_aux: float = 1.0  # weight of the auxiliary-state head's next-state loss
    w_state: float = 1.0  # weight of the deductive model's next-state loss
    w_reward: float = 1.0  # weight of the reward loss (normalised reward, MSE)
    w_term: float = 1.0  # weight of the termination loss (BCE)
    w_avail: float = 0.5  # weight of the next-available-action loss (BCE, discrete tasks)
    w_reg: float = 0.5  # weight of the regulariser: deductive losses on the local model's own (detached)
    # predictions, so the deductive model stays accurate at rollout time
    # ---- ensemble (EnsembleWorldModel only) ---------------------------------------------------
    n_members: int = 7  # ensemble size (MOPO: 7)
    n_elites: int = 5  # members kept by holdout error (MOPO: 5)
    reward_penalty: float = 0.0  # MOPO lambda: rollouts report reward - lambda * u (0 = off)
    sample_members: bool = True  # rollouts draw a random elite and a Gaussian sample per row (MOPO);
    # step() always returns the mean of the elites
    # ---- rollouts -----------------------------------------------------------------------------
    clip_margin: float = 0.1  # predictions clipped to dataset [min, max] widened by this fraction of the range
    # ---- optimisation -------------------------------------------------------------------------
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 1e-5  # AdamW weight decay
    grad_clip: float = 10.0  # global gradient-norm clip (0 = off)
    batch_size: int = 256  # transitions per minibatch
    epochs: int = 100  # passes over the training split (upper bound; early stopping usually ends sooner)
    max_steps: int = 0  # hard cap on optimiser steps (0 = no cap beyond ``epochs``)
    eval_every: int = 0  # optimiser steps between holdout evaluations (0 = once per epoch)
    patience: int = 5  # holdout evaluations without improvement before stopping (best weights are kept)
    min_improvement: float = 1e-3  # relative holdout-loss decrease that counts as an improvement
    holdout_fraction: float = 0.1  # episodes held out for early stopping when fit() gets no holdout
    max_holdout_rows: int = 20_000  # holdout rows scored per evaluation (a fixed random subset beyond this)
    seed: int = 0  # seeds initialisation, the holdout split and minibatch order
    device: str = "cpu"  # torch device for training and prediction
    step_chunk: int = 65_536  # rows per forward pass in step()/rollout() (bounds peak memory)

    def __post_init__(self) -> None:
        self.validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"WorldModelConfig.from_dict: unknown keys {sorted(unknown)}")
        return cls(**d)

    def replace(self, **overrides: Any) -> WorldModelConfig:
        """A copy with ``overrides`` applied (unknown names raise ValueError)."""
        return WorldModelConfig.from_dict({**self.to_dict(), **overrides})

    def problems(self) -> list[str]:
        """Every invalid field, as readable lines (empty when the config is valid)."""
        out = []
        for name in ("hidden", "layers", "latent", "batch_size", "epochs", "n_members", "n_elites", "step_chunk"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("agent_embed", "max_steps", "eval_every", "patience", "joint_hidden", "max_holdout_rows"):
            if getattr(self, name) < 0:
                out.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            if f.name.startswith("w_") and getattr(self, f.name) < 0:
                out.append(f"{f.name} must be >= 0, got {getattr(self, f.name)}")
        if self.n_elites > self.n_members:
            out.append(f"n_elites ({self.n_elites}) must be <= n_members ({self.n_members})")
        if not 0.0 < self.holdout_fraction < 1.0:
            out.append(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.lr <= 0:
            out.append(f"lr must be > 0, got {self.lr}")
        if self.clip_margin < 0 or self.reward_penalty < 0 or self.grad_clip < 0:
            out.append("clip_margin, reward_penalty and grad_clip must be >= 0")
        if not 0.0 <= self.nll_beta <= 1.0:
            out.append(f"nll_beta must be in [0, 1], got {self.nll_beta}")
        if self.pool not in ("mean", "attention"):
            out.append(f"pool must be 'mean' or 'attention', got {self.pool!r}")
        if self.obs_loss not in ("mse", "nll"):
            out.append(f"obs_loss must be 'mse' or 'nll', got {self.obs_loss!r}")
        if self.deductive_context not in ("none", "reward", "all"):
            out.append(f"deductive_context must be 'none', 'reward' or 'all', got {self.deductive_context!r}")
        return out

    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid WorldModelConfig:\n  - " + "\n  - ".join(problems))
