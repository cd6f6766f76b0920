"""The image ExampleGen's executor on generated folders: every file ingested or quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.image_example_gen.component import ImageLayout
from components.image_example_gen.executor import Executor, IngestSettings

CLASSES = ("chat_é", "dog", "猫")  # non-ASCII class names, sorted by code point


def run_executor(data_root: Path, out: Path, layout: ImageLayout,
                 settings: IngestSettings | None = None):
    """Resolves spans as TFX's FileBasedExampleGen driver does, then runs the executor."""
    input_config = layout.input_config()
    output_config = layout.output_config() or utils.make_default_output_config(input_config)
    _, span, version = utils.calculate_splits_fingerprint_span_and_version(
        str(data_root), input_config.splits, layout.range_config())
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    Executor().Do({}, {"examples": [examples]}, {
        "input_base": str(data_root),
        "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(output_config),
        "custom_config": proto_utils.proto_to_json((settings or IngestSettings()).to_proto()),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        "span": span,
        "version": version,
    })
    return examples, span


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


@pytest.fixture
def messy_folder(tmp_path, image_files) -> tuple[Path, dict[str, str], dict[str, str]]:
    """DATA/<class>/* with every good format, every bad kind, hidden and misplaced files.

    Returns the root, good relative path -> expected format, bad relative path -> kind.
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
    extras = {
        ".DS_Store": "hidden", "dog/.DS_Store": "hidden", "猫/.thumbnails/a.jpg": "hidden",
        "LICENSE.txt": "not_in_class", "chat_é/more/b.jpg": "nested",
    }
    jpeg = image_files.encode(image_files.rgb(7), "JPEG")
    for relative, kind in extras.items():
        image_files.write(root / relative, jpeg)
        bad[relative] = kind
    return root, good, bad


def test_every_file_is_ingested_or_quarantined_with_its_reason(messy_folder, tmp_path):
    root, good, bad = messy_folder
    examples, _ = run_executor(root, tmp_path / "out", ImageLayout(),
                               IngestSettings(max_quarantined_fraction=0.5))
    by_split = read_examples(examples)
    assert set(by_split) == {"train", "eval"}
    ingested = {feature(e, "filename").decode(): e for s in by_split.values() for e in s}
    assert set(ingested) == set(good)
    report = quarantine(examples)
    assert {path: r["kind"] for path, r in report.items()} == bad
    assert all(r["reason"] for r in report.values())
    found = len(good) + len(bad)
    props = examples.mlmd_artifact.custom_properties
    assert props["files_found"].int_value == found
    assert props["ingested"].int_value == len(good)
    assert props["quarantined"].int_value == len(bad)
    assert props["ingested"].int_value + props["quarantined"].int_value == found
    assert json.loads(props["class_names"].string_value) == list(CLASSES)
    assert json.loads(props["ingested_per_class"].string_value) == {c: 20 for c in CLASSES}


def test_examples_keep_original_bytes_and_describe_the_image(messy_folder, tmp_path):
    root, good, _ = messy_folder
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
    root, good, bad = messy_folder
    with pytest.raises(ValueError, match=rf"{len(bad)} of {len(good) + len(bad)} files .* "
                                         r"more than the 5% limit .*quarantine\.jsonl"):
        run_executor(root, tmp_path / "out", ImageLayout())
    assert len(quarantine_lines := (tmp_path / "out" / "quarantine.jsonl").read_text()
               .splitlines()) == len(bad), quarantine_lines


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
