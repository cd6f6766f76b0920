"""Input datasets: Transform's output decoded into batches, streamed from the files or, within a
memory bound, decoded once and held in memory; either way the same images with their labels."""

import json

import click
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from pipeline.cli.options import hparams_from_options, model_options
from pipeline.errors import UserError
from trainer import contract, data
from trainer.hparams import HParams

SIZE = 16
IMAGE_BYTES = SIZE * SIZE * 3


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8)
    return images, rng.integers(0, 3, size=n).astype(np.int64)


def _epoch(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture
def records(tmp_path, write_records):
    images, labels = _images(10, seed=0)
    return write_records(tmp_path / "train.gz", images, labels), images, labels


@pytest.mark.parametrize("memory_bytes", [0, 10 * IMAGE_BYTES - 1, 10 * IMAGE_BYTES, 1 << 30])
def test_unshuffled_batches_are_the_records_in_file_order(records, memory_bytes):
    path, images, labels = records
    dataset = data.make_dataset(path, SIZE, 4, shuffle=False, memory_bytes=memory_bytes)
    assert [int(y.shape[0]) for _, y in dataset] == [4, 4, 2]
    read_images, read_labels = _epoch(dataset)
    np.testing.assert_array_equal(read_images, images)  # PNG is lossless
    np.testing.assert_array_equal(read_labels, labels)


@pytest.mark.parametrize("memory_bytes", [0, 1 << 30])
def test_shuffled_epochs_hold_every_image_once_with_its_label_in_new_orders(records,
                                                                            memory_bytes):
    path, images, labels = records
    index = {image.tobytes(): i for i, image in enumerate(images)}
    dataset = data.make_dataset(path, SIZE, 4, shuffle=True, seed=1, memory_bytes=memory_bytes)
    orders = []
    for _ in range(3):
        read_images, read_labels = _epoch(dataset)
        order = [index[image.tobytes()] for image in read_images]
        assert sorted(order) == list(range(10))
        np.testing.assert_array_equal(read_labels, labels[order])
        orders.append(tuple(order))
    assert len(set(orders)) > 1


def test_the_memory_bound_decides_between_held_and_streamed(records, write_records):
    """Held: the dataset keeps the decoded images, so rewriting the file changes nothing.
    Streamed (one byte over the bound): every epoch reads the file again."""
    path, images, _ = records
    held = data.make_dataset(path, SIZE, 4, shuffle=False, memory_bytes=10 * IMAGE_BYTES)
    streamed = data.make_dataset(path, SIZE, 4, shuffle=False, memory_bytes=10 * IMAGE_BYTES - 1)
    other, other_labels = _images(10, seed=7)
    write_records(path, other, other_labels)
    np.testing.assert_array_equal(_epoch(held)[0], images)
    np.testing.assert_array_equal(_epoch(streamed)[0], other)


@pytest.mark.parametrize("memory_bytes", [0, 1 << 30])
def test_the_datasets_run_without_tf_datas_autotuning_thread(records, memory_bytes):
    """Destroying an iterator waits for that thread's sleep (seconds, late in a run), and Keras
    destroys one per epoch and per validation: see `data.without_autotuning`."""
    path, _, _ = records
    dataset = data.make_dataset(path, SIZE, 4, shuffle=True, memory_bytes=memory_bytes)
    assert dataset.options().autotune.enabled is False
    assert tf.data.Dataset.range(3).options().autotune.enabled is None  # TF's default: on


def test_no_matching_files_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no examples match"):
        data.make_dataset(str(tmp_path / "*.gz"), SIZE, 4, shuffle=False)


def test_the_flag_sets_the_bound_and_a_negative_one_is_one_line():
    @click.command()
    @model_options
    def command(**options):
        hp = hparams_from_options(("a", "b"), "none", options)
        click.echo(f"{hp.images_in_memory_mb} {hp.images_in_memory_bytes}")

    assert CliRunner().invoke(command, []).output == "0 0\n"  # streamed by default
    assert CliRunner().invoke(command, ["--images-in-memory-mb", "512"]).output == (
        f"512 {512 * 2**20}\n")
    result = CliRunner().invoke(command, ["--images-in-memory-mb", "-1"])
    assert isinstance(result.exception, UserError)  # imgpipe's main: one line, exit code 2
    assert str(result.exception) == "--images-in-memory-mb -1 must be at least 0"
    with pytest.raises(ValueError, match="images_in_memory_mb -2 must be at least 0"):
        HParams(class_names=("a", "b"), images_in_memory_mb=-2)
    hp = HParams(class_names=("a", "b"), images_in_memory_mb=64)
    assert HParams.from_config(json.loads(json.dumps(hp.to_config()))) == hp


@pytest.mark.slow  # the Trainer's whole run_fn: trains and exports
def test_run_fn_gives_the_bound_to_the_training_and_eval_images(transform_output, tmp_path,
                                                                write_records, monkeypatch):
    import os

    from tfx import v1 as tfx

    from trainer import run
    from trainer.augment import AugmentConfig

    bounds = []
    real = data.make_dataset

    def spy(*args, **kwargs):
        bounds.append(kwargs.get("memory_bytes"))
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "make_dataset", spy)
    hp = HParams(class_names=("a", "b"), image_size=75, weights="none", dense_units=(4,),
                 augment=AugmentConfig.off(), epochs=1, early_stopping_patience=0,
                 batch_size=4, images_in_memory_mb=3)
    images = np.random.default_rng(0).integers(0, 256, (8, 75, 75, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 4)
    fn_args = tfx.components.FnArgs(
        train_files=[write_records(tmp_path / "train.gz", images, labels)],
        eval_files=[write_records(tmp_path / "eval.gz", images[:4], labels[:4])],
        transform_output=os.path.dirname(transform_output.transform_savedmodel_dir),
        serving_model_dir=str(tmp_path / "serving"), model_run_dir=str(tmp_path / "run"),
        custom_config={contract.HPARAMS_KEY: hp.to_config()}, schema_path=None, base_model=None)
    run.run_fn(fn_args)
    # The feature check's one-batch sample streams; the training and eval datasets hold the bound.
    assert bounds == [None, 3 << 20, 3 << 20]
