import numpy as np
import tensorflow as tf

from man_tf.layers import GradientReversal, reverse_gradient


def test_forward_is_identity_backward_is_minus_lambda():
    x = tf.constant([[1.0, -2.0], [3.0, 4.0]])
    upstream = tf.constant([[0.5, 1.0], [-1.0, 2.0]])
    layer = GradientReversal(0.002)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * upstream)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -0.002 * upstream.numpy())
    assert GradientReversal.from_config(layer.get_config()).scale == 0.002


def test_reversal_inside_a_graph():
    x = tf.Variable([1.0, 2.0])

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(reverse_gradient(x, tf.constant(3.0)) ** 2)
        return tape.gradient(loss, x)

    np.testing.assert_allclose(grad().numpy(), -3.0 * 2 * np.array([1.0, 2.0]))
