"""Widths of the baselines that match LOGO's parameter count (the comparisons' equal budget)."""

from __future__ import annotations

import torch

from ...data.schema import DatasetSpec
from ..config import WorldModelConfig
from .ensemble import EnsembleNet
from .joint import JointNet
from .layers import count_parameters
from .logo import LogoNet


def matched_hidden(spec: DatasetSpec, cfg: WorldModelConfig, kind: str = "joint") -> int:
    """The width whose parameter count is closest to LOGO's for ``spec`` and ``cfg``.

    kind: "joint" (the whole joint MLP) or "member" (one ensemble member, whose Gaussian head
    is wider). Networks are built on the meta device, so this costs no memory.
    """
    one_member = cfg.replace(n_members=1, n_elites=1)
    with torch.device("meta"):
        target = count_parameters(LogoNet(spec, cfg))

        def size(h: int) -> int:
            net = JointNet(spec, cfg, h) if kind == "joint" else EnsembleNet(spec, one_member, h)
            return count_parameters(net)

        lo, hi = 1, 8
        while size(hi) < target and hi < 1 << 16:
            lo, hi = hi, hi * 2
        while lo < hi:  # smallest width reaching the target
            mid = (lo + hi) // 2
            if size(mid) < target:
                lo = mid + 1
            else:
                hi = mid
        return min((lo, max(1, lo - 1)), key=lambda h: abs(size(h) - target))
