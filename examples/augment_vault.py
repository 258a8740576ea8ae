"""Augment an OG-MARL vault with LOGO rollouts and write a vault any flashbax/OG-MARL codebase can train on.

    python examples/augment_vault.py --vault vaults/smac_v1/3m.vlt --uid Good --out vaults/smac_v1/3m_logo.vlt
    python examples/augment_vault.py          # no vault given: writes a small toy one first, then augments it

1. read the vault (OG-MARL layout: ``<rel_dir>/<vault_name>/<vault_uid>``; tensorstore, no JAX);
2. fit the LOGO world model on it;
3. roll it out from dataset states (here under a uniformly random policy over the available
   actions or the action box: put your own policy in ``random_policy``'s place);
4. ``export_augmented(..., format="vault")``: real steps first, unchanged, then one single-step
   episode per synthetic transition, with ``infos.u`` (uncertainty) and ``infos.synthetic``;
5. print what it wrote and, when flashbax is installed, what flashbax's own ``Vault.read()`` sees.

OG-MARL vaults store no observation after an episode's last step, so that step has no known
next step; the export drops it and ends the episode one step earlier, truncated
(``missing_final="trim"``, see ``logo_fast.data.formats.export``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from logo_fast.data import export_augmented, load, make_toy_dataset
from logo_fast.data.formats.vault import find_vault_dir, write_vault
from logo_fast.model import LogoWorldModel, WorldModelConfig


@dataclass
class AugmentArgs:
    """Fit LOGO on an OG-MARL vault and write the vault augmented with its synthetic rollouts."""

    vault: str = ""
    """the OG-MARL vault to augment (``<rel_dir>/<vault_name>``, or its uid directory); empty: write a toy one"""
    uid: str | None = None
    """the vault uid (quality) to read, e.g. Good; needed when the vault holds several"""
    out: str = "runs/augment_vault/vaults/augmented.vlt"
    """where the augmented vault goes (``<rel_dir>/<vault_name>``; the data lands in ``<out>/<out_uid>``)"""
    out_uid: str = "Augmented"
    """uid of the augmented vault"""
    toy_episodes: int = 60
    """episodes of the toy vault written when no vault is given"""
    starts: int = 512
    """rollouts branched from dataset states drawn uniformly"""
    horizon: int = 15
    """rollout length (the paper's best)"""
    u_threshold: float | None = None
    """drop transitions (and stop their rollout) once the uncertainty u exceeds this"""
    hidden: int = 128
    """LOGO's hidden width"""
    latent: int = 64
    """LOGO's per-agent latent size"""
    epochs: int = 100
    """training epochs (early stopping on held-out episodes usually stops sooner)"""
    max_steps: int = 3000
    """cap on optimiser steps"""
    seed: int = 0
    """seeds the toy data, training, the start states and the policy"""
    verify_with_flashbax: bool = True
    """read the written vault back with flashbax's own Vault (skipped with a note when it is not installed)"""


def toy_vault(path: Path, episodes: int, seed: int) -> Path:
    """Write a small toy dataset as an OG-MARL-layout vault, without the final observations OG-MARL lacks."""
    ds = make_toy_dataset(n_agents=3, n_episodes=episodes, episode_len=25, seed=seed)
    ds = dataclasses.replace(ds, final_obs=None, final_state=None, final_avail=None)
    return write_vault(ds, path, vault_uid="Good")


def random_policy(spec, action_low, action_high, generator: torch.Generator):
    """A stand-in behaviour policy: uniform over the available actions, or uniform in the action box."""

    def act(obs: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        if spec.discrete:
            scores = torch.rand(avail.shape, generator=generator) * avail.cpu()
            return scores.argmax(-1)
        u = torch.rand((obs.shape[0], spec.n_agents, spec.act_dim), generator=generator)
        return (action_low + u * (action_high - action_low)) * torch.as_tensor(spec.act_mask())

    return act


def flashbax_view(uid_dir: Path) -> str:
    """What flashbax's own reader sees in ``uid_dir``, one leaf per line, or why it was not run."""
    try:
        from flashbax.vault import Vault
    except ImportError:
        return "flashbax is not installed (pip install flashbax): skipped reading the vault with it"
    import jax

    vault = Vault(vault_name=uid_dir.parent.name, rel_dir=str(uid_dir.parent.parent.resolve()), vault_uid=uid_dir.name)
    exp = vault.read().experience
    lines = [f"flashbax Vault.read(): {vault.vault_index} steps"]
    for path, leaf in jax.tree_util.tree_leaves_with_path(exp):
        name = ".".join(str(getattr(p, "key", p)) for p in path)
        lines.append(f"  {name:<20} {tuple(leaf.shape)} {leaf.dtype}")
    return "\n".join(lines)


def main(args: AugmentArgs) -> dict:
    torch.manual_seed(args.seed)
    if args.vault:
        source = Path(args.vault)
    else:
        source = toy_vault(Path(args.out).parent / "toy.vlt", args.toy_episodes, args.seed).parent
        print(f"no --vault given: wrote a toy OG-MARL-layout vault to {source}")
    real = load(find_vault_dir(source, args.uid))
    print(f"read {source}: {len(real)} steps, {real.n_episodes} episodes, {real.spec.n_agents} agents, "
          f"{real.spec.action_type} actions, final observations stored: {real.final_obs is not None}")

    config = WorldModelConfig(hidden=args.hidden, latent=args.latent, epochs=args.epochs, max_steps=args.max_steps,
                              seed=args.seed)
    model = LogoWorldModel(config=config).fit(real, progress=False)
    gen = torch.Generator().manual_seed(args.seed)
    low = high = None
    if not real.spec.discrete:
        low, high = torch.as_tensor(real.action_low), torch.as_tensor(real.action_high)
    syn = model.rollout(random_policy(real.spec, low, high, gen), starts=args.starts, horizon=args.horizon,
                        u_threshold=args.u_threshold, generator=gen)
    K = len(syn["u"])
    print(f"rolled out {K} synthetic transitions from {args.starts} starts (horizon {args.horizon}), "
          f"mean u = {float(syn['u'].mean()):.4f}")

    missing_final = "error" if real.final_obs is not None and real.final_state is not None else "trim"
    uid_dir = export_augmented(real, syn, args.out, format="vault", vault_uid=args.out_uid,
                               missing_final=missing_final)
    meta = json.loads((uid_dir / "metadata.json").read_text())
    aug = meta["logo_fast"]["metadata"]["augmented"]
    trimmed = aug.get("real_trimmed_to_final")
    print(f"wrote {uid_dir}: {aug['n_real_steps']} real steps ({aug['n_real_episodes']} episodes) "
          f"+ {aug['n_synthetic']} synthetic transitions")
    if trimmed:
        print(f"  real episodes' last steps had no next observation: dropped {trimmed['dropped_steps']} steps "
              f"({trimmed['dropped_terminal_steps']} terminal, {trimmed['dropped_episodes']} one-step episodes)")

    def leaves(tree, prefix=""):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [(prefix + k, v)]

    dtypes = dict(leaves(meta["structure_dtype"]))
    for name, shape in leaves(meta["structure_shape"]):
        print(f"  {name:<20} {shape} {dtypes[name]}")
    print(f"read it with flashbax: Vault(vault_name={uid_dir.parent.name!r}, rel_dir={str(uid_dir.parent.parent)!r}, "
          f"vault_uid={uid_dir.name!r}).read()")
    if args.verify_with_flashbax:
        print(flashbax_view(uid_dir))
    return {"vault": str(uid_dir), "real_steps": aug["n_real_steps"], "synthetic": K,
            "mean_u": float(np.mean(syn["u"].cpu().numpy()))}


if __name__ == "__main__":
    main(tyro.cli(AugmentArgs))
