"""The image ExampleGen's executor on generated folders: every file ingested, quarantined or
skipped (system files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import _PartitionFn
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components.image_example_gen import standalone
from components.image_example_gen.component import ImageLayout
from components.image_example_gen.convert import HashSplits
from components.image_example_gen.reader import make_example
from components.image_example_gen.settings import IngestSettings
from pipeline.local.dataset import scan_dataset

CLASSES = ("chat_é", "dog", "猫")  # non-ASCII class names, sorted by code point


def run_executor(data_root: Path, out: Path, layout: ImageLayout,
                 settings: IngestSettings | None = None):
    """The executor after the component's driver resolved spans: (Examples, its span)."""
    examples = standalone.run_executor(str(data_root), str(out), layout, settings)
    return examples, examples.span


def read_examples(examples) -> dict[str, list[tf.train.Example]]:
    """Split name -> the examples written for it."""
    result = {}
    for split_dir in sorted(Path(examples.uri).glob("Split-*")):
        files = sorted(str(p) for p in split_dir.glob("*.gz"))
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
        result[split_dir.name[len("Split-"):]] = [
            tf.train.Example.FromString(r.numpy()) for r in dataset]
    return result


def feature(example: tf.train.Example, name: str):
    """The single value of one feature."""
    value = example.features.feature[name]
    kind = value.WhichOneof("kind")
    return getattr(value, kind).value[0]


