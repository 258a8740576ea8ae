"""Readers and writers for peers' dataset layouts, one format per module.

- ``omiga``:  OMIGA-style HDF5 (datasets ``s``, ``o``, ``a``, ``r``, ``d``)
- ``vault``:  OG-MARL / flashbax Vault directories (zarr over a tensorstore OCDBT store)
- ``omar``:   OMAR-style per-agent numpy files
- ``export``: ``export_augmented``: real + synthetic transitions as native HDF5 or a vault

``logo_fast.data.load`` picks the reader; import a module directly for its options. Heavy
dependencies (tensorstore) are imported inside the functions that need them.
"""
