"""FLOPs per training image counted from a Keras model's layers, and the matrix-product peak.

Used by `train.py` for its roofline: achieved FLOP/s (images/s x FLOPs per image) over the GFLOP/s
of a large matrix product in the same precision on the same device.
"""

from __future__ import annotations

import time

import tensorflow as tf


def layer_flops(layer: tf.keras.layers.Layer) -> int:
    """Forward FLOPs per image of one layer (2 per multiply-add of Conv2D, DepthwiseConv2D and
    Dense; element-wise layers, BatchNorm, pooling and activations are not counted)."""
    if isinstance(layer, tf.keras.Model):
        return sum(layer_flops(inner) for inner in layer.layers)
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        kh, kw, cin, multiplier = layer.depthwise_kernel.shape
        _, h, w, _ = layer.output_shape
        return 2 * h * w * kh * kw * cin * multiplier
    if isinstance(layer, tf.keras.layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        _, h, w, _ = layer.output_shape
        return 2 * h * w * kh * kw * cin * cout
    if isinstance(layer, tf.keras.layers.Dense):
        fan_in, units = layer.kernel.shape
        return 2 * fan_in * units
    return 0


def training_flops(model: tf.keras.Model) -> dict[str, int]:
    """FLOPs per image of one training step: the forward pass of every layer, plus for each
    trainable layer its weight gradient (as much as its forward pass) and, when a trainable layer
    lies below it, its input gradient (as much again). A frozen base below the head gets no
    backward pass: no gradient flows into it."""
    forward = backward = 0
    trainable_below = False
    for layer in model.layers:
        flops = layer_flops(layer)
        forward += flops
        if flops and layer.trainable and layer.trainable_weights:
            backward += flops * (2 if trainable_below else 1)
            trainable_below = True
    return {"forward": forward, "backward": backward, "total": forward + backward}


def matmul_gflops(dtype: tf.DType, n: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of an n x n matrix product in `dtype` (best of `repeats`, after a warm-up)."""
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    product().numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()  # .numpy() waits for the device
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9
