"""Adam that updates only the embedding rows a batch touches.

The word-embedding gradient is a ``tf.IndexedSlices`` over the few thousand
rows a batch uses, out of the whole table (every language's vocabulary). Keras' Adam
turns it into a dense ``[rows, dim]`` tensor and updates every row's moments
and value each step. Here sparse gradients update only their rows ("lazy"
Adam, as in TF Addons' LazyAdam, which is not usable with Keras 3): rows a
batch does not touch keep their moments instead of decaying them. Dense
gradients get exactly Keras' Adam update.

:func:`step_size` gives the step size over a run: constant (the authors'),
or decayed to zero by the last step (linear or cosine).
"""

import keras
import tensorflow as tf

from man_tf.keras_internals import adam_slots
from man_tf.settings import LR_SCHEDULES


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
        m, v = adam_slots(self, variable)
        # Gather from the tf.Variable itself (ResourceGather): reading it densely
        # would copy the whole table (copy-on-read after sparse writes).
        m_rows = beta_1 * tf.gather(m.value, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v.value, rows) + (1 - beta_2) * tf.square(values)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(
            alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


def step_size(base, schedule, steps):
    """Adam's step size for a run of ``steps`` updates: ``base`` throughout
    ("constant"), or from ``base`` down to 0 at step ``steps``, linearly
    ("linear") or along half a cosine ("cosine"); a Keras schedule, read at
    the optimizer's own update count (checkpointed with it, so a resumed run
    continues the curve)."""
    if schedule == "constant":
        return base
    if schedule == "linear":
        return keras.optimizers.schedules.PolynomialDecay(base, steps, end_learning_rate=0.0)
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(base, steps, alpha=0.0)
    raise ValueError(f"schedule {schedule!r}: expected one of {LR_SCHEDULES}")


def applied_step_size(rate, optimizer):
    """The step size ``rate`` (what :func:`step_size` gave ``optimizer``)
    applied in the optimizer's latest update, as a float."""
    if callable(rate):
        rate = rate(tf.maximum(optimizer.iterations - 1, 0))
    return float(rate)
