"""Scalar mix of encoder layers (Peters et al. 2018, ELMo): a learned
softmax-weighted sum of ``layers`` hidden states, times a learned scale."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="man_tf")
class ScalarMix(keras.layers.Layer):
    """``[batch, time, layers, dim]`` -> ``[batch, time, dim]``:
    ``gamma * sum_j softmax(s)_j h_j`` (with one layer: ``gamma * h``)."""

    def __init__(self, num_layers, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)

    def build(self, input_shape):
        self.layer_logits = self.add_weight(name="layer_logits", shape=(self.num_layers,),
                                            initializer="zeros")
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="ones")
        super().build(input_shape)

    def call(self, states):
        scales = tf.nn.softmax(tf.cast(self.layer_logits, tf.float32)) * tf.cast(self.gamma,
                                                                                 tf.float32)
        states = tf.cast(states, tf.float32)
        # Element-wise, not an einsum: oneDNN's einsum transposes the whole
        # [batch, time, layers, dim] input first (benchmarks/results/speed.md).
        if self.num_layers == 1:
            mixed = states[:, :, 0, :] * scales[0]
        else:
            mixed = tf.reduce_sum(states * scales[:, None], axis=2)
        return tf.cast(mixed, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers}
