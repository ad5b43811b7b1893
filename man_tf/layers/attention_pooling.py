"""Dot-attention pooling: a sequence of features -> one vector per sentence.

The authors' ``DotAttentionLayer``: a learned vector scores every time step,
a softmax over the *real* positions turns scores into weights, and the
output is the weighted sum. Padding gets weight exactly 0 (masked before the
softmax, not renormalised after).
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="man_tf")
class AttentionPooling(keras.layers.Layer):
    """``[batch, time, dim]`` + lengths ``[batch]`` -> (``[batch, dim]``, weights ``[batch, time]``)."""

    def build(self, input_shape):
        self.score = keras.layers.Dense(1, use_bias=False, name="score")
        self.score.build(input_shape)
        super().build(input_shape)

    def call(self, x, lengths):
        mask = tf.sequence_mask(lengths, tf.shape(x)[1])
        scores = tf.cast(tf.squeeze(self.score(x), -1), tf.float32)
        scores = tf.where(mask, scores, tf.float32.min)
        weights = tf.nn.softmax(scores, axis=-1) * tf.cast(mask, tf.float32)
        pooled = tf.einsum("bt,btd->bd", tf.cast(weights, x.dtype), x)
        return pooled, weights

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1]), tuple(input_shape[:2])
