"""Native dataset files (HDF5, npz) and the one ``load``/``save`` entry point for every format.

One module per job:

- ``layout``:   file names, format version, header parsing
- ``hdf5``:     the native HDF5 layout (chunking, compression), whole-dataset writer and reader
- ``npz``:      the native npz layout
- ``writer``:   ``HDF5Writer``, the streaming writer the collector uses
- ``lazy``:     what works on lazily loaded (h5py-backed) datasets; ``materialize``
- ``dispatch``: ``save``, ``load`` (format detection, the ``READERS`` table of the peer formats), ``load_extras``

Every array keeps its dtype, so ``save`` then ``load`` round-trips exactly. Metadata must be
JSON-serialisable: numpy scalars and arrays are stored as numbers and lists, tuples come back
as lists. Writes are atomic (``logo_fast.files``): data goes to a temp file in the destination
directory and is moved over ``path`` with ``os.replace`` only once complete; on any error the
temp file is removed and an existing file at ``path`` is left untouched.
"""

from ...files import atomic_dir, atomic_path, json_default, metadata_to_json
from .dispatch import detect_format, load, load_extras, save
from .layout import (
    FINAL_ARRAYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    FORMATS,
    HDF5_SUFFIXES,
    STATIC_ARRAYS,
    STEP_ARRAYS,
    spec_to_json,
)
from .lazy import materialize
from .writer import HDF5Writer

__all__ = [
    "FINAL_ARRAYS",
    "FORMATS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HDF5_SUFFIXES",
    "HDF5Writer",
    "STATIC_ARRAYS",
    "STEP_ARRAYS",
    "atomic_dir",
    "atomic_path",
    "detect_format",
    "json_default",
    "load",
    "load_extras",
    "materialize",
    "metadata_to_json",
    "save",
    "spec_to_json",
]
