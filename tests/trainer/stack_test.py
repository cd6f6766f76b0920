"""The stack the project is built for: Keras 2 behind `tf.keras`, as TF Transform 1.16 needs."""

import tensorflow as tf
import tf_keras


def test_tf_keras_is_keras_2():
    assert tf_keras.__version__.startswith("2."), tf_keras.__version__
    assert type(tf.keras.layers.Dense(1)).__module__.startswith("tf_keras."), tf.keras.layers.Dense
