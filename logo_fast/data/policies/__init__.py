"""Behaviour policies for the dataset collector (see ``base`` for the interface).

mpe_heuristic   scripted MPE policies (simple_spread, simple_tag, simple_reference)
smax_heuristic  jaxmarl's SMAX micromanagement heuristic driving the allies
td3             a compact online TD3 trainer whose checkpoints and replay define MaMuJoCo qualities

Modules import their simulators and torch lazily, so importing this package is cheap.
"""
