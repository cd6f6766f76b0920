"""Flags shared by commands, and the one place they become `HParams` and a `PipelineConfig`."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import click

from pipeline.errors import UserError
from trainer.contract import DEFAULT_MAX_PIXELS, DEFAULT_MAX_ROWS

BASE_CHOICES = ("inception_v3", "mobilenet_v2")
# trainer.scaling.CHOICES, spelled here so `--help` loads no TensorFlow
# (tests/trainer/scaling_test.py checks they agree).
INPUT_SCALING_CHOICES = ("auto", "inception", "unit", "caffe", "torch")
# components.tflite_export.convert.FORMATS, spelled here so `--help` loads no TensorFlow.
TFLITE_FORMATS = ("float16", "int8")
# trainer.search_space.ALGORITHMS, spelled here so `--help` loads no TensorFlow.
TUNE_ALGORITHMS = ("random", "bayesian", "hyperband")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # TF Serving's model folder name
TIME_ZONE_PREFIX = re.compile(r"^(CRON_)?TZ=[A-Za-z0-9_+\-/]+\s+")


def check_model_name(value: str, flag: str) -> str:
    """`value` if it can name a model folder; otherwise a one-line error naming `flag`."""
    if not MODEL_NAME.fullmatch(value):
        raise UserError(f"{flag} {value!r} must be letters, digits, '_', '.' or '-'")
    return value


def check_cron(cron: str, fields: int, time_zone: bool = False) -> str:
    """`cron` normalized to single spaces; a wrong field count or value is a one-line error.

    Six fields put seconds first (KFP's robfig/cron). With `time_zone`, a leading `TZ=<zone> `
    or `CRON_TZ=<zone> ` (Vertex AI's) is kept.
    """
    from croniter import croniter

    text, prefix = cron.strip(), ""
    zone = TIME_ZONE_PREFIX.match(text)
    if zone and not time_zone:
        raise UserError(f"--cron {cron!r}: no time zone prefix here; the schedule follows this "
                        "machine's local time")
    if zone:
        prefix, text = zone.group(0).strip() + " ", text[zone.end():]
    body = " ".join(text.split())
    example = "'0 0 3 * * *' (03:00 daily)" if fields == 6 else "'0 3 * * *' (03:00 daily)"
    if len(body.split()) != fields:
        raise UserError(f"--cron {cron!r} has {len(body.split())} fields; this scheduler takes "
                        f"{fields}, e.g. {example}")
    if not croniter.is_valid(body, second_at_beginning=fields == 6):
        raise UserError(f"--cron {cron!r} is not a valid cron expression; e.g. {example}")
    return prefix + body


def _tflite_formats(_context: click.Context, _param: click.Parameter, value: str | None
                    ) -> tuple[str, ...]:
    """--tflite's value as formats, each once, in the order given; a wrong one is one line."""
    if value is None:
        return ()
    names = [part.strip() for part in value.split(",")]
    if not all(name in TFLITE_FORMATS for name in names):
        raise UserError(f"--tflite {value!r}: each value must be float16 or int8, "
                        "comma-separated, e.g. --tflite float16,int8")
    return tuple(dict.fromkeys(names))


def _dense_units(value: str) -> tuple[int, ...]:
    try:
        units = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise UserError(f"--dense-units {value!r} must be comma-separated integers, "
                        "e.g. 1024 or 512,1024") from None
    if not units or min(units) < 1:
        raise UserError(f"--dense-units {value!r} must be positive integers")
    return units


MODEL_OPTIONS = [
    click.option("--base", default="inception_v3", show_default=True,
                 type=click.Choice(BASE_CHOICES), help="The pretrained base."),
    None,  # --weights: LOCAL_WEIGHTS for `run`, IMAGE_WEIGHTS for `compile`
    click.option("--weights-sha256", default=None,
                 help="Refuse a local weights file whose SHA-256 differs."),
    click.option("--input-scaling", default="auto", show_default=True,
                 type=click.Choice(INPUT_SCALING_CHOICES),
                 help="How the base's weights were fed in training: inception x/127.5-1, unit "
                      "x/255, caffe BGR minus ImageNet mean, torch ImageNet mean and std; auto: "
                      "recorded in the .h5, imagenet's own, or detected from its BatchNorm "
                      "statistics."),
    click.option("--cut-layer", default=None,
                 help="Base layer the head reads [inception_v3: mixed7, mobilenet_v2: out_relu]."),
    click.option("--pooling", default=None, type=click.Choice(("flatten", "avg")),
                 help="Head pooling [inception_v3: flatten, mobilenet_v2: avg]."),
    click.option("--dense-units", default="1024", show_default=True,
                 help="Units of each dense layer of the head, comma-separated, e.g. 512,1024 for "
                      "two layers."),
    click.option("--dropout", default=0.2, show_default=True,
                 type=click.FloatRange(0.0, 1.0, max_open=True),
                 help="Dropout rate after the last dense layer."),
    click.option("--learning-rate", default=1e-4, show_default=True,
                 type=click.FloatRange(0.0, min_open=True), help="RMSprop's learning rate."),
    click.option("--image-size", default=150, show_default=True, type=click.IntRange(32, 1024)),
    click.option("--epochs", default=5, show_default=True, type=click.IntRange(1, 10_000)),
    click.option("--steps-per-epoch", default=None, type=click.IntRange(1, 10_000_000),
                 help="Train a fixed number of steps per epoch (the data repeats)."),
    click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096)),
    click.option("--early-stopping-patience", default=3, show_default=True,
                 type=click.IntRange(0, 1000),
                 help="Epochs without a better validation loss before stopping; 0 is off."),
    click.option("--fine-tune-from", default=None,
                 help="After the head trains, unfreeze the base from this layer (e.g. mixed6)."),
    click.option("--fine-tune-epochs", default=3, show_default=True,
                 type=click.IntRange(1, 10_000)),
    click.option("--fine-tune-learning-rate", default=1e-5, show_default=True,
                 type=click.FloatRange(0.0, min_open=True)),
    click.option("--no-warm-start", is_flag=True,
                 help="Do not start the head from the last blessed model."),
    click.option("--bottleneck-cache", default="off", show_default=True,
                 type=click.Choice(("off", "on")),
                 help="on: compute the frozen base's features once, on disk, and train the head "
                      "on them (no fine-tuning)."),
    click.option("--cache-augmented-copies", default=0, show_default=True,
                 type=click.IntRange(0, 1000),
                 help="With the cache: K augmented copies of each training image (0: one plain "
                      "copy, no augmentation)."),
    click.option("--cache-batch-size", default=0, show_default=True, type=int,
                 help="With the cache: batch size of the head epochs (0: --batch-size); larger "
                      "batches make cached epochs faster but take fewer optimiser steps."),
    click.option("--images-in-memory-mb", default=0, show_default=True, type=int,
                 help="Hold the decoded training and eval images in memory when each set fits "
                      "in this many MiB (0: stream them from disk every epoch, flat memory)."),
    click.option("--class-weights", default="auto", show_default=True,
                 type=click.Choice(("auto", "balanced", "none")),
                 help="Weigh the loss by class against imbalance: auto balances by the training "
                      "split's class counts when the largest class has more than 1.5 times the "
                      "examples of the smallest; balanced always; none never."),
    click.option("--no-augment", is_flag=True, help="Train without in-graph augmentation."),
    click.option("--augment-rotation", default=40.0, show_default=True, type=float,
                 help="Largest random rotation, degrees."),
    click.option("--augment-shift", default=0.2, show_default=True, type=float,
                 help="Largest random width and height shift, fraction of the image."),
    click.option("--augment-shear", default=0.2, show_default=True, type=float,
                 help="Largest random shear, degrees (as ImageDataGenerator's shear_range)."),
    click.option("--augment-zoom", default=0.2, show_default=True, type=float,
                 help="Random zoom of each axis within 1 +- this."),
    click.option("--no-augment-flip", is_flag=True, help="No random horizontal flip."),
    click.option("--precision", default="auto", show_default=True,
                 type=click.Choice(("auto", "float32", "mixed_float16", "mixed_bfloat16")),
                 help="auto: mixed_float16 on GPU, float32 on CPU."),
    click.option("--xla", default="auto", show_default=True,
                 type=click.Choice(("auto", "on", "off")),
                 help="auto: XLA compiles the optimizer's update everywhere, and the whole step "
                      "with a GPU unless rotation/shift/shear/zoom augmentation is on; off: "
                      "neither."),
    click.option("--strategy", default="auto", show_default=True,
                 type=click.Choice(("auto", "mirrored", "default")),
                 help="auto: MirroredStrategy with more than one GPU."),
]


