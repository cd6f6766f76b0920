"""The image ExampleGen: TFX's FileBasedExampleGen with an executor for image folders."""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from components.image_example_gen import executor

CLASS_FILE_PATTERN = "*/*"


def image_example_gen(data_root: str, train_eval_buckets: tuple[int, int] = (4, 1)
                      ) -> FileBasedExampleGen:
    """An ExampleGen reading `data_root/<class>/<image>`.

    Images are split into train and eval by a hash of their path relative to the data root, so a
    file keeps its split across runs and across new files arriving.
    """
    train, evaluation = train_eval_buckets
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(
        splits=[tfx.proto.SplitConfig.Split(name="train", hash_buckets=train),
                tfx.proto.SplitConfig.Split(name="eval", hash_buckets=evaluation)],
        partition_feature_name="filename"))
    return FileBasedExampleGen(
        input_base=data_root,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="images", pattern=CLASS_FILE_PATTERN)]),
        output_config=output_config,
        custom_executor_spec=executor_spec.BeamExecutorSpec(executor.Executor),
    ).with_id("ImageExampleGen")
