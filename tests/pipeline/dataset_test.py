"""The data folder scan: classes, images, and every file left out."""

from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.local.dataset import scan_dataset


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_classes_are_sorted_folders_and_odd_files_are_listed(tmp_path):
    _touch(tmp_path / "dogs" / "a.JPG")
    _touch(tmp_path / "dogs" / "b.png")
    _touch(tmp_path / "cats" / "c.jpeg")
    notes = _touch(tmp_path / "cats" / "notes.txt")
    nested = _touch(tmp_path / "cats" / "more" / "d.jpg")
    loose = _touch(tmp_path / "loose.jpg")
    system = {_touch(tmp_path / name) for name in (
        "cats/.DS_Store", "dogs/._a.JPG", "dogs/Thumbs.db", "desktop.ini", ".git/HEAD")}
    scan = scan_dataset(tmp_path)
    assert scan.class_names == ("cats", "dogs")
    assert scan.images_per_class == {"cats": 1, "dogs": 2}
    assert scan.image_count == 3
    assert set(scan.skipped) == system
    assert set(scan.left_out) == {notes, nested, loose}


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


def test_spans_read_the_latest_or_the_one_asked_for(tmp_path):
    for span, names in {1: ("cats", "dogs"), 2: ("cats", "dogs", "foxes")}.items():
        for name in names:
            _touch(tmp_path / f"span-{span}" / name / "a.jpg")
    stray = _touch(tmp_path / "notes.txt")
    finder = _touch(tmp_path / ".DS_Store")
    latest = scan_dataset(tmp_path)
    assert (latest.span, latest.spans) == (2, (1, 2))
    assert latest.class_names == ("cats", "dogs", "foxes")
    assert latest.read_root == tmp_path / "span-2"
    assert latest.left_out == (stray,)
    assert latest.skipped == (finder,)
    assert scan_dataset(tmp_path, span=1).class_names == ("cats", "dogs")
    with pytest.raises(UserError, match=r"--span 7: no folder .*span-7; spans present: 1, 2"):
        scan_dataset(tmp_path, span=7)


def test_given_train_and_eval_folders(tmp_path):
    for split, n in (("train", 3), ("eval", 1)):
        for name in ("cats", "dogs"):
            for i in range(n):
                _touch(tmp_path / split / name / f"{i}.png")
    scan = scan_dataset(tmp_path)
    assert scan.given_splits and scan.span is None
    assert scan.images_per_class == {"cats": 4, "dogs": 4}
    (tmp_path / "eval" / "cats" / "0.png").unlink()
    (tmp_path / "eval" / "cats" / "0.png").parent.rmdir()
    assert scan_dataset(tmp_path).images_per_class == {"cats": 3, "dogs": 4}


def test_train_without_eval_is_a_user_error(tmp_path):
    _touch(tmp_path / "train" / "cats" / "a.jpg")
    _touch(tmp_path / "dogs" / "a.jpg")
    with pytest.raises(UserError, match="has a train/ folder but no eval/ folder"):
        scan_dataset(tmp_path)
