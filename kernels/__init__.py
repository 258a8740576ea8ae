"""Triton kernels, shipped inside the package as ``logo_fast.kernels`` (one op per module).

Importing this package does not import Triton; each kernel module does, and is only imported
when its op runs on the Triton backend. Every module defines ``aot_specs()``: configurations that
CI compiles for an H100 target with no GPU, checking register and shared-memory use.
"""

KERNEL_MODULES = ("state_disagreement", "logo_step", "local_predict", "global_aggregate")
