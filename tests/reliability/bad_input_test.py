"""Bad input through the real `imgpipe run`: one line, exit code 2, no traceback, data untouched.

Every case runs the real entry point (the `cli` fixture, in process) on a data folder whose every
file and folder is fingerprinted before and after; none of them may reach the pipeline (the
fixture fails the test if one does). Cases that need a process of their own (a user who cannot
read a file) are in unreadable_test.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pytest

BASE_ARGS = ("--weights", "none", "--image-size", "75")


def _no_classes(data: Path, write) -> None:
    data.mkdir()
    (data / "a.jpg").write_bytes(b"\xff\xd8\xff")
    (data / "notes.txt").write_text("no class folders here")


def _empty_class(data: Path, write) -> None:
    write(data)
    (data / "birds").mkdir()
    (data / "birds" / "readme.txt").write_text("not an image")


# name -> (make the data folder, where --output goes, extra flags, expected words)
LAYOUTS: dict[str, tuple[Callable, Callable[[Path, Path], Path], tuple, str]] = {
    "missing data folder": (lambda d, w: None, lambda d, t: t / "out", (), "does not exist"),
    "data path is a file": (lambda d, w: d.write_bytes(b"x"), lambda d, t: t / "out", (),
                            "is not a folder"),
    "empty data folder": (lambda d, w: d.mkdir(), lambda d, t: t / "out", (),
                          "has no class folders"),
    "files but no class folders": (_no_classes, lambda d, t: t / "out", (),
                                   "has no class folders"),
    "one class only": (lambda d, w: w(d, ("cats",)), lambda d, t: t / "out", (),
                       "has one class (cats)"),
    "a class folder without images": (_empty_class, lambda d, t: t / "out", (),
                                      "birds in"),
    "data is the output": (lambda d, w: w(d), lambda d, t: d, (), "overlap"),
    "data inside the output": (lambda d, w: w(d), lambda d, t: d.parent, (), "overlap"),
    "output inside the data": (lambda d, w: w(d), lambda d, t: d / "cats" / "out", (), "overlap"),
    "train without eval": (lambda d, w: w(d / "train"), lambda d, t: t / "out", (),
                           "has a train/ folder but no eval/ folder"),
    "span that does not exist": (lambda d, w: w(d / "span-1"), lambda d, t: t / "out",
                                 ("--span", "4"), "--span 4: no folder"),
}


@pytest.mark.parametrize("case", sorted(LAYOUTS))
def test_bad_layouts_are_refused_and_touch_nothing(cli, tmp_path, tree_state, write_classes,
                                                    case):
    make, output_of, extra, expected = LAYOUTS[case]
    data = tmp_path / "data"
    make(data, write_classes)
    output = output_of(data, tmp_path)
    before = tree_state(data), tree_state(output)
    cli("run", "--data", str(data), "--output", str(output), *BASE_ARGS,
        *extra).assert_one_line_error(expected)
    # No file or folder made, changed or removed in the data, and no output left behind.
    assert (tree_state(data), tree_state(output)) == before


@pytest.mark.parametrize("name", ["clf\n", "a/b", "..", "a b", "clf\n/../x", "_clf"])
def test_a_model_name_that_cannot_name_a_folder_is_refused(cli, tmp_path, tree_state,
                                                           write_classes, name):
    # "clf\n" passed while the check used `re.match` with `$`, which matches before a newline.
    data = write_classes(tmp_path / "data")
    before = tree_state(data)
    cli("run", "--data", str(data), "--output", str(tmp_path / "out"), *BASE_ARGS,
        "--model-name", name).assert_one_line_error("--model-name")
    assert tree_state(data) == before and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory) -> dict[str, Path]:
    """A text file named .h5, and a MobileNetV2 file with the same layers but half the width."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("weights")
    (root / "text.h5").write_text("these are not weights\n")
    (root / "empty.h5").write_bytes(b"")
    narrow = tf.keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.5,
                                               input_shape=(32, 32, 3))
    narrow.save_weights(str(root / "narrow.h5"))
    return {"text": root / "text.h5", "empty": root / "empty.h5", "narrow": root / "narrow.h5"}


WEIGHTS_CASES = {
    "not HDF5": ("text", ("--base", "mobilenet_v2"), "does not fit the mobilenet_v2 base"),
    "empty file": ("empty", ("--base", "mobilenet_v2"), "does not fit the mobilenet_v2 base"),
    "wrong shapes": ("narrow", ("--base", "mobilenet_v2"), "does not fit the mobilenet_v2 base"),
    "another base": ("narrow", (), "does not fit the inception_v3 base"),
    "SHA-256 mismatch": ("narrow", ("--base", "mobilenet_v2", "--weights-sha256", "ab" * 32),
                         "the file is not the one pinned"),
}