LOCAL_WEIGHTS = click.option(
    "--weights", default="imagenet", show_default=True,
    help="Base weights: imagenet, none, or the path of a no-top .h5 file.")
IMAGE_WEIGHTS = click.option(
    "--weights", default=None,
    help="Required: the .h5 path inside the image (/opt/imgpipe/weights/base.h5), none, or "
         "imagenet (downloaded by the Trainer at run time).")


def model_options(command: Callable, weights: Callable = LOCAL_WEIGHTS) -> Callable:
    """Adds every model and training flag to a click command."""
    for option in reversed(MODEL_OPTIONS):
        command = (option or weights)(command)
    return command


def image_model_options(command: Callable) -> Callable:
    """`model_options` for a package: the weights are a path inside the container image."""
    return model_options(command, weights=IMAGE_WEIGHTS)


PIPELINE_OPTIONS = [
    click.option("--accuracy-threshold", default=0.8, show_default=True,
                 type=click.FloatRange(0.0, 1.0), help="Eval accuracy needed to bless and push."),
    click.option("--gate-alpha", default=0.05, show_default=True,
                 type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
                 help="Significance level of the gate's paired test against the last blessed "
                      "model (McNemar's exact one-sided test on the same eval images): a model "
                      "significantly worse overall, or on any class at this level divided by "
                      "the number of classes, is not blessed; a drop within noise is."),
    click.option("--keep-versions", default=5, show_default=True,
                 type=click.IntRange(1, 10_000),
                 help="Newest pushed versions kept in OUTPUT/serving/<model-name>/."),
    click.option("--no-cache", is_flag=True, help="Re-run every component, even if unchanged."),
    click.option("--span", default=None, type=click.IntRange(0),
                 help="With DATA/span-<N>/ folders: the span to read (default: the latest)."),
    click.option("--eval-percent", default=20, show_default=True, type=click.IntRange(1, 99),
                 help="Share of DATA/<class>/ images held out for evaluation (by a hash of the "
                      "path); not used with DATA/train/ and DATA/eval/ folders."),
    click.option("--max-quarantined", default=0.05, show_default=True,
                 type=click.FloatRange(0.0, 1.0),
                 help="Stop when more than this fraction of the files found cannot be used "
                      "(system files such as .DS_Store are skipped, not counted)."),
    click.option("--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True,
                 type=click.IntRange(1), help="Images with more pixels are quarantined unread, "
                 "and refused by the exported model before it decodes them."),
    click.option("--max-request-images", default=DEFAULT_MAX_ROWS, show_default=True,
                 type=click.IntRange(1, 100_000),
                 help="Images per request the exported model's serving_default accepts; "
                      "larger requests fail with INVALID_ARGUMENT."),
    click.option("--max-class-drift", default=0.25, show_default=True,
                 type=click.FloatRange(0.0, 1.0, min_open=True),
                 help="Largest change of any class's share against the previous span "
                      "(L-infinity) before the push is stopped."),
    click.option("--no-audit", is_flag=True,
                 help="Skip the data audit (duplicates, eval images leaked into train, suspected "
                      "mislabels; OUTPUT/audit.json), and so the --max-leakage check."),
    click.option("--max-leakage", default=0.05, show_default=True,
                 type=click.FloatRange(0.0, 1.0),
                 help="Largest share of eval images with a copy in train (found by the audit) "
                      "before the push is stopped: a leaked eval set overstates accuracy."),
    click.option("--drop-leaked-eval", is_flag=True,
                 help="Evaluate without the eval images that have a copy in train, instead of "
                      "stopping the push above --max-leakage."),
    click.option("--tflite", default=None, metavar="FORMATS", callback=_tflite_formats,
                 help="Also convert the blessed model to TFLite: float16, int8 (full-integer, "
                      "calibrated on training images) or both, comma-separated. Each is pushed "
                      "inside the version, in assets.extra/tflite/, only when its eval accuracy "
                      "is within --tflite-tolerance of the SavedModel's."),
    click.option("--tflite-tolerance", default=1.0, show_default=True,
                 type=click.FloatRange(0.0, 100.0),
                 help="Percentage points of eval accuracy a TFLite model may lose against the "
                      "SavedModel and still be pushed."),
    click.option("--tune", default=0, show_default=True, type=click.IntRange(0, 10_000),
                 metavar="N",
                 help="Before training, search N trials of the head's dense units, dropout, "
                      "learning rate, pooling and head batch size (TFX's Tuner, KerasTuner), "
                      "each trained on the frozen base's features computed once; the Trainer "
                      "then trains with the best trial's values. 0: no search."),
    click.option("--tune-algorithm", default="random", show_default=True,
                 type=click.Choice(TUNE_ALGORITHMS),
                 help="With --tune: random search, Bayesian optimization or Hyperband (most "
                      "trials trained a few epochs, the best up to --epochs)."),
    click.option("--tune-space", default=None, metavar="FILE",
                 help="With --tune: a JSON file of the ranges to search, e.g. "
                      '{"dense_units": [256, 512], "dropout": [0.0, 0.5], "learning_rate": '
                      '[1e-5, 1e-2], "pooling": ["avg"], "head_batch_size": [64, 256]} '
                      "(keys left out keep their default ranges; see docs/model.md)."),
]


