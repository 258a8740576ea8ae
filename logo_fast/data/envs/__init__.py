"""Environment adapters (MPE, Multi-Agent MuJoCo, SMAX) behind one batched interface.

Simulators are imported lazily, inside the adapters, so importing this package is cheap.
"""

from .base import EnvAdapter, EnvInfo
from .registry import list_envs, make_env, parse_env_id

__all__ = ["EnvAdapter", "EnvInfo", "list_envs", "make_env", "parse_env_id"]
