"""Training: the head first, then (optionally) fine-tuning the top of the base; warm start."""

from __future__ import annotations

import logging
import time

import tensorflow as tf

from trainer import devices
from trainer import model as model_lib
from trainer.contract import progress_logger
from trainer.hparams import HParams

HEAD_LAYER_PREFIXES = ("dense_", "probability")


class EpochProgress(tf.keras.callbacks.Callback):
    """One line per epoch, "epoch 3/5 (12.1 s): loss 0.31, accuracy 0.88, val_loss ...", logged
    to `imgpipe.progress`, which `imgpipe run` shows while the full logs go to the log file.

    It replaces Keras' own `verbose=2` lines, which Keras prints to stdout (the terminal), not
    to the log."""

    def __init__(self, epochs: int, stage: str = ""):
        super().__init__()
        self._epochs = epochs
        self._stage = stage
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        values = ", ".join(f"{name} {float(value):.4f}" for name, value in (logs or {}).items())
        progress_logger().info(
            "%sepoch %d/%d (%.1f s): %s", self._stage, epoch + 1, self._epochs,
            time.monotonic() - self._started, values)


def callbacks(hp: HParams, log_dir: str) -> list[tf.keras.callbacks.Callback]:
    """TensorBoard logs, and early stopping on validation loss with the best weights restored."""
    result: list[tf.keras.callbacks.Callback] = [tf.keras.callbacks.TensorBoard(log_dir=log_dir)]
    if hp.early_stopping_patience:
        result.append(tf.keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=hp.early_stopping_patience, restore_best_weights=True))
    return result


def warm_start(model: tf.keras.Model, saved_model_dir: str) -> list[str]:
    """Copies the head's weights from an exported model; returns the names of the copied weights.

    Only head weights whose name and shape match are copied (a model with other classes or
    dense units starts fresh); the base is left as built.
    """
    saved = tf.saved_model.load(saved_model_dir)
    by_name = {v.name: v for v in getattr(saved, "model_variables", [])}
    copied = []
    for weight in model.weights:
        if not weight.name.startswith(HEAD_LAYER_PREFIXES):
            continue
        source = by_name.get(weight.name)
        if source is not None and source.shape == weight.shape:
            weight.assign(source)
            copied.append(weight.name)
    if not copied:
        logging.warning("warm start from %s found no matching head weights", saved_model_dir)
    return copied


def fit(model: tf.keras.Model, hp: HParams, train: tf.data.Dataset, validation: tf.data.Dataset,
        log_dir: str, compilation: devices.Compilation = devices.NO_XLA,
        class_weight: dict[int, float] | None = None,
        head_validation: tf.keras.callbacks.Callback | None = None) -> dict[str, list[float]]:
    """Trains the head, then fine-tunes from `hp.fine_tune_from` if set; returns the history.

    `class_weight` (class index -> weight, `trainer.balance`) weighs each example's loss by its
    class, in both stages. `head_validation` (`trainer.eval_features.HeadValidation`) validates
    the head on eval features computed before, in place of `validation`, while the base is
    frozen; fine-tuning changes the base, so it validates on `validation`."""
    steps = hp.steps_per_epoch
    train_data = train.repeat() if steps else train
    first = [head_validation] if head_validation else []  # before those that read val_ logs
    history = model.fit(train_data, epochs=hp.epochs, steps_per_epoch=steps,
                        validation_data=None if head_validation else validation,
                        class_weight=class_weight,
                        callbacks=[*first, *callbacks(hp, log_dir), EpochProgress(hp.epochs)],
                        verbose=0)
    merged = {k: list(v) for k, v in history.history.items()}
    if hp.fine_tune_from:
        base = model_lib.get_base(model)
        model_lib.unfreeze_from(base, hp.fine_tune_from)
        # Changing `trainable` takes effect only when the model is compiled again.
        model_lib.compile_model(model, hp.num_classes, hp.fine_tune_learning_rate, compilation)
        done = len(merged.get("loss", []))
        more = model.fit(train_data, epochs=done + hp.fine_tune_epochs, initial_epoch=done,
                         steps_per_epoch=steps, validation_data=validation,
                         class_weight=class_weight, callbacks=[*callbacks(hp, log_dir),
                                    EpochProgress(done + hp.fine_tune_epochs, "fine-tuning ")],
                         verbose=0)
        for key, values in more.history.items():
            merged.setdefault(key, []).extend(values)
    return {k: [float(v) for v in values] for k, values in merged.items()}
