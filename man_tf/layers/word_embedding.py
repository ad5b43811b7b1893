"""Word embeddings of all languages in one matrix, read without copying it.

Each language owns a block of rows (or all languages share one block; see
``man_tf.data.vocab.WordVocabulary``). Pretrained aligned vectors (``.vec``)
are loaded with :meth:`WordEmbedding.load` and then usually frozen, as in the
paper; otherwise the rows are learned.

Lookups use ``tf.gather`` on the variable itself (a ``ResourceGather``). A
variable that has seen sparse updates is switched by TF to copy-on-read, so
reading it as a dense tensor first, as ``keras.layers.Embedding`` does, would
copy all ~100k x 300 floats on every lookup.
"""

import keras
import numpy as np
import tensorflow as tf


class WordEmbedding(keras.layers.Layer):
    """ids ``[batch, time]`` -> ``[batch, time, dim]``."""

    def __init__(self, num_words, dim, trainable=True, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        self.num_words = int(num_words)
        self.dim = int(dim)

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.num_words, self.dim),
            initializer=keras.initializers.RandomUniform(-0.1, 0.1), trainable=self.trainable,
            # Under a mixed policy, autocasting ``.value`` would cast the whole
            # table every step; the gathered rows are cast instead.
            autocast=False)
        super().build(input_shape)

    def call(self, ids):
        return tf.cast(tf.gather(self.embeddings.value, ids), self.compute_dtype)

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
        return {**super().get_config(), "num_words": self.num_words, "dim": self.dim}
