"""Readers and writers for peers' dataset layouts, one format per module.

- ``omiga``:  OMIGA-style HDF5 (datasets ``s``, ``o``, ``a``, ``r``, ``d``)
- ``vault``:  OG-MARL / flashbax Vault directories (zarr over a tensorstore OCDBT store)
- ``omar``:   OMAR-style per-agent numpy files
- ``export``: ``export_augmented``: real + synthetic transitions as native HDF5 or a vault

``logo_fast.data.load`` picks the reader from ``READERS``; import a module directly for its
options. Optional dependencies (tensorstore) are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable

from ..schema import OfflineDataset
from .omar import is_omar, read_omar
from .omiga import is_omiga, read_omiga
from .vault import is_vault, read_vault

# Peer-format readers by the format name ``load(format=...)`` takes; ``logo_fast.data.io`` adds
# the native "hdf5" and "npz" readers. ``export`` is not imported here: it writes through io.
READERS: dict[str, Callable[..., OfflineDataset]] = {
    "omiga": read_omiga,
    "vault": read_vault,
    "omar": read_omar,
}

__all__ = ["READERS", "is_omar", "is_omiga", "is_vault", "read_omar", "read_omiga", "read_vault"]
