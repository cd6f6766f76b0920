"""The curated schema: what SchemaGen infers from one span, corrected by what we know of images.

SchemaGen sees one span and writes down what it saw. Some of that must not become a rule (every
file name it saw as an allowed value), some is too narrow (only the image formats present), and
some it cannot know (labels are class indices, images have at least one pixel).
`curate_schema` fixes exactly those, deterministically.
"""

from __future__ import annotations

from collections.abc import Sequence

from tensorflow_metadata.proto.v0 import schema_pb2

from trainer import contract

IMAGE_FORMATS = ("bmp", "gif", "jpeg", "png")


def _feature(schema: schema_pb2.Schema, name: str) -> schema_pb2.Feature:
    for feature in schema.feature:
        if feature.name == name:
            return feature
    raise ValueError(f"the inferred schema has no feature {name!r}: is this the image "
                     "ExampleGen's output?")


def _drop_global_domain(schema: schema_pb2.Schema, name: str) -> None:
    kept = [d for d in schema.string_domain if d.name != name]
    del schema.string_domain[:]
    schema.string_domain.extend(kept)


def _set_string_domain(schema: schema_pb2.Schema, name: str, values: Sequence[str]) -> None:
    feature = _feature(schema, name)
    _drop_global_domain(schema, name)
    feature.ClearField("domain")
    feature.string_domain.CopyFrom(schema_pb2.StringDomain(name=name, value=list(values)))


def curate_schema(inferred: schema_pb2.Schema, class_names: Sequence[str]) -> schema_pb2.Schema:
    """The inferred schema with the image ExampleGen's features described as they really are.

    - `filename`: no domain (every new file would be an "unexpected value").
    - `format`: any of the formats the ExampleGen accepts, not only those seen.
    - `label_name`: the class names, in label order.
    - `label`: an integer class index in [0, number of classes - 1] (SchemaGen infers a boolean
      domain for two classes).
    - `height`, `width`: at least one pixel.
    - `image_bytes`: TFDV's image domain (all values supported images).
    """
    if len(class_names) < 2:
        raise ValueError(f"need at least two class names, got {list(class_names)}")
    schema = schema_pb2.Schema()
    schema.CopyFrom(inferred)
    filename = _feature(schema, contract.FILENAME)
    _drop_global_domain(schema, contract.FILENAME)
    filename.ClearField("domain")
    filename.ClearField("string_domain")
    _set_string_domain(schema, contract.FORMAT, IMAGE_FORMATS)
    _set_string_domain(schema, contract.LABEL_NAME, class_names)
    label = _feature(schema, contract.LABEL)
    label.ClearField("bool_domain")
    label.int_domain.CopyFrom(schema_pb2.IntDomain(
        min=0, max=len(class_names) - 1, is_categorical=True))
    # TFDV's image semantic domain: every value must be an image of a supported type. The
    # ExampleGen already quarantines what TensorFlow cannot decode; with StatisticsGen's semantic
    # image statistics switched on, TFDV checks it again.
    image = _feature(schema, contract.IMAGE_BYTES)
    image.ClearField("domain")
    image.image_domain.CopyFrom(schema_pb2.ImageDomain(minimum_supported_image_fraction=1.0))
    for name in (contract.HEIGHT, contract.WIDTH):
        _feature(schema, name).int_domain.CopyFrom(schema_pb2.IntDomain(min=1))
    return schema
