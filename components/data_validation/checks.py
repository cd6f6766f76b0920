"""The data gate's checks: TFDV anomalies, class changes, class drift and train-eval leakage,
one sentence each."""

from __future__ import annotations

from collections.abc import Sequence

from tensorflow_metadata.proto.v0 import anomalies_pb2


def describe_anomalies(anomalies: anomalies_pb2.Anomalies, where: str) -> list[str]:
    """One sentence per anomalous feature, e.g. "train: label_name: Unexpected string values"."""
    sentences = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        reasons = list(info.reason)
        text = "; ".join(f"{r.short_description}: {r.description}".strip(": ") for r in reasons)
        sentences.append(f"{where}: {feature}: {text}")
    if anomalies.HasField("dataset_anomaly_info"):
        for reason in anomalies.dataset_anomaly_info.reason:
            sentences.append(f"{where}: {reason.short_description}: {reason.description}")
    return sentences


def class_changes(current: Sequence[str], previous: Sequence[str], current_name: str,
                  previous_name: str) -> list[str]:
    """Classes the new data brings or lacks compared with the previous data."""
    added = sorted(set(current) - set(previous))
    lost = sorted(set(previous) - set(current))
    sentences = []
    if added:
        sentences.append(f"{current_name} brings class(es) {', '.join(added)} that "
                         f"{previous_name} did not have: a model trained before has never seen "
                         "them")
    if lost:
        sentences.append(f"{current_name} has no example of class(es) {', '.join(lost)} that "
                         f"{previous_name} had")
    return sentences


def class_drift(current: dict[str, int], previous: dict[str, int], max_drift: float,
                current_name: str, previous_name: str) -> list[str]:
    """The L-infinity distance between the class shares (TFDV's comparator for categorical
    features): the largest change of any class's share of the examples, against `max_drift`."""
    current_total, previous_total = sum(current.values()), sum(previous.values())
    if not current_total or not previous_total:
        return []
    shares = {name: (previous.get(name, 0) / previous_total, current.get(name, 0) / current_total)
              for name in sorted(set(current) | set(previous))}
    name, (before, now) = max(shares.items(), key=lambda item: abs(item[1][1] - item[1][0]))
    distance = abs(now - before)
    if distance <= max_drift:
        return []
    return [f"{current_name} against {previous_name}: the class balance moved by {distance:.2f}"
            f" (L-infinity), more than {max_drift:.2f}: {name} went from {before:.0%} to "
            f"{now:.0%} of the images"]


def leakage(leaked: int, eval_images: int, max_leakage: float) -> list[str]:
    """The share of eval images with a copy in train (DataAudit's), against `max_leakage`: a
    leaked eval set overstates the accuracy the gate trusts."""
    if not eval_images or leaked / eval_images <= max_leakage:
        return []
    return [f"{leaked} of {eval_images} eval images ({leaked / eval_images:.1%}) have a copy in "
            f"train, more than the {max_leakage:.1%} allowed (max_leakage): the eval accuracy "
            "is overstated; remove those eval images (audit.json lists them under leaks) or "
            "allow more"]
