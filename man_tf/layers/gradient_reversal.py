"""Gradient reversal (Ganin & Lempitsky 2015): identity forward, ``-λ·dy`` backward.

Placed between the shared extractor F_s and the language discriminator D, it
lets one backward pass train F_s to *fool* D (maximise D's loss, scaled by λ)
while D itself is trained to minimise that loss in its own update.
"""

import keras
import tensorflow as tf


@tf.custom_gradient
def reverse_gradient(x, scale):
    """``x`` unchanged; the gradient flowing back is multiplied by ``-scale``."""

    def grad(dy):
        return -tf.cast(scale, dy.dtype) * dy, None

    # tf.identity, not keras.ops.identity (which builds an identity matrix).
    return tf.identity(x), grad


@keras.saving.register_keras_serializable(package="man_tf")
class GradientReversal(keras.layers.Layer):
    """Layer form of :func:`reverse_gradient`; ``scale`` is λ's initial value.

    λ lives in one place, the non-trainable float32 variable ``lambd`` (saved
    with the model): what the backward pass applies is what a trainer reads
    and logs, and a schedule assigns it between steps without retracing.

    Shapes: any ``[...]`` -> the same ``[...]``.
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape=None):
        self.lambd = self.add_weight(
            name="lambd", shape=(), dtype="float32", trainable=False,
            initializer=keras.initializers.Constant(self.scale), autocast=False)
        super().build(input_shape)

    def call(self, x):
        return reverse_gradient(x, tf.cast(self.lambd, x.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
