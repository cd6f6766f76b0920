"""The Trainer's entry point: wires data, model and export; all decisions live in those modules."""

from __future__ import annotations

import json
import os

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from trainer import data, export
from trainer import model as model_lib
from trainer.hparams import HParams

HPARAMS_KEY = "hparams"


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the head on Transform's output and exports the model for serving and evaluation."""
    hp = HParams.from_config(fn_args.custom_config[HPARAMS_KEY])
    tf.keras.utils.set_random_seed(hp.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train = data.make_dataset(fn_args.train_files, hp.image_size, hp.batch_size, shuffle=True,
                              seed=hp.seed)
    evaluation = data.make_dataset(fn_args.eval_files, hp.image_size, hp.batch_size,
                                   shuffle=False)
    model = model_lib.build_model(hp)
    history = model.fit(
        train,
        epochs=hp.epochs,
        validation_data=evaluation,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
        verbose=2,
    )
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
        json.dump({k: [float(v) for v in values] for k, values in history.history.items()}, f)
    export.export(model, tf_transform_output, hp.class_names, hp.image_size,
                  fn_args.serving_model_dir)
