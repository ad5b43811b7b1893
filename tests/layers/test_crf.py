"""Viterbi and the CRF's log-likelihood against brute force over every
label sequence of small inputs; the BIO constraints."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from man_tf.layers import crf
from tests.helpers import valid_bio

LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def _score(emissions, path, transitions, start, end):
    score = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
    return score + sum(transitions[a, b] for a, b in zip(path, path[1:]))


def _random_case(seed, batch=4, time=4, labels=3):
    rng = np.random.default_rng(seed)
    emissions = rng.normal(size=(batch, time, labels)).astype(np.float32)
    lengths = np.array([time, 1, 3, 0][:batch])
    mask = np.arange(time)[None] < lengths[:, None]
    params = [rng.normal(size=s).astype(np.float32) for s in ((labels, labels), labels, labels)]
    return emissions, lengths, mask, params


@pytest.mark.parametrize("seed", range(3))
def test_viterbi_and_log_partition_equal_brute_force(seed):
    emissions, lengths, mask, (transitions, start, end) = _random_case(seed)
    labels = emissions.shape[-1]
    path, best = crf.viterbi_decode(emissions, mask, transitions, start, end)
    log_z = crf.log_partition(emissions, mask, transitions, start, end).numpy()
    for row, length in enumerate(lengths):
        if length == 0:
            assert log_z[row] == 0.0
            continue
        scores = {p: _score(emissions[row], p, transitions, start, end)
                  for p in itertools.product(range(labels), repeat=length)}
        argbest = max(scores, key=scores.get)
        assert tuple(path.numpy()[row, :length]) == argbest
        np.testing.assert_allclose(best.numpy()[row], scores[argbest], rtol=1e-5)
        np.testing.assert_allclose(log_z[row], np.logaddexp.reduce(list(scores.values())),
                                   rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_log_likelihood_is_a_normalised_distribution(seed):
    emissions, lengths, mask, (transitions, start, end) = _random_case(seed, batch=3, time=3)
    labels = emissions.shape[-1]
    total = np.zeros(3)
    for path in itertools.product(range(labels), repeat=3):
        tags = np.tile(np.array(path)[None], (3, 1))
        log_p = crf.crf_log_likelihood(emissions, tags, mask, transitions, start, end).numpy()
        total += np.exp(log_p)
        for row, length in enumerate(lengths):
            expected = _score(emissions[row], path[:length], transitions, start, end)
            brute = np.logaddexp.reduce([
                _score(emissions[row], p, transitions, start, end)
                for p in itertools.product(range(labels), repeat=length)])
            np.testing.assert_allclose(log_p[row], expected - brute, rtol=1e-5, atol=1e-5)
    # Each row's probabilities sum to one over its own length's sequences:
    # enumerating length-3 paths counts a shorter row's sequence 3^(3-len) times.
    np.testing.assert_allclose(total, [3.0 ** (3 - n) for n in lengths], rtol=1e-5)


def test_the_gradient_of_the_log_likelihood_is_finite():
    emissions, _, mask, (transitions, start, end) = _random_case(0)
    variables = [tf.Variable(v) for v in (emissions, transitions, start, end)]
    tags = np.zeros(emissions.shape[:2], np.int32)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(crf.crf_log_likelihood(variables[0], tags, mask, *variables[1:]))
    for grad in tape.gradient(loss, variables):
        assert np.all(np.isfinite(grad.numpy()))


def test_bio_constraints():
    allowed, start = crf.bio_constraints(LABELS)
    index = {label: i for i, label in enumerate(LABELS)}
    assert not start[index["I-PER"]] and not start[index["I-LOC"]] and start[index["B-LOC"]]
    assert allowed[index["B-PER"], index["I-PER"]] and allowed[index["I-PER"], index["I-PER"]]
    assert not allowed[index["O"], index["I-PER"]]
    assert not allowed[index["B-LOC"], index["I-PER"]]
    assert not allowed[index["I-LOC"], index["I-PER"]]
    assert allowed[:, index["O"]].all() and allowed[:, index["B-PER"]].all()


def test_constrained_viterbi_is_valid_where_argmax_is_not():
    rng = np.random.default_rng(0)
    emissions = rng.normal(size=(64, 7, len(LABELS))).astype(np.float32) * 3
    emissions[:, :, 2] += 2.0  # I-PER is argmax's favourite: invalid often
    lengths = rng.integers(0, 8, size=64)
    mask = np.arange(7)[None] < lengths[:, None]
    transitions, start = crf.constraint_scores(*crf.bio_constraints(LABELS))
    path, _ = crf.viterbi_decode(emissions, mask, transitions, start)
    argmax = emissions.argmax(-1)
    decoded = [[LABELS[i] for i in row[:n]] for row, n in zip(path.numpy(), lengths)]
    assert all(valid_bio(tags) for tags in decoded)
    assert not all(valid_bio([LABELS[i] for i in row[:n]]) for row, n in zip(argmax, lengths))
    # Where argmax is already valid, constrained Viterbi (no learned
    # transitions) returns it.
    for row, n in zip(range(64), lengths):
        tags = [LABELS[i] for i in argmax[row, :n]]
        if valid_bio(tags):
            assert decoded[row] == tags


def test_viterbi_on_an_empty_batch_and_no_time_steps():
    transitions, start = crf.constraint_scores(*crf.bio_constraints(LABELS))
    path, _ = crf.viterbi_decode(tf.zeros([2, 0, 5]), tf.zeros([2, 0], tf.bool),
                                 transitions, start)
    assert path.shape == (2, 0)
    path, _ = crf.viterbi_decode(tf.zeros([0, 3, 5]), tf.zeros([0, 3], tf.bool),
                                 transitions, start)
    assert path.shape == (0, 3)
