"""Stops AutoGraph from converting tf_keras' own code while tracing.

TensorFlow 2.16's AutoGraph leaves the `keras` package alone but not `tf_keras`, so every
`tf.function` that calls a tf_keras model (Keras' own train and test functions included) converts
the source of every layer and engine function it reaches. Keras does not need that: it converts
the `call` of user-defined layers itself, and the conversion makes the first trace of a training
step several times slower.
"""

from __future__ import annotations

from tensorflow.python.autograph.core import config as autograph_config

_RULE = autograph_config.DoNotConvert("tf_keras")


def skip_autograph_for_tf_keras() -> None:
    """Adds tf_keras to AutoGraph's do-not-convert rules, once per process."""
    rules = autograph_config.CONVERSION_RULES
    if not any(str(rule) == str(_RULE) for rule in rules):
        autograph_config.CONVERSION_RULES = (_RULE, *rules)
