"""Replay buffers: LOGO's uncertainty-weighted mix of real and synthetic transitions."""

from .uncertainty_weighted import OPTIONAL_FIELDS, REQUIRED_FIELDS, UncertaintyWeightedReplay

__all__ = ["UncertaintyWeightedReplay", "REQUIRED_FIELDS", "OPTIONAL_FIELDS"]
