"""The run report as one self-contained HTML file: inline CSS, images as base64 PNG data URIs."""

from __future__ import annotations

import base64
import datetime
import html
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.local.layout import OutputLayout
from pipeline.results import tflite as tflite_results
from pipeline.results import tuning as tuning_results
from pipeline.results.report import audit, plots
from pipeline.results.report.collect import (
    AUDIT,
    AUGMENTATION,
    CONFUSION,
    CURVES,
    DATA,
    EVALUATION,
    GRADCAM,
    MAX_QUARANTINE_ROWS,
    MISCLASSIFIED,
    PUSH,
    SECTION_TITLES,
    ReportData,
)

if TYPE_CHECKING:
    from pipeline.results.summary import RunSummary

MAX_MISCLASSIFIED = 24

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ccc; padding: .2em .6em; text-align: left; font-size: .9em; }
.missing { color: #a33; font-style: italic; } .note { color: #555; }
.yes { color: #2a7a2a; font-weight: bold; } .no { color: #a33; font-weight: bold; }
img { max-width: 100%; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _img(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _data(data: ReportData) -> str:
    parts = []
    summary = data.summary
    facts = summary.ingestion if summary else {}
    if "files_found" in facts:
        kinds = ", ".join(f"{kind} {n}" for kind, n in facts["quarantined_per_kind"].items())
        skipped = (f", {facts['skipped']} system files skipped (not counted)"
                   if facts.get("skipped") else "")
        parts.append(f"<p>Read {_e(', '.join(facts['folders_read']))}: {facts['ingested']} of "
                     f"{facts['files_found']} files ingested, {facts['quarantined']} "
                     f"quarantined{_e(' (' + kinds + ')' if kinds else '')}{skipped}.</p>")
    by_class = summary.examples_per_split_and_class if summary else {}
    if by_class:
        classes = sorted({name for counts in by_class.values() for name in counts})
        rows = [(split, *(counts.get(name, 0) for name in classes), sum(counts.values()))
                for split, counts in sorted(by_class.items())]
        parts.append(_table(("split", *classes, "total"), rows))
        parts.append(_img(plots.class_counts(by_class), "examples per split and class"))
    if data.quarantined:
        shown = data.quarantined[:MAX_QUARANTINE_ROWS]
        parts.append(f"<h3>Quarantined files ({len(data.quarantined)})</h3>")
        parts.append(_table(("file", "kind", "reason"),
                            [(q.get("path", ""), q.get("kind", ""), q.get("reason", ""))
                             for q in shown]))
        if len(data.quarantined) > len(shown):
            parts.append(f"<p class='note'>... and {len(data.quarantined) - len(shown)} more; "
                         f"the full list: {_e(data.quarantine_report)}</p>")
    elif data.quarantine_report:
        parts.append("<p>No file was quarantined.</p>")
    if summary and summary.data_problems:
        parts.append("<h3>Data check problems</h3><ul>" + "".join(
            f"<li>{_e(p)}</li>" for p in summary.data_problems) + "</ul>")
    elif summary and "DataGate" in summary.components:
        against = summary.data_compared_with or "no earlier data to compare with"
        parts.append(f"<p>Data checks passed ({_e(against)}).</p>")
    return "".join(parts)


def _augmentation(data: ReportData) -> str:
    rows = data.augmentation or []
    tiles = [tile for row in rows for tile in row]
    columns = len(rows[0]) if rows else 1
    return _img(plots.image_grid(tiles, columns), "training images through the augmentation")


def _training_checks(data: ReportData) -> str:
    """Class weights, the feature check and a head at chance: the summary's own lines."""
    lines = data.summary.training_lines() if data.summary else []
    return "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>" if lines else ""


def _tuning(data: ReportData) -> str:
    """The Tuner's trials (--tune): the two summary lines, the plot and the table; or ''."""
    tuning = data.summary.tuning if data.summary else {}
    if not tuning:
        return ""
    trials = tuning.get("trials", [])
    ids = [t["trial_id"] for t in trials]
    best = tuning.get("best_trial_id")
    plot = plots.tuning_trials([t.get("score") for t in trials],
                               ids.index(best) if best in ids else None)
    return ("<h2>Tuning</h2>" + "".join(f"<p>{_e(line)}</p>"
                                        for line in tuning_results.lines(tuning))
            + _img(plot, "eval accuracy of each trial")
            + _table(tuning_results.TABLE_HEADER, tuning_results.table_rows(tuning)))


def _curves(data: ReportData) -> str:
    epochs = len(data.history.get("loss", []))
    where = f" on {data.summary.devices}" if data.summary and data.summary.devices else ""
    fed = (f"<p>Base input scaling: {_e(data.summary.input_scaling)}.</p>"
           if data.summary and data.summary.input_scaling else "")
    return (f"<p>{epochs} epoch(s){_e(where)}.</p>" + fed
            + _img(plots.training_curves(data.history), "accuracy and loss per epoch"))


def _evaluation(data: ReportData) -> str:
    s = data.summary
    baseline = (s.eval_accuracy - s.accuracy_change) if s.accuracy_change is not None else None
    # The summary's own lines: the accuracy, its interval and the paired test, one source.
    parts = ["<p>" + "<br>".join(_e(line[:1].upper() + line[1:]) for line in s.gate_lines())
             + ".</p>"]
    rows = [(k, f"{v:.4g}") for k, v in sorted(s.eval_metrics.items())]
    parts.append(_table(("metric", "value"), rows))
    if s.per_class_accuracy:
        # TFMA's accuracy on the slice of a class's own images is that class's recall.
        images = s.examples_per_split_and_class.get("eval", {})
        paired = (s.paired_test or {}).get("per_class", {})
        header = ("class", "recall", "eval images") + (
            ("against the last blessed model",) if paired else ())
        parts.append("<p>Recall per class (whole eval split): the share of each class's eval "
                     "images classified as that class.</p>" + _table(header, [
                         (k, f"{v:.3f}", images.get(k, "-"))
                         + ((paired[k]["description"] if k in paired else "-",) if paired else ())
                         for k, v in sorted(s.per_class_accuracy.items())]))
    parts.append(_img(plots.metrics_against_threshold(s.eval_metrics, s.accuracy_threshold,
                                                      baseline), "metrics against threshold"))
    blessed = {True: "<span class='yes'>yes</span>", False: "<span class='no'>no</span>",
               None: "not evaluated"}[s.blessed]
    because = "; ".join(s.not_blessed_because)
    parts.append(f"<p>Blessed: {blessed}{' (' + _e(because) + ')' if because else ''}</p>")
    return "".join(parts)


def _sample_note(data: ReportData) -> str:
    p = data.predictions
    whole = f" of {p.eval_split_size}" if p.eval_split_size is not None else ""
    return (f"<p class='note'>The trained model's <code>serving_default</code> signature on "
            f"{len(p.labels)}{whole} eval images (up to the same number of each class).</p>")


def _confusion(data: ReportData) -> str:
    p = data.predictions
    rows = [(name, "-" if acc is None else f"{acc:.3f}", int((p.labels == i).sum()))
            for i, (name, acc) in enumerate(p.per_class_accuracy.items())]
    return (_sample_note(data)
            + _img(plots.confusion_matrix(p.confusion, p.class_names), "confusion matrix")
            + _table(("class", "accuracy", "images"), rows)
            + _img(plots.per_class_accuracy(p.per_class_accuracy), "accuracy per class"))


def _misclassified(data: ReportData) -> str:
    from pipeline.results.report.collect import Tile

    p = data.predictions
    wrong = [i for i in range(len(p.labels)) if p.labels[i] != p.predicted[i]]
    if not wrong:
        return _sample_note(data) + "<p>None: every one of these images was classified right.</p>"
    tiles = [Tile(p.images[i], f"{p.class_names[p.labels[i]]} as {p.class_names[p.predicted[i]]}"
                  f" ({p.confidence[i]:.2f})") for i in wrong[:MAX_MISCLASSIFIED]]
    return (_sample_note(data) + f"<p>{len(wrong)} misclassified (true as predicted, "
            "probability):</p>" + _img(plots.image_grid(tiles, 6), "misclassified eval images")
            + _table(("file", "true", "predicted"), [
                (p.filenames[i], p.class_names[p.labels[i]], p.class_names[p.predicted[i]])
                for i in wrong[:MAX_MISCLASSIFIED]]))


def _gradcam(data: ReportData) -> str:
    if not data.gradcam:
        return "<p class='missing'>Not available: no eval image to explain.</p>"
    return ("<p>Where the cut layer's activations carry the evidence for the predicted class "
            "(Grad-CAM); each eval image, then its heatmap.</p>"
            + _img(plots.image_grid(data.gradcam, 6), "Grad-CAM heatmaps"))


def _push(data: ReportData) -> str:
    s = data.summary
    tflite = _tflite(data)
    if s.pushed_path:
        return f"<p class='yes'>Pushed: {_e(s.pushed_path)}</p>" + tflite
    why = s.not_pushed_because or {False: "not blessed", None: "no evaluation"}.get(s.blessed, "")
    if s.load_check_failure:
        why = f"the model failed the load-and-query check: {s.load_check_failure}"
    return f"<p class='no'>Nothing pushed{': ' + _e(why) if why else ''}.</p>" + tflite


def _tflite(data: ReportData) -> str:
    """The TFLite models next to the SavedModel, on the same eval images (--tflite)."""
    rows = tflite_results.table_rows(data.summary.tflite, data.summary.pushed_tflite)
    if not rows:
        return ""
    compared = data.summary.tflite
    note = (f"<p class='note'>TFLite models (--tflite) with the TFLite interpreter and the "
            f"SavedModel on the same {compared.get('eval_images', '?')} decoded eval images, one "
            f"image per call; pushed only within {compared.get('tolerance_points', 1.0):g} "
            "point(s) of the SavedModel's accuracy.</p>")
    return note + _table(tflite_results.TABLE_HEADER, rows)


def _audit(data: ReportData) -> str:
    gallery = data.audit
    if gallery is None:  # `collect` gives either findings or a reason in `missing`
        return "<p class='note'>No data audit findings were read for this run.</p>"
    parts = [f"<p>{_e(line)}</p>" for line in audit.describe(gallery)]
    for title, tiles, alt in (
            (f"Eval images with a copy in train ({len(gallery.findings['leaks'])})",
             gallery.leaks, "each leaked eval image beside its train copy"),
            (f"Duplicate groups ({len(gallery.findings['duplicates'])})", gallery.duplicates,
             "two images of each duplicate group"),
            (f"Suspected mislabels ({len(gallery.findings['suspected_mislabels'])}), most "
             "suspect first: given -> suggested (score)", gallery.mislabels,
             "suspected mislabels")):
        if tiles:
            parts.append(f"<h3>{_e(title)}</h3>")
            parts.append(_img(plots.image_grid(tiles, 2 if tiles is not gallery.mislabels
                                               else 6), alt))
    return "".join(parts)


_SECTIONS: dict[str, Callable[[ReportData], str]] = {
    DATA: _data, AUDIT: _audit, AUGMENTATION: _augmentation, CURVES: _curves,
    EVALUATION: _evaluation, CONFUSION: _confusion, MISCLASSIFIED: _misclassified,
    GRADCAM: _gradcam, PUSH: _push,
}


def render_html(data: ReportData) -> str:
    """The whole page; a section with a reason in `data.missing` says why it is empty."""
    missing = [t for t in SECTION_TITLES if t in data.missing]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(data.pipeline_name)}"
             f" run {_e(data.run_id)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>Run report: {_e(data.pipeline_name)}, run {_e(data.run_id)}</h1>",
             f"<p class='note'>Written {_e(data.created)}.</p>",
             _table(("component", "state"), list(data.components.items()))]
    if missing:
        parts.append("<p class='missing'>Sections without data: " + _e(", ".join(missing))
                     + ".</p>")
    for title in SECTION_TITLES:
        if title == CURVES:  # only runs with --tune have a search to show
            parts.append(_tuning(data))
        parts.append(f"<h2>{_e(title)}</h2>")
        if title in data.notes:
            parts.append(f"<p class='note'>{_e(data.notes[title])}</p>")
        if title == CURVES:
            parts.append(_training_checks(data))
        if title in data.missing:
            parts.append(f"<p class='missing'>Not available: {_e(data.missing[title])}.</p>")
        else:
            parts.append(_SECTIONS[title](data))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(output_dir: Path, pipeline_name: str, summary: RunSummary | None = None,
                 accuracy_threshold: float = 0.8, max_eval_images: int = 64,
                 stamp: str | None = None) -> Path:
    """Writes the latest run's report to OUTPUT/reports/run-<stamp>.html and OUTPUT/report.html.

    Args:
        output_dir: an `imgpipe run --output` folder.
        pipeline_name: the pipeline (the run's `--model-name`).
        summary: the run's summary when the caller has read it already.
        accuracy_threshold: the gate's threshold, used only when `summary` is None.
        max_eval_images: how many eval images the served model predicts for the report.
        stamp: the run's time stamp, as in its log's name (default: now).

    Returns:
        The path of OUTPUT/report.html.

    Raises:
        LookupError: when ML Metadata records no run of the pipeline.
    """
    from pipeline.results.report.collect import collect

    data = collect(output_dir, pipeline_name, summary, accuracy_threshold, max_eval_images)
    page = render_html(data)
    stamp = stamp or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    layout = OutputLayout(output_dir)
    archived = layout.reports_dir / f"run-{stamp}.html"
    archived.parent.mkdir(parents=True, exist_ok=True)
    archived.write_text(page, encoding="utf-8")
    latest = layout.report_path
    # Copied beside it and renamed over it: a disk that fills midway leaves the last one whole.
    partial = latest.with_name(f".{latest.name}.partial")
    try:
        shutil.copyfile(archived, partial)
        os.replace(partial, latest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return latest
