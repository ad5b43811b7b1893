"""Convolutions of several widths over a sequence, max-pooled over real positions.

Used twice: by the character CNN (over the characters of a word) and by the
CNN language discriminator D (over the F_s features of a sentence), as in
Kim (2014) and the authors' ``CNNSequencePooling``.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="man_tf")
class MaskedConvPooling(keras.layers.Layer):
    """``[batch, time, dim]`` + lengths ``[batch]`` -> ``[batch, filters * len(kernel_sizes)]``.

    For width ``k`` only windows that start at a real position and (when the
    sequence is at least ``k`` long) end at one are pooled, so padding never
    changes the result. Sequences shorter than ``k`` are zero-padded to ``k``
    and their single window is used.
    """

    def __init__(self, filters=200, kernel_sizes=(3, 4, 5), **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.convolutions = [keras.layers.Conv1D(self.filters, k, activation="relu",
                                                 name=f"conv{k}")
                             for k in self.kernel_sizes]

    def build(self, input_shape):
        for conv in self.convolutions:
            conv.build(input_shape)
        super().build(input_shape)

    def call(self, x, lengths):
        max_k = max(self.kernel_sizes)
        time = tf.shape(x)[1]
        # Zero the padding: a sequence shorter than a kernel has one window that
        # reaches past its end, and it must see zeros, not the caller's padding.
        x = x * tf.sequence_mask(lengths, time, dtype=x.dtype)[:, :, None]
        x = tf.pad(x, [[0, 0], [0, tf.maximum(max_k - time, 0)], [0, 0]])
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convolutions):
            h = conv(x)  # [batch, windows, filters], relu >= 0
            windows = tf.maximum(lengths - k + 1, 1)
            valid = tf.sequence_mask(windows, tf.shape(h)[1], dtype=h.dtype)
            # relu outputs are >= 0, so zeroing invalid windows cannot win the max
            # unless every valid window is 0 too, in which case the max is 0 anyway.
            pooled.append(tf.reduce_max(h * valid[:, :, None], axis=1))
        return tf.concat(pooled, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.filters * len(self.kernel_sizes))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_sizes": list(self.kernel_sizes)}
