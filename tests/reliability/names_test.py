"""Names the file system allows and a walk can trip on: class folders with spaces, names that
are not UTF-8, links to folders (a symlink loop, a second link to a class folder, a link to
nothing). Each is read, listed as skipped or quarantined with its reason, or refused before the
run in one line; none is a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from components.image_example_gen import standalone
from components.image_example_gen.component import ImageLayout
from components.image_example_gen.files import (
    BAD_NAME_REASON,
    REPEATED_FOLDER_REASON,
    SKIPPED,
    iter_files,
)
from components.image_example_gen.settings import IngestSettings

BAD_NAME = b"dogs/bad\xff\xfename.jpg"  # Latin-1 bytes, as an old camera or zip tool writes them
BAD_NAME_SHOWN = "dogs/bad\\xff\\xfename.jpg"


@pytest.fixture
def odd_folder(tmp_path, image_files) -> Path:
    """Two classes, 'tabby cats' (a space) and 'dogs', 4 images each, plus a link from dogs/
    back to the data root (a loop) and a second link to dogs/ inside 'tabby cats'."""
    root = tmp_path / "data"
    jpeg = image_files.good_image("jpg", 0)[1]
    for name in ("tabby cats", "dogs"):
        for i in range(4):
            image_files.write(root / name / f"{i}.jpg", jpeg)
    os.symlink("..", root / "dogs" / "loop")
    os.symlink("../dogs", root / "tabby cats" / "dogs again")
    return root


def _report(examples, name: str) -> set[str]:
    lines = Path(examples.uri, name).read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["path"] for line in lines}


def _listing(root: Path) -> dict[str, tuple]:
    return {found.relative: (found.class_name, found.problem)
            for found in iter_files(str(root), "")}


def test_a_walk_reads_each_folder_once_and_names_every_link_it_does_not_follow(odd_folder):
    os.symlink("/nonexistent/image.jpg", odd_folder / "dogs" / "gone.jpg")
    listing = _listing(odd_folder)
    # 8 images, the dangling link (a file to read, and quarantine), the two repeated links.
    assert len(listing) == 11, sorted(listing)
    assert listing["dogs/loop"] == ("dogs", (SKIPPED, REPEATED_FOLDER_REASON))
    assert listing["tabby cats/dogs again"] == ("tabby cats", (SKIPPED, REPEATED_FOLDER_REASON))
    assert listing["dogs/gone.jpg"] == ("dogs", None)
    assert listing["tabby cats/3.jpg"] == ("tabby cats", None)


def test_a_name_that_is_not_utf8_is_quarantined_and_shown_readably(odd_folder, image_files):
    (odd_folder / os.fsdecode(BAD_NAME)).write_bytes(image_files.good_image("jpg", 1)[1])
    listing = _listing(odd_folder)
    assert listing[BAD_NAME_SHOWN] == (None, ("bad_name", BAD_NAME_REASON))


def test_the_example_gen_ingests_the_classes_and_lists_what_it_left(odd_folder, tmp_path):
    # (A link to nothing is refused before a run: TFX's driver cannot stat it, and
    # `imgpipe run`'s pre-flight names it, tests/reliability/unreadable_test.py.)
    (odd_folder / "dogs" / "empty.jpg").write_bytes(b"")
    examples = standalone.run_executor(str(odd_folder), str(tmp_path / "out"), ImageLayout(),
                                       IngestSettings(max_quarantined_fraction=0.5))
    props = examples.mlmd_artifact.custom_properties
    assert json.loads(props["ingested_per_class"].string_value) == {"dogs": 4, "tabby cats": 4}
    assert (props["ingested"].int_value, props["quarantined"].int_value,
            props["skipped"].int_value) == (8, 1, 2)
    assert _report(examples, "skipped.jsonl") == {"dogs/loop", "tabby cats/dogs again"}
    assert _report(examples, "quarantine.jsonl") == {"dogs/empty.jpg"}


def test_run_refuses_names_that_are_not_utf8_before_anything_runs(cli, odd_folder, tmp_path,
                                                                  image_files):
    (odd_folder / os.fsdecode(BAD_NAME)).write_bytes(image_files.good_image("jpg", 1)[1])
    (odd_folder / os.fsdecode(b"tabby cats/caf\xe9.jpg")).write_bytes(b"")
    line = cli("run", "--data", str(odd_folder), "--output", str(tmp_path / "out"),
               "--weights", "none").assert_one_line_error("is not UTF-8 text")
    assert f"{odd_folder}/{BAD_NAME_SHOWN} and 1 more" in line and "convmv" in line
    assert not (tmp_path / "out").exists()


def test_run_takes_class_folders_with_spaces_and_links(cli, odd_folder, tmp_path):
    seen = {}

    def pipeline(config, layout, **_):
        seen["classes"] = config.hparams.class_names
        raise SystemExit(0)

    result = cli("run", "--data", str(odd_folder), "--output", str(tmp_path / "out"),
                 "--weights", "none", on_pipeline=pipeline)
    assert result.code == 0, result.stderr
    assert seen["classes"] == ("dogs", "tabby cats")
