"""Detection on InceptionV3 bases pretrained here under each convention, in memory and through a
saved and reloaded .h5 file with no record of how it was trained (issue 19, item 2).

The pretraining is short but real: the first three convolutions and their BatchNorm layers of a
75 px InceptionV3 learn a four-shape task for 20 steps, fed under the convention; BatchNorm's
momentum is lowered so its moving statistics absorb the data in those steps, as they do over a
long pretraining. Detection then reads images of two other shapes. The networks are built once
and restarted from the same initial weights for each convention, which keeps the test cheap.
"""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.local.sample_data import SHAPES, write_sample_data
from trainer import scaling

pytestmark = pytest.mark.slow

SIZE = 75


def _images(folder) -> tuple[np.ndarray, np.ndarray]:
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    names = sorted({p.parent.name for p in paths})
    images = [tf.image.resize(tf.io.decode_image(p.read_bytes(), channels=3,
                                                 expand_animations=False), [SIZE, SIZE])
              for p in paths]
    return (np.clip(np.round(np.stack(images)), 0, 255).astype(np.uint8),
            np.array([names.index(p.parent.name) for p in paths]))


class Pretrainer:
    """One 75 px InceptionV3 and a classifier on its stem, built once; `pretrain` starts them
    from the same initial weights each time and trains the stem fed under a convention."""

    def __init__(self, classes: int, folder) -> None:
        tf.keras.utils.set_random_seed(0)
        self.base = tf.keras.applications.InceptionV3(include_top=False, weights=None,
                                                      input_shape=(SIZE, SIZE, 3))
        for layer in self.base.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = 0.5
        third_relu = [la for la in self.base.layers
                      if isinstance(la, tf.keras.layers.Activation)][2]
        stem = tf.keras.Model(self.base.input, third_relu.output)
        inputs = tf.keras.Input((SIZE, SIZE, 3))  # pixels already scaled by the convention
        x = tf.keras.layers.GlobalAveragePooling2D()(stem(inputs))
        outputs = tf.keras.layers.Dense(classes, activation="softmax")(x)
        self.model = tf.keras.Model(inputs, outputs)
        self.initial = str(folder / "initial.h5")
        self.model.save_weights(self.initial, save_format="h5")

    def pretrain(self, images: np.ndarray, labels: np.ndarray, convention: str
                 ) -> tf.keras.Model:
        """The no-top base after its stem learned the task fed under `convention`."""
        self.model.load_weights(self.initial)
        self.model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        data = tf.data.Dataset.from_tensor_slices((scaling.apply(convention, images), labels))
        self.model.fit(data.shuffle(256, seed=0).repeat().batch(16), steps_per_epoch=20,
                       epochs=1, verbose=0)
        return self.base


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write_sample_data(root / "source", SHAPES[:4], 16, SIZE, seed=1)
    write_sample_data(root / "target", SHAPES[4:6], 32, SIZE, seed=2)
    return _images(root / "source"), _images(root / "target")[0]


def test_each_pretrained_base_is_detected_in_memory_and_after_an_h5_round_trip(shapes,
                                                                             tmp_path):
    (source, labels), target = shapes
    pretrainer = Pretrainer(int(labels.max()) + 1, tmp_path)
    reloaded = tf.keras.applications.InceptionV3(include_top=False, weights=None,
                                                 input_shape=(SIZE, SIZE, 3))
    evidence = {}
    for convention in scaling.CONVENTIONS:
        base = pretrainer.pretrain(source, labels, convention)
        assert [la.name for la in scaling.first_batchnorms(base)] == ["batch_normalization"]
        in_memory = scaling.detect(base, target)
        assert in_memory.convention == convention, in_memory.evidence()
        path = str(tmp_path / f"{convention}.h5")
        base.save_weights(path, save_format="h5")  # as a base pretrained elsewhere: no record
        assert scaling.recorded_convention(path) is None
        reloaded.load_weights(path)  # every weight of the file replaces the previous one's
        resolution = scaling.resolve("auto", "inception", path, lambda m=reloaded: m,
                                     lambda: target)
        assert (resolution.convention, resolution.how) == (convention, "detected")
        assert resolution.detection.distances == pytest.approx(in_memory.distances, rel=1e-4)
        evidence[convention] = resolution.detection.ranked()
    # The evidence, for the record: every winner by at least the margin.
    for convention, ranked in evidence.items():
        assert ranked[0][0] == convention
        assert ranked[1][1] >= scaling.MARGIN * ranked[0][1], (convention, ranked)
