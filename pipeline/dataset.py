"""Scans a folder of class folders before anything runs, so bad input fails early and clearly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from components.image_example_gen.formats import IMAGE_EXTENSIONS, is_image_path
from pipeline.errors import UserError


@dataclasses.dataclass(frozen=True)
class DatasetScan:
    """The classes and image files found under a data folder, and every file left out."""

    root: Path
    class_names: tuple[str, ...]
    images_per_class: dict[str, int]
    skipped: tuple[Path, ...]

    @property
    def image_count(self) -> int:
        """Images that will be ingested."""
        return sum(self.images_per_class.values())


def scan_dataset(root: Path) -> DatasetScan:
    """Finds `root/<class>/<image>` files.

    Raises:
        UserError: the folder is missing or is not a folder, has fewer than two classes, or a
            class folder holds no image.
    """
    if not root.exists():
        raise UserError(f"data folder {root} does not exist; pass --data a folder of class folders")
    if not root.is_dir():
        raise UserError(f"data path {root} is not a folder; pass --data a folder of class folders")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    skipped = [p for p in sorted(root.iterdir()) if p not in class_dirs]
    counts: dict[str, int] = {}
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if not p.is_dir())
        images = {p for p in files if is_image_path(str(p)) and p.parent == class_dir}
        skipped.extend(p for p in files if p not in images)
        counts[class_dir.name] = len(images)
    if not class_dirs:
        raise UserError(
            f"data folder {root} has no class folders; put images in {root}/<class_name>/")
    empty = [name for name, n in counts.items() if n == 0]
    if len(empty) == len(counts):
        raise UserError(f"data folder {root} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                        f"put images in {root}/<class_name>/")
    if empty:
        raise UserError(f"class folder(s) {', '.join(empty)} in {root} hold no images; "
                        "add images or remove the folder(s)")
    if len(class_dirs) < 2:
        raise UserError(f"data folder {root} has one class ({class_dirs[0].name}); a classifier "
                        "needs at least two class folders")
    return DatasetScan(root, tuple(counts), counts, tuple(skipped))
