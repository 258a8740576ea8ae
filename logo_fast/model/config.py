"""Configuration of every world model (LOGO, the joint MLP and the ensemble): one dataclass.

The same config is saved with every checkpoint, so a loaded model rebuilds exactly the
network it was trained with. Fields a model does not use (``n_members`` for LOGO, ``pool``
for the joint MLP) are ignored by it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

DeductiveContext = Literal["none", "reward", "all"]
AuxEncoder = Literal["shared", "separate"]
DeductiveState = Literal["delta", "absolute", "hybrid"]
SelectBy = Literal["state_obs", "weighted"]
Pool = Literal["mean", "attention"]
ObsLoss = Literal["mse", "nll"]

_INT_FIELDS = ("hidden", "layers", "latent", "agent_embed", "joint_hidden", "n_members", "n_elites", "batch_size",
               "epochs", "max_steps", "eval_every", "patience", "max_holdout_rows", "seed", "step_chunk")
_CHOICES = {"pool": Pool, "deductive_context": DeductiveContext, "aux_encoder": AuxEncoder, "select_by": SelectBy,
            "obs_loss": ObsLoss, "deductive_state": DeductiveState}


@dataclass
class WorldModelConfig:
    """Hyper-parameters of a world model and its training run."""

    # ---- architecture -------------------------------------------------------------------------
    hidden: int = 128
    """Width of every hidden layer of LOGO's encoder, heads and deductive model."""
    layers: int = 2
    """Hidden layers per MLP (local encoder, deductive trunk, joint MLP, ensemble member)."""
    latent: int = 64
    """Size of the per-agent latent z[i]."""
    agent_embed: int = 8
    """Size of the learned agent embedding appended to each agent's input (0 = none)."""
    per_agent_weights: bool = False
    """Give every agent its own local-model weights instead of sharing one set."""
    pool: Pool = "mean"
    """How the auxiliary-state head pools the agents' latents: mean or attention."""
    deductive_context: DeductiveContext = "none"
    """Inputs of the deductive model beyond the local predictions: none (the paper's local-to-global model), reward (state and joint action for the reward, termination and avail heads) or all (for every head); the last two are ablations."""  # noqa: E501
    deductive_state: DeductiveState = "hybrid"
    """What LOGO's deductive state head predicts: delta (the change from the current state, added to it), absolute (the next state itself, inferred from the local predictions alone, so its error does not accumulate over a rollout) or hybrid (the default: both heads, the delta from a real state and the absolute head from a predicted one, i.e. every rollout step after the first; measured in bench/results/wm_accuracy/ablations/)."""  # noqa: E501
    aux_encoder: AuxEncoder = "shared"
    """The uncertainty's second path: shared (the auxiliary-state head pools the local encoder's latents) or separate (its own encoder, the paper's "additional encoder")."""  # noqa: E501
    outcome_dropout: float = 0.0
    """Dropout on the deductive trunk's features before the reward/termination/avail heads (training only)."""
    joint_hidden: int = 0
    """Joint/ensemble MLP width; 0 = solve for LOGO's parameter count (within about 10%)."""
    # ---- targets and losses -------------------------------------------------------------------
    predict_delta: bool = True
    """Predict the next obs (and the joint/ensemble next state) as a change from the current one, else absolute; LOGO's deductive model always predicts a state change."""  # noqa: E501
    obs_loss: ObsLoss = "mse"
    """Next-local-obs loss: mse, or nll (Gaussian with a learned std)."""
    nll_beta: float = 0.5
    """beta-NLL weight for every Gaussian NLL (ensemble, obs_loss=nll): 0.5 = beta-NLL (default: it keeps fitting the means of features given a large variance; plain NLL made the ensemble 2-70x less accurate on our data), 0 = plain NLL as in MOPO."""  # noqa: E501
    w_obs: float = 1.0
    """Weight of the next-local-obs loss."""
    w_recon: float = 0.1
    """Weight of LOGO's reconstruction (autoencoder) loss on the input obs."""
    w_aux: float = 1.0
    """Weight of LOGO's auxiliary-state next-state loss."""
    w_state: float = 1.0
    """Weight of the next-state loss."""
    w_reward: float = 1.0
    """Weight of the reward loss (normalised reward; MSE, or the reward's NLL for the ensemble)."""
    w_term: float = 1.0
    """Weight of the termination loss (BCE)."""
    w_avail: float = 0.5
    """Weight of the next-available-action loss (BCE, discrete tasks)."""
    w_reg: float = 0.5
    """Weight of LOGO's regulariser: the deductive losses on the local model's own (detached) predictions, so the deductive model stays accurate at rollout time."""  # noqa: E501
    # ---- model selection ----------------------------------------------------------------------
    select_by: SelectBy = "state_obs"
    """What early stopping and the kept weights follow on the holdout: state_obs (normalised next-state + next-obs error in rollout mode, what the reports measure) or weighted (the weighted training losses in rollout mode); with deductive_state=hybrid both add the absolute head's state error."""  # noqa: E501
    # ---- ensemble (EnsembleWorldModel only) ---------------------------------------------------
    n_members: int = 7
    """Ensemble size (MOPO: 7)."""
    n_elites: int = 5
    """Members kept by holdout error (MOPO: 5)."""
    sample_members: bool = True
    """Ensemble rollouts draw a random elite and a Gaussian sample per row (MOPO); step() always returns the elites' mean."""  # noqa: E501
    # ---- rollouts -----------------------------------------------------------------------------
    reward_penalty: float = 0.0
    """MOPO's lambda for any model with an uncertainty (LOGO, ensemble): rollouts report reward - lambda * u (0 = off)."""  # noqa: E501
    clip_margin: float = 0.1
    """Predictions are clipped to the dataset's [min, max] widened by this fraction of the range."""
    # ---- optimisation -------------------------------------------------------------------------
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 1e-5
    """AdamW weight decay."""
    grad_clip: float = 10.0
    """Global gradient-norm clip (0 = off)."""
    batch_size: int = 256
    """Transitions per minibatch."""
    epochs: int = 100
    """Passes over the training split (upper bound; early stopping usually ends sooner)."""
    max_steps: int = 0
    """Hard cap on optimiser steps (0 = no cap beyond epochs)."""
    eval_every: int = 0
    """Optimiser steps between holdout evaluations (0 = once per epoch)."""
    patience: int = 5
    """Holdout evaluations without improvement before stopping (the best weights are kept)."""
    min_improvement: float = 1e-3
    """Relative holdout-score decrease that counts as an improvement."""
    holdout_fraction: float = 0.1
    """Episodes held out for early stopping when fit() gets no holdout."""
    max_holdout_rows: int = 20_000
    """Holdout rows scored per evaluation (a fixed random subset beyond this)."""
    seed: int = 0
    """Seeds initialisation, the holdout split and minibatch order."""
    device: str = "cpu"
    """Torch device for training and prediction."""
    step_chunk: int = 65_536
    """Rows per forward pass in step()/rollout() (bounds peak memory)."""

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
        bad_type = set()
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in _INT_FIELDS:
                if isinstance(v, bool) or not isinstance(v, int):
                    out.append(f"{f.name} must be an int, got {v!r}")
                    bad_type.add(f.name)
            elif f.type in ("float", float):
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                    out.append(f"{f.name} must be a finite number, got {v!r}")
                    bad_type.add(f.name)
            elif f.type in ("bool", bool) and not isinstance(v, bool):
                out.append(f"{f.name} must be True or False, got {v!r}")
                bad_type.add(f.name)
        if not isinstance(self.device, str):
            out.append(f"device must be a string such as 'cpu' or 'cuda', got {self.device!r}")

        def ok(name: str) -> bool:
            return name not in bad_type

        for name in ("hidden", "layers", "latent", "batch_size", "epochs", "n_members", "n_elites", "step_chunk"):
            if ok(name) and getattr(self, name) < 1:
                out.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("agent_embed", "max_steps", "eval_every", "patience", "joint_hidden", "max_holdout_rows", "seed"):
            if ok(name) and getattr(self, name) < 0:
                out.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            if f.name.startswith("w_") and ok(f.name) and getattr(self, f.name) < 0:
                out.append(f"{f.name} must be >= 0, got {getattr(self, f.name)}")
        if ok("n_elites") and ok("n_members") and self.n_elites > self.n_members:
            out.append(f"n_elites ({self.n_elites}) must be <= n_members ({self.n_members})")
        if ok("holdout_fraction") and not 0.0 < self.holdout_fraction < 1.0:
            out.append(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if ok("lr") and self.lr <= 0:
            out.append(f"lr must be > 0, got {self.lr}")
        for name in ("clip_margin", "reward_penalty", "grad_clip", "weight_decay", "min_improvement"):
            if ok(name) and getattr(self, name) < 0:
                out.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if ok("nll_beta") and not 0.0 <= self.nll_beta <= 1.0:
            out.append(f"nll_beta must be in [0, 1], got {self.nll_beta}")
        if ok("outcome_dropout") and not 0.0 <= self.outcome_dropout < 1.0:
            out.append(f"outcome_dropout must be in [0, 1), got {self.outcome_dropout}")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in get_args(choices):
                out.append(f"{name} must be one of {list(get_args(choices))}, got {getattr(self, name)!r}")
        return out

    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid WorldModelConfig:\n  - " + "\n  - ".join(problems))
