"""Character CNN shared by all languages: a word's spelling -> a vector.

Runs only on real tokens (padding positions are gathered out) and only once
per distinct spelling in the batch: a training iteration stacks one batch
per language for each stream, whose frequent words repeat many times, and
the CNN output depends on the characters alone.
"""

import keras
import tensorflow as tf

from man_tf.layers.conv_pooling import MaskedConvPooling


@keras.saving.register_keras_serializable(package="man_tf")
class UnitNormRows(keras.initializers.Initializer):
    """Gaussian rows scaled to L2 norm 1, as the authors initialise their
    (fixed) character vectors. Unscaled N(0, 1) rows of 128 dimensions have
    norm ~11 and swamp the word vectors at the BiLSTM input."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        rows = keras.random.normal(shape, dtype=dtype or "float32", seed=self.seed)
        return rows / tf.maximum(tf.norm(rows, axis=-1, keepdims=True), 1e-12)

    def get_config(self):
        return {"seed": self.seed}


# Words are convolved in groups by length (<= 8, <= 12, longer characters):
# most distinct words of the CoNLL train files are short, so a batch's
# char-CNN does much less work than convolving every word over
# ``max_chars`` columns (benchmarks/results/speed.md).
LENGTH_GROUPS = (8, 12)

# How the convolutions run (MaskedConvPooling.windows_matmul): one matmul
# over each width's stacked windows (less op time on CPU: the input needs
# no gradient, and oneDNN's backward-filter convolution of short words is
# slow; measured in benchmarks/results/speed.md) or Keras' Conv1D. The
# same weights either way.
CONVOLUTIONS = ("matmul", "conv")


@keras.saving.register_keras_serializable(package="man_tf")
class CharCNN(keras.layers.Layer):
    """chars ``[batch, time, chars]`` (0 = padding) + token mask ``[batch, time]``
    -> ``[batch, time, output_dim]`` (zeros at padded tokens).

    embedding ``[num_chars, embedding_dim]`` -> convolutions of widths
    ``kernel_sizes`` x ``filters`` -> max over characters -> dropout -> dense
    ``output_dim`` + relu (the authors' ``CNNSequencePooling``).
    ``convolution``: how the convolutions run (:data:`CONVOLUTIONS`).
    """

    def __init__(self, num_chars, embedding_dim=128, filters=200, kernel_sizes=(3, 4, 5),
                 output_dim=128, dropout=0.5, embedding_trainable=False, unique_words=True,
                 convolution="matmul", **kwargs):
        super().__init__(**kwargs)
        self.num_chars = int(num_chars)
        self.embedding_dim = int(embedding_dim)
        self.filters = int(filters)
        self.kernel_sizes = tuple(kernel_sizes)
        self.output_dim = int(output_dim)
        self.dropout_rate = float(dropout)
        self.embedding_trainable = bool(embedding_trainable)
        self.unique_words = bool(unique_words)
        if convolution not in CONVOLUTIONS:
            raise ValueError(f"convolution={convolution!r}: expected one of "
                             f"{', '.join(CONVOLUTIONS)}")
        self.convolution = convolution
        self.embedding = keras.layers.Embedding(
            self.num_chars, self.embedding_dim, trainable=self.embedding_trainable,
            embeddings_initializer=UnitNormRows(),
            name="char_embedding")
        self.pooling = MaskedConvPooling(self.filters, self.kernel_sizes,
                                         windows_matmul=convolution == "matmul",
                                         name="char_convolutions")
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.projection = keras.layers.Dense(self.output_dim, activation="relu", name="projection")

    def build(self, input_shape):
        self.embedding.build((None, None))
        self.pooling.build((None, None, self.embedding_dim))
        self.projection.build((None, self.filters * len(self.kernel_sizes)))
        super().build(input_shape)

    def call(self, chars, token_mask, training=False):
        positions = tf.where(token_mask)  # [tokens, 2]
        words = tf.gather_nd(chars, positions)  # [tokens, chars]
        if self.unique_words:
            # UniqueV2 finds distinct rows; XLA cannot compile it (unique_words=False there).
            words, inverse = tf.raw_ops.UniqueV2(x=words, axis=tf.constant([0], tf.int64))
        lengths = tf.reduce_sum(tf.cast(words > 0, tf.int32), axis=1)
        # Length groups have data-dependent shapes too: XLA runs the full width.
        h = self._pooled_by_length(words, lengths) if self.unique_words else \
            self.pooling(self.embedding(words), lengths)
        h = self.projection(self.dropout(h, training=training))
        if self.unique_words:
            h = tf.gather(h, inverse)
        shape = tf.concat([tf.shape(chars, out_type=tf.int64)[:2], [self.output_dim]], axis=0)
        return tf.scatter_nd(positions, h, shape)

    def _pooled_by_length(self, words, lengths):
        """The convolutions + max over characters, run per group of words
        by length, each group's characters cut to its longest word (at least
        the widest kernel): most words are short, so most of the padded
        ``max_chars`` columns are never convolved. The same windows are
        pooled as on the full width, so the values are the same."""
        widest = max(self.kernel_sizes)
        width = tf.shape(words)[1]
        group = tf.zeros_like(lengths)
        for bound in LENGTH_GROUPS:
            group += tf.cast(lengths > bound, tf.int32)
        groups = len(LENGTH_GROUPS) + 1
        positions = tf.dynamic_partition(tf.range(tf.shape(words)[0]), group, groups)
        parts = tf.dynamic_partition(words, group, groups)
        part_lengths = tf.dynamic_partition(lengths, group, groups)
        pooled = []
        for part, part_length in zip(parts, part_lengths):
            cut = tf.minimum(tf.maximum(tf.reduce_max(tf.concat([part_length, [0]], 0)),
                                        widest), width)
            # An empty group skips the convolutions (TF's Conv on an empty
            # batch returns a wrongly shaped tensor).
            pooled.append(tf.cond(
                tf.size(part_length) > 0,
                lambda part=part, part_length=part_length, cut=cut: self.pooling(
                    self.embedding(part[:, :cut]), part_length),
                lambda: tf.zeros([0, self.filters * len(self.kernel_sizes)],
                                 self.compute_dtype)))
        return tf.dynamic_stitch(positions, pooled)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "num_chars": self.num_chars,
                "embedding_dim": self.embedding_dim, "filters": self.filters,
                "kernel_sizes": list(self.kernel_sizes), "output_dim": self.output_dim,
                "dropout": self.dropout_rate, "embedding_trainable": self.embedding_trainable,
                "unique_words": self.unique_words, "convolution": self.convolution}
