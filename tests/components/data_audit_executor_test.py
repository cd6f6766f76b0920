"""DataAudit's executor on planted images through a real base (MobileNetV2, random weights
seeded, 48 pixels: cheap, and its features still tell pictures apart; a random base is a weak
one, some seeds put unrelated pictures above 0.95, so the seed is fixed). Copies of train images
planted in eval, byte-exact, re-encoded, shifted, resized and brightened, must come back as
leaks with their source, and train images filed under the other class as suspected mislabels."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx.types import artifact_utils, standard_artifacts

from components.data_audit import executor, properties
from components.data_audit.component import AuditFindings, DataAudit
from components.image_example_gen.reader import make_example
from trainer.hparams import HParams

CLASSES = ("blue", "red")
HPARAMS = HParams(class_names=CLASSES, base="mobilenet_v2", weights="none", image_size=48)


def _picture(seed: int, channel: int) -> np.ndarray:
    """A smooth random 96x96 picture (blobs of colour), one channel raised: its class."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 150, (6, 6, 3))
    small[..., channel] += 105
    return np.asarray(Image.fromarray(small.astype(np.uint8)).resize(
        (96, 96), Image.Resampling.BICUBIC))


def _encoded(pixels: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **options)
    return out.getvalue()


COPIES = {  # how each planted eval copy is made from its train source
    "exact": None,
    "jpeg": lambda p: _encoded(p, "JPEG", quality=70),
    "shifted": lambda p: _encoded(np.roll(p, 2, axis=1)),
    "brighter": lambda p: _encoded(np.clip(p.astype(int) + 6, 0, 255).astype(np.uint8)),
    "smaller": lambda p: _encoded(np.asarray(Image.fromarray(p).resize((80, 80)))),
}


def _write_split(directory: Path, rows: list[tuple[bytes, int, str]]) -> None:
    directory.mkdir(parents=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(directory / "data_tfrecord-00000-of-00001.gz"),
                              options) as writer:
        for image, label, name in rows:
            writer.write(make_example(image, label, CLASSES[label], name).SerializeToString())


FLIPPED = (1, 10, 23, 44, 55)  # train pictures filed under the other class


def _planted(root: Path) -> tuple[standard_artifacts.Examples, set[tuple[str, str]]]:
    """60 train and 30 eval pictures, 10 of the eval ones copies of train ones (2 of each kind
    in COPIES), and the train pictures FLIPPED given the other class' label."""
    train, evaluation, leaks = [], [], set()
    pictures = {}
    for i in range(90):
        pictures[i] = _picture(i, 2 if i % 2 == 0 else 0)
        label = 1 - i % 2 if i in FLIPPED else i % 2
        row = (_encoded(pictures[i]), label, f"{CLASSES[label]}/p{i:03d}.png")
        (train if i < 60 else evaluation).append(row)
    for n, (kind, make) in enumerate(list(COPIES.items()) * 2):
        source = train[(7 * n) % 60]
        image = source[0] if make is None else make(pictures[(7 * n) % 60])
        name = f"{CLASSES[source[1]]}/copy-{kind}-{n}.png"
        evaluation[n] = (image, source[1], name)
        leaks.add((name, source[2]))
    _write_split(root / "Split-train", train)
    _write_split(root / "Split-eval", evaluation)
    examples = standard_artifacts.Examples()
    examples.uri = str(root)
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    return examples, leaks


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    examples, leaks = _planted(root / "examples")
    findings = AuditFindings()
    findings.uri = str(root / "findings")
    component = DataAudit(examples=tf_channel(), hparams_config=HPARAMS.to_config())
    tf.keras.utils.set_random_seed(2)  # the random base's weights
    executor.Executor().Do({"examples": [examples]}, {"findings": [findings]},
                           component.exec_properties)
    report = json.loads((root / "findings" / executor.AUDIT_FILE).read_text())
    return findings, report, leaks, examples


def test_the_eval_split_without_leaks_holds_every_other_eval_image(audited, tmp_path):
    findings, report, _, examples = audited
    output = standard_artifacts.Examples()
    output.uri = str(tmp_path / "eval_examples")
    executor.DropLeakedEvalExecutor().Do(
        {"examples": [examples], "findings": [findings]}, {"eval_examples": [output]}, {})
    assert artifact_utils.decode_split_names(output.split_names) == ["eval"]
    names = []
    for record in tf.data.TFRecordDataset(
            tf.io.gfile.glob(str(tmp_path / "eval_examples" / "Split-eval" / "*.gz")),
            compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        names.append(feature["filename"].bytes_list.value[0].decode())
    leaked = {leak["eval_file"] for leak in report["leaks"]}
    assert len(leaked) >= 9 and not leaked & set(names)
    assert len(names) == 30 - len(leaked) == len(set(names))
    assert output.get_int_custom_property(properties.DROPPED_EVAL_IMAGES) == len(leaked)


def tf_channel():
    from tfx import types

    return types.Channel(type=standard_artifacts.Examples)


def test_planted_leaks_are_found_with_their_source(audited):
    findings, report, leaks, _ = audited
    found = {(leak["eval_file"], leak["train_file"]) for leak in report["leaks"]}
    assert len(found & leaks) >= 0.9 * len(leaks)
    assert len(found - leaks) <= 1
    assert findings.get_int_custom_property(properties.LEAKED_EVAL_IMAGES) == len(found)
    assert findings.get_int_custom_property(properties.EVAL_IMAGES) == 30
    assert findings.get_int_custom_property(properties.TRAIN_IMAGES) == 60
    assert findings.get_int_custom_property(properties.UNHASHED_IMAGES) == 0
    exact = [g for g in report["duplicates"] if g["kind"] == "exact"]
    assert {tuple(g["files"]) for g in exact} == {
        tuple(sorted(pair)) for pair in leaks if "copy-exact" in pair[0]}


def test_flipped_labels_are_suspected_first(audited):
    _, report, _, _ = audited
    flipped = {f"{CLASSES[1 - i % 2]}/p{i:03d}.png" for i in FLIPPED}
    top = [s["file"] for s in report["suspected_mislabels"][:2 * len(flipped)]]
    assert len(set(top) & flipped) >= 0.7 * len(flipped)
    assert all(s["suggested"] != s["given"] for s in report["suspected_mislabels"])


def test_the_report_has_the_issues_shape_with_names_relative_to_the_data(audited):
    _, report, _, _ = audited
    assert set(report) == {"images", "duplicates", "leaks", "suspected_mislabels",
                           "mislabel_check"}
    assert report["mislabel_check"]["judged"]
    for group in report["duplicates"]:
        assert set(group) == {"files", "kind", "similarity"}
        assert all(f.split("/")[0] in CLASSES for f in group["files"])
    for suspect in report["suspected_mislabels"]:
        assert set(suspect) == {"file", "given", "suggested", "score"}


def test_only_what_decides_the_features_is_an_execution_property():
    first = DataAudit(examples=tf_channel(), hparams_config=HPARAMS.to_config())
    other = HParams(class_names=CLASSES, base="mobilenet_v2", weights="none", image_size=48,
                    epochs=9, learning_rate=0.5)
    second = DataAudit(examples=tf_channel(), hparams_config=other.to_config())
    assert first.exec_properties[executor.BASE_KEY] == second.exec_properties[executor.BASE_KEY]
    assert json.loads(first.exec_properties[executor.BASE_KEY])["base"] == "mobilenet_v2"
