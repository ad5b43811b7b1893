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

    ``windows_matmul``: run each width as one 2-D matmul over the stacked
    windows instead of Keras' ``Conv1D`` (same kernels, same values: a test
    holds both equal). Less op time for the char-CNN on CPU, whose
    input needs no gradient (oneDNN's backward-filter convolution of short
    words is slow); more for D, whose input gradient through the windows'
    slices writes a zero-filled copy per window offset
    (benchmarks/results/speed.md).
    """

    def __init__(self, filters=200, kernel_sizes=(3, 4, 5), windows_matmul=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.windows_matmul = bool(windows_matmul)
        self.convolutions = [keras.layers.Conv1D(self.filters, k, activation="relu",
                                                 name=f"conv{k}")
                             for k in self.kernel_sizes]

    def build(self, input_shape):
        for conv in self.convolutions:  # any length: shorter ones are padded in call
            conv.build((None, None, input_shape[-1]))
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
            if not self.windows_matmul:
                h = conv(x)  # [batch, windows, filters], relu >= 0
                valid = tf.sequence_mask(tf.maximum(lengths - k + 1, 1), tf.shape(h)[1],
                                         dtype=h.dtype)
                # relu outputs are >= 0, so zeroing invalid windows cannot win the max
                # unless every valid window is 0 too, in which case the max is 0 anyway.
                pooled.append(tf.reduce_max(h * valid[:, :, None], axis=1))
            else:
                pooled.append(self._windows_matmul(x, lengths, k, conv))
        return tf.concat(pooled, axis=-1)

    def _windows_matmul(self, x, lengths, k, conv):
        rows, time, dim = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
        windows = time - k + 1
        # Each window [x_t; ...; x_t+k-1], the order of the kernel's flattened rows.
        stacked = tf.concat([x[:, j:j + windows] for j in range(k)], axis=-1)
        kernel = tf.reshape(tf.cast(conv.kernel, x.dtype), [k * dim, self.filters])
        h = tf.reshape(tf.matmul(tf.reshape(stacked, [-1, k * dim]), kernel),
                       [rows, windows, self.filters])
        # Windows that start at a real position and end at one (or the single
        # window of a sequence shorter than k). relu and the bias are
        # monotone, so the max over windows comes first: relu(max + b) is the
        # max of relu(h + b) over the same windows.
        valid = tf.sequence_mask(tf.maximum(lengths - k + 1, 1), windows)
        best = tf.reduce_max(tf.where(valid[:, :, None], h, h.dtype.min), axis=1)
        return tf.nn.relu(best + tf.cast(conv.bias, x.dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.filters * len(self.kernel_sizes))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_sizes": list(self.kernel_sizes), "windows_matmul": self.windows_matmul}
