"""The Trainer takes its class names from the curated schema, the data's own record of them."""

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from trainer.hparams import HParams
from trainer.run import schema_class_names, with_data_class_names


def test_class_names_come_from_the_schemas_label_name_domain(tmp_path):
    schema = schema_pb2.Schema()
    schema.feature.add(name="filename", type=schema_pb2.BYTES)
    label_name = schema.feature.add(name="label_name", type=schema_pb2.BYTES)
    label_name.string_domain.value.extend(["cat", "dog", "fox"])
    path = str(tmp_path / "schema.pbtxt")
    io_utils.write_pbtxt_file(path, schema)
    assert schema_class_names(path) == ("cat", "dog", "fox")

    configured = HParams(class_names=("cat", "dog"), weights="none")
    hp = with_data_class_names(configured, schema_class_names(path))
    assert hp.class_names == ("cat", "dog", "fox") and hp.num_classes == 3
    assert with_data_class_names(configured, ("cat", "dog")) is configured
    assert with_data_class_names(configured, None) is configured
    assert schema_class_names(None) is None
