"""Files and folders the user cannot read: `imgpipe run` refuses in one line, skipping nothing.

Run as root (as CI is), chmod 000 stops nothing: root reads through CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH. So `imgpipe` runs under `setpriv` without those two capabilities, where the
kernel applies the file modes to root as to anyone (the first test proves it does here). As
another user, it runs as that user. The real console script, each case in its own process, all
started at once.

`--weights` names a file that is not HDF5, refused only after the data checks: a run that did
not notice the unreadable data stops there with another message instead of training.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _unreadable_file(data: Path) -> Path:
    path = sorted((data / "cats").iterdir())[0]
    path.chmod(0)
    return path


def _unreadable_class_folder(data: Path) -> Path:
    path = data / "dogs"
    path.chmod(0)
    return path


def _unreadable_nested_folder(data: Path) -> Path:
    path = data / "cats" / "more"
    path.mkdir()
    (path / "x.jpg").write_bytes(sorted((data / "cats").iterdir())[0].read_bytes())
    path.chmod(0)
    return path


def _unreadable_data_folder(data: Path) -> Path:
    data.chmod(0)
    return data


def _dangling_link(data: Path) -> Path:
    path = data / "cats" / "gone.jpg"
    path.symlink_to(data.parent / "nowhere.jpg")
    return path


HINT = "chmod -R a+rX"
# case -> (make it, words the one line must hold besides the path); click's own check of
# --data answers for the data folder itself.
CASES = {
    "a file": (_unreadable_file, ("cannot read", "permission denied", HINT)),
    "a class folder": (_unreadable_class_folder, ("cannot read", "permission denied", HINT)),
    "a sub-folder of a class": (_unreadable_nested_folder,
                                ("cannot read", "permission denied", HINT)),
    "the data folder": (_unreadable_data_folder, ("Invalid value for '--data'", "not readable")),
    "a link to nothing": (_dangling_link, ("cannot read", "a link to nothing", HINT)),
}


def test_file_modes_hold_under_the_prefix(tmp_path, unprivileged):
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0)
    read = subprocess.run([*unprivileged, sys.executable, "-c",
                           f"open({str(secret)!r}).read()"], capture_output=True, text=True)
    assert read.returncode != 0 and "PermissionError" in read.stderr


@pytest.fixture(scope="module")
def refusals(tmp_path_factory, write_classes, tree_state, imgpipe, unprivileged):
    """Every case started at once; (what was made unreadable, result, data before, after)."""
    started = {}
    for name, (make, _) in CASES.items():
        root = tmp_path_factory.mktemp("unreadable")
        data = write_classes(root / "data")
        weights = root / "w.h5"
        weights.write_text("not HDF5")
        target = make(data)
        before = tree_state(root)
        process = imgpipe.start("run", "--data", str(data), "--output", str(root / "out"),
                                "--weights", str(weights), "--image-size", "75",
                                prefix=unprivileged)
        started[name] = (root, target, before, process)
    results = {}
    for name, (root, target, before, process) in started.items():
        result = imgpipe.finish(process, timeout=600)
        results[name] = (target, result, before, tree_state(root))
        for path in [root, *root.rglob("*"), *root.rglob(".*")]:
            if not path.is_symlink():
                path.chmod(0o755)  # so pytest can remove it
    return results


@pytest.mark.parametrize("case", sorted(CASES))
def test_unreadable_data_is_refused_in_one_line(refusals, case):
    target, result, _, _ = refusals[case]
    line = result.assert_one_line_error(str(target))
    for words in CASES[case][1]:
        assert words in line


@pytest.mark.parametrize("case", sorted(CASES))
def test_nothing_was_written_or_changed(refusals, case):
    _, _, before, after = refusals[case]
    assert after == before  # the data as it was, and no output folder
