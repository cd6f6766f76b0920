"""The TFLite part of a run's summary: TFLiteExport's comparison and what the Pusher pushed."""

from __future__ import annotations

import json
import os
from typing import Any

from components.serving_pusher import properties as pusher_props
from components.tflite_export import properties as tflite_props

SAVED_MODEL = "saved_model"


def comparison(tflite_models: list) -> dict[str, Any]:
    """TFLiteExport's comparison (accuracy, size, latency per format); {} without one."""
    for artifact in tflite_models:
        value = artifact.custom_properties.get(tflite_props.COMPARISON)
        if value is not None and value.string_value:
            return json.loads(value.string_value)
    return {}


def pushed_files(pushed_model: Any, pushed_path: str) -> dict[str, str]:
    """{format: file} of the TFLite models pushed inside the version at `pushed_path`."""
    value = pushed_model.custom_properties.get(pusher_props.PUSHED_TFLITE)
    if value is None or not value.string_value:
        return {}
    return {fmt: os.path.join(pushed_path, relative)
            for fmt, relative in json.loads(value.string_value).items()}


def formats(compared: dict[str, Any]) -> list[str]:
    """The TFLite formats in a comparison, in the order they were asked for."""
    return [key for key, value in compared.items()
            if isinstance(value, dict) and key != SAVED_MODEL]


def _figures(entry: dict[str, Any]) -> str:
    return (f"accuracy {entry['accuracy']:.3f}, {entry['size_bytes'] / 1e6:.1f} MB, "
            f"{entry['latency_ms']:.1f} ms per image")


def lines(compared: dict[str, Any], pushed: dict[str, str]) -> list[str]:
    """One line for the SavedModel's figures, one per TFLite format: pushed where, or why not."""
    if not compared:
        return []
    out = []
    if SAVED_MODEL in compared:
        out.append(f"TFLite check on {compared['eval_images']} eval images (tolerance "
                   f"{compared['tolerance_points']:g} point(s)): SavedModel "
                   f"{_figures(compared[SAVED_MODEL])}")
    for fmt in formats(compared):
        entry = compared[fmt]
        figures = _figures(entry) if "accuracy" in entry else ""
        if fmt in pushed:
            verdict = f"pushed: {pushed[fmt]}"
        elif entry.get("accepted"):
            verdict = "accepted, not pushed (the SavedModel was not pushed)"
        else:
            verdict = f"refused: {entry.get('reason', '')}"
        out.append(f"TFLite {fmt}: " + (f"{figures}; " if figures else "") + verdict)
    return out


TABLE_HEADER = ("model", "eval accuracy", "size (MB)", "latency per image (ms)", "verdict")


def table_rows(compared: dict[str, Any], pushed: dict[str, str]) -> list[tuple[str, ...]]:
    """The report's table: the SavedModel, then each TFLite format and its verdict."""
    if not compared:
        return []

    def row(name: str, entry: dict[str, Any], verdict: str) -> tuple[str, ...]:
        if "accuracy" not in entry:
            return (name, "-", "-", "-", verdict)
        return (name, f"{entry['accuracy']:.3f}", f"{entry['size_bytes'] / 1e6:.1f}",
                f"{entry['latency_ms']:.1f}", verdict)

    rows = [row("SavedModel", compared[SAVED_MODEL], "the reference")] \
        if SAVED_MODEL in compared else []
    for fmt in formats(compared):
        entry = compared[fmt]
        verdict = (f"pushed: {pushed[fmt]}" if fmt in pushed
                   else "accepted, not pushed" if entry.get("accepted")
                   else f"refused: {entry.get('reason', '')}")
        rows.append(row(f"TFLite {fmt}", entry, verdict))
    return rows
