import numpy as np
import tensorflow as tf

from man_tf.training.losses import per_language_mean


def test_per_language_mean_matches_hand_computation():
    values = tf.constant([[1.0, 2.0, 99.0], [3.0, 99.0, 99.0], [10.0, 20.0, 30.0]])
    mask = tf.constant([[True, True, False], [True, False, False], [True, True, True]])
    language = tf.constant([0, 0, 2])
    # language 0: (1 + 2 + 3) / 3 tokens; language 2: 60 / 3; language 1 absent.
    np.testing.assert_allclose(per_language_mean(values, mask, language, 3).numpy(), 2.0 + 20.0)


def test_sentence_level_values():
    values = tf.constant([1.0, 3.0, 5.0])
    got = per_language_mean(values, tf.ones([3], tf.bool), tf.constant([1, 1, 0]), 2)
    np.testing.assert_allclose(got.numpy(), 2.0 + 5.0)
