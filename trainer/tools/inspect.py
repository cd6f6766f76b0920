"""What a model really is: trainable flags, parameter counts, the cut, Dropout and BatchNorm.

It answers the usual transfer-learning questions for one model, from the model itself:
- which layers are trainable, and the exact trainable and non-trainable parameter counts
  (checked against `model.count_params()`);
- where the base is cut (`include_top=False`, then the cut layer the head reads);
- whose outputs the Dropout drops: the layer that feeds the layer named `dropout`;
- whether BatchNorm runs in inference mode: read from the call that the model records for the
  base (`training=False`), and measured by a training-mode pass with the base momentarily
  unfrozen, which must leave every moving statistic unchanged.

A pushed SavedModel is a plain `tf.Module` (see `trainer/export.py`); `load_exported_model`
rebuilds the Keras model from the `assets.extra/hparams.json` the export writes and loads the
saved variables into it, in order.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from trainer import model as model_lib
from trainer import scaling
from trainer.contract import HPARAMS_FILE
from trainer.hparams import HParams

DROPOUT_LAYER = "dropout"


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One layer: its `trainable` flag and the parameters it holds, by kind."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    trainable: bool
    trainable_params: int
    non_trainable_params: int


@dataclasses.dataclass(frozen=True)
class BatchNormInfo:
    """The base's BatchNorm layers and the evidence that they run in inference mode."""

    layers: int
    moving_statistics: int
    call_training: bool | None  # the `training` argument the model passes to the base
    statistics_unchanged: bool  # after a training-mode pass with the base unfrozen

    @property
    def inference_mode(self) -> bool:
        """True when the call says so and the measurement agrees."""
        return self.call_training is False and self.statistics_unchanged


@dataclasses.dataclass(frozen=True)
class ModelReport:
    """Everything `imgpipe inspect-model` prints."""

    source: str
    base: str
    image_size: int
    class_names: tuple[str, ...]
    base_model: str
    cut_layer: str
    cut_output_shape: tuple[int, ...]
    base_layer_count: int
    base_trainable_layers: int
    pooling: str
    fine_tune_from: str | None
    layers: tuple[LayerInfo, ...]
    base_layers: tuple[LayerInfo, ...]
    trainable_params: int
    non_trainable_params: int
    total_params: int
    head_trainable_params: int
    base_trainable_params: int
    dropout_rate: float
    dropout_input: str
    dropout_input_units: int
    dropout_output: str
    batchnorm: BatchNormInfo
    input_scaling: str = ""  # the convention the model's first layer applies, and its source

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (lists for tuples, `inference_mode` spelled out)."""
        result = dataclasses.asdict(self)
        result["batchnorm"]["inference_mode"] = self.batchnorm.inference_mode
        return json.loads(json.dumps(result))  # tuples become lists


def _params(weights: list[tf.Variable]) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


def _layer_info(layer: tf.keras.layers.Layer) -> LayerInfo:
    return LayerInfo(
        name=layer.name, kind=type(layer).__name__,
        output_shape=tuple(int(d) for d in layer.output.shape[1:]),
        trainable=bool(layer.trainable),
        trainable_params=_params(layer.trainable_weights),
        non_trainable_params=_params(layer.non_trainable_weights))


def base_features(model: tf.keras.Model) -> tf.Tensor:
    """The symbolic output of the base as called inside `model`: the cut layer's activations."""
    # A base from `build_model` is called once; if it was reused, its last call is this model's.
    return model_lib.get_base(model).get_output_at(-1)


def build_for_inspection(hp: HParams) -> tf.keras.Model:
    """The model `hp` describes, in the trainable state it is exported in; base weights random.

    Counts, flags and modes do not depend on weight values, so no weights file is read. With
    `fine_tune_from`, the base is unfrozen from that layer, as after training's second stage.
    """
    model = model_lib.build_model(dataclasses.replace(hp, weights="none", weights_sha256=None))
    if hp.fine_tune_from:
        model_lib.unfreeze_from(model_lib.get_base(model), hp.fine_tune_from)
    return model


def read_exported_hparams(saved_model_dir: str) -> HParams:
    """The HParams an exported model was built with; ValueError when the export has none."""
    path = os.path.join(saved_model_dir, HPARAMS_FILE)
    if not tf.io.gfile.exists(path):
        raise ValueError(f"{saved_model_dir} has no {HPARAMS_FILE} (it was exported without its "
                         "hyperparameters); inspect the model with the flags it was trained with")
    with tf.io.gfile.GFile(path) as f:
        return HParams.from_config(json.load(f))


