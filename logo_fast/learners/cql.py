"""The CQL gap over the rows a batch's ``cql_rows`` names (real / synthetic split), shared by both MACQL learners."""

from __future__ import annotations

from typing import Literal

import torch

CQLRows = Literal["real", "all", "combo"]


def _mean_over(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the rows ``rows`` selects; a batch without any contributes 0 (with a gradient path)."""
    return x[rows].mean() if bool(rows.any()) else x.sum() * 0.0


def cql_gap(push_down: torch.Tensor, q_data: torch.Tensor, source: torch.Tensor | None,
            rows: CQLRows) -> torch.Tensor:
    """mean(push_down) - mean(q_data), each over the rows ``rows`` names.

    push_down / q_data: (B, ...) the soft maximum of Q over sampled or available actions and Q at
    the data actions (per agent or per row); source: (B,) 0 real, 1 synthetic (None: all real).
    "all": every row for both; "real": real rows only for both; "combo" (COMBO, Yu et al. 2021):
    push down at every row's state, synthetic ones included, push up at real rows only.
    """
    if source is None or rows == "all":
        return (push_down - q_data).mean()
    real = source == 0
    down = push_down.mean() if rows == "combo" else _mean_over(push_down, real)
    return down - _mean_over(q_data, real)
