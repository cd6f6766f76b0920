"""The audit on plain arrays: exact and near duplicates, train-eval leaks, suspected mislabels.

`run_audit` takes each image's file name (relative to the data folder), split, label, byte
digest, perceptual hash and base features, and returns the findings in `audit.json`'s shape.
Two images are near copies when their features' cosine similarity is at least `hash_similarity`
with perceptual hashes at most `hash_distance` bits apart, or at least `near_similarity` with
hashes at most `loose_hash_distance` apart (unrelated pictures differ in about 32 of 64 bits).
Each signal checks the other: a weak base (random weights) puts some unrelated pictures above
0.95, and simple pictures (the sample shapes) can share much of a hash. Similarities are taken
after the features' mean over all images is subtracted: ReLU features share a large positive
component that otherwise makes any two images look alike (a random MobileNetV2's do).
Without hashes (`AuditImages.hashes` None) features alone decide, at `near_similarity`. With
colour signatures, a pair must also differ by at most `colour_distance` (mean absolute
difference of the 4x4 RGB averages, 0-255): the hash and a trained base both look past colour,
and the same composition in other colours (the sample shapes are full of them) is no copy.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from components.data_audit import mislabels, neighbours

TRAIN, EVAL = "train", "eval"


@dataclasses.dataclass(frozen=True)
class AuditSettings:
    """Thresholds of the audit (cosine similarities in [-1, 1], hash distances in bits)."""

    near_similarity: float = 0.95
    hash_similarity: float = 0.80
    hash_distance: int = 10
    loose_hash_distance: int = 16
    colour_distance: float = 12.0
    neighbours: int = 10  # candidates searched per image
    folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not -1.0 <= self.hash_similarity <= self.near_similarity <= 1.0:
            raise ValueError("need -1 <= hash_similarity <= near_similarity <= 1, got "
                             f"{self.hash_similarity} and {self.near_similarity}")
        if not 0 <= self.hash_distance <= self.loose_hash_distance:
            raise ValueError("need 0 <= hash_distance <= loose_hash_distance")
        if self.neighbours < 1 or self.folds < 2:
            raise ValueError("need neighbours >= 1 and folds >= 2")


@dataclasses.dataclass(frozen=True)
class AuditImages:
    """Every image's record, row i of each field describing the same image.

    `hashes` is [N, 8] uint8 (`hashing.perceptual_hash`), or None to judge on features alone;
    `colours` [N, 48] uint8 (`hashing.fingerprints`), or None to leave colour out.
    """

    files: Sequence[str]
    splits: Sequence[str]
    labels: np.ndarray
    digests: Sequence[str]
    features: np.ndarray
    hashes: np.ndarray | None = None
    colours: np.ndarray | None = None

    def __post_init__(self) -> None:
        sizes = {len(self.files), len(self.splits), len(self.labels), len(self.digests),
                 len(self.features)} | {len(a) for a in (self.hashes, self.colours)
                                        if a is not None}
        if len(sizes) != 1:
            raise ValueError(f"the audit's fields differ in length: {sorted(sizes)}")


def _hash_distances(hashes: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.bitwise_xor(hashes[left], hashes[right]), axis=1).sum(axis=1)


def _accepted(images: AuditImages, settings: AuditSettings, left: np.ndarray,
              right: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """Which candidate pairs are near copies (features alone when there are no hashes)."""
    if images.hashes is None or not len(left):
        accept = similarity >= settings.near_similarity
    else:
        distance = _hash_distances(images.hashes, left, right)
        accept = (((distance <= settings.hash_distance)
                   & (similarity >= settings.hash_similarity))
                  | ((distance <= settings.loose_hash_distance)
                     & (similarity >= settings.near_similarity)))
    if images.colours is not None and len(left):
        colours = images.colours.astype(np.float32)
        accept &= (np.abs(colours[left] - colours[right]).mean(axis=1)
                   <= settings.colour_distance)
    return accept


def near_pairs(images: AuditImages, unit: np.ndarray, settings: AuditSettings,
               space: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """Pairs (i < j) of near copies with their cosine similarity; exact copies count as 1.0."""
    candidates = neighbours.similar_pairs(unit, settings.neighbours, settings.hash_similarity,
                                          space, settings.seed)
    pairs = {}
    if candidates:
        left, right, sims = (np.array(c) for c in zip(*candidates, strict=True))
        for i, j, s in zip(*(a[_accepted(images, settings, left, right, sims)]
                             for a in (left, right, sims)), strict=True):
            pairs[(int(i), int(j))] = float(s)
    by_digest = defaultdict(list)
    for index, digest in enumerate(images.digests):
        by_digest[digest].append(index)
    for members in by_digest.values():
        for other in members[1:]:
            pairs[(members[0], other)] = 1.0
    return [(i, j, s) for (i, j), s in sorted(pairs.items())]


def duplicate_groups(images: AuditImages, pairs: list[tuple[int, int, float]]
                     ) -> list[dict[str, Any]]:
    """Connected groups of copies: kind 'exact' when all bytes agree, the weakest link's
    similarity; the largest groups first."""
    parent = list(range(len(images.files)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    weakest: dict[int, float] = {}
    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    for i, _, s in pairs:
        r = root(i)
        weakest[r] = min(weakest.get(r, 1.0), s)
    members = defaultdict(list)
    for i in {i for pair in pairs for i in pair[:2]}:
        members[root(i)].append(i)
    groups = []
    for r, rows in members.items():
        exact = len({images.digests[i] for i in rows}) == 1
        groups.append({"files": sorted(images.files[i] for i in rows),
                       "kind": "exact" if exact else "near",
                       "similarity": 1.0 if exact else round(weakest[r], 4)})
    return sorted(groups, key=lambda g: (-len(g["files"]), g["files"]))


def find_leaks(images: AuditImages, unit: np.ndarray, settings: AuditSettings,
               space: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Each eval image with a near or exact copy in train, with its closest such copy."""
    splits = np.asarray(images.splits)
    train, evaluation = np.flatnonzero(splits == TRAIN), np.flatnonzero(splits == EVAL)
    if not len(train) or not len(evaluation):
        return []
    train_by_digest = {}
    for i in train:
        train_by_digest.setdefault(images.digests[i], int(i))
    space = unit if space is None else space
    found = neighbours.candidates(space[train], space[evaluation], settings.neighbours,
                                  settings.seed)
    rows = np.repeat(np.arange(len(evaluation)), found.shape[1])
    cols = found.ravel()
    valid = cols >= 0
    left, right = evaluation[rows[valid]], train[cols[valid]]
    sims = neighbours.cosines(unit, left, right)
    accept = _accepted(images, settings, left, right, sims)
    best: dict[int, tuple[int, float]] = {}
    for e, t, sim in zip(left[accept].tolist(), right[accept].tolist(), sims[accept].tolist(),
                         strict=True):
        if e not in best or sim > best[e][1]:
            best[e] = (t, sim)
    for e in evaluation.tolist():  # byte-exact copies whatever the search found
        copy = train_by_digest.get(images.digests[e])
        if copy is not None:
            best[e] = (copy, 1.0)
    leaks = [(e, t, s) for e, (t, s) in best.items()]
    return [{"eval_file": images.files[e], "train_file": images.files[t],
             "similarity": round(min(s, 1.0), 4)}
            for e, t, s in sorted(leaks, key=lambda x: (-x[2], images.files[x[0]]))]


