"""A resumable TD3 run for ``logo-fast data behaviour`` on MaMuJoCo, exported to the policy zoo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..envs.registry import make_env
from .td3 import TD3Config, TD3Trainer
from .zoo import choose_checkpoints, export_entry, save_resume

if TYPE_CHECKING:  # the CLI module imports this one late; no import circle
    from .train import BehaviourArgs

EVAL_EVERY = 5_000
EVAL_EPISODES = 5


def _export(trainer: TD3Trainer, args: BehaviourArgs, command: str) -> Path:
    ck = trainer.checkpoints
    chosen = choose_checkpoints([c["eval_return"] for c in ck], [c["env_step"] for c in ck], trainer.cfg.start_steps)
    shipped = sorted({chosen["expert"], chosen["medium"], *chosen["replay"]})
    card = {
        "env": args.env,
        "seed": args.seed,
        "trainer": "td3 (joint action from the global state; logo_fast.data.policies.td3)",
        "command": command,
        "budget": {
            "env_steps": trainer.t,
            "gradient_updates": trainer.updates,
            "train_wall_s": round(trainer.wall_s, 1),
        },
        "config": trainer.result().config,
        "score": "mean undiscounted return of deterministic evaluation episodes",
        "random_return": trainer.random_return,
        "random_warmup_steps": trainer.cfg.start_steps,
        "checkpoints": ck,
        **chosen,
        "shipped": shipped,
    }
    weights = {i: {k: v.numpy() for k, v in trainer.actor_states[i].items()} for i in shipped}
    return export_entry(args.env, args.seed, card, weights, Path(args.zoo_dir) if args.zoo_dir else None)


def train_and_export(args: BehaviourArgs, work: Path, command: str) -> int:
    cfg = TD3Config(max_env_steps=args.steps, eval_every=EVAL_EVERY, eval_episodes=EVAL_EPISODES, threads=args.threads)
    trainer = TD3Trainer(lambda tl: make_env(args.env, batch_size=1, time_limit=tl), cfg, args.seed, record=False)
    resume = work / "resume.pt"
    try:
        if resume.exists():
            trainer.load_state_dict(torch.load(resume, weights_only=False))
            print(f"resumed {args.env} at env step {trainer.t} ({len(trainer.checkpoints)} checkpoints)", flush=True)
        if not args.export_only and not trainer.done and trainer.t < args.steps:

            def on_checkpoint(tr: TD3Trainer) -> None:
                save_resume(tr.state_dict(), resume, torch.save)
                _export(tr, args, command)

            trainer.run(args.steps, None if args.minutes is None else args.minutes * 60.0, args.progress, on_checkpoint)
        if not trainer.checkpoints:
            raise ValueError(f"{resume}: no checkpoint to export yet")
        path = _export(trainer, args, command)
    finally:
        trainer.close()
    ck = trainer.checkpoints
    best = max(c["eval_return"] for c in ck)
    print(
        f"{args.env}: {trainer.t} env steps, {trainer.updates} updates, {trainer.wall_s / 60:.1f} min; "
        f"random {trainer.random_return:.1f}, best checkpoint {best:.1f}; exported {path}",
        flush=True,
    )
    return 0
