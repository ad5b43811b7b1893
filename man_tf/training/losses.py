"""Losses that follow the authors' reduction, exactly under any number of replicas.

The authors compute each language's loss as a mean over that language's
batch (tokens for tagging, sentences for classification) and sum the
languages. Here all languages share one stacked batch that a distribution
strategy may split across replicas, so each replica returns its partial sum
divided by the *global* count per language (all-reduced); the optimizer sums
gradients over replicas, which gives exactly the one-replica gradient.
"""

import tensorflow as tf


def _global_sum(x):
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: x is already global
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def per_language_mean(values, mask, language, num_languages):
    """Σ_languages mean over that language's units of ``values``.

    Args:
      values: ``[batch, ...]`` per-unit losses (tokens ``[batch, time]`` or
        sentences ``[batch]``).
      mask: same shape, true for real units.
      language: ``[batch]`` language index of each row.
      num_languages: number of language segments.

    Returns:
      A scalar: this replica's share of the global loss (shares sum to it).
    """
    mask = tf.cast(mask, values.dtype)
    axes = list(range(1, values.shape.rank))
    per_row = tf.reduce_sum(values * mask, axis=axes) if axes else values * mask
    per_row_count = tf.reduce_sum(mask, axis=axes) if axes else mask
    sums = tf.math.unsorted_segment_sum(per_row, language, num_languages)
    counts = _global_sum(tf.math.unsorted_segment_sum(per_row_count, language, num_languages))
    return tf.reduce_sum(sums / tf.maximum(counts, 1.0))


def broadcast_rows(row_values, like):
    """``[batch]`` -> the shape of ``like`` (``[batch]`` or ``[batch, time]``)."""
    for _ in range(like.shape.rank - 1):
        row_values = row_values[:, None]
    return tf.broadcast_to(row_values, tf.shape(like))


def cross_entropy(logits, labels):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def correct_and_count(logits, labels, mask):
    """Counts of correct argmax predictions among real units, and of real units."""
    mask = tf.cast(mask, tf.float32)
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels),
                      tf.float32)
    return tf.reduce_sum(correct * mask), tf.reduce_sum(mask)
