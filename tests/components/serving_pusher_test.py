"""The serving Pusher: numbered versions published atomically, retention, warmup, TFX's metadata."""

import io
import json
import logging
import os
import tempfile
import uuid

import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import prediction_log_pb2
from tfx import v1 as tfx
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from components.data_validation.component import DataVerdict
from components.image_example_gen.reader import make_example
from components.serving_pusher import executor, publish, warmup
from components.serving_pusher.component import ServingPusher
from components.tflite_export import properties as tflite_properties
from components.tflite_export.component import TFLiteModels
from serving import layout

MODEL_NAME = "shapes"
EVAL_COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (200, 200, 200)]


class _MeanPixelModel(tf.Module):
    """Decodes images as the real serving signature does; 'probabilities' from the mean pixel."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        def mean(encoded):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            return tf.reduce_mean(tf.cast(image, tf.float32)) / 255.0

        p = tf.map_fn(mean, image_bytes, fn_output_signature=tf.float32)
        return {"probabilities": tf.stack([1.0 - p, p], axis=-1)}


def _encoded(colour: tuple[int, int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def _write_examples(path: str, images: list[bytes]) -> None:
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i, image in enumerate(images):
            writer.write(make_example(image, i % 2, "c", f"c/{i}").SerializeToString())


@pytest.fixture(scope="module")
def model_uri(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("model"))
    module = _MeanPixelModel()
    tf.saved_model.save(module, os.path.join(uri, "Format-Serving"),
                        signatures={"serving_default": module.serve})
    return uri


@pytest.fixture(scope="module")
def eval_images() -> list[bytes]:
    return [_encoded(c, "PNG" if i % 2 else "JPEG") for i, c in enumerate(EVAL_COLOURS)]


@pytest.fixture(scope="module")
def examples_uri(tmp_path_factory, eval_images) -> str:
    uri = str(tmp_path_factory.mktemp("examples"))
    for split, images in (("train", [_encoded((0, 0, 0), "PNG")]), ("eval", eval_images)):
        os.makedirs(os.path.join(uri, f"Split-{split}"))
        _write_examples(os.path.join(uri, f"Split-{split}", "data_tfrecord-00000-of-00001.gz"),
                        images)
    return uri


@pytest.fixture
def base(tmp_path) -> str:
    return str(tmp_path / "serving" / MODEL_NAME)


@pytest.fixture
def push(tmp_path, model_uri, examples_uri, base):
    """Runs our executor's Do on real artifacts, as the orchestrator would; returns pushed_model."""

    def run(blessed: bool = True, keep_versions: int = 5, warmup_requests: int = 8,
            with_examples: bool = True, infra_blessed: bool | None = None,
            data_problems: list[str] | None = None,
            tflite_accepted: list[str] | None = None) -> standard_artifacts.PushedModel:
        inputs = _inputs(tmp_path, model_uri, blessed)
        if tflite_accepted is not None:
            inputs["tflite_models"] = [_tflite_models(tmp_path, tflite_accepted)]
        if data_problems is not None:
            verdict = DataVerdict()
            verdict.uri = str(tmp_path / "data_verdict")
            verdict.set_int_custom_property("passed", int(not data_problems))
            verdict.set_string_custom_property("problems", json.dumps(data_problems))
            inputs["data_verdict"] = [verdict]
        if infra_blessed is not None:
            infra = standard_artifacts.InfraBlessing()
            infra.uri = str(tmp_path / "infra_blessing")
            infra.set_int_custom_property("blessed", int(infra_blessed))
            infra.set_string_custom_property("reason", "" if infra_blessed else "timed out")
            inputs["infra_blessing"] = [infra]
        if with_examples:
            examples = standard_artifacts.Examples()
            examples.uri = examples_uri
            examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
            inputs["examples"] = [examples]
        pushed = _pushed_artifact(tmp_path)
        executor.Executor().Do(inputs, {"pushed_model": [pushed]}, {
            "serving_model_dir": base, "model_name": MODEL_NAME,
            "keep_versions": keep_versions, "warmup_requests": warmup_requests})
        return pushed

    return run


