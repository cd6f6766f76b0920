"""Class weights: balanced by the training split's class counts, by default only past a 1.5:1
imbalance; on a 9:1 split they raise the minority class's recall."""

import click
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from pipeline.cli.options import hparams_from_options, model_options
from trainer import balance, data, train
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams


def test_balanced_weights_give_every_class_the_same_total_weight():
    weights = balance.class_weights([90, 10], "balanced")
    assert weights == pytest.approx([100 / (2 * 90), 100 / (2 * 10)])
    assert 90 * weights[0] == pytest.approx(10 * weights[1])
    # A class without training examples gets 1.0, and does not count among the k classes.
    assert balance.class_weights([30, 0, 10], "balanced") == pytest.approx([40 / 60, 1.0, 2.0])


def test_auto_balances_only_past_one_and_a_half_to_one_and_none_never():
    assert balance.class_weights([15, 10], "auto") is None  # exactly 1.5: not weighted
    assert balance.class_weights([16, 10], "auto") == pytest.approx([26 / 32, 26 / 20])
    assert balance.class_weights([90, 10], "none") is None
    assert balance.imbalance_ratio([90, 0, 10]) == 9.0
    assert balance.as_keras([0.5, 2.0]) == {0: 0.5, 1: 2.0} and balance.as_keras(None) is None
    with pytest.raises(ValueError, match="class_weights must be one of auto, balanced, none"):
        balance.class_weights([1, 1], "inverse")


def test_labels_are_counted_from_the_trainers_records(tmp_path, write_records):
    images = np.zeros((7, 8, 8, 3), np.uint8)
    path = write_records(tmp_path / "train.gz", images, np.array([0, 2, 2, 0, 2, 2, 2]))
    assert data.count_labels([path], 3) == [2, 0, 5]
    with pytest.raises(ValueError, match="a label outside 0..1"):
        data.count_labels([path], 2)


def test_the_flag_sets_the_hyperparameter_and_refuses_other_modes():
    @click.command()
    @model_options
    def command(**options):
        click.echo(hparams_from_options(("a", "b"), "none", options).class_weights)

    assert CliRunner().invoke(command, []).output == "auto\n"
    assert CliRunner().invoke(command, ["--class-weights", "none"]).output == "none\n"
    assert CliRunner().invoke(command, ["--class-weights", "inverse"]).exit_code == 2
    with pytest.raises(ValueError, match="class_weights must be one of"):
        HParams(class_names=("a", "b"), weights="none", class_weights="inverse")


def _split(n_major: int, n_minor: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of two overlapping Gaussian classes, the minority's mean 1.2 away (0.42 along
    each of 8 dimensions): no line separates them, so the loss decides where the boundary
    goes."""
    rng = np.random.default_rng(seed)
    major = rng.normal(0.0, 1.0, (n_major, 8))
    minor = rng.normal(1.2 / np.sqrt(8), 1.0, (n_minor, 8))
    features = np.concatenate([major, minor]).astype(np.float32)
    labels = np.array([0] * n_major + [1] * n_minor, np.int64)
    return features, labels


def _minority_recall(mode: str, tmp_path) -> float:
    hp = HParams(class_names=("major", "minor"), weights="none", augment=AugmentConfig.off(),
                 epochs=5, batch_size=32, early_stopping_patience=0, learning_rate=1e-2,
                 class_weights=mode)
    train_x, train_y = _split(360, 40, seed=1)  # 9:1
    eval_x, eval_y = _split(90, 90, seed=2)
    tf.keras.utils.set_random_seed(0)
    head = tf.keras.Sequential([tf.keras.Input((8,)),
                                tf.keras.layers.Dense(8, activation="relu"),
                                tf.keras.layers.Dense(1, activation="sigmoid")])
    model_lib.compile_model(head, hp.num_classes, hp.learning_rate)
    weights = balance.class_weights(np.bincount(train_y, minlength=2).tolist(), hp.class_weights)
    train.fit(head, hp, data.batches_in_memory((train_x, train_y), 32, True, hp.seed),
              data.batches_in_memory((eval_x, eval_y), 32, False), str(tmp_path / mode),
              class_weight=balance.as_keras(weights))
    predicted = head.predict(eval_x, verbose=0)[:, 0] > 0.5
    return float(predicted[eval_y == 1].mean())


def test_on_a_nine_to_one_split_auto_weights_raise_the_minority_classs_recall(tmp_path):
    unweighted = _minority_recall("none", tmp_path)
    weighted = _minority_recall("auto", tmp_path)
    assert weighted >= unweighted + 0.3, (unweighted, weighted)
