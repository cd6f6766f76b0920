"""The image ExampleGen's fingerprint sees a relabelling move; TFX's own does not."""

from tfx.components.example_gen import input_processor

from components.image_example_gen import standalone
from components.image_example_gen.component import ImageLayout
from components.image_example_gen.driver import ImageInputProcessor


def _fingerprints(root, layout: ImageLayout) -> tuple[str, str]:
    """(TFX's FileBasedInputProcessor fingerprint, ours) for the current files."""
    result = []
    for kind in (input_processor.FileBasedInputProcessor, ImageInputProcessor):
        processor = kind(str(root), layout.input_config().splits, layout.range_config())
        span, version = processor.resolve_span_and_version()
        result.append(processor.get_input_fingerprint(span, version))
    return result[0], result[1]


def test_moving_an_image_to_another_class_changes_only_our_fingerprint(tmp_path, image_files):
    for name in ("cat", "dog"):
        for i in range(3):
            image_files.write(tmp_path / name / f"{name}{i}.png",
                              image_files.good_image("png", i)[1])
    tfx_before, ours_before = _fingerprints(tmp_path, ImageLayout())
    (tmp_path / "cat" / "cat0.png").rename(tmp_path / "dog" / "cat0.png")  # a label fixed
    tfx_after, ours_after = _fingerprints(tmp_path, ImageLayout())
    assert tfx_after == tfx_before  # TFX would reuse the examples with the old label
    assert ours_after != ours_before
    assert ours_after.startswith(tfx_after + ",listing_sha256:")
    assert _fingerprints(tmp_path, ImageLayout())[1] == ours_after  # and it is stable


def test_the_fingerprint_covers_the_chosen_span_only(tmp_path, image_files):
    for span in (1, 2):
        for name in ("cat", "dog"):
            image_files.write(tmp_path / f"span-{span}" / name / "a.png",
                              image_files.good_image("png", span)[1])
    layout = ImageLayout(spans=True)
    _, latest = _fingerprints(tmp_path, layout)
    (tmp_path / "span-1" / "cat" / "a.png").rename(tmp_path / "span-1" / "cat" / "b.png")
    assert _fingerprints(tmp_path, layout)[1] == latest
    (tmp_path / "span-2" / "cat" / "a.png").rename(tmp_path / "span-2" / "cat" / "b.png")
    assert _fingerprints(tmp_path, layout)[1] != latest


def test_a_window_fingerprint_covers_every_span_in_the_window(tmp_path, image_files):
    for span in (1, 2, 3):
        for name in ("cat", "dog"):
            image_files.write(tmp_path / f"span-{span}" / name / "a.png",
                              image_files.good_image("png", span)[1])
    layout = ImageLayout(spans=True, window=2)

    def fingerprint() -> str:  # through the driver, which reads the window from custom_config
        return standalone.exec_properties(str(tmp_path), layout)["input_fingerprint"]

    before = fingerprint()
    assert before != standalone.exec_properties(str(tmp_path), ImageLayout(spans=True))[
        "input_fingerprint"]
    (tmp_path / "span-1" / "cat" / "a.png").write_bytes(image_files.good_image("png", 9)[1])
    assert fingerprint() == before  # span 1 is outside the window of spans 2 and 3
    (tmp_path / "span-2" / "cat" / "b.png").write_bytes(image_files.good_image("png", 9)[1])
    assert fingerprint() != before