@pytest.mark.parametrize("case", sorted(WEIGHTS_CASES))
def test_bad_weights_are_refused_before_any_component(cli, tmp_path, weights_files, tree_state,
                                                      write_classes, case):
    name, extra, expected = WEIGHTS_CASES[case]
    data = write_classes(tmp_path / "data")
    before = tree_state(data), tree_state(weights_files[name])
    cli("run", "--data", str(data), "--output", str(tmp_path / "out"), "--image-size", "75",
        "--weights", str(weights_files[name]), *extra).assert_one_line_error(expected)
    assert (tree_state(data), tree_state(weights_files[name])) == before
    assert not (tmp_path / "out").exists()


def test_the_pinned_digest_lets_the_right_file_through(cli, tmp_path, weights_files,
                                                       write_classes):
    """The pin refuses only a different file: the same file with its digest (in capitals)
    passes the pin and is refused by the next check, the shapes, not by the pin."""
    from trainer.bases import file_sha256

    data = write_classes(tmp_path / "data")
    narrow = str(weights_files["narrow"])
    line = cli("run", "--data", str(data), "--output", str(tmp_path / "out"), "--image-size",
               "75", "--base", "mobilenet_v2", "--weights", narrow, "--weights-sha256",
               file_sha256(narrow).upper()).assert_one_line_error("does not fit the mobilenet_v2")
    assert "pinned" not in line


def _mlmd_store(path: Path) -> None:
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    store = mlmd.MetadataStore(config)
    kind = metadata_store_pb2.ArtifactType(name="Examples")
    store.put_artifact_type(kind)


def _truncated_store(path: Path) -> None:
    _mlmd_store(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _foreign_sqlite(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE photos (name TEXT)")


def _overwritten_pages(path: Path) -> None:
    _mlmd_store(path)
    data = bytearray(path.read_bytes())
    data[100:] = b"\xa5" * (len(data) - 100)  # the header survives, every page is garbage
    path.write_bytes(bytes(data))


METADATA_CASES = {
    "garbage bytes": (lambda p: p.write_bytes(b"\x00garbage\xff" * 512), "not a SQLite database"),
    "text": (lambda p: p.write_text("metadata\n"), "not a SQLite database"),
    "a folder": (lambda p: p.mkdir(), "is not a file"),
    "truncated store": (_truncated_store, "ML Metadata database"),
    "overwritten pages": (_overwritten_pages, "ML Metadata database"),
    "another program's database": (_foreign_sqlite, "not ML Metadata's"),
}


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_a_corrupt_metadata_store_is_refused_and_left_as_it_was(cli, tmp_path, tree_state,
                                                                write_classes, case):
    make, expected = METADATA_CASES[case]
    data = write_classes(tmp_path / "data")
    output = tmp_path / "out"
    output.mkdir()
    make(output / "metadata.sqlite")
    before = tree_state(data), tree_state(output / "metadata.sqlite")
    line = cli("run", "--data", str(data), "--output", str(output),
               *BASE_ARGS).assert_one_line_error(expected)
    assert str(output / "metadata.sqlite") in line
    assert (tree_state(data), tree_state(output / "metadata.sqlite")) == before
    assert sorted(p.name for p in output.iterdir()) == [".imgpipe.lock", "metadata.sqlite"]


def _out_of_range_values() -> list[tuple[str, str]]:
    """(flag, value) for every bounded flag of `imgpipe run`: just below and just above its
    range, and a value outside every closed choice list."""
    from pipeline.cli.run import run

    cases = []
    for param in run.params:
        if not isinstance(param, click.Option) or param.is_flag:
            continue
        flag = param.opts[0]
        kind = param.type
        if isinstance(kind, click.IntRange):
            if kind.min is not None:
                cases.append((flag, str(kind.min - (0 if kind.min_open else 1))))
            if kind.max is not None:
                cases.append((flag, str(kind.max + (0 if kind.max_open else 1))))
        elif isinstance(kind, click.FloatRange):
            if kind.min is not None:
                cases.append((flag, str(kind.min if kind.min_open else kind.min - 0.001)))
            if kind.max is not None:
                cases.append((flag, str(kind.max if kind.max_open else kind.max + 0.001)))
        elif isinstance(kind, click.Choice):
            cases.append((flag, "no-such-choice"))
    return cases


OUT_OF_RANGE = _out_of_range_values()


def test_every_bounded_flag_is_covered():
    flags = {flag for flag, _ in OUT_OF_RANGE}
    assert len(OUT_OF_RANGE) >= 30, OUT_OF_RANGE
    assert {"--epochs", "--eval-percent", "--max-quarantined", "--image-size", "--dropout",
            "--keep-versions", "--max-pixels", "--base", "--precision"} <= flags


@pytest.fixture(scope="module")
def good_data(tmp_path_factory, write_classes) -> Path:
    return write_classes(tmp_path_factory.mktemp("good") / "data")


@pytest.mark.parametrize("flag,value", OUT_OF_RANGE, ids=[f"{f}={v}" for f, v in OUT_OF_RANGE])
def test_each_flag_out_of_range_is_one_line(cli, good_data, tmp_path, tree_state, flag, value):
    before = tree_state(good_data)
    cli("run", "--data", str(good_data), "--output", str(tmp_path / "out"), *BASE_ARGS,
        flag, value).assert_one_line_error(flag)
    assert tree_state(good_data) == before
    assert not (tmp_path / "out").exists()
