"""Detection on InceptionV3 bases whose statistics were learned under each convention, in memory
and through a saved and reloaded .h5 file with no record of how it was fed (issue 19, item 2).

Detection reads only the base's first BatchNorm layer (`scaling.first_batchnorms`), so what a
pretraining leaves there is all this test needs: the stem (the input up to and including that
layer) runs in training mode on batches of four source shapes fed under the convention, with
BatchNorm's momentum lowered so its moving statistics settle in those few batches, as they do over
a long pretraining. The whole application is then saved as .h5 and detected through
`scaling.resolve`, from images of two other shapes, after the file is loaded back into a base
whose statistics were reset to BatchNorm's initial values (one build of InceptionV3 costs about 8
CPU-seconds, so the test builds it once and reloads as `build_application` does after building).
"""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.local.sample_data import SHAPES, write_sample_data
from trainer import scaling
from trainer.bases import build_application, check_weights_file, get_base_spec

SIZE = 75
MOMENTUM = 0.5  # after 8 batches 0.5 ** 8 = 0.4% of the initial statistics are left
BATCHES = 8


def _images(folder) -> np.ndarray:
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    images = [tf.image.resize(tf.io.decode_image(p.read_bytes(), channels=3,
                                                 expand_animations=False), [SIZE, SIZE])
              for p in paths]
    return np.clip(np.round(np.stack(images)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write_sample_data(root / "source", SHAPES[:4], 16, SIZE, seed=1)
    write_sample_data(root / "target", SHAPES[4:6], 32, SIZE, seed=2)
    return _images(root / "source"), _images(root / "target")


def _reset(norm: tf.keras.layers.BatchNormalization) -> None:
    """BatchNorm's initial moving statistics: mean 0, variance 1."""
    norm.moving_mean.assign(tf.zeros_like(norm.moving_mean))
    norm.moving_variance.assign(tf.ones_like(norm.moving_variance))


def _settle_first_batchnorm(base: tf.keras.Model, images: np.ndarray, convention: str) -> None:
    """The first BatchNorm's moving statistics, from initial values, after the stem ran in
    training mode on `images` fed under `convention` (Keras' own moving-average update)."""
    (norm,) = scaling.first_batchnorms(base)
    _reset(norm)
    norm.momentum = MOMENTUM
    stem = tf.keras.Model(base.input, norm.output)
    rng = np.random.default_rng(0)
    for _ in range(BATCHES):
        batch = images[rng.permutation(len(images))[:16]]
        stem(scaling.apply(convention, batch), training=True)


def test_each_pretrained_base_is_detected_in_memory_and_after_an_h5_round_trip(shapes,
                                                                             tmp_path):
    source, target = shapes
    tf.keras.utils.set_random_seed(0)
    spec = get_base_spec("inception_v3")
    base = build_application(spec, SIZE, "none")
    # InceptionV3's stem BatchNorm (Keras numbers layer names per process, so not by name).
    stem = next(layer for layer in base.layers
                if isinstance(layer, tf.keras.layers.BatchNormalization))
    assert scaling.first_batchnorms(base) == [stem]
    evidence = {}
    for convention in scaling.CONVENTIONS:
        _settle_first_batchnorm(base, source, convention)
        in_memory = scaling.detect(base, target)
        assert in_memory.convention == convention, in_memory.evidence()
        path = str(tmp_path / f"{convention}.h5")
        base.save_weights(path, save_format="h5")  # as a base pretrained elsewhere: no record
        assert scaling.recorded_convention(path) is None
        _reset(scaling.first_batchnorms(base)[0])  # only the file can bring them back

        def reloaded(path=path) -> tf.keras.Model:
            check_weights_file(path, None)
            base.load_weights(path)  # what build_application does once it has built the base
            return base

        resolution = scaling.resolve("auto", spec.convention, path, reloaded, lambda: target)
        assert (resolution.convention, resolution.how) == (convention, "detected")
        assert resolution.detection.distances == pytest.approx(in_memory.distances, rel=1e-4)
        evidence[convention] = resolution.detection.ranked()
    # Every winner by at least the margin (the figures are in benchmarks/README.md).
    for convention, ranked in evidence.items():
        assert ranked[0][0] == convention
        assert ranked[1][1] >= scaling.MARGIN * ranked[0][1], (convention, ranked)
