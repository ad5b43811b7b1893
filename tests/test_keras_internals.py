"""What man_tf.keras_internals relies on in Keras: these fail loudly when a
Keras upgrade removes or reshapes it."""

import inspect

import keras
import numpy as np
import tensorflow as tf

from man_tf.keras_internals import OwnTrainFunction, adam_slots, all_layers


def test_keras_still_has_the_private_methods_we_override_or_call():
    assert list(inspect.signature(keras.Model._maybe_symbolic_build).parameters) == \
        ["self", "iterator", "data_batch"]
    assert "force" in inspect.signature(keras.Model.make_train_function).parameters
    assert hasattr(keras.layers.Layer, "_flatten_layers")
    assert hasattr(keras.optimizers.Adam, "_get_variable_index")


def test_all_layers_walks_every_depth():
    inner = keras.Sequential([keras.layers.Dense(2, name="deep")], name="inner")
    outer = keras.Sequential([inner, keras.layers.Dense(1, name="top")], name="outer")
    outer.build((None, 3))
    assert {layer.name for layer in all_layers(outer)} >= {"outer", "inner", "deep", "top"}


def test_adam_slots_are_the_moments_adam_updates():
    variable = tf.Variable([1.0, 2.0])
    adam = keras.optimizers.Adam(0.1, beta_1=0.9, beta_2=0.99)
    adam.build([variable])
    adam.apply_gradients([(tf.constant([0.5, -1.0]), variable)])
    m, v = adam_slots(adam, variable)
    np.testing.assert_allclose(m.numpy(), 0.1 * np.array([0.5, -1.0]), rtol=1e-6)
    np.testing.assert_allclose(v.numpy(), 0.01 * np.array([0.25, 1.0]), rtol=1e-6)


class _Counting(OwnTrainFunction, keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.dense.build((None, 2))
        self.seen = tf.Variable(0.0)

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        self.seen.assign_add(tf.reduce_sum(data))
        return {"sum": tf.identity(self.seen)}


def test_fit_runs_our_train_function_and_its_iterator_hooks():
    model = _Counting()
    model.compile()
    hooked = []
    model.add_iterator_hook(hooked.append)
    model.add_iterator_hook(hooked.append)  # added twice, runs once
    data = tf.data.Dataset.from_tensors(tf.ones([2, 2])).repeat()
    history = model.fit(data, epochs=1, steps_per_epoch=3, verbose=0)
    assert float(model.seen.numpy()) == 12.0  # three steps, each its own batch of 4 ones
    assert history.history["sum"][-1] == 12.0
    assert len(hooked) == 1
