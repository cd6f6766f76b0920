"""Class weights against class imbalance: balanced by the training split's class counts.

`balanced` weighs class c by `n / (k * n_c)` (n training examples, k classes that have any, n_c
of class c: scikit-learn's "balanced"), so every class carries the same total weight in the
loss and a head can no longer win by answering the largest class. `auto` does that only when the
largest class has more than `IMBALANCE_RATIO` times the examples of the smallest; `none` never.
Keras applies the weights to the loss only (`fit(class_weight=...)`); the accuracy it reports
stays unweighted.
"""

from __future__ import annotations

from collections.abc import Sequence

MODES = ("auto", "balanced", "none")
IMBALANCE_RATIO = 1.5


def imbalance_ratio(counts: Sequence[int]) -> float:
    """Examples of the largest class over those of the smallest, among classes with any."""
    present = [n for n in counts if n > 0]
    return max(present) / min(present) if present else 1.0


def class_weights(counts: Sequence[int], mode: str) -> list[float] | None:
    """One weight per class index for `mode`, or None when the classes are not weighted.

    A class without training examples gets 1.0 (Keras wants a weight for every index; no
    example ever uses it).
    """
    if mode not in MODES:
        raise ValueError(f"class_weights must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "none" or (mode == "auto" and imbalance_ratio(counts) <= IMBALANCE_RATIO):
        return None
    present = [n for n in counts if n > 0]
    if not present:
        return None
    total = sum(present)
    return [total / (len(present) * n) if n > 0 else 1.0 for n in counts]


def as_keras(weights: list[float] | None) -> dict[int, float] | None:
    """`fit`'s `class_weight` argument: class index -> weight."""
    return None if weights is None else dict(enumerate(weights))
