"""Issue 22's gate: how often the old accuracy margin and the paired test refuse, simulated.

Two models answer the same `images` eval images. The baseline is right on each with probability
`accuracy`; the candidate disagrees with it on a share `discordance` of the images, and among
those it is the one that is wrong with probability 1/2 + drop / (2 * discordance), so its
accuracy is lower by `drop` on average. The old gate refused a candidate whose accuracy fell more
than 0.02 below the baseline's; the new one refuses when McNemar's exact p-value of a loss is
below alpha (`components.model_gate.stats.worse_p_value`), and, with classes, when any class's
is below alpha / classes. A drop of 0 measures false refusals; the others, the power.

Usage: `.venv/bin/python -m benchmarks.gate --output benchmarks/results`; writes gate.json and
gate.md. Plain Python and numpy, seconds.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import describe, write_results
from components.model_gate.stats import worse_p_value

OLD_MARGIN = 0.02


@functools.cache
def _p(lost: int, gained: int) -> float:
    return worse_p_value(lost, gained)


def refusal_rates(images: int, classes: int, drop: float, *, accuracy: float = 0.8,
                  discordance: float = 0.15, alpha: float = 0.05, trials: int = 20_000,
                  seed: int = 0) -> dict[str, float]:
    """Shares of `trials` simulated candidates each rule refuses."""
    rng = np.random.default_rng(seed)
    labels = np.arange(images) % classes
    lose = 0.5 + drop / (2 * discordance)
    old = paired = per_class = 0
    for _ in range(trials):
        baseline = rng.random(images) < accuracy
        differs = rng.random(images) < discordance
        # Among disagreements, a wrong baseline leaves the candidate right (a gain), a right one
        # wrong (a loss): which one is wrong is drawn with the loss probability.
        baseline = np.where(differs, rng.random(images) < lose, baseline)
        candidate = np.where(differs, ~baseline, baseline)
        old += candidate.mean() - baseline.mean() < -OLD_MARGIN
        lost, gained = differs & baseline, differs & candidate
        overall = _p(int(lost.sum()), int(gained.sum())) < alpha
        paired += overall
        per_class += overall or any(
            _p(int(lost[labels == c].sum()), int(gained[labels == c].sum())) < alpha / classes
            for c in range(classes))
    return {"old_margin": old / trials, "paired_overall": paired / trials,
            "paired_with_classes": per_class / trials}


def main() -> None:
    """Runs the grid and writes gate.json and gate.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=20_000)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for images, classes in ((69, 2), (69, 3), (500, 3)):
        for drop in (0.0, 0.03, 0.06, 0.10):
            rates = refusal_rates(images, classes, drop, trials=args.trials)
            rows.append({"images": images, "classes": classes, "drop": drop, **rates})
    result = {"machine": describe(), "trials": args.trials, "accuracy": 0.8,
              "discordance": 0.15, "alpha": 0.05, "rows": rows}
    lines = ["| eval images | classes | true drop | old: margin 0.02 | paired, overall | "
             "paired, overall and per class |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['images']} | {r['classes']} | {r['drop']:.2f} | {r['old_margin']:.1%} | "
              f"{r['paired_overall']:.1%} | {r['paired_with_classes']:.1%} |" for r in rows]
    markdown = (f"# The gate's refusal rates ({args.trials} simulated candidates each; baseline "
                "accuracy 0.8, 15% of images answered differently, alpha 0.05)\n\n"
                + "\n".join(lines) + "\n")
    write_results(args.output, "gate", result, markdown)


if __name__ == "__main__":
    main()