def load_exported_model(saved_model_dir: str) -> tuple[HParams, tf.keras.Model]:
    """Rebuilds the Keras model of an exported SavedModel, with its saved variable values."""
    hp = read_exported_hparams(saved_model_dir)
    model = build_for_inspection(hp)
    try:
        saved = tf.saved_model.load(saved_model_dir)
    except (OSError, ValueError, tf.errors.OpError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{saved_model_dir} is not a readable SavedModel ({reason})") from None
    values = list(getattr(saved, "model_variables", []))
    # Both lists follow the layers' order, whatever their trainable flags; the shapes guard it.
    if len(values) != len(model.variables) or any(
            v.shape != w.shape for v, w in zip(values, model.variables, strict=False)):
        raise ValueError(f"the variables in {saved_model_dir} do not match the model its "
                         f"{HPARAMS_FILE} describes")
    for target, value in zip(model.variables, values, strict=True):
        target.assign(value)
    # The proof that the rebuilt model is the exported one: both give the same predictions.
    size = hp.image_size
    images = np.random.default_rng(hp.seed).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    if not np.allclose(model(images, training=False).numpy(),
                       saved.predict_images(images).numpy(), rtol=1e-4, atol=1e-5):
        raise ValueError(f"the model rebuilt from {saved_model_dir}'s {HPARAMS_FILE} does not "
                         "predict what the SavedModel predicts")
    return hp, model


def check_batchnorm(model: tf.keras.Model, seed: int = 0) -> BatchNormInfo:
    """Counts the base's BatchNorm layers and measures whether they run in inference mode.

    A frozen BatchNorm runs in inference mode whatever it is told, so the measurement unfreezes
    the base for one training-mode pass of the whole model: only the base's own call
    (`training=False`) can then keep the moving statistics fixed. Flags and values are restored.
    """
    base = model_lib.get_base(model)
    norms = [layer for layer in base.layers
             if isinstance(layer, tf.keras.layers.BatchNormalization)]
    statistics = [w for layer in norms for w in (layer.moving_mean, layer.moving_variance)]
    calls = [node.call_kwargs.get("training") for node in base.inbound_nodes]
    call_training = calls[-1] if calls else None
    before = [w.numpy() for w in statistics]
    flags = [layer.trainable for layer in base.layers]
    base_flag = base.trainable
    size = model.input_shape[1:]
    images = np.random.default_rng(seed).integers(0, 256, (2, *size), dtype=np.uint8)
    try:
        base.trainable = True
        model(images, training=True)
        unchanged = all(np.array_equal(b, w.numpy()) for b, w in zip(before, statistics,
                                                                      strict=True))
    finally:
        base.trainable = base_flag  # first: setting it resets every layer inside
        for layer, flag in zip(base.layers, flags, strict=True):
            layer.trainable = flag
        for value, w in zip(before, statistics, strict=True):
            w.assign(value)
    return BatchNormInfo(layers=len(norms), moving_statistics=len(statistics),
                         call_training=call_training, statistics_unchanged=unchanged)


def inspect_model(model: tf.keras.Model, hp: HParams, source: str) -> ModelReport:
    """The report for `model`, built by `build_model(hp)`; `source` says where it came from."""
    base = model_lib.get_base(model)
    trainable = _params(model.trainable_weights)
    non_trainable = _params(model.non_trainable_weights)
    if trainable + non_trainable != model.count_params():
        raise RuntimeError("trainable and non-trainable parameters do not add up to "
                           f"count_params(): {trainable} + {non_trainable}")
    dropout = model.get_layer(DROPOUT_LAYER)
    (dropout_input,) = tf.nest.flatten(dropout.inbound_nodes[0].inbound_layers)
    (dropout_output,) = [layer for layer in model.layers
                         if any(dropout in tf.nest.flatten(node.inbound_layers)
                                for node in layer.inbound_nodes)]
    pooling = model.layers[model.layers.index(base) + 1]
    return ModelReport(
        source=source, base=hp.base, image_size=hp.image_size, class_names=hp.class_names,
        base_model=base.name, cut_layer=base.layers[-1].name,
        cut_output_shape=tuple(int(d) for d in base.output.shape[1:]),
        base_layer_count=len(base.layers),
        base_trainable_layers=sum(layer.trainable for layer in base.layers),
        pooling=pooling.name, fine_tune_from=hp.fine_tune_from,
        layers=tuple(_layer_info(layer) for layer in model.layers),
        base_layers=tuple(_layer_info(layer) for layer in base.layers),
        trainable_params=trainable, non_trainable_params=non_trainable,
        total_params=model.count_params(),
        head_trainable_params=trainable - _params(base.trainable_weights),
        base_trainable_params=_params(base.trainable_weights),
        dropout_rate=float(dropout.rate), dropout_input=dropout_input.name,
        dropout_input_units=int(dropout_input.output.shape[-1]),
        dropout_output=dropout_output.name, batchnorm=check_batchnorm(model, hp.seed),
        input_scaling=describe_input_scaling(model, hp))


def describe_input_scaling(model: tf.keras.Model, hp: HParams) -> str:
    """'unit (detected: ...)': read from the model's own first layer, with how it was decided."""
    convention = model.get_layer(scaling.LAYER_NAME).convention
    if hp.input_scaling_source:
        source = hp.input_scaling_source
    elif hp.input_scaling == scaling.AUTO:
        source = f"auto: {hp.base}'s documented convention; base weights not loaded"
    else:
        source = "given"
    return f"{convention} ({source})"
