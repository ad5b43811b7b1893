"""Word embeddings of all languages in one matrix, read without copying it.

Each language owns a block of rows (or all languages share one block; see
``man_tf.data.vocab.WordVocabulary``). Pretrained aligned vectors (``.vec``)
are loaded with :meth:`WordEmbedding.load` and then usually frozen, as in the
paper; otherwise the rows are learned.

While training, ``unk_replacement`` of the real tokens are read as their
block's ``<unk>`` row instead of their own. Without it no training token maps
to ``<unk>`` (every training word is in the vocabulary), so the row that every
unseen dev/test word reads would stay at its random start.

Lookups use ``tf.gather`` on the variable itself (a ``ResourceGather``). A
variable that has seen sparse updates is switched by TF to copy-on-read, so
reading it as a dense tensor first, as ``keras.layers.Embedding`` does, would
copy the whole table on every lookup.
"""

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="man_tf")
class WordEmbedding(keras.layers.Layer):
    """ids ``[batch, time]`` -> ``[batch, time, dim]``."""

    def __init__(self, num_words, dim, trainable=True, block_starts=(0,), unk_replacement=0.0,
                 seed=None, **kwargs):
        """``block_starts``: first row of each vocabulary block (its ``<pad>``;
        ``<unk>`` is the next row). ``unk_replacement``: rate of real tokens
        read as ``<unk>`` while training."""
        super().__init__(trainable=trainable, **kwargs)
        self.num_words = int(num_words)
        self.dim = int(dim)
        self.block_starts = tuple(int(b) for b in block_starts)
        if not self.block_starts or self.block_starts[0] != 0 or \
                list(self.block_starts) != sorted(set(self.block_starts)):
            raise ValueError(f"block_starts must start at 0 and increase, got {block_starts}")
        self.unk_replacement = float(unk_replacement)
        if not 0.0 <= self.unk_replacement < 1.0:
            raise ValueError(f"unk_replacement must be in [0, 1), got {unk_replacement}")
        # A Keras seed generator keeps its state in a variable, which the
        # training checkpoint saves like the dropout layers' (exact resume).
        # Only made when used, so models saved without it restore unchanged.
        self.seed_generator = (keras.random.SeedGenerator(seed, name="unk_seed")
                               if self.unk_replacement > 0 else None)

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.num_words, self.dim),
            initializer=keras.initializers.RandomUniform(-0.1, 0.1), trainable=self.trainable,
            # Under a mixed policy, autocasting ``.value`` would cast the whole
            # table every step; the gathered rows are cast instead.
            autocast=False)
        super().build(input_shape)

    def call(self, ids, training=False):
        if training and self.unk_replacement > 0:
            ids = self.replace_with_unk(ids)
        return tf.cast(tf.gather(self.embeddings.value, ids), self.compute_dtype)

    def replace_with_unk(self, ids):
        """Each real token (not a ``<pad>`` row) becomes its block's ``<unk>``
        with probability ``unk_replacement``."""
        starts = tf.constant(self.block_starts, ids.dtype)
        flat = tf.reshape(ids, [1, -1])  # searchsorted needs [1, n] against [1, blocks]
        block = tf.searchsorted(starts[None], flat, side="right", out_type=ids.dtype) - 1
        start = tf.reshape(tf.gather(starts, block[0]), tf.shape(ids))
        draw = keras.random.uniform(tf.shape(ids), seed=self.seed_generator)
        replace = (draw < self.unk_replacement) & (ids != start)
        return tf.where(replace, start + 1, ids)

    def load(self, vectors, rows):
        """Sets the given ``rows`` (int ``[n]``) to ``vectors`` (``[n, dim]``)."""
        if not self.built:
            self.build()
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got shape "
                             f"{vectors.shape}")
        value = self.embeddings.numpy()
        value[np.asarray(rows, np.int64)] = vectors
        self.embeddings.assign(value)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)

    def get_config(self):
        return {**super().get_config(), "num_words": self.num_words, "dim": self.dim,
                "block_starts": list(self.block_starts), "unk_replacement": self.unk_replacement}
