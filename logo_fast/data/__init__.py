"""Offline multi-agent datasets: schema, validation, file formats, environments, collector."""

from .schema import DatasetSpec, OfflineDataset
from .toy import make_toy_dataset

__all__ = ["DatasetSpec", "OfflineDataset", "make_toy_dataset"]
