"""The head's search space for `--tune`: what may vary, read from a small JSON file, checked.

Pure Python (no TensorFlow), so the CLI checks a space file before anything runs, and a compiled
pipeline carries the checked space in the Tuner's `custom_config`. A file holds any of:

    {"dense_units": [256, 512, 1024],      choices: one dense layer of that many units
     "dropout": [0.0, 0.5],                a range [low, high], uniform
     "learning_rate": [1e-5, 1e-2],        a range [low, high], log-uniform
     "pooling": ["flatten", "avg"],        choices
     "head_batch_size": [32, 64, 128, 256]} choices

A key left out keeps its default range; one value (`[512]`, `[0.2, 0.2]`) fixes it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any

from trainer.contract import POOLINGS

if TYPE_CHECKING:  # the space is read before TensorFlow loads (`imgpipe run` checks it first)
    from trainer.hparams import HParams

ALGORITHMS = ("random", "bayesian", "hyperband")
CHOICE_KEYS = ("dense_units", "pooling", "head_batch_size")
RANGE_KEYS = ("dropout", "learning_rate")
EXAMPLE = '{"dense_units": [256, 512], "dropout": [0.0, 0.5], "learning_rate": [1e-5, 1e-2]}'


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The values each trial draws from; the defaults cover the usual transfer-learning heads."""

    dense_units: tuple[int, ...] = (256, 512, 1024)
    dropout: tuple[float, float] = (0.0, 0.5)
    learning_rate: tuple[float, float] = (1e-5, 1e-2)
    pooling: tuple[str, ...] = POOLINGS
    head_batch_size: tuple[int, ...] = (32, 64, 128, 256)

    def __post_init__(self) -> None:
        for key in CHOICE_KEYS:
            values = getattr(self, key)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{key} must list one or more different values, got "
                                 f"{list(values)}")
        for key in ("dense_units", "head_batch_size"):
            bad = [v for v in getattr(self, key)
                   if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65536]
            if bad:
                raise ValueError(f"{key} must be whole numbers from 1 to 65536, got {bad}")
        unknown = [p for p in self.pooling if p not in POOLINGS]
        if unknown:
            raise ValueError(f"pooling must be among {', '.join(POOLINGS)}, got {unknown}")
        for key in RANGE_KEYS:
            pair = getattr(self, key)
            if len(pair) != 2 or not all(_is_number(v) for v in pair) or pair[0] > pair[1]:
                raise ValueError(f"{key} must be a range [low, high] of numbers with low <= "
                                 f"high, got {list(pair)}")
        if not (0.0 <= self.dropout[0] and self.dropout[1] < 1.0):
            raise ValueError(f"dropout must lie in [0, 1), got {list(self.dropout)}")
        if not (0.0 < self.learning_rate[0] and self.learning_rate[1] <= 1.0):
            raise ValueError(f"learning_rate must lie in (0, 1], got {list(self.learning_rate)}")

    def to_config(self) -> dict[str, Any]:
        """A JSON-friendly dict, as a space file would hold it."""
        return {key: list(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_config(cls, config: Any) -> SearchSpace:
        """A space from a parsed file; unknown keys and wrong shapes raise ValueError."""
        if not isinstance(config, dict):
            raise ValueError(f"must be a JSON object such as {EXAMPLE}")
        unknown = sorted(set(config) - set(CHOICE_KEYS) - set(RANGE_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; the keys are "
                             f"{', '.join(CHOICE_KEYS + RANGE_KEYS)}")
        values = {}
        for key, value in config.items():
            if not isinstance(value, list):
                raise ValueError(f"{key} must be a JSON list, got {json.dumps(value)}")
            if key in RANGE_KEYS and len(value) == 1:
                value = value * 2  # one value: the range of that value alone
            values[key] = tuple(value)
        return cls(**values)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_space(path: str) -> SearchSpace:
    """The space in the JSON file at `path`; ValueError says what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as error:
        raise ValueError(f"cannot be read ({error.strerror or error})") from None
    except ValueError as error:
        raise ValueError(f"is not JSON ({error}); e.g. {EXAMPLE}") from None
    return SearchSpace.from_config(config)


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """`--tune N`: N trials of `algorithm` over `space`, on the bottleneck cache (0: no Tuner)."""

    trials: int = 0
    algorithm: str = "random"
    space: SearchSpace = SearchSpace()

    def __post_init__(self) -> None:
        if not 0 <= self.trials <= 10_000:
            raise ValueError(f"trials must be in [0, 10000], got {self.trials}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got "
                             f"{self.algorithm!r}")

    def to_config(self) -> dict[str, Any]:
        """A JSON-friendly dict for the Tuner's `custom_config`."""
        return {"trials": self.trials, "algorithm": self.algorithm,
                "space": self.space.to_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TuneConfig:
        """The inverse of `to_config`."""
        return cls(trials=config["trials"], algorithm=config["algorithm"],
                   space=SearchSpace.from_config(config["space"]))


def apply_values(hp: HParams, values: dict[str, Any]) -> HParams:
    """`hp` with a trial's values (KerasTuner's names, as in `SearchSpace`) in their fields.

    The head batch size is the batch of the head's epochs: `cache_batch_size` with the bottleneck
    cache, else `batch_size` (the whole model trains in that batch). Other keys are ignored
    (KerasTuner's own, such as Hyperband's `tuner/epochs`).
    """
    changes: dict[str, Any] = {}
    if "dense_units" in values:
        changes["dense_units"] = (int(values["dense_units"]),)
    if "dropout" in values:
        changes["dropout_rate"] = float(values["dropout"])
    if "learning_rate" in values:
        changes["learning_rate"] = float(values["learning_rate"])
    if "pooling" in values:
        changes["pooling"] = str(values["pooling"])
    if "head_batch_size" in values:
        key = "cache_batch_size" if hp.bottleneck_cache else "batch_size"
        changes[key] = int(values["head_batch_size"])
    return dataclasses.replace(hp, **changes)


def describe_values(values: dict[str, Any]) -> str:
    """A trial's values in one line, KerasTuner's own (`tuner/...`) left out."""
    return ", ".join(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in values.items() if not name.startswith("tuner/"))
