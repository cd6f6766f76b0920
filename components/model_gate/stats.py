"""Exact small-sample statistics for the gate, on counts of eval images.

McNemar's exact test, one-sided: of the images exactly one of two models gets right, the
candidate lost `lost` (baseline right, candidate wrong) and gained `gained`. With no real
difference each such image is a fair coin, so `lost` ~ Binomial(lost + gained, 1/2), and the
p-value of a loss is P(X >= lost), summed in integers: exact. One-sided because the gate asks one
question, "is the candidate worse?", so an equal model is refused at most `alpha` of the time.
Clopper-Pearson: the exact binomial interval for an accuracy of k in n.
"""

from __future__ import annotations

import math
from fractions import Fraction


def worse_p_value(lost: int, gained: int) -> float:
    """P(at least `lost` of the `lost + gained` discordant images go against the candidate by
    chance): McNemar's exact one-sided p-value; 1.0 when the models never disagree."""
    if lost < 0 or gained < 0:
        raise ValueError(f"counts must be >= 0, got lost {lost}, gained {gained}")
    n = lost + gained
    tail = sum(math.comb(n, i) for i in range(lost, n + 1))
    return float(Fraction(tail, 2**n))


def clopper_pearson(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) confidence interval of an accuracy `correct` / `total`."""
    from scipy.stats import beta  # a dependency of TFMA and TFX

    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total > 0, got {correct} of {total}")
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if correct == 0 else float(beta.ppf(tail, correct, total - correct + 1))
    high = 1.0 if correct == total else float(beta.ppf(1.0 - tail, correct + 1, total - correct))
    return low, high
