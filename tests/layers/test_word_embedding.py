import numpy as np
import tensorflow as tf

from man_tf.layers import WordEmbedding


def test_training_reads_some_tokens_as_their_blocks_unk_row():
    # Blocks start at rows 0, 8, 14: <unk> rows are 1, 9, 15.
    layer = WordEmbedding(20, 4, block_starts=(0, 8, 14), unk_replacement=0.3, seed=3)
    layer.build()
    ids = tf.constant([[2, 3, 9, 10, 15, 16, 0, 0]] * 4000)
    out = layer.replace_with_unk(ids).numpy()
    expected_unk = np.array([1, 1, 9, 9, 15, 15, 0, 0])
    changed = out != ids.numpy()
    assert np.all((out == ids.numpy()) | (out == expected_unk))
    assert not changed[:, 6:].any()  # padding stays padding
    rate = changed[:, [0, 1, 3, 5]].mean()  # 9 and 15 are <unk> rows already
    assert 0.28 < rate < 0.32
    # Different tokens are drawn independently.
    assert 0.05 < (changed[:, 0] & changed[:, 1]).mean() < 0.13


def test_replacement_only_in_training_and_absent_at_rate_zero():
    layer = WordEmbedding(20, 4, block_starts=(0, 8), unk_replacement=0.5, seed=1)
    layer.build()
    ids = tf.constant([[2, 3, 9, 10]] * 50)
    np.testing.assert_array_equal(layer(ids).numpy(), tf.gather(layer.embeddings, ids).numpy())
    trained = layer(ids, training=True).numpy()
    unk_rows = tf.gather(layer.embeddings, [[1, 1, 9, 9]] * 50).numpy()
    assert np.any(np.all(trained == unk_rows, axis=-1))
    plain = WordEmbedding(20, 4)
    plain.build()
    assert plain.seed_generator is None and len(plain.variables) == 1  # old checkpoints fit
    np.testing.assert_array_equal(plain(ids, training=True).numpy(),
                                  tf.gather(plain.embeddings, ids).numpy())
