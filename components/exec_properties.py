"""Reading execution properties in the custom executors."""

from __future__ import annotations

from typing import Any


def int_property(exec_properties: dict[str, Any], key: str, default: int) -> int:
    """`exec_properties[key]` as an int, or `default` when it is absent or None."""
    value = exec_properties.get(key)
    return default if value is None else int(value)
