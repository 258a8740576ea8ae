"""Offline multi-agent datasets: schema, validation, file formats, environments, collector."""

from .collect import collect
from .envs import list_envs, make_env
from .formats.export import export_augmented, read_augmented
from .io import HDF5Writer, load, load_extras, materialize, save
from .schema import DatasetSpec, OfflineDataset
from .toy import make_toy_dataset
from .validate import validate_dataset

__all__ = [
    "DatasetSpec",
    "collect",
    "list_envs",
    "make_env",
    "HDF5Writer",
    "OfflineDataset",
    "export_augmented",
    "load",
    "load_extras",
    "make_toy_dataset",
    "materialize",
    "read_augmented",
    "save",
    "validate_dataset",
]
