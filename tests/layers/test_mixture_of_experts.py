import numpy as np
import pytest
import tensorflow as tf

from man_tf.layers import MixtureOfExperts


@pytest.mark.parametrize("shape", [(2, 7, 6), (5, 6)])
def test_gate_rows_sum_to_one(shape):
    moe = MixtureOfExperts(3, 4, hidden_units=(8,), output="features")
    x = tf.random.stateless_normal(shape, seed=[1, 1])
    out, gate_logits = moe(x)
    assert out.shape == (*shape[:-1], 4) and gate_logits.shape == (*shape[:-1], 3)
    np.testing.assert_allclose(tf.reduce_sum(tf.nn.softmax(gate_logits), -1).numpy(), 1.0,
                               rtol=1e-6)


def test_outputs_are_gate_weighted_expert_outputs():
    moe = MixtureOfExperts(3, 4, hidden_units=(8,), output="features", output_activation="tanh",
                           dropout=0.0)
    x = tf.random.stateless_normal([5, 6], seed=[2, 2])
    out, gate_logits = moe(x)
    gate = tf.nn.softmax(gate_logits).numpy()
    k0, b0, k1, b1 = [w.numpy() for w in (moe.kernels[0], moe.biases[0],
                                          moe.kernels[1], moe.biases[1])]
    expected = 0
    for e in range(3):
        h = np.maximum(x.numpy() @ k0[e] + b0[e], 0)
        expected = expected + gate[:, e:e + 1] * np.tanh(h @ k1[e] + b1[e])
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_log_probs_mix_distributions():
    moe = MixtureOfExperts(2, 5, hidden_units=(), output="log_probs", final_dropout=False)
    x = tf.random.stateless_normal([3, 4], seed=[3, 3])
    log_probs, gate_logits = moe(x)
    gate = tf.nn.softmax(gate_logits).numpy()
    k, b = moe.kernels[0].numpy(), moe.biases[0].numpy()
    probs = sum(gate[:, e:e + 1] * tf.nn.softmax(x.numpy() @ k[e] + b[e]).numpy()
                for e in range(2))
    np.testing.assert_allclose(np.exp(log_probs.numpy()), probs, atol=1e-6)
    np.testing.assert_allclose(np.exp(log_probs.numpy()).sum(-1), 1.0, atol=1e-6)


def test_log_probabilities_mixture_is_the_normalised_gate_weighted_log_sum():
    moe = MixtureOfExperts(2, 5, hidden_units=(), output="log_probs", final_dropout=False,
                           mixture="log_probabilities")
    x = tf.random.stateless_normal([3, 4], seed=[3, 3])
    log_probs, gate_logits = moe(x)
    gate = tf.nn.softmax(gate_logits).numpy()
    k, b = moe.kernels[0].numpy(), moe.biases[0].numpy()
    mixed = sum(gate[:, e:e + 1] * tf.nn.log_softmax(x.numpy() @ k[e] + b[e]).numpy()
                for e in range(2))
    expected = mixed - np.log(np.exp(mixed).sum(-1, keepdims=True))
    np.testing.assert_allclose(log_probs.numpy(), expected, atol=1e-5)
    # Not the mixture of distributions: the two modes differ on the same weights.
    other = MixtureOfExperts.from_config({**moe.get_config(), "mixture": "probabilities"})
    other.build(x.shape)
    other.set_weights(moe.get_weights())
    assert np.abs(other(x)[0].numpy() - log_probs.numpy()).max() > 1e-3


def test_gate_reads_a_stop_gradient_copy():
    moe = MixtureOfExperts(3, 4, output="features")
    x = tf.random.stateless_normal([5, 6], seed=[4, 4])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        out, gate_logits = moe(x)
        gate_loss = tf.reduce_sum(gate_logits)
        out_loss = tf.reduce_sum(out)
    assert tape.gradient(gate_loss, x) is None
    assert tape.gradient(gate_loss, moe.gate.kernel) is not None
    assert tape.gradient(out_loss, x) is not None
