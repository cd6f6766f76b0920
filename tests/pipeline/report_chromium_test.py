"""The run report in headless Chromium (Debian's `chromium`, installed by `make test-tools`).

A report with every section (from small fabricated inputs) is screenshotted and its DOM dumped
after load: the screenshot is not blank, each section's heading is laid out inside the captured
window with a visible size, Chromium decoded every image, and Pillow decodes every embedded PNG.
"""

import base64
import io
import json
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from pipeline.results.report import SECTION_TITLES
from pipeline.results.report.collect import Predictions, ReportData, Tile
from pipeline.results.report.render import render_html
from pipeline.results.summary import RunSummary

WINDOW = (1280, 6000)
CLASSES = ("circle", "square")
# Run after load: records each heading's text, position and size, and each image's decoded size.
PROBE = """<script>
window.addEventListener("load", () => {
  const headings = [...document.querySelectorAll("h2")].map(h => {
    const box = h.getBoundingClientRect();
    return [h.textContent, box.top, box.width, box.height];
  });
  const images = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  document.body.setAttribute("data-probe", JSON.stringify({headings, images}));
});
</script>"""


@pytest.fixture(scope="session")
def chromium(required_tool) -> str:
    """Chromium's path; the test fails when it is not installed (`make test-tools`)."""
    return required_tool("chromium")


def _run_chromium(chromium: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}",
               f"--window-size={WINDOW[0]},{WINDOW[1]}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)


def _report_data() -> ReportData:
    summary = RunSummary(
        pipeline_name="shapes", run_id="r1", components={"Trainer": "complete"},
        ingestion={"folders_read": ["/data"], "class_names": list(CLASSES), "files_found": 9,
                   "ingested": 8, "quarantined": 1, "quarantined_per_kind": {"empty": 1},
                   "quarantine_report": "/q.jsonl"},
        examples_per_split={"train": 4, "eval": 4},
        examples_per_split_and_class={"train": {"circle": 2, "square": 2},
                                      "eval": {"circle": 2, "square": 2}},
        eval_accuracy=0.75, eval_example_count=4, accuracy_threshold=0.5, accuracy_change=None,
        eval_metrics={"accuracy": 0.75, "example_count": 4.0},
        per_class_accuracy={"circle": 0.5, "square": 1.0}, blessed=True, not_blessed_because=[],
        load_check_failure=None, pushed_path="/out/serving/shapes/1")
    images = np.stack([_image(i) for i in range(4)])
    return ReportData(
        pipeline_name="shapes", run_id="r1", created="now", components=summary.components,
        summary=summary, class_names=CLASSES,
        quarantined=[{"path": "circle/x.jpg", "kind": "empty", "reason": "empty file"}],
        history={"loss": [0.9, 0.4], "val_loss": [0.8, 0.6], "accuracy": [0.5, 0.9],
                 "val_accuracy": [0.5, 0.75]},
        augmentation=[[Tile(_image(7), "circle"), Tile(_image(8), "augmented 1")]],
        predictions=Predictions(class_names=CLASSES, labels=np.array([0, 0, 1, 1]),
                                predicted=np.array([0, 1, 1, 1]),
                                confidence=np.array([0.9, 0.6, 0.8, 0.9]),
                                filenames=("a", "b", "c", "d"), images=images, eval_split_size=4),
        gradcam=[Tile(images[0], "circle"), Tile(images[0], "for circle (0.90)")])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("chromium")
    page = render_html(_report_data())
    (root / "report.html").write_text(page, encoding="utf-8")
    # A copy with the probe, so the report itself stays script-free.
    (root / "probed.html").write_text(page.replace("</body>", PROBE + "</body>"),
                                      encoding="utf-8")
    return root, page


def test_the_screenshot_is_not_blank(report, chromium, tmp_path):
    root, _ = report
    shot = tmp_path / "shot.png"
    _run_chromium(chromium, tmp_path, f"--screenshot={shot}", (root / "report.html").as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (WINDOW[1], WINDOW[0])
    top = pixels[:1500]  # the title, the tables and the first figures
    assert top.std() > 20, f"screenshot looks blank (pixel std {top.std():.1f})"
    assert len(np.unique(top)) > 50


def test_each_heading_is_laid_out_in_the_window_and_chromium_decodes_every_image(
        report, chromium, tmp_path):
    root, page = report
    result = _run_chromium(chromium, tmp_path, "--virtual-time-budget=10000", "--dump-dom",
                           (root / "probed.html").as_uri())
    match = re.search(r'data-probe="([^"]*)"', result.stdout)
    assert match, "the probe did not run: " + result.stdout[:500]
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [h[0] for h in probe["headings"]] == list(SECTION_TITLES)
    for text, top, width, height in probe["headings"]:
        assert 0 < top < WINDOW[1] - height and width > 0 and height > 0, text
    assert len(probe["images"]) == page.count("<img ") > 0
    assert all(complete and w > 0 and h > 0 for complete, w, h in probe["images"])


def test_every_embedded_image_decodes_with_pillow(report):
    _, page = report
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(sources) == 8
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        image.load()
        assert image.size[0] > 0 and image.size[1] > 0