def find_mislabels(images: AuditImages, unit: np.ndarray, class_names: Sequence[str],
                   settings: AuditSettings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Suspected mislabels over both splits, most suspect first, and how far the classifier
    behind them can be trusted. None when a class has fewer than two images (no fold could
    hold it out) or the classifier is barely better than chance (`mislabels.judged`)."""
    labels = np.asarray(images.labels, np.int64)
    folds = mislabels.usable_folds(labels, settings.folds)
    if not folds:
        return [], {"judged": False, "why": "a class has fewer than two images"}
    probabilities = mislabels.out_of_fold_probabilities(unit, labels, len(class_names), folds,
                                                        settings.seed)
    accuracy, chance = mislabels.skill(probabilities, labels)
    check = {"judged": mislabels.judged(accuracy, chance), "folds": folds,
             "out_of_fold_accuracy": round(accuracy, 4), "chance_accuracy": round(chance, 4)}
    if not check["judged"]:
        check["why"] = ("the base's features barely tell the classes apart: a classifier on them "
                        "is not far enough above chance for its doubts to mean anything")
        return [], check
    return [{"file": images.files[s.index], "given": class_names[s.given],
             "suggested": class_names[s.suggested], "score": s.score}
            for s in mislabels.find_suspects(probabilities, labels)], check


def run_audit(images: AuditImages, class_names: Sequence[str],
              settings: AuditSettings | None = None) -> dict[str, Any]:
    """The audit's findings, in `audit.json`'s shape, with the image counts per split and
    `mislabel_check` (whether labels were judged, and the classifier's accuracy)."""
    settings = settings or AuditSettings()
    features = np.asarray(images.features, np.float32)
    unit = neighbours.normalized(features - features.mean(axis=0) if len(features) else features)
    space = neighbours.search_space(unit, settings.seed)
    splits = list(images.splits)
    suspects, check = find_mislabels(images, unit, class_names, settings)
    return {
        "images": {TRAIN: splits.count(TRAIN), EVAL: splits.count(EVAL)},
        "duplicates": duplicate_groups(images, near_pairs(images, unit, settings, space)),
        "leaks": find_leaks(images, unit, settings, space),
        "suspected_mislabels": suspects,
        "mislabel_check": check,
    }
