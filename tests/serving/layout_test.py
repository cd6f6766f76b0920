"""TF Serving's base-path layout: which children are versions, and which versions are complete."""

import pytest

from serving import layout


def _version(base, name, complete=True):
    (base / name).mkdir(parents=True)
    if complete:
        (base / name / "saved_model.pb").write_bytes(b"graph")


def _base_path(tmp_path):
    for name in ("1", "12", ".tmp-13-1a2b3c4d", "best"):
        _version(tmp_path, name)
    _version(tmp_path, "14", complete=False)  # still being copied (object stores)
    (tmp_path / ".last_version").write_text("13\n")
    (tmp_path / "7").write_text("a file, not a directory")
    return tmp_path


def test_only_complete_numeric_directories_are_versions(tmp_path):
    base = _base_path(tmp_path)
    assert layout.version_dirs(str(base)) == {1: str(base / "1"), 12: str(base / "12")}
    assert layout.version_dirs(str(base / "missing")) == {}


def test_every_integer_name_counts_when_numbering_versions(tmp_path):
    # Incomplete versions and files too: a number seen once is never published again.
    base = _base_path(tmp_path)
    assert layout.numeric_versions(str(base)) == [1, 7, 12, 14]
    assert layout.numeric_versions(str(base / "missing")) == []


@pytest.mark.parametrize("name,expected", [("1", True), ("0012", True), ("-1", False),
                                           ("1.5", False), (".tmp-3-ab", False),
                                           ("\u0663", False), ("", False)])
def test_version_names_are_ascii_integers(name, expected):
    assert layout.is_version_name(name) is expected


