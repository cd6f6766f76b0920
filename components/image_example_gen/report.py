"""The ingestion report: every file found is ingested or quarantined, and the run's limits.

The quarantine report is one JSON line per file that was not ingested (`path` relative to the
data root, `kind`, `reason`), sorted by path. `files_found == ingested + quarantined`, always.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

DEFAULT_MAX_QUARANTINED_FRACTION = 0.05
REPORT_FILE = "quarantine.jsonl"


@dataclasses.dataclass(frozen=True)
class QuarantinedFile:
    """A file that is not an example, and why."""

    path: str
    kind: str
    reason: str
    class_name: str | None = None

    def to_json(self) -> str:
        """One line of the quarantine report."""
        return json.dumps({"path": self.path, "kind": self.kind, "reason": self.reason},
                          ensure_ascii=False, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class IngestReport:
    """What happened to each file found under the split folders."""

    class_names: tuple[str, ...]
    files_found: int
    found_per_class: dict[str, int]  # files in each class folder, usable or not
    quarantined: tuple[QuarantinedFile, ...]

    @property
    def quarantined_count(self) -> int:
        """Files that are not examples."""
        return len(self.quarantined)

    @property
    def ingested(self) -> int:
        """Files that became examples."""
        return self.files_found - self.quarantined_count

    @property
    def ingested_per_class(self) -> dict[str, int]:
        """Examples of each class."""
        lost = Counter(q.class_name for q in self.quarantined if q.class_name is not None)
        return {name: self.found_per_class.get(name, 0) - lost[name] for name in self.class_names}

    @property
    def quarantined_per_kind(self) -> dict[str, int]:
        """Quarantined files by kind (empty, truncated, hidden, ...)."""
        return dict(sorted(Counter(q.kind for q in self.quarantined).items()))

    def lines(self) -> list[str]:
        """The quarantine report, sorted by path."""
        return [q.to_json() for q in sorted(self.quarantined, key=lambda q: q.path)]

    def stop_reasons(self, max_quarantined_fraction: float, report_path: str) -> list[str]:
        """Why this input must not be used (empty when it may be), each a readable sentence."""
        reasons = []
        empty = [n for n, count in self.ingested_per_class.items() if count == 0]
        if empty:
            reasons.append(f"class(es) {', '.join(empty)} have no usable image; add images or "
                           "remove the class folder(s)")
        if self.files_found == 0:
            reasons.append("no files found")
        elif self.quarantined_count / self.files_found > max_quarantined_fraction:
            first = min(self.quarantined, key=lambda q: q.path)
            reasons.append(
                f"{self.quarantined_count} of {self.files_found} files "
                f"({self.quarantined_count / self.files_found:.1%}) were quarantined, more than "
                f"the {max_quarantined_fraction:.0%} limit (first: {first.path}: {first.reason});"
                f" see {report_path}, fix or remove them, or raise the limit")
        return reasons