def _inputs(tmp_path, model_uri: str, blessed: bool) -> dict[str, list]:
    model = standard_artifacts.Model()
    model.uri = model_uri
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    return {"model": [model], "model_blessing": [blessing]}


def _tflite_models(tmp_path, accepted: list[str]) -> TFLiteModels:
    """TFLiteExport's output with both formats written and `accepted` of them accepted."""
    artifact = TFLiteModels()
    artifact.uri = str(tmp_path / "tflite_models")
    os.makedirs(artifact.uri, exist_ok=True)
    for fmt in ("float16", "int8"):
        for name in (f"model_{fmt}.tflite", f"model_{fmt}.json"):
            with open(os.path.join(artifact.uri, name), "w") as f:
                f.write(f"{fmt} {name}")
    with open(os.path.join(artifact.uri, "labels.txt"), "w") as f:
        f.write("a\nb\n")
    artifact.set_string_custom_property(tflite_properties.ACCEPTED, json.dumps(accepted))
    return artifact


def _pushed_artifact(tmp_path) -> standard_artifacts.PushedModel:
    pushed = standard_artifacts.PushedModel()
    pushed.uri = tempfile.mkdtemp(dir=tmp_path, prefix="pushed-")
    return pushed


def _properties(artifact) -> dict[str, object]:
    return {key: getattr(value, value.WhichOneof("value"))
            for key, value in artifact.mlmd_artifact.custom_properties.items()}


def _files(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, names in os.walk(root) for f in names)


def _hidden(base: str) -> list[str]:
    return [n for n in os.listdir(base) if n.startswith(layout.TMP_PREFIX)]


# --- the executor ----------------------------------------------------------------------------


def test_blessed_pushes_publish_complete_consecutive_versions(push, base, model_uri, monkeypatch):
    first = push()
    assert layout.numeric_versions(base) == [1]
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    assert _properties(first) == {"pushed": 1, "pushed_destination": os.path.join(base, "1"),
                                  "pushed_version": "1"}

    # During the second push a poller sees only version 1; the rename moves a complete copy.
    seen_while_copying, staged_at_rename = [], []
    real_copy, real_rename = publish.copy_file, os.rename

    def observing_copy(src: str, dst: str) -> None:
        seen_while_copying.append(layout.numeric_versions(base))
        real_copy(src, dst)

    def observing_rename(src: str, dst: str) -> None:
        if dst == os.path.join(base, "2"):
            staged_at_rename.append(_files(src))
        real_rename(src, dst)

    monkeypatch.setattr(publish, "copy_file", observing_copy)
    monkeypatch.setattr(os, "rename", observing_rename)
    second = push()
    monkeypatch.undo()
    assert seen_while_copying and all(seen == [1] for seen in seen_while_copying)
    expected = sorted(_files(os.path.join(model_uri, "Format-Serving"))
                      + ["assets.extra/tf_serving_warmup_requests"])
    assert staged_at_rename == [expected]
    assert _files(os.path.join(base, "2")) == expected
    assert layout.numeric_versions(base) == [1, 2]
    assert _properties(second)["pushed_version"] == "2"
    assert _hidden(base) == []
    # The artifact keeps its own copy, as TFX's Pusher does.
    assert _files(second.uri) == expected


def test_accepted_tflite_models_are_pushed_inside_the_version(push, base, model_uri):
    pushed = push(tflite_accepted=["int8"])
    tflite = os.path.join(base, "1", "assets.extra", "tflite")
    assert sorted(os.listdir(tflite)) == ["labels.txt", "model_int8.json", "model_int8.tflite"]
    with open(os.path.join(tflite, "model_int8.tflite")) as f:
        assert f.read() == "int8 model_int8.tflite"
    assert json.loads(_properties(pushed)["pushed_tflite"]) == {
        "int8": "assets.extra/tflite/model_int8.tflite"}
    assert layout.numeric_versions(base) == [1]  # TF Serving's scan sees one version, complete
    # None accepted: nothing of TFLite in the version, and no property.
    second = push(tflite_accepted=[])
    assert not os.path.exists(os.path.join(base, "2", "assets.extra", "tflite"))
    assert "pushed_tflite" not in _properties(second)


