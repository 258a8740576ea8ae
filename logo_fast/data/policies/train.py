"""``logo-fast data behaviour``: train (or resume) a behaviour policy and export it to the zoo.

Dataset qualities are defined by trained behaviour policies, as CFCQL and OMIGA define them:
expert = the best checkpoint of a training run, medium = the checkpoint closest to half the
expert's return, medium-replay = what the run collected up to the medium checkpoint. The
training runs are heavy (tens of minutes on 2 CPU cores), so they are resumable: every
checkpoint writes a resume file into ``work_dir`` (atomically), and running the same command
again goes on from it. The small exported policies (``zoo.py``) ship with the package, so
``logo-fast collect`` on a fresh machine needs no training.

  MaMuJoCo: TD3 on the joint action from the global state (``td3.py``).
  SMAX:     MAPPO with parameter sharing on jaxmarl's vmapped SMAX (``ppo_smax.py``); ``--actor gru``
            for a recurrent actor (JaxMARL's / the MAPPO paper's recipe on the harder maps).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from ..envs.registry import parse_env_id


@dataclass
class BehaviourArgs:
    """Train (or resume) the behaviour policy of one scenario and export it to the policy zoo."""

    env: str = "mamujoco:Hopper-3x1"
    """Scenario id: mamujoco:<robot>-<split> or smax:<map>."""
    steps: int = 200_000
    """Environment-step budget of the whole run (across resumes). SMAX counts steps of all parallel envs."""
    minutes: float | None = None
    """Stop this call after so many minutes (the run stays resumable); None: run to the step budget."""
    seed: int = 0
    """Seed of the training run."""
    work_dir: str = "~/.cache/logo_fast/behaviour"
    """Where resume files live (one sub-directory per scenario, seed and, for a GRU run, actor)."""
    zoo_dir: str | None = None
    """Export directory (default: the package's own policy zoo, logo_fast/data/policies/zoo)."""
    threads: int = 1
    """CPU threads for torch / XLA (1: the machine is shared)."""
    export_only: bool = False
    """Do not train: export the zoo entry from the resume file as it is."""
    progress: bool = True
    """Show progress (a bar in a terminal, a periodic line in a pipe)."""
    actor: Literal["mlp", "gru"] = "mlp"
    """SMAX only: the MAPPO actor, an MLP or a GRU (recurrent: JaxMARL's / the MAPPO paper's recipe for 5m_vs_6m)."""
    lr: float | None = None
    """SMAX only: MAPPO's Adam learning rate (None: PPOConfig's, 5e-4; JaxMARL's SMAX sweep uses 2e-3)."""
    ent_coef: float | None = None
    """SMAX only: MAPPO's entropy bonus (None: PPOConfig's, 0.01; JaxMARL's SMAX sweep uses 0)."""
    max_grad_norm: float | None = None
    """SMAX only: MAPPO's global gradient-norm clip (None: PPOConfig's, 0.5; JaxMARL's uses 0.25)."""
    anneal_lr: bool = False
    """SMAX only: decay the learning rate linearly to 0 over the run's --steps (as JaxMARL's SMAX runs do). The
    schedule is part of the run's config, so an annealed run resumes only with the same --steps."""

    # Not a flag: the fields that override the PPOConfig field of the same name when set (not None).
    PPO_FLAGS: ClassVar[tuple[str, ...]] = ("lr", "ent_coef", "max_grad_norm")


def ppo_overrides(args: BehaviourArgs) -> list[tuple[str, str]]:
    """The MAPPO settings ``args`` changes from PPOConfig's defaults, as (flag, value) pairs in a fixed order."""
    out = [(f, repr(v)) for f in args.PPO_FLAGS if (v := getattr(args, f)) is not None]
    if args.anneal_lr:
        out.append(("anneal_lr", ""))
    return out


def run_dir(args: BehaviourArgs) -> Path:
    """The run's resume directory; a GRU run, or one with other MAPPO settings, has its own, next to the
    same scenario's default run (e.g. ``smax_5m_vs_6m_gru_lr0.002_anneal_lr_seed0``)."""
    actor = "" if args.actor == "mlp" else f"_{args.actor}"
    settings = "".join(f"_{flag}{value}" for flag, value in ppo_overrides(args))
    return Path(args.work_dir).expanduser() / f"{args.env.replace(':', '_')}{actor}{settings}_seed{args.seed}"


def run_behaviour(args: BehaviourArgs) -> int:
    family, _ = parse_env_id(args.env)
    if args.steps < 1:
        raise ValueError(f"steps must be >= 1, got {args.steps}")
    if args.minutes is not None and not args.minutes > 0:
        raise ValueError(f"minutes must be > 0, got {args.minutes}")
    if args.actor != "mlp" and family != "smax":
        raise ValueError(f"--actor {args.actor}: only SMAX's MAPPO has a choice of actor ({args.env} is {family})")
    overrides = ppo_overrides(args)
    if overrides and family != "smax":
        flags = ", ".join(f"--{flag.replace('_', '-')}" for flag, _ in overrides)
        raise ValueError(f"{flags}: MAPPO settings apply to SMAX only ({args.env} is {family})")
    for name in ("lr", "max_grad_norm"):
        if (v := getattr(args, name)) is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}")
    if args.ent_coef is not None and not (math.isfinite(args.ent_coef) and args.ent_coef >= 0):
        raise ValueError(f"--ent-coef must be a finite number >= 0, got {args.ent_coef}")
    # What reproduces the run (the budget, seed and actor; where files go does not change the result).
    command = f"logo-fast data behaviour --env {shlex.quote(args.env)} --steps {args.steps} --seed {args.seed}"
    if args.actor != "mlp":  # the default stays out, so the MLP runs' commands read as before
        command += f" --actor {args.actor}"
    for flag, value in overrides:
        command += f" --{flag.replace('_', '-')}" + (f" {value}" if value else "")
    if family == "mamujoco":
        from .td3_run import train_and_export  # late: torch

        return train_and_export(args, run_dir(args), command)
    if family == "smax":
        from .ppo_smax import train_and_export  # late: jax

        return train_and_export(args, run_dir(args), command)
    raise ValueError(
        f"{args.env}: behaviour policies are trained for mamujoco and smax scenarios (MPE uses a scripted one)"
    )
