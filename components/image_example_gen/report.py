"""The ingestion report: every file found is ingested, quarantined or skipped; the run's limits.

The quarantine report is one JSON line per file that is data but could not be ingested (`path`
relative to the data root, `kind`, `reason`), sorted by path. System files (`.DS_Store`,
`Thumbs.db`, hidden folders: `files.system_file_reason`) are not data: they are listed in the
skipped report (`path`, `reason`) and count neither as quarantined nor in the quarantined
fraction. `files_found == ingested + quarantined + skipped`, always.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

DEFAULT_MAX_QUARANTINED_FRACTION = 0.05
REPORT_FILE = "quarantine.jsonl"
SKIPPED_FILE = "skipped.jsonl"


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
class SkippedFile:
    """A system file: listed, neither an example nor quarantined."""

    path: str
    reason: str

    def to_json(self) -> str:
        """One line of the skipped report."""
        return json.dumps({"path": self.path, "reason": self.reason}, ensure_ascii=False,
                          sort_keys=True)


@dataclasses.dataclass(frozen=True)
class IngestReport:
    """What happened to each file found under the split folders."""

    class_names: tuple[str, ...]
    files_found: int  # every file, system files included
    found_per_class: dict[str, int]  # files in each class folder, usable or not, system aside
    quarantined: tuple[QuarantinedFile, ...]
    skipped: tuple[SkippedFile, ...] = ()

    @property
    def quarantined_count(self) -> int:
        """Data files that are not examples."""
        return len(self.quarantined)

    @property
    def skipped_count(self) -> int:
        """System files, not data."""
        return len(self.skipped)

    @property
    def data_files(self) -> int:
        """Files found that are data, usable or not: what the quarantined fraction is of."""
        return self.files_found - self.skipped_count

    @property
    def ingested(self) -> int:
        """Files that became examples."""
        return self.data_files - self.quarantined_count

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

    def skipped_lines(self) -> list[str]:
        """The skipped report, sorted by path."""
        return [s.to_json() for s in sorted(self.skipped, key=lambda s: s.path)]

    def stop_reasons(self, max_quarantined_fraction: float, report_path: str) -> list[str]:
        """Why this input must not be used (empty when it may be), each a readable sentence."""
        reasons = []
        empty = [n for n, count in self.ingested_per_class.items() if count == 0]
        if empty:
            reasons.append(f"class(es) {', '.join(empty)} have no usable image; add images or "
                           "remove the class folder(s)")
        skipped = (f" ({self.skipped_count} system files skipped, not counted)"
                   if self.skipped else "")
        if self.data_files == 0:
            reasons.append("no files found" + (f" but {self.skipped_count} system files"
                                               if self.skipped else ""))
        elif self.quarantined_count / self.data_files > max_quarantined_fraction:
            first = min(self.quarantined, key=lambda q: q.path)
            reasons.append(
                f"{self.quarantined_count} of {self.data_files} files "
                f"({self.quarantined_count / self.data_files:.1%}) were quarantined{skipped}, "
                f"more than the {max_quarantined_fraction:.0%} limit (first: {first.path}: "
                f"{first.reason}); see {report_path}, fix or remove them, or raise the limit")
        return reasons
