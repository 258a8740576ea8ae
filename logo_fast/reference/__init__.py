"""Pure-PyTorch reference of every op: the source of truth and the CPU fallback."""
