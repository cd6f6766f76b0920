"""Fixtures shared by the trainer's tests."""

import numpy as np
import pytest


def _check_dropout_is_training_only(model, inputs) -> None:
    """`model` (augmentation off) with its `dropout` layer: at inference the output is
    repeatable and equals the same layers with Dropout left out, even run in training mode; in
    training two calls differ, and differ from inference: Dropout alone acts in training."""
    inference = model(inputs, training=False).numpy()
    np.testing.assert_array_equal(inference, model(inputs, training=False).numpy())
    without_dropout = inputs
    for layer in model.layers[1:]:
        if layer.name != "dropout":
            without_dropout = layer(without_dropout, training=True)
    np.testing.assert_allclose(without_dropout.numpy(), inference, rtol=1e-5, atol=1e-6)
    first, second = model(inputs, training=True).numpy(), model(inputs, training=True).numpy()
    assert not np.allclose(first, second, rtol=0, atol=1e-6)
    assert not np.allclose(first, inference, rtol=0, atol=1e-6)


@pytest.fixture(scope="session")
def check_dropout_is_training_only():
    """`check_dropout_is_training_only(model, inputs)`: see `_check_dropout_is_training_only`."""
    return _check_dropout_is_training_only
