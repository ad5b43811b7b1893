"""Adam that updates only the embedding rows a batch touches.

The word-embedding gradient is a ``tf.IndexedSlices`` over the few thousand
rows a batch uses, out of ~100k (four languages' vocabularies). Keras' Adam
turns it into a dense ``[rows, dim]`` tensor and updates every row's moments
and value each step. Here sparse gradients update only their rows ("lazy"
Adam, as in TF Addons' LazyAdam, which is not usable with Keras 3): rows a
batch does not touch keep their moments instead of decaying them. Dense
gradients get exactly Keras' Adam update.
"""

import keras
import tensorflow as tf


class LazyAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with row-sparse updates for ``IndexedSlices``."""

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        # Rows can repeat in a batch: sum their gradients first.
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), position,
                                              tf.shape(rows)[0])
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        # Gather from the tf.Variable itself (ResourceGather): reading it densely
        # would copy the whole table (copy-on-read after sparse writes).
        m_rows = beta_1 * tf.gather(m.value, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v.value, rows) + (1 - beta_2) * tf.square(values)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(
            alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
