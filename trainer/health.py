"""Never silently wrong: the frozen base's features checked before training, the head after.

Before training, `check_model` runs the model up to its pooling layer (the features exactly as
the head reads them) on a sample of training images and judges them by `check_features`:

- any NaN or infinite value: error (a broken weights file, inputs far out of range);
- more than `DEAD_SHARE_ERROR` of the units dead, i.e. never above `DEAD_RELATIVE` times the
  largest feature on any sample image (all zero is all dead): error (zero or broken weights, a
  cut layer behind a ReLU that never fires);
- `spread` below `SPREAD_ERROR`: the features barely differ between images (the across-image
  standard deviation over the features' root mean square), so the head has nothing to learn
  from: error;
- a root mean square outside [`SCALE_LOW`, `SCALE_HIGH`]: warning (far off the O(1) scale a
  trained base's BatchNorm gives; a random base's is about 1e-3).

`check_input_scaling` then compares what the base's BatchNorm layers see on the sample with the
moving statistics they learned while the weights were trained, on inputs scaled the way those
weights expect: a base fed with another scaling (0..1 instead of -1..1, caffe's 0..255) sees
inputs of another scale and offset, and the first BatchNorm layers show it. More than
`DRIFT_WARNING` (see `batchnorm_drift`) is a warning that names the input scaling.

After training, `chance_check` compares the head's best accuracy and loss on its own training
data with always answering the largest class and with the best constant answer: a head no
better than those learned nothing, and the summary says so with the likely causes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

SAMPLE_IMAGES = 64
DEAD_RELATIVE = 1e-6
DEAD_SHARE_ERROR = 0.9
SPREAD_ERROR = 1e-3
SCALE_LOW, SCALE_HIGH = 1e-2, 1e2
DRIFT_LAYERS = 3
DRIFT_WARNING = 1.0
CHANCE_MARGIN = 0.02
CHANCE_LOSS_MARGIN = 0.05
LIKELY_CAUSES = ("a wrong input scaling for the base's weights", "a wrong cut layer or broken "
                 "base weights", "a learning rate far too low or too high",
                 "labels that do not match the images")


class FeatureHealthError(ValueError):
    """The frozen base's features are degenerate: training on them would learn nothing."""


@dataclasses.dataclass(frozen=True)
class HealthReport:
    """The measures of a feature sample, and the errors and warnings they gave."""

    images: int
    units: int
    measures: dict[str, float]
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def with_warnings(self, warnings: Sequence[str], measures: dict[str, float]
                      ) -> HealthReport:
        """This report with more warnings and measures."""
        return dataclasses.replace(self, warnings=(*self.warnings, *warnings),
                                   measures={**self.measures, **measures})

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly record for `history.json`."""
        return {"images": self.images, "units": self.units,
                "measures": {k: _rounded(v) for k, v in self.measures.items()},
                "errors": list(self.errors), "warnings": list(self.warnings)}

    def raise_if_degenerate(self) -> None:
        """Raises `FeatureHealthError` with one line naming every error, if there is any."""
        if self.errors:
            raise FeatureHealthError(
                f"the frozen base's features on {self.images} training images are degenerate: "
                + "; ".join(self.errors) + "; check --weights and --cut-layer (see docs/model.md, "
                "the feature check)")


def _rounded(value: float) -> float | None:
    return None if not math.isfinite(value) else float(f"{value:.4g}")


def check_features(features: np.ndarray) -> HealthReport:
    """Judges features [N images, D units] by the module's thresholds."""
    x = np.asarray(features, np.float64).reshape(len(features), -1)
    n, units = x.shape
    finite = np.isfinite(x)
    non_finite = int(x.size - finite.sum())
    errors: list[str] = []
    warnings: list[str] = []
    if non_finite:
        errors.append(f"{non_finite} of {x.size} values are NaN or infinite")
        x = np.where(finite, x, 0.0)
    peak = np.abs(x).max(axis=0) if n else np.zeros(units)
    dead_share = float(np.mean(peak <= DEAD_RELATIVE * peak.max())) if units else 1.0
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    spread = float(np.sqrt(np.mean(x.var(axis=0))) / rms) if rms > 0 else 0.0
    measures = {"non_finite": float(non_finite), "dead_share": dead_share, "rms": rms,
                "spread": spread}
    if rms == 0:
        errors.append("every feature is zero")
    elif dead_share > DEAD_SHARE_ERROR:
        errors.append(f"{dead_share:.1%} of the {units} units are dead (zero on every image; "
                      f"at most {DEAD_SHARE_ERROR:.0%} expected)")
    if rms > 0 and n > 1 and spread < SPREAD_ERROR:
        errors.append(f"they are the same for every image (spread {spread:.2g} < "
                      f"{SPREAD_ERROR:g})")
    if not errors and not SCALE_LOW <= rms <= SCALE_HIGH:
        warnings.append(f"the features' scale (root mean square {rms:.3g}) is far off the "
                        f"{SCALE_LOW:g}..{SCALE_HIGH:g} of a trained base: random weights "
                        "(--weights none) or a wrong input scaling; the head may learn little")
    return HealthReport(n, units, measures, tuple(errors), tuple(warnings))


def _batchnorm_layers(base: tf.keras.Model) -> list[tf.keras.layers.BatchNormalization]:
    return [layer for layer in base.layers
            if isinstance(layer, tf.keras.layers.BatchNormalization)]