def pipeline_options(command: Callable) -> Callable:
    """The flags of the pipeline itself (gate, push, ingestion), the same for run and compile."""
    for option in reversed(PIPELINE_OPTIONS):
        command = option(command)
    return command


def eval_buckets(eval_percent: int) -> tuple[int, int]:
    """(train, eval) hash buckets for an eval share in percent, in lowest terms: 20 -> (4, 1)."""
    divisor = math.gcd(100 - eval_percent, eval_percent)
    return (100 - eval_percent) // divisor, eval_percent // divisor


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a pipeline reads and writes: names and paths, local or any URI TensorFlow writes."""

    pipeline_name: str
    pipeline_root: str
    data_root: str
    serving_model_dir: str


def _audit_config(options: dict[str, Any]) -> Any:
    """The audit flags as an `AuditConfig`; a contradiction is a one-line user error."""
    from pipeline.config import AuditConfig

    if options["drop_leaked_eval"] and options["no_audit"]:
        raise UserError("--drop-leaked-eval needs the data audit, which finds the leaks: drop "
                        "--no-audit or --drop-leaked-eval")
    return AuditConfig(enabled=not options["no_audit"], max_leakage=options["max_leakage"],
                       drop_leaked_eval=options["drop_leaked_eval"])


def _tflite_config(options: dict[str, Any]) -> Any:
    """The TFLite flags as a `TFLiteConfig`."""
    from pipeline.config import TFLiteConfig

    return TFLiteConfig(formats=options.get("tflite") or (),
                        tolerance_points=options.get("tflite_tolerance", 1.0))


def tune_config(options: dict[str, Any]) -> Any:
    """The --tune flags as a `TuneConfig`; a space file that cannot be used is one line."""
    from trainer.search_space import SearchSpace, TuneConfig, read_space

    trials, algorithm = options.get("tune", 0), options.get("tune_algorithm", "random")
    path = options.get("tune_space")
    if not trials:
        if path:
            raise UserError(f"--tune-space {path} needs --tune N, the number of trials")
        return TuneConfig()
    try:
        space = read_space(path) if path else SearchSpace()
    except ValueError as error:
        raise UserError(f"--tune-space {path}: {error}; fix the file (docs/model.md lists the "
                        "keys and their forms)") from None
    return TuneConfig(trials=trials, algorithm=algorithm, space=space)


def build_pipeline_config(destination: Destination, hparams: Any, options: dict[str, Any], *,
                          spans: bool, given_splits: bool, window: int = 1,
                          infra_validation: str = "local",
                          beam_pipeline_args: tuple[str, ...] = ()) -> Any:
    """The one `PipelineConfig` builder: `options` holds the `pipeline_options` flags' values."""
    from components.image_example_gen.component import ImageLayout
    from components.image_example_gen.settings import IngestSettings
    from pipeline.config import (
        DEFAULT_BEAM_ARGS,
        DataCheckConfig,
        GateConfig,
        PipelineConfig,
        PushConfig,
        ServingLimits,
    )

    return PipelineConfig(
        pipeline_name=destination.pipeline_name,
        pipeline_root=destination.pipeline_root,
        data_root=destination.data_root,
        serving_model_dir=destination.serving_model_dir,
        hparams=hparams,
        gate=GateConfig(accuracy_threshold=options["accuracy_threshold"],
                        alpha=options["gate_alpha"]),
        layout=ImageLayout(spans=spans, given_splits=given_splits, span=options["span"],
                           train_eval_buckets=eval_buckets(options["eval_percent"]),
                           window=window),
        ingest=IngestSettings(max_pixels=options["max_pixels"],
                              max_quarantined_fraction=options["max_quarantined"]),
        data=DataCheckConfig(max_class_drift=options["max_class_drift"]),
        audit=_audit_config(options),
        serving=ServingLimits(max_rows=options["max_request_images"]),
        tflite=_tflite_config(options),
        tune=tune_config(options),
        push=PushConfig(keep_versions=options["keep_versions"],
                        infra_validation=infra_validation),
        beam_pipeline_args=beam_pipeline_args or DEFAULT_BEAM_ARGS,
        enable_cache=not options["no_cache"],
    )


