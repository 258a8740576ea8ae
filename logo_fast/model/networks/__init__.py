"""The networks of the three world models, one module per job.

    layers.py    GroupLinear / GroupMLP (agents or ensemble members as weight groups), soft_clamp
    losses.py    per-row losses and the normalised error model selection follows
    world.py     WorldNet: normalisers, targets, clipping, outcome losses, selection (shared)
    logo.py      LogoNet: LOGO (its forward pass is logo_fast.reference.logo_step)
    joint.py     JointNet: the centralised MLP baseline
    ensemble.py  EnsembleNet: the MOPO-style Gaussian ensemble
    sizing.py    matched_hidden: baseline widths at LOGO's parameter count
"""

from .ensemble import EnsembleNet
from .joint import JointNet
from .layers import GroupLinear, GroupMLP, count_parameters, soft_clamp
from .logo import LogoNet
from .losses import masked_mse, masked_nll, row_mse, scaled_error
from .sizing import matched_hidden
from .world import WorldNet

__all__ = ["EnsembleNet", "GroupLinear", "GroupMLP", "JointNet", "LogoNet", "WorldNet", "count_parameters",
           "masked_mse", "masked_nll", "matched_hidden", "row_mse", "scaled_error", "soft_clamp"]
