"""Shared by the dataclasses that travel through `custom_config` as JSON."""

from __future__ import annotations

import dataclasses
from typing import Any


def reject_unknown_keys(cls: type, config: dict[str, Any], what: str) -> None:
    """Raises ValueError naming every key of `config` that is not a field of dataclass `cls`."""
    unknown = sorted(set(config) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)}")
