import keras
import numpy as np
import tensorflow as tf

from man_tf.layers.bilstm import BidirectionalLSTM, BiLSTMEncoder


def test_equals_keras_bidirectional_lstm_with_mask():
    x = tf.random.stateless_normal([4, 9, 5], seed=[1, 2])
    lengths = tf.constant([9, 4, 1, 6])
    ours = BidirectionalLSTM(6)
    ours.build(x.shape)
    reference = keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True))
    reference.build((None, None, 5))
    fk, fr, fb = reference.forward_layer.get_weights()
    bk, br, bb = reference.backward_layer.get_weights()
    ours.kernel.assign(np.stack([fk, bk]))
    ours.recurrent_kernel.assign(np.stack([fr, br]))
    ours.bias.assign(np.stack([fb, bb]))
    mask = tf.sequence_mask(lengths, 9)
    expected = reference(x, mask=mask).numpy() * mask.numpy()[..., None]
    np.testing.assert_allclose(ours(x, lengths).numpy(), expected, atol=1e-5)


def test_padding_content_never_reaches_real_positions():
    encoder = BiLSTMEncoder(hidden=8, num_layers=2)
    lengths = tf.constant([3, 5])
    x = tf.random.stateless_normal([2, 5, 4], seed=[3, 4])
    noise = tf.random.stateless_normal([2, 5, 4], seed=[5, 6]) * 100.0
    mask = tf.sequence_mask(lengths, 5, dtype=tf.float32)[..., None]
    a = encoder(x, lengths).numpy()
    b = encoder(x * mask + noise * (1 - mask), lengths).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert (a[0, 3:] == 0).all()
    assert BiLSTMEncoder.from_config(encoder.get_config()).hidden == 8


def test_fused_inference_equals_the_loop_and_refuses_gradients():
    import pytest

    from man_tf.layers.bilstm import use_fused_inference

    encoder = BiLSTMEncoder(hidden=12, num_layers=2)
    x = tf.random.stateless_normal([4, 7, 5], seed=[7, 8])
    lengths = tf.constant([7, 3, 1, 5])
    loop = encoder(x, lengths).numpy()
    use_fused_inference(encoder)
    assert all(lstm.fused_inference for lstm in encoder.lstms)
    fused = tf.function(lambda x, lengths: encoder(x, lengths))(x, lengths).numpy()
    np.testing.assert_allclose(fused, loop, atol=1e-5)
    assert (fused[1, 3:] == 0).all()
    # Training still runs the loop (dropout 0: the same values, with gradients).
    encoder.input_dropout.rate = encoder.between_dropout.rate = 0.0
    with tf.GradientTape() as tape:
        trained = encoder(x, lengths, training=True)
    assert all(g is not None for g in tape.gradient(trained, encoder.trainable_variables))
    np.testing.assert_allclose(trained.numpy(), loop, atol=1e-5)
    # A gradient through the fused op would be wrong: it raises instead.
    with pytest.raises(LookupError, match="fused_inference"):
        with tf.GradientTape() as tape:
            out = encoder(x, lengths)
        tape.gradient(out, encoder.trainable_variables)


def test_keras_kernels_equal_the_loop_in_outputs_and_gradients():
    """``implementation="keras"`` (Keras' LSTM kernels: its generic loop on
    CPU, cuDNN where a GPU is visible) and the ``tf.scan`` loop, on the same
    variables: equal outputs and gradients, padding and an empty row included."""
    x = tf.random.stateless_normal([5, 7, 6], seed=[7, 8])
    lengths = tf.constant([7, 3, 1, 0, 5])
    loop = BidirectionalLSTM(4, implementation="loop")
    loop.build(x.shape)
    kernels = BidirectionalLSTM(4, implementation="keras")
    kernels.build(x.shape)
    for a, b in zip(kernels.weights, loop.weights):
        a.assign(b)
    # Gate weights not all alike: a wrong gate order would show.
    target = tf.random.stateless_normal([5, 7, 8], seed=[9, 10])

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, lengths, training=True)
            loss = tf.reduce_sum(out * target)
        return out, tape.gradient(loss, [x, *layer.weights])

    expected, expected_grads = run(loop)
    got, grads = run(kernels)
    tolerance = 2e-3 if tf.config.list_logical_devices("GPU") else 1e-5  # cuDNN: TF32 math
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=tolerance)
    assert (got.numpy()[3] == 0).all() and (got.numpy()[1, 3:] == 0).all()
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g.numpy(), e.numpy(), atol=tolerance * 10)
    # "auto" is the loop without a GPU, Keras' kernels (cuDNN) with one.
    from man_tf.layers.bilstm import resolve_implementation
    assert resolve_implementation("auto") == (
        "keras" if tf.config.list_logical_devices("GPU") else "loop")


