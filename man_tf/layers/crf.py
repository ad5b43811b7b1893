"""Sequence decoding and a linear-chain CRF on core TensorFlow ops.

Everything here runs in the training step, in evaluation and inside the
served graph (``tf.scan`` becomes a ``While`` loop, which TensorFlow
Serving runs like any core op); scores are computed in float32.

Conventions (``K`` labels, ``T`` time steps):

* ``emissions`` ``[batch, T, K]``: per-token scores (C's log-probabilities);
* ``mask`` ``[batch, T]``: true for real tokens, a prefix of each row;
* ``transitions`` ``[K, K]``: score of label ``j`` right after label ``i``
  at ``[i, j]``; ``start`` / ``end`` ``[K]``: score of a sentence's first /
  last label.

A sequence's score is ``start[y_0] + Σ_t emissions[t, y_t] +
Σ_{t>0} transitions[y_{t-1}, y_t] + end[y_last]`` over its real tokens.
"""

import numpy as np
import tensorflow as tf

# Added to a forbidden transition's score: far below any real path's score
# (a thousand tokens of log-probabilities stay above -1e6) and far above
# float32's lowest value, so sums of a few stay finite.
FORBIDDEN = -1e9


def bio_constraints(labels):
    """``(allowed [K, K], allowed_start [K])`` bool arrays for BIO2 labels:
    ``I-X`` only right after ``B-X`` or ``I-X`` (never first, never after
    ``O`` or another type). Labels without a ``B-``/``I-`` prefix (``O``,
    any other name) may follow anything and start a sentence."""
    labels = list(labels)
    k = len(labels)
    allowed = np.ones((k, k), bool)
    start = np.ones(k, bool)
    for j, label in enumerate(labels):
        if label.startswith("I-"):
            kind = label[2:]
            start[j] = False
            allowed[:, j] = [prev in (f"B-{kind}", f"I-{kind}") for prev in labels]
    return allowed, start


def constraint_scores(allowed, allowed_start):
    """``(transitions, start)`` float32 tensors: 0 where allowed,
    :data:`FORBIDDEN` elsewhere."""
    to_scores = lambda a: tf.where(tf.constant(a), 0.0, FORBIDDEN)
    return to_scores(allowed), to_scores(allowed_start)


def _time_major(x):
    perm = [1, 0] + list(range(2, x.shape.rank))
    return tf.transpose(x, perm)


def _padded(emissions, mask):
    """One extra masked step at the end, so ``T = 0`` needs no special case."""
    emissions = tf.pad(tf.cast(emissions, tf.float32), [[0, 0], [0, 1], [0, 0]])
    mask = tf.pad(tf.cast(mask, tf.bool), [[0, 0], [0, 1]])
    return emissions, mask


def viterbi_decode(emissions, mask, transitions, start, end=None):
    """The highest-scoring label sequence per row: int32 ``[batch, T]``
    (positions past a row's length repeat its last label; callers mask
    them), and its score ``[batch]``."""
    time = tf.shape(emissions)[1]
    emissions, mask = _padded(emissions, mask)
    num_labels = tf.shape(emissions)[2]
    transitions = tf.cast(transitions, tf.float32)
    first = emissions[:, 0] + tf.cast(start, tf.float32)[None]
    identity = tf.range(num_labels)[None]

    def forward(carry, step):
        score, _ = carry
        scores, real = step
        candidates = score[:, :, None] + transitions[None]  # [batch, from, to]
        best = tf.reduce_max(candidates, axis=1) + scores
        pointer = tf.argmax(candidates, axis=1, output_type=tf.int32)
        real = real[:, None]
        return tf.where(real, best, score), tf.where(real, pointer, identity)

    steps = (_time_major(emissions[:, 1:]), _time_major(mask[:, 1:]))
    initial = (first, tf.zeros_like(first, tf.int32))
    scores, pointers = tf.scan(forward, steps, initializer=initial)  # [T, batch, K]
    final = tf.concat([first[None], scores], axis=0)[-1]
    if end is not None:
        final += tf.cast(end, tf.float32)[None]
    last = tf.argmax(final, axis=-1, output_type=tf.int32)

    def backward(label, pointer):
        return tf.gather(pointer, label, batch_dims=1)

    previous = tf.scan(backward, pointers, initializer=last, reverse=True)  # [T, batch]
    path = tf.concat([previous, last[None]], axis=0)
    return tf.transpose(path)[:, :time], tf.reduce_max(final, axis=-1)


def sequence_score(emissions, labels, mask, transitions, start, end):
    """The score of the given label sequences: ``[batch]``."""
    emissions, mask = _padded(emissions, mask)
    labels = tf.pad(tf.where(mask[:, :-1], tf.cast(labels, tf.int32), 0), [[0, 0], [0, 1]])
    real = tf.cast(mask, tf.float32)
    unary = tf.reduce_sum(tf.gather(emissions, labels, batch_dims=2) * real, axis=1)
    pairs = tf.gather_nd(tf.cast(transitions, tf.float32),
                         tf.stack([labels[:, :-1], labels[:, 1:]], axis=-1))
    binary = tf.reduce_sum(pairs * real[:, 1:], axis=1)
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    first = tf.gather(tf.cast(start, tf.float32), labels[:, 0])
    last = tf.gather(labels, tf.maximum(lengths - 1, 0), batch_dims=1)
    final = tf.gather(tf.cast(end, tf.float32), last)
    has_tokens = lengths > 0
    return tf.where(has_tokens, unary + binary + first + final, 0.0)


def log_partition(emissions, mask, transitions, start, end):
    """log Σ over every label sequence of exp(score): the forward algorithm,
    ``[batch]`` (0 for an empty row)."""
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    emissions, mask = _padded(emissions, mask)
    transitions = tf.cast(transitions, tf.float32)
    alpha = emissions[:, 0] + tf.cast(start, tf.float32)[None]

    def forward(alpha, step):
        scores, real = step
        new = tf.reduce_logsumexp(alpha[:, :, None] + transitions[None], axis=1) + scores
        return tf.where(real[:, None], new, alpha)

    steps = (_time_major(emissions[:, 1:]), _time_major(mask[:, 1:]))
    alphas = tf.scan(forward, steps, initializer=alpha)
    final = tf.concat([alpha[None], alphas], axis=0)[-1] + tf.cast(end, tf.float32)[None]
    return tf.where(lengths > 0, tf.reduce_logsumexp(final, axis=-1), 0.0)


def crf_log_likelihood(emissions, labels, mask, transitions, start, end):
    """log p(labels | emissions) under the CRF: ``[batch]``."""
    return (sequence_score(emissions, labels, mask, transitions, start, end)
            - log_partition(emissions, mask, transitions, start, end))