def test_retention_keeps_the_newest_and_numbers_never_go_back(push, base):
    versions = []
    for _ in range(3):
        versions.append(_properties(push(keep_versions=1))["pushed_version"])
        assert layout.numeric_versions(base) == [int(versions[-1])]
    assert versions == ["1", "2", "3"]
    # Even an operator deleting the newest version (a rollback) does not bring a number back.
    publish.delete(os.path.join(base, "3"))
    assert _properties(push(keep_versions=1))["pushed_version"] == "4"
    assert layout.numeric_versions(base) == [4]


def test_an_unblessed_model_writes_nothing(push, base):
    pushed = push(blessed=False)
    assert not os.path.exists(base)
    assert os.listdir(pushed.uri) == []
    assert _properties(pushed)["pushed"] == 0
    assert "is not blessed" in _properties(pushed)["not_pushed_because"]


def test_a_model_that_failed_the_load_check_is_not_pushed(push, base):
    pushed = push(infra_blessed=False)
    assert not os.path.exists(base)
    assert _properties(pushed)["pushed"] == 0
    assert "(timed out)" in _properties(pushed)["not_pushed_because"]
    assert _properties(push(infra_blessed=True))["pushed_version"] == "1"


def test_an_interrupted_push_publishes_nothing_and_the_next_one_cleans_up(
        push, base, monkeypatch, caplog):
    push()
    real_copy = publish.copy_file
    staged = []

    def copy_two_then_fail(src: str, dst: str) -> None:
        if f"{os.sep}{layout.TMP_PREFIX}" in dst:  # only the copy into the staging directory
            if len(staged) == 2:
                raise OSError("disk full")
            staged.append(dst)
        real_copy(src, dst)

    monkeypatch.setattr(publish, "copy_file", copy_two_then_fail)
    with pytest.raises(OSError, match="disk full"):
        push()
    assert len(staged) == 2
    assert layout.numeric_versions(base) == [1]
    assert _hidden(base) == []  # a failure in Python removes its own staging directory

    # A killed process cannot clean up: its half-copied staging directory stays, hidden.
    staged.clear()
    monkeypatch.setattr(publish, "discard", lambda path: None)
    with pytest.raises(OSError, match="disk full"):
        push()
    [leftover] = _hidden(base)
    assert len(_files(os.path.join(base, leftover))) == 2
    assert layout.numeric_versions(base) == [1]

    monkeypatch.undo()
    with caplog.at_level(logging.WARNING):
        pushed = push()
    assert _properties(pushed)["pushed_version"] == "2"
    assert layout.numeric_versions(base) == [1, 2]
    assert _hidden(base) == []
    assert leftover in caplog.text


@pytest.mark.parametrize("requested", [8, 2])
def test_warmup_requests_are_eval_images_the_model_accepts(push, base, eval_images, requested):
    push(warmup_requests=requested)
    path = warmup.warmup_path(os.path.join(base, "1"))
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset([path])]
    assert len(logs) == min(requested, len(eval_images))
    serve = tf.saved_model.load(os.path.join(base, "1")).signatures["serving_default"]
    for log, image in zip(logs, eval_images[:len(logs)], strict=True):
        request = log.predict_log.request
        assert (request.model_spec.name, request.model_spec.signature_name) == (
            MODEL_NAME, "serving_default")
        array = tf.make_ndarray(request.inputs["image_bytes"])
        assert array.shape == (1,) and array[0] == image
        assert serve(image_bytes=tf.constant(array))["probabilities"].shape == (1, 2)


def test_no_warmup_requests_writes_no_warmup_file_and_needs_no_examples(push, base):
    push(warmup_requests=0, with_examples=False)
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    assert not os.path.exists(os.path.join(base, "1", warmup.ASSETS_EXTRA))


