"""Likely mislabeled images: out-of-fold probabilities of a simple classifier on the base's
features, ranked by cleanlab's confident learning.

Each image is scored by a logistic regression that never saw it (k folds), so a wrong label
cannot vouch for itself. Suspected: what cleanlab's confident learning flags (the given class
below what that class' own images typically get, another class above its threshold, as many as
the estimated noise rate), and also any image another class owns with probability >= `OWNED`:
confident learning's noise estimate alone missed up to a third of the flips planted in the
tests, and a lower bar flags every misclassified image of a weak base (benchmarks/README.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

MAX_ITERATIONS = 200
COMPONENTS = 128  # features reduced to this many principal components for the classifier
OWNED = 0.7
# Labels are judged only when the out-of-fold classifier gets at least this far from always
# answering the largest class towards perfect: on features that do not tell the classes apart
# (a random base) every image looks mislabeled.
MIN_SKILL = 0.25


def skill(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(out-of-fold accuracy, accuracy of always answering the largest class)."""
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    return accuracy, float(np.bincount(labels).max() / len(labels))


def judged(accuracy: float, chance: float) -> bool:
    """Whether the classifier is good enough for its doubts to mean anything (MIN_SKILL)."""
    return accuracy >= chance + MIN_SKILL * (1.0 - chance)


@dataclasses.dataclass(frozen=True)
class Suspect:
    """One image whose given label the out-of-fold classifier doubts."""

    index: int
    given: int
    suggested: int
    score: float  # 1 - the probability of the given class: higher is more suspect


def usable_folds(labels: np.ndarray, folds: int) -> int:
    """The folds the smallest class allows (each fold needs one image of it): 0 if under 2."""
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min()) if counts.any() else 0
    present = int((counts > 0).sum())
    return min(folds, smallest) if smallest >= 2 and present >= 2 else 0


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, num_classes: int,
                              folds: int, seed: int = 0) -> np.ndarray:
    """[N, num_classes] probabilities, each row from a classifier trained without that image.

    `folds` must be at least 2 and at most the smallest class' count (`usable_folds`).
    """
    if features.shape[1] > COMPONENTS and len(features) > COMPONENTS:
        # Unsupervised, so no label crosses the folds; the classifier trains much faster.
        features = PCA(COMPONENTS, svd_solver="randomized", random_state=seed).fit_transform(
            features)
    probabilities = np.zeros((len(labels), num_classes), np.float32)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_rows, held_out in splitter.split(features, labels):
        classifier = LogisticRegression(max_iter=MAX_ITERATIONS, random_state=seed)
        classifier.fit(features[train_rows], labels[train_rows])
        probabilities[np.ix_(held_out, classifier.classes_)] = classifier.predict_proba(
            features[held_out])
    return probabilities


def find_suspects(probabilities: np.ndarray, labels: np.ndarray) -> list[Suspect]:
    """cleanlab's label issues and images another class owns, most suspect first (lowest
    probability of the given class)."""
    flagged = find_label_issues(labels, probabilities)
    predicted = probabilities.argmax(axis=1)
    owned = (predicted != labels) & (probabilities.max(axis=1) >= OWNED)
    suspects = []
    for index in np.flatnonzero(flagged | owned):
        given = int(labels[index])
        others = probabilities[index].copy()
        others[given] = -1.0
        suspects.append(Suspect(int(index), given, int(others.argmax()),
                                round(float(1.0 - probabilities[index, given]), 4)))
    return sorted(suspects, key=lambda s: (-s.score, s.index))
