"""The data folder scan: classes, images, and every file left out."""

from pathlib import Path

import pytest

from pipeline.dataset import scan_dataset
from pipeline.errors import UserError


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_classes_are_sorted_folders_and_odd_files_are_listed(tmp_path):
    _touch(tmp_path / "dogs" / "a.JPG")
    _touch(tmp_path / "dogs" / "b.png")
    _touch(tmp_path / "cats" / "c.jpeg")
    notes = _touch(tmp_path / "cats" / "notes.txt")
    hidden = _touch(tmp_path / "cats" / ".DS_Store")
    nested = _touch(tmp_path / "cats" / "more" / "d.jpg")
    loose = _touch(tmp_path / "loose.jpg")
    scan = scan_dataset(tmp_path)
    assert scan.class_names == ("cats", "dogs")
    assert scan.images_per_class == {"cats": 1, "dogs": 2}
    assert scan.image_count == 3
    assert set(scan.skipped) == {notes, hidden, nested, loose}


@pytest.mark.parametrize("layout,message", [
    ({}, "has no class folders"),
    ({"cats/readme.txt": b"x"}, "holds no images"),
    ({"cats/a.jpg": b"x"}, "has one class (cats)"),
    ({"cats/a.jpg": b"x", "dogs/readme.txt": b"x"}, "class folder(s) dogs"),
])
def test_unusable_layouts_are_user_errors(tmp_path, layout, message):
    for name, data in layout.items():
        _touch(tmp_path / name, data)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scan_dataset(tmp_path)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        scan_dataset(tmp_path / "nope")
    with pytest.raises(UserError, match="is not a folder"):
        scan_dataset(_touch(tmp_path / "file.jpg"))
