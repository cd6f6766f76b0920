"""The image ExampleGen's own settings, carried in ExampleGen's `custom_config`.

Light to import (no TensorFlow, no TFX components): the driver, the executor and the pipeline's
configuration all read it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen.inspect import DEFAULT_MAX_PIXELS
from components.image_example_gen.report import DEFAULT_MAX_QUARANTINED_FRACTION

WINDOW_KEY = "window"


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    """Limits on what is ingested: the pixel limit and the share of files that may be bad."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_quarantined_fraction: float = DEFAULT_MAX_QUARANTINED_FRACTION

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, got {self.max_pixels}")
        if not 0.0 <= self.max_quarantined_fraction <= 1.0:
            raise ValueError("max_quarantined_fraction must be in [0, 1], got "
                             f"{self.max_quarantined_fraction}")

    def to_proto(self, window: int = 1) -> example_gen_pb2.CustomConfig:
        """As ExampleGen's `custom_config` (a Struct packed in an Any), with the span window."""
        struct = struct_pb2.Struct()
        struct.update({**dataclasses.asdict(self), WINDOW_KEY: window})
        config = example_gen_pb2.CustomConfig()
        config.custom_config.Pack(struct)
        return config

    @classmethod
    def from_exec_properties(cls, exec_properties: dict[str, Any]) -> IngestSettings:
        """Reads `custom_config` back (defaults when unset)."""
        values = _custom_values(exec_properties)
        return cls(max_pixels=int(values.get("max_pixels", DEFAULT_MAX_PIXELS)),
                   max_quarantined_fraction=float(values.get(
                       "max_quarantined_fraction", DEFAULT_MAX_QUARANTINED_FRACTION)))


def window_from_exec_properties(exec_properties: dict[str, Any]) -> int:
    """How many span folders a run reads, ending at the resolved span (1 when unset)."""
    window = int(_custom_values(exec_properties).get(WINDOW_KEY, 1))
    if window < 1:
        raise ValueError(f"the span window must be at least 1, got {window}")
    return window


def _custom_values(exec_properties: dict[str, Any]) -> dict[str, Any]:
    value = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not value:
        return {}
    config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(value, config)
    struct = struct_pb2.Struct()
    if not config.custom_config.Unpack(struct):
        raise ValueError(f"image ExampleGen's custom_config is not a Struct: {value}")
    return json_format.MessageToDict(struct)