def test_keras_kernels_in_mixed_bfloat16_run_in_float32():
    x = tf.cast(tf.random.stateless_normal([2, 4, 3], seed=[1, 1]), tf.bfloat16)
    layer = BidirectionalLSTM(2, implementation="keras", dtype="mixed_bfloat16")
    layer.build(x.shape)
    out = layer(x, tf.constant([4, 2]))
    assert layer.kernel.dtype == "float32"
    assert out.dtype == tf.bfloat16 and out.shape == (2, 4, 4)


def test_hand_written_backward_equals_autodiff_with_state_resets():
    """``lstm_recurrence``'s backward pass (one matmul a step, the kernel's
    gradient in one matmul) against autodiff through the same recurrence."""
    from man_tf.layers.bilstm import _gates, lstm_recurrence

    rng = np.random.default_rng(0)
    time, batch, units = 7, 5, 4
    projected = tf.constant(rng.normal(size=[time, 2, batch, 4 * units]), tf.float32)
    recurrent = tf.constant(rng.normal(size=[2, units, 4 * units]) * 0.5, tf.float32)
    keep = tf.constant((rng.random([time, 2, batch, 1]) > 0.3).astype(np.float32))
    weights = tf.constant(rng.normal(size=[time, 2, batch, units]), tf.float32)

    def autodiff(projected, recurrent, keep):
        zeros = tf.zeros([2, batch, units])

        def step(carry, inputs):
            (h, c), (z, k) = carry, inputs
            i, f, g, o = _gates(z + tf.matmul(h * k, recurrent))
            c = f * c * k + i * g
            return o * tf.tanh(c), c

        return tf.scan(step, (projected, keep), initializer=(zeros, zeros))[0]

    def run(function):
        with tf.GradientTape() as tape:
            tape.watch([projected, recurrent])
            out = function(projected, recurrent, keep)
            loss = tf.reduce_sum(tf.sin(out * weights))
        return [out, *tape.gradient(loss, [projected, recurrent])]

    for got, expected in zip(run(lstm_recurrence), run(autodiff)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)


def test_packed_rows_equal_padded_rows_in_outputs_and_gradients():
    """Training on packed rows (sentences end to end, state reset at each
    start): every output and gradient as on the padded batch."""
    from man_tf.layers.bilstm import RowPacking

    keras.utils.set_random_seed(0)
    packed = BiLSTMEncoder(10, 2, 0.0, 0.0, "loop", pack_rows=True)
    padded = BiLSTMEncoder(10, 2, 0.0, 0.0, "loop", pack_rows=False)
    for encoder in (packed, padded):
        encoder.build((None, None, 6))
    for a, b in zip(packed.weights, padded.weights):
        b.assign(a)
    lengths = tf.constant([7, 0, 3, 2, 7, 1, 5, 4])
    x = tf.random.stateless_normal([8, 9, 6], seed=[1, 3])

    def run(encoder):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = encoder(x, lengths, training=True)
            loss = tf.reduce_sum(tf.sin(out))
        return [out, *tape.gradient(loss, [x, *encoder.trainable_variables])]

    for got, expected in zip(run(packed), run(padded)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)
    packing = RowPacking(lengths, 9)
    # 29 tokens in rows of 7: the two 7s alone, 5+2, 4+3, 1 (and the empty one).
    assert int(packing.rows) == 5 and int(packing.capacity) == 7
    np.testing.assert_array_equal(packing.loads.numpy(), [7, 7, 7, 7, 1])
