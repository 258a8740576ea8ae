"""Custom ops of logo_fast, declared with torch.library (one op per module).

Each op has a pure-PyTorch reference in logo_fast/reference, a fast path (Triton kernel in
logo_fast.kernels or the compiled extension), a fake/meta function for torch.compile, and a
test running ``torch.library.opcheck``. Backends are chosen by ``logo_fast.backend``.
"""

from .state_disagreement import state_disagreement
from .weighted_sample import prefix_blocks_build, prefix_blocks_sample, weighted_sample_op

__all__ = ["state_disagreement", "weighted_sample_op", "prefix_blocks_build", "prefix_blocks_sample"]