def hparams_from_options(class_names: tuple[str, ...], weights: str,
                         options: dict[str, Any]):
    """`HParams` from the flags; a value the model refuses is a one-line user error."""
    from trainer.augment import AugmentConfig
    from trainer.devices import DeviceConfig
    from trainer.hparams import HParams

    cache = options.get("bottleneck_cache", "off") == "on"
    try:
        if options["no_augment"]:
            augment = AugmentConfig.off()
        else:
            augment = AugmentConfig(
                horizontal_flip=not options["no_augment_flip"],
                rotation_degrees=options["augment_rotation"],
                width_shift=options["augment_shift"], height_shift=options["augment_shift"],
                shear=options["augment_shear"], zoom=options["augment_zoom"])
        return HParams(
            class_names=class_names,
            image_size=options["image_size"],
            base=options["base"],
            weights=weights,
            weights_sha256=options["weights_sha256"],
            input_scaling=options.get("input_scaling", "auto"),
            cut_layer=options["cut_layer"],
            pooling=options["pooling"],
            dense_units=_dense_units(options["dense_units"]),
            dropout_rate=options["dropout"],
            learning_rate=options["learning_rate"],
            epochs=options["epochs"],
            steps_per_epoch=options["steps_per_epoch"],
            batch_size=options["batch_size"],
            early_stopping_patience=options["early_stopping_patience"],
            fine_tune_from=options["fine_tune_from"],
            fine_tune_epochs=options["fine_tune_epochs"],
            fine_tune_learning_rate=options["fine_tune_learning_rate"],
            warm_start=not options["no_warm_start"],
            bottleneck_cache=cache,
            cache_augmented_copies=options.get("cache_augmented_copies", 0),
            cache_batch_size=options.get("cache_batch_size", 0),
            images_in_memory_mb=options.get("images_in_memory_mb", 0),
            class_weights=options.get("class_weights", "auto"),
            augment=augment,
            devices=DeviceConfig(precision=options["precision"], xla=options["xla"],
                                 strategy=options["strategy"]),
        )
    except ValueError as error:
        raise UserError(in_flag_names(str(error))) from None


def in_flag_names(message: str) -> str:
    """A message about HParams fields, with each field that is a flag named as the flag."""
    flags = {name: f"--{name.replace('_', '-')}" for name in _model_option_names()
             if "_" in name}
    return re.sub(r"\b[a-z]+(?:_[a-z0-9]+)+\b",
                  lambda match: flags.get(match.group(0), match.group(0)), message)


def _model_option_names() -> list[str]:
    return [param.name for param in click.command()(model_options(lambda **_: None)).params]
