"""Exact small-sample statistics for the gate, on counts of eval images.

McNemar's exact test: of the images exactly one of two models gets right, the candidate lost
`lost` (baseline right, candidate wrong) and gained `gained`. With no real difference each such
image is a fair coin, so `lost` ~ Binomial(lost + gained, 1/2); the two-sided p-value is summed
in integers, exact. Clopper-Pearson: the exact binomial interval for an accuracy of k in n.
"""

from __future__ import annotations

import math
from fractions import Fraction


def mcnemar_exact_p(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value for `lost` and `gained` discordant pairs (1.0 for none)."""
    if lost < 0 or gained < 0:
        raise ValueError(f"counts must be >= 0, got lost {lost}, gained {gained}")
    n = lost + gained
    tail = sum(math.comb(n, i) for i in range(min(lost, gained) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def worse_p_value(lost: int, gained: int) -> float:
    """The gate's statistic: McNemar's p when the candidate lost more than it gained, else 1.

    A candidate is refused when this is below the level: significantly worse, not merely
    different (a significantly better candidate gets 1.0).
    """
    return mcnemar_exact_p(lost, gained) if lost > gained else 1.0


def clopper_pearson(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) confidence interval of an accuracy `correct` / `total`."""
    from scipy.stats import beta  # a dependency of TFMA and TFX

    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total > 0, got {correct} of {total}")
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if correct == 0 else float(beta.ppf(tail, correct, total - correct + 1))
    high = 1.0 if correct == total else float(beta.ppf(1.0 - tail, correct + 1, total - correct))
    return low, high
