"""The native file layout: names, version, and parsing the spec/metadata header with clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..schema import DatasetSpec

FORMAT_NAME = "logo_fast.dataset"
FORMAT_VERSION = 1
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
REQUIRED_ARRAYS = ("obs", "state", "actions", "rewards", "terminals", "truncations")
STEP_ARRAYS = (*REQUIRED_ARRAYS, "avail_actions", "agent_rewards")
FINAL_ARRAYS = ("final_obs", "final_state", "final_avail")
STATIC_ARRAYS = ("action_low", "action_high")
FORMATS = ("hdf5", "npz", "omiga", "vault", "omar")


def spec_to_json(spec: DatasetSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


def check_version(version: Any, path: Path) -> None:
    try:
        ok = version is not None and int(version) <= FORMAT_VERSION
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"load: {path} has format_version {version!r}; this logo_fast reads versions <= {FORMAT_VERSION}"
        )


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def parse_header(spec_text: Any, metadata_text: Any, path: Path) -> tuple[DatasetSpec, dict[str, Any]]:
    """DatasetSpec and metadata dict from the stored JSON; one ValueError naming the file and the field."""
    problems = []
    spec = metadata = None
    for name, text in (("spec", spec_text), ("metadata", metadata_text)):
        if text is None:
            problems.append(f"attribute {name!r} is missing")
            continue
        try:
            value = json.loads(_text(text))
        except (TypeError, ValueError) as err:
            problems.append(f"attribute {name!r} is not valid JSON ({err})")
            continue
        if not isinstance(value, dict):
            problems.append(f"attribute {name!r} must be a JSON object, got {type(value).__name__}")
            continue
        if name == "metadata":
            metadata = value
            continue
        try:
            spec = DatasetSpec.from_dict(value)
        except (TypeError, ValueError, KeyError) as err:
            problems.append(f"attribute 'spec' is not a valid dataset spec ({err})")
    if problems:
        raise ValueError(f"load: {path}: " + "; ".join(problems))
    return spec, metadata