def batchnorm_drift(base: tf.keras.Model, scaled_images: np.ndarray,
                    layers: int = DRIFT_LAYERS) -> dict[str, float] | None:
    """How far the inputs of the base's first `layers` BatchNorm layers on these images are
    from the moving statistics those layers learned; None when none has learned any (random
    weights keep the initial mean 0, variance 1).

    Per layer: `mean_shift`, the median over channels of |batch mean - moving mean| in moving
    standard deviations; `scale_ratio`, the geometric median of batch over moving standard
    deviation; `drift`, `mean_shift` plus the median |log| of that ratio. The layer with the
    largest drift is returned. (Those layers sit right behind the first convolutions, which are
    linear in the input: a wrong scale or offset of the input shows there before any
    nonlinearity blurs it.)
    """
    chosen = _batchnorm_layers(base)[:layers]
    trained = [bn for bn in chosen if not (
        np.all(bn.moving_mean.numpy() == 0) and np.all(bn.moving_variance.numpy() == 1))]
    if not trained:
        return None
    probe = tf.keras.Model(base.input, [bn.input for bn in trained])
    outputs = probe(tf.constant(scaled_images, tf.float32), training=False)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    worst = {"drift": -1.0}
    for bn, value in zip(trained, outputs, strict=True):
        axes = tuple(range(len(value.shape) - 1))
        mean = value.numpy().mean(axis=axes)
        std = value.numpy().std(axis=axes)
        moving_std = np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
        shift = float(np.median(np.abs(mean - bn.moving_mean.numpy()) / moving_std))
        log_ratio = np.log(np.maximum(std, 1e-12) / moving_std)
        scale = float(np.exp(np.median(log_ratio)))
        drift = shift + float(np.median(np.abs(log_ratio)))
        if drift > worst["drift"]:
            worst = {"drift": drift, "mean_shift": shift, "scale_ratio": scale}
    return worst


def check_input_scaling(base: tf.keras.Model, scaled_images: np.ndarray
                        ) -> tuple[list[str], dict[str, float]]:
    """(warnings, measures) of `batchnorm_drift` on the images as the model feeds the base."""
    drift = batchnorm_drift(base, scaled_images)
    if drift is None:
        return [], {}
    measures = {f"batchnorm_{k}": v for k, v in drift.items()}
    if drift["drift"] <= DRIFT_WARNING:
        return [], measures
    return [f"the base's first BatchNorm layers see inputs unlike those its weights were trained "
            f"on (drift {drift['drift']:.2f} > {DRIFT_WARNING:g}: their mean is "
            f"{drift['mean_shift']:.2f} standard deviations off, their scale "
            f"{drift['scale_ratio']:.2f} times): is the input scaling the one these weights "
            "expect?"], measures


def check_model(model: tf.keras.Model, images: np.ndarray) -> HealthReport:
    """Both checks on uint8 images [N, S, S, 3] through a `build_model` model (augmentation off:
    the layers are called in inference mode)."""
    from trainer import bottleneck
    from trainer import model as model_lib

    features = bottleneck.feature_model(model)(images, training=False).numpy()
    report = check_features(features)
    scaled = model.get_layer("base_preprocess")(images).numpy()
    warnings, measures = check_input_scaling(model_lib.get_base(model), scaled)
    # Degenerate features have a cause of their own (zero weights leave BatchNorm statistics
    # that any input drifts from): the error alone is said, the measures kept.
    return report.with_warnings([] if report.errors else warnings, measures)


def constant_loss(counts: Sequence[int], weights: Sequence[float] | None = None) -> float:
    """The training loss of the best constant answer, the class prior (by `weights` when the
    loss is weighted): -sum_c (w_c n_c / n) log(w_c n_c / sum_j w_j n_j), Keras' weighted
    cross-entropy averaged over the examples."""
    n = sum(counts)
    mass = [(weights[c] if weights else 1.0) * counts[c] / n for c in range(len(counts))]
    total = sum(mass)
    return float(-sum(m * math.log(m / total) for m in mass if m > 0))


def chance_check(history: dict[str, list[float]], counts: Sequence[int],
                 weights: Sequence[float] | None = None) -> dict[str, Any]:
    """Whether the head ended at chance on its training data: its best epoch's training accuracy
    at most `CHANCE_MARGIN` above always answering the largest class, and its best training
    loss within `CHANCE_LOSS_MARGIN` of the best constant answer's (`constant_loss`). The loss
    keeps a head trained with class weights, which trades some of the largest class's accuracy
    for the others', from being called at chance."""
    accuracy, loss = history.get("accuracy") or [], history.get("loss") or []
    total = sum(counts)
    if not accuracy or not loss or not total:
        return {}
    best, chance = max(accuracy), max(counts) / total
    best_loss, chance_loss = min(loss), constant_loss(counts, weights)
    result: dict[str, Any] = {
        "best_train_accuracy": _rounded(best), "chance_accuracy": _rounded(chance),
        "best_train_loss": _rounded(best_loss), "chance_loss": _rounded(chance_loss),
        "at_chance": bool(best <= chance + CHANCE_MARGIN
                          and best_loss >= (1 - CHANCE_LOSS_MARGIN) * chance_loss)}
    if result["at_chance"]:
        result["likely_causes"] = list(LIKELY_CAUSES)
    return result
