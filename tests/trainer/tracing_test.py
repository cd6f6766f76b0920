"""AutoGraph leaves tf_keras alone once the project's rule is in (a private TF API: guard it)."""

from tensorflow.python.autograph.core import config as autograph_config
from tensorflow.python.autograph.core import config_lib

from trainer import tracing


def test_tf_keras_is_not_converted_and_the_rule_is_added_once():
    tracing.skip_autograph_for_tf_keras()
    tracing.skip_autograph_for_tf_keras()
    rules = [str(rule) for rule in autograph_config.CONVERSION_RULES]
    assert rules.count("DoNotConvert rule for tf_keras") == 1

    import tf_keras.src.engine.training as keras_training

    actions = [rule.get_action(keras_training) for rule in autograph_config.CONVERSION_RULES]
    first = next(a for a in actions if a != config_lib.Action.NONE)
    assert first == config_lib.Action.DO_NOT_CONVERT