def quarantine(examples) -> dict[str, dict]:
    """The quarantine report, path -> record."""
    lines = Path(examples.uri, "quarantine.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["path"]: r for r in map(json.loads, lines)}


def skipped(examples) -> dict[str, str]:
    """The skipped report (system files), path -> reason."""
    lines = Path(examples.uri, "skipped.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["path"]: r["reason"] for r in map(json.loads, lines)}


# What macOS, Windows and tools leave in a data folder: skipped, never quarantined.
SYSTEM_FILES = (".DS_Store", "dog/.DS_Store", "dog/._img_00.jpg", "猫/.thumbnails/a.jpg",
                ".git/objects/ab/cdef", "chat_é/Thumbs.db", "猫/DESKTOP.INI", "desktop.ini",
                "dog/.hidden.png")


@pytest.fixture
def messy_folder(tmp_path, image_files
                 ) -> tuple[Path, dict[str, str], dict[str, str], tuple[str, ...]]:
    """DATA/<class>/* with every good format, every bad kind, system and misplaced files.

    Returns the root, good relative path -> expected format, bad relative path -> kind, and the
    system files.
    """
    root = tmp_path / "data"
    good, bad = {}, {}
    for c, name in enumerate(CLASSES):
        for i, kind in enumerate(image_files.GOOD_KINDS * 2):
            extension, data, fmt = image_files.good_image(kind, seed=100 * c + i)
            relative = f"{name}/img_{i:02d}.{extension}"
            image_files.write(root / relative, data)
            good[relative] = fmt
    for name, (data, kind) in image_files.bad_files().items():
        image_files.write(root / "dog" / name, data)
        bad[f"dog/{name}"] = kind
    extras = {"LICENSE.txt": "not_in_class", "chat_é/more/b.jpg": "nested"}
    jpeg = image_files.encode(image_files.rgb(7), "JPEG")
    for relative, kind in extras.items():
        image_files.write(root / relative, jpeg)
        bad[relative] = kind
    for relative in SYSTEM_FILES:
        image_files.write(root / relative, jpeg)
    return root, good, bad, SYSTEM_FILES


def test_every_file_is_ingested_quarantined_or_skipped_with_its_reason(messy_folder, tmp_path):
    root, good, bad, system = messy_folder
    examples, _ = run_executor(root, tmp_path / "out", ImageLayout(),
                               IngestSettings(max_quarantined_fraction=0.5))
    by_split = read_examples(examples)
    assert set(by_split) == {"train", "eval"}
    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "eval"]
    assert examples_utils.get_payload_format(examples) == example_gen_pb2.FORMAT_TF_EXAMPLE
    assert examples_utils.get_file_format(examples) == "tfrecords_gzip"
    ingested = {feature(e, "filename").decode(): e for s in by_split.values() for e in s}
    assert set(ingested) == set(good)
    report = quarantine(examples)
    assert {path: r["kind"] for path, r in report.items()} == bad
    assert all(r["reason"] for r in report.values())
    assert set(skipped(examples)) == set(system) and all(skipped(examples).values())
    assert skipped(examples)["dog/._img_00.jpg"].startswith("macOS AppleDouble")
    found = len(good) + len(bad) + len(system)
    props = examples.mlmd_artifact.custom_properties
    assert props["files_found"].int_value == found
    assert props["ingested"].int_value == len(good)
    assert props["quarantined"].int_value == len(bad)
    assert props["skipped"].int_value == len(system)
    assert props["skipped_report"].string_value == str(Path(examples.uri, "skipped.jsonl"))
    assert "skipped" not in json.loads(props["quarantined_per_kind"].string_value)
    assert (props["ingested"].int_value + props["quarantined"].int_value
            + props["skipped"].int_value == found)
    assert json.loads(props["class_names"].string_value) == list(CLASSES)
    assert json.loads(props["ingested_per_class"].string_value) == {c: 20 for c in CLASSES}


def test_examples_keep_original_bytes_and_describe_the_image(messy_folder, tmp_path):
    root, good, _, _ = messy_folder
    examples, _ = run_executor(root, tmp_path / "out", ImageLayout(),
                               IngestSettings(max_quarantined_fraction=0.5))
    for split in read_examples(examples).values():
        for example in split:
            relative = feature(example, "filename").decode()
            class_name = relative.split("/")[0]
            assert feature(example, "image_bytes") == (root / relative).read_bytes()
            assert feature(example, "label_name").decode() == class_name
            assert feature(example, "label") == CLASSES.index(class_name)
            assert feature(example, "format").decode() == good[relative]
            assert (feature(example, "height"), feature(example, "width")) == (30, 40)


def test_too_many_quarantined_files_stop_with_the_count_and_the_report(messy_folder, tmp_path):
    root, good, bad, system = messy_folder
    with pytest.raises(ValueError, match=rf"{len(bad)} of {len(good) + len(bad)} files .* "
                                         rf"quarantined \({len(system)} system files skipped, "
                                         r"not counted\), more than the 5% limit .*"
                                         r"quarantine\.jsonl"):
        run_executor(root, tmp_path / "out", ImageLayout())
    assert len(quarantine_lines := (tmp_path / "out" / "quarantine.jsonl").read_text()
               .splitlines()) == len(bad), quarantine_lines


@pytest.fixture
def mac_folder(tmp_path, image_files) -> tuple[Path, tuple[str, ...]]:
    """220 data files, 10 of them bad, copied from a Mac: a .DS_Store in every folder, an
    AppleDouble `._` file beside some images, a Windows Thumbs.db and a hidden .git folder.

    Returns the root and the system files (relative paths). 10 of 220 is 4.5%, under the default
    5% limit; counted with the 12 system files it was 22 of 232, 9.5%.
    """
    root = tmp_path / "data"
    jpeg = image_files.good_image("jpg", 0)[1]
    for c in ("cat", "dog"):
        for i in range(105):
            image_files.write(root / c / f"{i:03d}.jpg", jpeg)
    for i in range(10):
        image_files.write(root / "dog" / f"bad_{i}.jpg", b"not a jpeg")
    system = (".DS_Store", "cat/.DS_Store", "dog/.DS_Store", "cat/._000.jpg", "cat/._001.jpg",
              "dog/._000.jpg", "dog/._bad_0.jpg", "dog/Thumbs.db", "desktop.ini",
              ".git/HEAD", ".git/config", "cat/.thumbnails/000.png")
    for relative in system:
        image_files.write(root / relative, b"\x00\x05\x16\x07 system")
    return root, system


def test_system_files_are_skipped_and_not_counted_against_the_limit(mac_folder, tmp_path):
    root, system = mac_folder
    examples, _ = run_executor(root, tmp_path / "out", ImageLayout())  # the default 5% limit
    props = examples.mlmd_artifact.custom_properties
    assert props["files_found"].int_value == 232
    assert (props["ingested"].int_value, props["quarantined"].int_value,
            props["skipped"].int_value) == (210, 10, 12)
    assert set(quarantine(examples)) == {f"dog/bad_{i}.jpg" for i in range(10)}
    assert set(skipped(examples)) == set(system)
    assert json.loads(props["ingested_per_class"].string_value) == {"cat": 105, "dog": 105}
    # The scan before the run applies the same rule: it skips exactly these files.
    scan = scan_dataset(root)
    assert sorted(p.relative_to(root).as_posix() for p in scan.skipped) == sorted(
        skipped(examples))
    assert scan.left_out == ()


def test_two_bad_files_more_are_refused_with_the_system_files_left_out_of_the_count(
        mac_folder, tmp_path, image_files):
    root, _ = mac_folder
    image_files.write(root / "cat" / "bad.jpg", b"")
    image_files.write(root / "cat" / "worse.jpg", b"")
    with pytest.raises(ValueError, match=r"12 of 222 files \(5\.4%\) were quarantined "
                                         r"\(12 system files skipped, not counted\)"):
        run_executor(root, tmp_path / "out", ImageLayout())


def test_only_system_files_are_no_files(tmp_path, image_files):
    root = tmp_path / "data"
    for c in ("cat", "dog"):
        image_files.write(root / c / ".DS_Store", b"x")
    with pytest.raises(ValueError, match="no files found but 2 system files"):
        run_executor(root, tmp_path / "out", ImageLayout())


def test_a_class_with_no_usable_image_stops_the_run(tmp_path, image_files):
    root = tmp_path / "data"
    for i in range(4):
        image_files.write(root / "cat" / f"{i}.png", image_files.good_image("png", i)[1])
    image_files.write(root / "dog" / "0.jpg", b"")
    with pytest.raises(ValueError, match="class.*dog have no usable image"):
        run_executor(root, tmp_path / "out", ImageLayout(),
                     IngestSettings(max_quarantined_fraction=0.5))


def test_pixel_limit_is_configurable(tmp_path, image_files):
    root = tmp_path / "data"
    for c in ("a", "b"):
        for i in range(3):
            image_files.write(root / c / f"{i}.png",
                              image_files.encode(image_files.rgb(i, (20 + 40 * i, 20)), "PNG"))
    examples, _ = run_executor(root, tmp_path / "out", ImageLayout(),
                               IngestSettings(max_pixels=1_000, max_quarantined_fraction=0.9))
    report = quarantine(examples)
    assert sorted(report) == ["a/1.png", "a/2.png", "b/1.png", "b/2.png"]
    assert {r["kind"] for r in report.values()} == {"too_large"}
    assert "60x20 = 1200 pixels > 1000" in report["a/1.png"]["reason"]


def _class_folder(root: Path, image_files, classes=("cat", "dog"), n: int = 5,
                  seed: int = 0) -> None:
    for c, name in enumerate(classes):
        for i in range(n):
            image_files.write(root / name / f"{seed}_{i}.jpg",
                              image_files.good_image("jpg", seed + 10 * c + i)[1])


def test_given_train_and_eval_folders_are_the_splits(tmp_path, image_files):
    root = tmp_path / "data"
    _class_folder(root / "train", image_files, n=6)
    _class_folder(root / "eval", image_files, n=2, seed=50)
    examples, _ = run_executor(root, tmp_path / "out", ImageLayout(given_splits=True))
    by_split = read_examples(examples)
    names = {s: sorted(feature(e, "filename").decode() for e in v) for s, v in by_split.items()}
    assert len(names["train"]) == 12 and all(n.startswith("train/") for n in names["train"])
    assert len(names["eval"]) == 4 and all(n.startswith("eval/") for n in names["eval"])


def test_the_latest_span_is_read_by_default_and_a_static_range_picks_one(tmp_path, image_files):
    root = tmp_path / "data"
    _class_folder(root / "span-1", image_files, n=3)
    _class_folder(root / "span-2", image_files, n=4, seed=20)
    (root / "span-1" / "dog" / ".DS_Store").write_bytes(b"x")  # not counted as an image
    latest, span = run_executor(root, tmp_path / "latest", ImageLayout(spans=True))
    assert span == 2
    props = latest.mlmd_artifact.custom_properties
    assert props["previous_span"].int_value == 1
    assert json.loads(props["previous_span_images_per_class"].string_value) == {
        "cat": 3, "dog": 3}
    (root / "span-1" / "dog" / ".DS_Store").unlink()
    names = [feature(e, "filename").decode() for s in read_examples(latest).values() for e in s]
    assert len(names) == 8 and all(n.startswith("span-2/") for n in names)
    first, span = run_executor(root, tmp_path / "first", ImageLayout(spans=True, span=1))
    assert span == 1
    names = [feature(e, "filename").decode() for s in read_examples(first).values() for e in s]
    assert len(names) == 6 and all(n.startswith("span-1/") for n in names)
    assert "previous_span" not in first.mlmd_artifact.custom_properties


def test_spans_with_given_splits(tmp_path, image_files):
    root = tmp_path / "data"
    for span in (1, 3):
        _class_folder(root / f"span-{span}" / "train", image_files, n=3, seed=span)
        _class_folder(root / f"span-{span}" / "eval", image_files, n=1, seed=span + 40)
    examples, span = run_executor(root, tmp_path / "out",
                                  ImageLayout(spans=True, given_splits=True))
    assert span == 3
    by_split = read_examples(examples)
    assert {s: len(v) for s, v in by_split.items()} == {"train": 6, "eval": 2}
    assert all(feature(e, "filename").decode().startswith("span-3/eval/")
               for e in by_split["eval"])
    props = examples.mlmd_artifact.custom_properties
    assert props["previous_span"].int_value == 1
    assert json.loads(props["previous_span_images_per_class"].string_value) == {
        "cat": 4, "dog": 4}


def _names(examples) -> list[str]:
    return [feature(e, "filename").decode() for s in read_examples(examples).values() for e in s]


def test_a_window_reads_the_last_spans_into_one_artifact(tmp_path, image_files):
    root = tmp_path / "data"
    for span in (1, 2, 3):  # the same file names in every span
        _class_folder(root / f"span-{span}", image_files, n=span + 1, seed=0)
    image_files.write(root / "span-2" / "dog" / "empty.jpg", b"")
    examples, span = run_executor(root, tmp_path / "out", ImageLayout(spans=True, window=2),
                                  IngestSettings(max_quarantined_fraction=0.5))
    assert span == 3
    names = _names(examples)
    assert len(names) == len(set(names)) == 2 * 3 + 2 * 4
    assert {n.split("/")[0] for n in names} == {"span-2", "span-3"}
    assert "span-2/cat/0_0.jpg" in names and "span-3/cat/0_0.jpg" in names
    assert list(quarantine(examples)) == ["span-2/dog/empty.jpg"]
    props = examples.mlmd_artifact.custom_properties
    assert props["files_found"].int_value == 15
    assert props["ingested"].int_value + props["quarantined"].int_value == 15
    assert props["ingested"].int_value == len(names)
    assert props["spans_read"].string_value == "2,3"
    assert props["window"].int_value == 2
    assert json.loads(props["ingested_per_span"].string_value) == {"2": 6, "3": 8}
    assert json.loads(props["ingested_per_class"].string_value) == {"cat": 7, "dog": 7}
    assert examples.span == 3
    # The previous run (span 2, the same window) read spans 1 and 2: the data gate's baseline,
    # counted by file name (empty.jpg too: nothing is opened).
    assert props["previous_span"].int_value == 2
    assert props["previous_spans_read"].string_value == "1,2"
    assert json.loads(props["previous_span_images_per_class"].string_value) == {
        "cat": 5, "dog": 6}


def test_a_window_ends_at_a_static_span_and_skips_missing_spans(tmp_path, image_files):
    root = tmp_path / "data"
    for span in (1, 2, 4):
        _class_folder(root / f"span-{span}", image_files, n=2, seed=span)
    static, span = run_executor(root, tmp_path / "static",
                                ImageLayout(spans=True, span=2, window=2))
    assert span == 2
    assert sorted({n.split("/")[0] for n in _names(static)}) == ["span-1", "span-2"]
    assert static.mlmd_artifact.custom_properties["spans_read"].string_value == "1,2"
    latest, span = run_executor(root, tmp_path / "latest", ImageLayout(spans=True, window=3))
    assert span == 4
    props = latest.mlmd_artifact.custom_properties
    assert props["spans_read"].string_value == "2,4"  # span 3 does not exist
    assert json.loads(props["ingested_per_span"].string_value) == {"2": 4, "4": 4}
    assert sorted({n.split("/")[0] for n in _names(latest)}) == ["span-2", "span-4"]


def test_a_window_with_given_splits_reads_each_split_of_each_span(tmp_path, image_files):
    root = tmp_path / "data"
    for span in (1, 2):
        _class_folder(root / f"span-{span}" / "train", image_files, n=3, seed=span)
        _class_folder(root / f"span-{span}" / "eval", image_files, n=1, seed=span + 40)
    examples, _ = run_executor(root, tmp_path / "out",
                               ImageLayout(spans=True, given_splits=True, window=2))
    by_split = {s: sorted(feature(e, "filename").decode() for e in v)
                for s, v in read_examples(examples).items()}
    assert {s: len(v) for s, v in by_split.items()} == {"train": 12, "eval": 4}
    assert {n.split("/")[1] for n in by_split["eval"]} == {"eval"}
    assert {n.split("/")[0] for n in by_split["eval"]} == {"span-1", "span-2"}


def test_a_window_needs_span_folders_and_at_least_one_span():
    with pytest.raises(ValueError, match="window of 2 spans needs the data in span-<N>/"):
        ImageLayout(window=2)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        ImageLayout(spans=True, window=0)


@pytest.mark.parametrize("feature_name", ["filename", ""])
def test_output_splits_are_tfx_own_hash_splits(feature_name):
    split_config = ImageLayout(train_eval_buckets=(3, 2)).output_config().split_config
    if not feature_name:  # TFX then hashes the whole serialized example
        split_config.ClearField("partition_feature_name")
    examples = [make_example(b"x", i % 2, "ab"[i % 2], f"{'ab'[i % 2]}/{i}.jpg")
                for i in range(300)]
    ours = [HashSplits(feature_name, (3, 5)).index(e) for e in examples]
    assert ours == [_PartitionFn(e, 2, [3, 5], split_config) for e in examples]
    assert 0.3 < sum(ours) / len(ours) < 0.5  # about 2 in 5 to eval


def test_beam_workers_import_neither_tfx_nor_tensorflow_to_unpickle_the_conversion():
    code = ("import sys, components.image_example_gen.convert; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tfx', 'tensorflow', "
            "'tfx_bsl', 'tensorflow_data_validation'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "[]"
