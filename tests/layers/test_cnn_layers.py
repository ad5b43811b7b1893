import numpy as np
import pytest
import tensorflow as tf

from man_tf.layers import CharCNN, MaskedConvPooling, language_discriminator


def test_conv_pooling_ignores_padding_and_short_sequences_work():
    pool = MaskedConvPooling(filters=4, kernel_sizes=(2, 3))
    x = tf.random.stateless_normal([3, 6, 5], seed=[1, 1])
    lengths = tf.constant([6, 2, 1])
    mask = tf.sequence_mask(lengths, 6, dtype=tf.float32)[..., None]
    noisy = x * mask + 50.0 * (1 - mask)
    np.testing.assert_allclose(pool(x, lengths).numpy(), pool(noisy, lengths).numpy(),
                               atol=1e-5)
    assert pool(x, lengths).shape == (3, 8)


def _conv_pooling_reference(pool, x, lengths):
    """The pooling written as it reads: each width's Keras Conv1D (relu),
    windows outside the sequence zeroed, max over windows."""
    time = x.shape[1]
    x = x * tf.sequence_mask(lengths, time, dtype=x.dtype)[:, :, None]
    x = tf.pad(x, [[0, 0], [0, max(max(pool.kernel_sizes) - time, 0)], [0, 0]])
    pooled = []
    for k, conv in zip(pool.kernel_sizes, pool.convolutions):
        h = conv(x)
        valid = tf.sequence_mask(tf.maximum(lengths - k + 1, 1), h.shape[1], dtype=h.dtype)
        pooled.append(tf.reduce_max(h * valid[:, :, None], axis=1))
    return tf.concat(pooled, axis=-1)


@pytest.mark.parametrize("time", [2, 9])
def test_conv_pooling_matmul_equals_the_convolutions(time):
    # The windows' matmul (the char-CNN's) against Keras' Conv1D on the same
    # kernels: values and gradients (kernels, biases, input), sequences
    # shorter than every kernel included.
    pool = MaskedConvPooling(filters=6, kernel_sizes=(2, 3, 5), windows_matmul=True)
    x = tf.random.stateless_normal([5, time, 4], seed=[4, time])
    lengths = tf.constant([time, 1, 2, time - 1, 0])
    pool(x, lengths)
    results = []
    for fn in (pool, lambda x, lengths: _conv_pooling_reference(pool, x, lengths)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fn(x, lengths)
            loss = tf.reduce_sum(out * tf.range(1.0, 1.0 + out.shape[-1]))
        results.append((out.numpy(), tape.gradient(loss, [x, *pool.trainable_variables])))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)
    assert (results[0][0] > 0).any() and (results[0][0] == 0).any()  # both sides of relu
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_char_cnn_runs_on_real_tokens_only_and_dedup_is_exact():
    chars = tf.constant([[[3, 4, 5, 0], [3, 4, 5, 0], [6, 0, 0, 0]],
                         [[7, 8, 9, 10], [0, 0, 0, 0], [0, 0, 0, 0]]])
    token_mask = tf.constant([[True, True, True], [True, False, False]])
    unique = CharCNN(12, 6, 5, (2, 3), 7, dropout=0.0, unique_words=True)
    plain = CharCNN(12, 6, 5, (2, 3), 7, dropout=0.0, unique_words=False)
    out = unique(chars, token_mask)
    plain(chars, token_mask)
    plain.set_weights(unique.get_weights())
    np.testing.assert_allclose(out.numpy(), plain(chars, token_mask).numpy(), atol=1e-6)
    np.testing.assert_array_equal(out[0, 0].numpy(), out[0, 1].numpy())
    assert (out[1, 1:].numpy() == 0).all()


def test_char_cnn_length_groups_and_matmul_equal_conv1d_over_the_full_width():
    # Words of every length 1..20 (all three length groups) among padding,
    # against the same weights convolved over all 20 columns.
    rng = np.random.default_rng(3)
    lengths = rng.permutation(np.arange(1, 21).repeat(2))
    chars = np.zeros([4, 10, 20], np.int32)
    for i, n in enumerate(lengths):
        chars[i // 10, i % 10, :n] = rng.integers(1, 30, n)
    token_mask = tf.constant(rng.random([4, 10]) < 0.9)
    grouped = CharCNN(30, 6, 5, (3, 4, 5), 7, dropout=0.0, unique_words=True)
    # The reference runs Keras' Conv1D over the full width: the windows'
    # matmul (the default) and the length groups both checked against it.
    full = CharCNN(30, 6, 5, (3, 4, 5), 7, dropout=0.0, unique_words=False, convolution="conv")
    chars = tf.constant(chars)
    grouped(chars, token_mask)
    full(chars, token_mask)
    full.set_weights(grouped.get_weights())
    results = []
    for layer in (grouped, full):
        with tf.GradientTape() as tape:
            out = layer(chars, token_mask, training=True)
            loss = tf.reduce_sum(out ** 2)
        results.append((out.numpy(), tape.gradient(loss, layer.trainable_variables)))
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_discriminator_shapes_and_padding_invariance():
    features = tf.random.stateless_normal([4, 7, 10], seed=[2, 2])
    lengths = tf.constant([7, 3, 5, 1])
    cnn = language_discriminator("cnn", 4, filters=6, kernel_sizes=(3, 4), hidden=8,
                                 num_layers=1, dropout=0.5)
    mlp = language_discriminator("mlp", 4, filters=6, kernel_sizes=(3, 4), hidden=8,
                                 num_layers=1, dropout=0.5)
    assert not cnn.per_token and mlp.per_token
    assert cnn(features, lengths).shape == (4, 4)
    assert mlp(features, lengths).shape == (4, 7, 4)
    with pytest.raises(ValueError, match="discriminator must be one of"):
        language_discriminator("rnn", 4, 6, (3,), 8, 1, 0.5)
    mask = tf.sequence_mask(lengths, 7, dtype=tf.float32)[..., None]
    np.testing.assert_allclose(cnn(features, lengths).numpy(),
                               cnn(features * mask - 9.0 * (1 - mask), lengths).numpy(),
                               atol=1e-5)


def test_char_vectors_start_at_unit_norm():
    # The authors' scale: each fixed random character vector has L2 norm 1
    # (N(0, 1) rows of 128 dims have norm ~11 and swamp the word vectors).
    layer = CharCNN(40, 128, 8, (3,), 16)
    layer.build((None, None, None))
    norms = np.linalg.norm(layer.embedding.embeddings.numpy(), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    # Random directions, not one row repeated.
    assert np.linalg.matrix_rank(layer.embedding.embeddings.numpy()[:20]) == 20
