"""The 2-process job the distributed tests launch with torchrun (gloo, CPU): fit + sharded draws.

Run as ``torchrun --standalone --nproc-per-node 2 tests/distributed/_job.py OUT``. OUT holds
``train.h5``/``holdout.h5`` (written by the test); each rank writes ``rank{r}.pt`` there:
the fitted weights, history and normalisers, and its sharded-sampler draw counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

# The sampler test's shards: different sizes and totals, a few zero weights (never drawn).
SHARD_WEIGHTS = {0: [1.0, 0.0, 2.5, 0.3, 4.0, 1.2], 1: [3.0, 0.5, 0.0, 6.0, 2.0, 0.1, 1.0, 5.0, 0.7]}
DRAWS, BATCH = 40, 1250


def fit_config():
    from logo_fast.model import WorldModelConfig

    # global batch 48 = all 48 training transitions: every step is the full batch in one process and
    # the two 24-row shards under DDP, so the two runs must agree up to float summation order
    return WorldModelConfig(hidden=16, latent=8, agent_embed=4, layers=1, batch_size=48, max_steps=6, eval_every=2,
                            patience=0, seed=3)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    from logo_fast.data import load
    from logo_fast.distributed import ShardedWeightedSampler, fit_distributed, init_distributed
    from logo_fast.model import LogoWorldModel

    ctx = init_distributed(backend="gloo", timeout_s=60)
    assert ctx.world_size == 2, ctx
    train, holdout = load(out / "train.h5", lazy=True), load(out / "holdout.h5", lazy=True)
    model = LogoWorldModel(config=fit_config())
    fit_distributed(model, train, holdout=holdout, progress=False, checkpoint_path=str(out / "ckpt.pt"))

    # resume: 6 steps with checkpoints, then on to 10, against 10 steps in one go (batch 16: 8 rows per
    # rank per step from each rank's own permutations, so the restored minibatch order matters)
    small = fit_config().replace(batch_size=16, eval_every=3)
    part = LogoWorldModel(config=small.replace(max_steps=6))
    fit_distributed(part, train, holdout=holdout, progress=False, checkpoint_path=str(out / "part.pt"))
    whole = fit_distributed(LogoWorldModel(config=small.replace(max_steps=10)), train, holdout=holdout,
                            progress=False)
    resumed = fit_distributed(LogoWorldModel(config=small.replace(max_steps=10)), train, holdout=holdout,
                              progress=False, resume_from=str(out / "part.pt"))

    # bad input on one rank only (a NaN in rank 1's episodes) and bad arguments: every rank raises
    # the same ValueError, none waits in a collective
    errors = {}
    bad = load(out / "train.h5")
    bad.obs[40, 0, 0] = float("nan")  # step 40 lies in episode 6, in rank 1's episodes [4, 8)
    for name, (cfg, ds) in {"nan": (fit_config(), bad), "batch": (fit_config().replace(batch_size=15), train)}.items():
        try:
            fit_distributed(LogoWorldModel(config=cfg), ds, holdout=holdout, progress=False)
        except ValueError as e:
            errors[name] = str(e)

    # a non-finite training loss on rank 1 only, at its 4th training step: with no per-step loss
    # collective, both ranks must still stop at that step (their averaged gradients are non-finite
    # alike), before the optimiser moves any weight, instead of one waiting for the other
    from logo_fast.model.networks.logo import LogoNet

    original, calls = LogoNet.losses, {"n": 0}

    def poisoned(self, batch):
        loss, parts = original(self, batch)
        if self.training:
            calls["n"] += 1
            if ctx.rank == 1 and calls["n"] == 4:
                loss = loss * float("nan")
        return loss, parts

    LogoNet.losses = poisoned
    nan_model = LogoWorldModel(config=fit_config())
    try:
        fit_distributed(nan_model, train, holdout=holdout, progress=False)
    except FloatingPointError as e:
        errors["nan_loss"] = str(e)
    finally:
        LogoNet.losses = original
    nan_weights_finite = all(bool(torch.isfinite(v).all()) for v in nan_model.net.state_dict().values()
                             if v.is_floating_point())

    sampler = ShardedWeightedSampler(capacity=16, seed=11)
    sampler.extend(torch.tensor(SHARD_WEIGHTS[ctx.rank], dtype=torch.float64))
    slot_counts = torch.zeros(16, dtype=torch.int64)
    splits, probs = [], []
    for _ in range(DRAWS):
        d = sampler.sample(BATCH)
        slot_counts += torch.bincount(d.indices, minlength=16)
        splits.append(d.counts)
        probs.append(torch.stack([d.indices.double(), d.probabilities], 1))
    torch.save({"state_dict": model.net.state_dict(), "history": model.train_state.history,
                "statistics": model.net.statistics(), "slot_counts": slot_counts, "splits": torch.stack(splits),
                "probs": torch.cat(probs), "whole": whole.net.state_dict(), "resumed": resumed.net.state_dict(),
                "whole_history": whole.train_state.history, "resumed_history": resumed.train_state.history,
                "errors": errors, "nan_weights_finite": nan_weights_finite},
               out / f"rank{ctx.rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
