"""`imgpipe inspect-model`: trainable flags, parameter counts, the cut, Dropout and BatchNorm of one
model, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from pipeline.cli.options import hparams_from_options, model_options
from pipeline.errors import UserError

if TYPE_CHECKING:
    from trainer.tools.inspect import LayerInfo, ModelReport


def resolve_saved_model(path: Path) -> Path:
    """A version folder as given, or the newest numbered version inside a model's folder."""
    from serving import layout  # loads TensorFlow: only when a path is given

    if not path.exists():
        raise UserError(f"{path} does not exist; pass a pushed version folder "
                        "SERVING_DIR/<model-name>/<version>/, or no path to inspect the model "
                        "the flags describe")
    if layout.is_complete(str(path)):
        return path
    versions = layout.version_dirs(str(path))
    if not versions:
        raise UserError(f"{path} is not a SavedModel (no {layout.SAVED_MODEL_PB}) nor a folder "
                        "of numbered versions; pass SERVING_DIR/<model-name>/<version>/")
    return Path(versions[max(versions)])


def _model_flags_given() -> list[str]:
    """The model flags (and --classes) given on the command line, not left at their defaults."""
    context = click.get_current_context()
    names = ["classes"] + [param.name for param in
                           click.command()(model_options(lambda **_: None)).params]
    return [name for name in names
            if context.get_parameter_source(name) is not ParameterSource.DEFAULT]


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _layer_rows(layers: tuple[LayerInfo, ...], indent: str = "") -> list[tuple[str, ...]]:
    return [(indent + layer.name, layer.kind, _shape(layer.output_shape),
             "yes" if layer.trainable else "no", f"{layer.trainable_params:,}",
             f"{layer.non_trainable_params:,}") for layer in layers]


def format_report(report: ModelReport, with_base_layers: bool = False) -> list[str]:
    """The report as lines: a layer table, the totals, the cut, Dropout and BatchNorm."""
    rows = [("layer", "type", "output", "trainable", "trainable params", "non-trainable params")]
    for row in _layer_rows(report.layers):
        rows.append(row)
        if with_base_layers and row[0] == report.base_model:
            rows.extend(_layer_rows(report.base_layers, indent="  "))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = ["  ".join(cell.rjust(w) if i >= 4 else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in rows]
    norm = report.batchnorm
    frozen = (f"{report.base_trainable_layers} of {report.base_layer_count} trainable "
              f"(fine-tuned from {report.fine_tune_from})" if report.fine_tune_from
              else f"all {report.base_layer_count} frozen")
    measured = "unchanged" if norm.statistics_unchanged else "CHANGED"
    return [
        f"model: {report.base} at {report.image_size} px, {len(report.class_names)} classes "
        f"({report.source})",
        f"input:      fed to the base under input scaling {report.input_scaling}",
        *table,
        f"parameters: {report.total_params:,} = {report.trainable_params:,} trainable + "
        f"{report.non_trainable_params:,} non-trainable" + (
            f" (trainable: {report.head_trainable_params:,} in the head, "
            f"{report.base_trainable_params:,} in the base)" if report.base_trainable_params
            else ""),
        f"cut:        {report.cut_layer} of {report.base} (include_top=False), "
        f"{_shape(report.cut_output_shape)}, read by {report.pooling}; base layers: {frozen}",
        f"dropout:    drops {report.dropout_rate:.0%} of {report.dropout_input}'s "
        f"{report.dropout_input_units} outputs, in training only, before {report.dropout_output}",
        f"batchnorm:  {norm.layers} layers, run in inference mode: "
        f"{'yes' if norm.inference_mode else 'no'}",
        f"            evidence: the base is called with training={norm.call_training}; a "
        f"training pass with it unfrozen left its {norm.moving_statistics} moving statistics "
        f"{measured}",
    ]


@click.command("inspect-model")
@click.argument("saved_model", required=False, type=click.Path(path_type=Path))
@click.option("--classes", default=2, show_default=True, type=click.IntRange(2, 100_000),
              help="How many classes, for a model built from flags.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--base-layers", is_flag=True, help="List every base layer in the table too.")
@model_options
def inspect_model(saved_model: Path | None, classes: int, as_json: bool, base_layers: bool,
                  weights: str, **options) -> None:
    """Trainable flags, parameter counts, the cut, Dropout and BatchNorm of a model.

    SAVED_MODEL is a pushed version folder (or a model's folder: its newest version). Without it
    the model is built from the same flags `imgpipe run` takes; its base weights are not loaded,
    as counts, flags and modes do not depend on them.
    """
    if saved_model is not None:
        path = resolve_saved_model(saved_model)
        given = _model_flags_given()
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"{flags}: a SavedModel's own hyperparameters are used; drop the "
                            "model flags or the SavedModel path")
    else:
        hp = hparams_from_options(tuple(f"class_{i}" for i in range(classes)), "none", options)

    from trainer.tools import inspect

    if saved_model is not None:
        try:
            hp, model = inspect.load_exported_model(str(path))
        except ValueError as error:
            raise UserError(str(error)) from None
        source = str(path)
    else:
        model = inspect.build_for_inspection(hp)
        source = "from flags; base weights not loaded"
    report = inspect.inspect_model(model, hp, source)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in format_report(report, base_layers):
            click.echo(line)