def test_custom_properties_are_those_tfx_pusher_sets(push, tmp_path, model_uri, base):
    tfx_base = str(tmp_path / "tfx_serving")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=tfx_base))
    for blessed in (True, False):
        ours = push(blessed=blessed)
        theirs = _pushed_artifact(tmp_path)
        tfx_pusher_executor.Executor().Do(
            _inputs(tmp_path, model_uri, blessed), {"pushed_model": [theirs]},
            {"push_destination": proto_utils.proto_to_json(destination)})
        ours_props, theirs_props = _properties(ours), _properties(theirs)
        # TFX's properties, with their types; ours adds only the reason for not pushing.
        assert ours_props.pop("not_pushed_because", "") == (
            "" if blessed else f"model blessing {tmp_path}/blessing is not blessed")
        assert {k: type(v) for k, v in ours_props.items()} == {
            k: type(v) for k, v in theirs_props.items()}
        assert ours_props["pushed"] == theirs_props["pushed"] == int(blessed)
        if blessed:
            for props, root in ((ours_props, base), (theirs_props, tfx_base)):
                assert props["pushed_destination"] == os.path.join(root, props["pushed_version"])
                assert os.path.isfile(os.path.join(props["pushed_destination"], "saved_model.pb"))


# --- the component ---------------------------------------------------------------------------


def _channels() -> dict:
    return {"model": tfx.dsl.Channel(type=standard_artifacts.Model),
            "model_blessing": tfx.dsl.Channel(type=standard_artifacts.ModelBlessing)}


def test_component_takes_pushers_place():
    component = ServingPusher(**_channels(), examples=tfx.dsl.Channel(
        type=standard_artifacts.Examples), serving_model_dir="/out/serving/m",
        model_name="m").with_id("Pusher")
    assert component.id == "Pusher"
    assert component.exec_properties == {"serving_model_dir": "/out/serving/m", "model_name": "m",
                                         "keep_versions": 5, "warmup_requests": 8}
    assert component.outputs["pushed_model"].type == standard_artifacts.PushedModel


@pytest.mark.parametrize("kwargs, message", [
    ({"keep_versions": 0}, "keep_versions"),
    ({"warmup_requests": 1001}, "warmup_requests"),
    ({"warmup_requests": -1}, "warmup_requests"),
    ({"examples": None}, "examples"),
    ({"serving_model_dir": ""}, "serving_model_dir"),
])
def test_component_rejects_bad_parameters(kwargs, message):
    args = {"examples": tfx.dsl.Channel(type=standard_artifacts.Examples),
            "serving_model_dir": "/out/serving/m", "model_name": "m", **kwargs}
    with pytest.raises(ValueError, match=message):
        ServingPusher(**_channels(), **args)


# --- publish.py ------------------------------------------------------------------------------


def _make_versions(base: str, *names: str) -> None:
    for name in names:
        os.makedirs(os.path.join(base, name))


def test_next_version_ignores_other_names_and_honours_the_record(tmp_path):
    base = str(tmp_path)
    assert publish.next_version(os.path.join(base, "missing")) == 1
    _make_versions(base, "3", "12", "latest", ".tmp-40-abc", "7x")
    assert layout.numeric_versions(base) == [3, 12]
    assert publish.next_version(base) == 13
    (tmp_path / layout.LAST_VERSION_FILE).write_text("20\n")
    assert publish.next_version(base) == 21
    (tmp_path / layout.LAST_VERSION_FILE).write_text("twenty")
    with pytest.raises(ValueError, match="last published version"):
        publish.next_version(base)


def test_retire_versions_keeps_the_newest_and_never_the_protected_one(tmp_path):
    base = str(tmp_path)
    _make_versions(base, "1", "2", "5", "7")
    assert publish.retire_versions(base, keep_versions=2, protect=7) == [1, 2]
    assert layout.numeric_versions(base) == [5, 7]
    assert publish.retire_versions(base, keep_versions=1, protect=5) == [7]
    assert layout.numeric_versions(base) == [5]
    assert _hidden(base) == []


