"""Scans a data folder before anything runs, so bad input fails early and clearly.

Layouts (see `components.image_example_gen.component.ImageLayout`):
`DATA/<class>/*`, `DATA/train/<class>/*` + `DATA/eval/<class>/*`, and either of them under
`DATA/span-<N>/` for data arriving over time. This scan goes by names only, with the ExampleGen's
own rule (`components.image_example_gen.files.classify`): system files are skipped, and other
files that are not images in a class folder are left out (the ExampleGen quarantines those in
the folders it reads). The ExampleGen then opens every file and quarantines what cannot be used.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from components.image_example_gen.files import (
    GIVEN_SPLITS,
    SKIPPED,
    SPAN_FOLDER,
    classify,
    system_file_reason,
)
from components.image_example_gen.formats import IMAGE_EXTENSIONS
from pipeline.errors import UserError


@dataclasses.dataclass(frozen=True)
class DatasetScan:
    """The layout, classes and image files found under a data folder, and every file left out."""

    root: Path
    class_names: tuple[str, ...]
    images_per_class: dict[str, int]
    skipped: tuple[Path, ...]  # system files (.DS_Store, Thumbs.db, hidden): never counted
    left_out: tuple[Path, ...] = ()  # every other file that is not an image in a class folder
    span: int | None = None  # the span read, when the data comes in span-<N> folders
    spans: tuple[int, ...] = ()  # every span present
    given_splits: bool = False  # train/ and eval/ folders instead of a hash split

    @property
    def image_count(self) -> int:
        """Files named as images in a class folder (the ExampleGen checks their contents)."""
        return sum(self.images_per_class.values())

    @property
    def read_root(self) -> Path:
        """The folder this run reads: the span's folder, or the data root."""
        return self.root / f"span-{self.span}" if self.span is not None else self.root


def _spans(root: Path) -> dict[int, Path]:
    spans = {}
    for child in root.iterdir():
        match = SPAN_FOLDER.fullmatch(child.name)
        if match and child.is_dir():
            spans[int(match.group(1))] = child
    return spans


def _files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if not p.is_dir()]


def _leave(path: Path, below: Path, skipped: list[Path], left_out: list[Path]) -> None:
    """Files outside the folders read: system files skipped, the others left out."""
    system = system_file_reason(path.relative_to(below).as_posix())
    (left_out if system is None else skipped).append(path)


def _scan_classes(split_root: Path, counts: dict[str, int], skipped: list[Path],
                  left_out: list[Path]) -> None:
    for path in _files(split_root):
        class_name, problem = classify(path.relative_to(split_root).as_posix())
        if problem is None:
            counts[class_name] = counts.get(class_name, 0) + 1
        else:
            (skipped if problem[0] == SKIPPED else left_out).append(path)
    for child in split_root.iterdir():
        if child.is_dir() and not child.name.startswith("."):
            counts.setdefault(child.name, 0)


def scan_dataset(root: Path, span: int | None = None) -> DatasetScan:
    """Finds the layout, the classes and the image files of the span to read.

    Raises:
        UserError: the folder is missing or is not a folder, the span does not exist, the
            layout is ambiguous, there are fewer than two classes, or a class folder holds no
            image.
    """
    if not root.exists():
        raise UserError(f"data folder {root} does not exist; pass --data a folder of class folders")
    if not root.is_dir():
        raise UserError(f"data path {root} is not a folder; pass --data a folder of class folders")
    skipped: list[Path] = []
    left_out: list[Path] = []
    spans = _spans(root)
    read_root = root
    if spans:
        if span is None:
            span = max(spans)
        elif span not in spans:
            raise UserError(f"--span {span}: no folder {root}/span-{span}; spans present: "
                            + ", ".join(map(str, sorted(spans))))
        read_root = spans[span]
        for path in _files(root):
            if not any(s in path.parents for s in spans.values()):
                _leave(path, root, skipped, left_out)
    elif span is not None:
        raise UserError(f"--span {span} given, but {root} has no span-<N> folders")
    where = "" if read_root == root else f" (span {span})"
    present = {name for name in GIVEN_SPLITS if (read_root / name).is_dir()}
    if present and present != set(GIVEN_SPLITS):
        (missing,) = set(GIVEN_SPLITS) - present
        raise UserError(f"{read_root} has a {present.pop()}/ folder but no {missing}/ folder; "
                        "give both train/ and eval/, or put class folders directly in it")
    given_splits = bool(present)
    counts: dict[str, int] = {}
    if given_splits:
        for path in _files(read_root):
            if path.relative_to(read_root).parts[0] not in GIVEN_SPLITS:
                _leave(path, read_root, skipped, left_out)
        for name in GIVEN_SPLITS:
            _scan_classes(read_root / name, counts, skipped, left_out)
    else:
        _scan_classes(read_root, counts, skipped, left_out)
    counts = dict(sorted(counts.items()))
    if not counts:
        raise UserError(f"data folder {read_root}{where} has no class folders; put images in "
                        f"{read_root}/<class_name>/")
    empty = [name for name, n in counts.items() if n == 0]
    if len(empty) == len(counts):
        raise UserError(f"data folder {read_root}{where} holds no images "
                        f"({', '.join(IMAGE_EXTENSIONS)}); put images in "
                        f"{read_root}/<class_name>/")
    if empty:
        raise UserError(f"class folder(s) {', '.join(empty)} in {read_root} hold no images; "
                        "add images or remove the folder(s)")
    if len(counts) < 2:
        raise UserError(f"data folder {read_root}{where} has one class ({next(iter(counts))}); "
                        "a classifier needs at least two class folders")
    return DatasetScan(root, tuple(counts), counts, tuple(sorted(set(skipped))),
                       tuple(sorted(set(left_out))), span, tuple(sorted(spans)), given_splits)
