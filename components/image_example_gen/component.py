"""The image ExampleGen: TFX's FileBasedExampleGen with an executor for image folders.

Because it is a FileBasedExampleGen, TFX's own machinery applies unchanged: input and output
split configs, `{SPAN}`/`{VERSION}` patterns (the driver picks the latest span, or the one a
`RangeConfig` names, and fingerprints the files for caching), and span/version properties on
the Examples artifact.
"""

from __future__ import annotations

import dataclasses

from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from components.image_example_gen import executor
from components.image_example_gen.driver import ImageExampleGenDriver
from components.image_example_gen.files import CLASS_FILES, GIVEN_SPLITS
from trainer.contract import FILENAME

SPAN_FOLDER = "span-{SPAN}"
@dataclasses.dataclass(frozen=True)
class ImageLayout:
    """How a data folder is laid out.

    - `spans`: the data root holds `span-<N>/` folders, each laid out as below; a run reads the
      latest span, or `span` when it is set.
    - `window`: with spans, read the last `window` span folders up to that span (N-window+1 ..
      N, those that exist) into one Examples artifact, whose `span` is still N.
    - `given_splits`: `train/<class>/*` and `eval/<class>/*`; otherwise `<class>/*`, split by a
      hash of each file's path (`train_eval_buckets`).
    """

    spans: bool = False
    given_splits: bool = False
    span: int | None = None
    train_eval_buckets: tuple[int, int] = (4, 1)
    window: int = 1

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"the span window must be at least 1, got {self.window}")
        if self.window > 1 and not self.spans:
            raise ValueError(f"a window of {self.window} spans needs the data in span-<N>/ "
                             "folders (DATA/span-<N>/...); this layout has none: use a window "
                             "of 1")

    def input_config(self) -> tfx.proto.Input:
        """ExampleGen's input splits: one per given split, or one to be hash-split."""
        prefix = SPAN_FOLDER + "/" if self.spans else ""
        if self.given_splits:
            return tfx.proto.Input(splits=[
                tfx.proto.Input.Split(name=name, pattern=f"{prefix}{name}/{CLASS_FILES}")
                for name in GIVEN_SPLITS])
        return tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="images", pattern=prefix + CLASS_FILES)])

    def output_config(self) -> tfx.proto.Output | None:
        """Hash splits on the file's relative path (a file keeps its split across runs)."""
        if self.given_splits:
            return None
        train, evaluation = self.train_eval_buckets
        return tfx.proto.Output(split_config=tfx.proto.SplitConfig(
            splits=[tfx.proto.SplitConfig.Split(name="train", hash_buckets=train),
                    tfx.proto.SplitConfig.Split(name="eval", hash_buckets=evaluation)],
            partition_feature_name=FILENAME))

    def range_config(self) -> tfx.proto.RangeConfig | None:
        """A static range of one span when `span` is set; TFX's default (latest) otherwise."""
        if not self.spans or self.span is None:
            return None
        return tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=self.span, end_span_number=self.span))


class ImageExampleGen(FileBasedExampleGen):
    """FileBasedExampleGen whose driver fingerprints file names too (see `driver.py`)."""

    DRIVER_CLASS = ImageExampleGenDriver


def image_example_gen(data_root: str, layout: ImageLayout | None = None,
                      settings: executor.IngestSettings | None = None) -> FileBasedExampleGen:
    """An ExampleGen reading the images of `data_root` laid out as `layout` says."""
    layout = layout or ImageLayout()
    settings = settings or executor.IngestSettings()
    return ImageExampleGen(
        input_base=data_root,
        input_config=layout.input_config(),
        output_config=layout.output_config(),
        range_config=layout.range_config(),
        custom_config=settings.to_proto(window=layout.window),
        custom_executor_spec=executor_spec.BeamExecutorSpec(executor.Executor),
    ).with_id("ImageExampleGen")