def test_remove_leftovers_removes_only_hidden_staging_entries(tmp_path):
    base = str(tmp_path)
    _make_versions(base, "1", ".tmp-2-abc", ".tmp-retired-1-def", ".other")
    (tmp_path / ".tmp-last_version-0a").write_text("2")
    removed = publish.remove_leftovers(base)
    assert sorted(os.path.basename(p) for p in removed) == [
        ".tmp-2-abc", ".tmp-last_version-0a", ".tmp-retired-1-def"]
    assert sorted(os.listdir(base)) == [".other", "1"]


def test_publish_never_replaces_an_existing_version(tmp_path, monkeypatch):
    base = str(tmp_path)
    _make_versions(base, "1")
    monkeypatch.setattr(publish, "next_version", lambda _: 1)  # as a second writer would see it

    def write(staging: str) -> None:
        (tmp_path / os.path.basename(staging) / "saved_model.pb").write_bytes(b"new")

    with pytest.raises(FileExistsError):
        publish.publish_version(base, write, keep_versions=5)
    assert os.listdir(os.path.join(base, "1")) == []
    assert _hidden(base) == []


def test_publish_on_a_filesystem_without_atomic_rename_moves_every_file(monkeypatch):
    base = f"ram://{uuid.uuid4().hex}/serving/m"
    moved = []
    real_rename = tf.io.gfile.rename

    def recording_rename(src: str, dst: str, overwrite: bool = False) -> None:
        moved.append(os.path.basename(dst))
        real_rename(src, dst, overwrite)

    def write(staging: str) -> None:
        for relative in ("saved_model.pb", "variables/variables.index", "fingerprint.pb"):
            tf.io.gfile.makedirs(os.path.dirname(os.path.join(staging, relative)))
            with tf.io.gfile.GFile(os.path.join(staging, relative), "wb") as f:
                f.write(relative.encode())

    monkeypatch.setattr(tf.io.gfile, "rename", recording_rename)
    for _ in range(2):
        publication = publish.publish_version(base, write, keep_versions=1)
    assert publication.version == 2 and publication.retired_versions == (1,)
    assert layout.numeric_versions(base) == [2]
    assert sorted(publish.relative_files(os.path.join(base, "2"))) == [
        "fingerprint.pb", "saved_model.pb", "variables/variables.index"]
    # saved_model.pb, the sign that a SavedModel is complete, moves last.
    assert moved[:3] == ["fingerprint.pb", "variables.index", "saved_model.pb"]
    assert [n for n in tf.io.gfile.listdir(base) if n.startswith(layout.TMP_PREFIX)] == []


# --- warmup.py -------------------------------------------------------------------------------


def test_read_images_takes_files_in_name_order_up_to_the_limit(tmp_path):
    first, second = [_encoded((i, i, i), "PNG") for i in (1, 2)], [_encoded((3, 3, 3), "PNG")]
    _write_examples(str(tmp_path / "b.gz"), second)
    _write_examples(str(tmp_path / "a.gz"), first)
    assert warmup.read_images(str(tmp_path), 10) == first + second
    assert warmup.read_images(str(tmp_path), 2) == first
    assert warmup.read_images(str(tmp_path), 0) == []


def test_read_images_rejects_examples_without_one_image(tmp_path):
    _write_examples(str(tmp_path / "a.gz"), [b"x"])
    with pytest.raises(ValueError, match="'pixels'"):
        warmup.read_images(str(tmp_path), 1, feature="pixels")


def test_write_warmup_file_writes_nothing_for_no_images_and_refuses_too_many(tmp_path):
    assert warmup.write_warmup_file(str(tmp_path), [], MODEL_NAME) is None
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="1000"):
        warmup.write_warmup_file(str(tmp_path), [b"x"] * 1001, MODEL_NAME)


def test_a_model_trained_on_data_with_problems_is_not_pushed(push, base):
    problems = ["span 2 has no example of class(es) dog that span 1 had"]
    pushed = push(data_problems=problems)
    assert not os.path.exists(base)
    assert _properties(pushed) == {
        "pushed": 0, "not_pushed_because": "the data has 1 problem(s): " + problems[0]}
    assert _properties(push(data_problems=[]))["pushed_version"] == "1"
