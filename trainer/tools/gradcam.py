"""Grad-CAM on the cut layer: where in the image the bottleneck the head reads saw the class.

The heatmap of an image is ReLU(sum_c w_c * A_c), A the cut layer's activations and w_c the
spatial mean of the gradient of the predicted class's score with respect to A_c (Selvaraju et al.,
2017), scaled to [0, 1] per image.

The score is the class's logit, the output layer before its activation, as in the paper. For the
binary sigmoid head (logit z, p = sigmoid(z)) the scores are z for `class_names[1]` and -z for
`class_names[0]`: their gradients are those of the predicted class's probability (p or 1 - p)
divided by p * (1 - p) > 0, a per-image factor the scaling removes. The logit's gradient does not
vanish when a confident p rounds to 1.0 in float32, which the probability's does.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from PIL import Image

from trainer.tools.inspect import base_features

OUTPUT_LAYER = "probability"


def gradient_model(model: tf.keras.Model) -> tf.keras.Model:
    """A model with `model`'s input, and the cut layer's activations and the output layer's input.

    It reuses `model`'s own graph, so it preprocesses like `model` (Rescaling, augmentation that
    is the identity outside training), calls the base with `training=False`, and runs the head up
    to the output layer (Dropout is the identity outside training).
    """
    head_input = model.get_layer(OUTPUT_LAYER).input
    return tf.keras.Model(model.inputs, [base_features(model), head_input],
                          name=f"{model.name}_gradcam")


def gradcam(model: tf.keras.Model, images: np.ndarray | tf.Tensor,
            class_index: int | None = None) -> np.ndarray:
    """Heatmaps [N, h, w] in [0, 1] on the cut layer's grid for uint8 images [N, H, W, 3].

    Args:
        model: a model from `trainer.model.build_model`.
        images: the model's input, raw pixels.
        class_index: the class to explain; by default each image's predicted class.

    Returns:
        float32 heatmaps; an image with no positive evidence for the class gets all zeros.
    """
    output_layer = model.get_layer(OUTPUT_LAYER)
    grad_model = gradient_model(model)
    with tf.GradientTape() as tape:
        activations, head_input = grad_model(tf.convert_to_tensor(images), training=False)
        # Under mixed precision the head runs in float16 and the output layer in float32.
        kernel = output_layer.kernel
        logits = tf.matmul(tf.cast(head_input, kernel.dtype), kernel) + output_layer.bias
        if logits.shape[-1] == 1:  # sigmoid: class 1's logit is z, class 0's is -z
            logits = tf.concat([-logits, logits], axis=-1)
        if class_index is None:
            chosen = tf.argmax(logits, axis=-1)
        else:
            chosen = tf.fill([tf.shape(logits)[0]], tf.cast(class_index, tf.int64))
        scores = tf.gather(logits, chosen, axis=-1, batch_dims=1)
    # Images are independent (BatchNorm in inference mode), so one gradient of the summed scores
    # holds each image's own gradient.
    gradients = tf.cast(tape.gradient(scores, activations), tf.float32)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    heatmaps = tf.nn.relu(tf.reduce_sum(weights * tf.cast(activations, tf.float32), axis=-1))
    heatmaps = heatmaps.numpy()
    peaks = heatmaps.max(axis=(1, 2), keepdims=True)
    return np.divide(heatmaps, peaks, out=np.zeros_like(heatmaps), where=peaks > 0).astype(
        np.float32)


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A [h, w] heatmap resized bilinearly to `size` (height, width), still in [0, 1]."""
    image = Image.fromarray(np.asarray(heatmap, dtype=np.float32))  # mode "F"
    resized = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4,
            colormap: str = "jet") -> np.ndarray:
    """The image [H, W, 3] uint8 with the heatmap, upsampled and coloured, blended on top."""
    from matplotlib import colormaps  # imported here: only overlays need it

    image = np.asarray(image)
    heat = upsample(heatmap, image.shape[:2])
    colours = colormaps[colormap](heat)[..., :3] * 255.0
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
