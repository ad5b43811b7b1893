"""One round-trip check for every layer and model part (keras-hub's
``run_layer_test`` idea): config round trip, ``keras.saving``
serialize/deserialize, equal outputs after the round trip with the weights
copied, and a call under ``mixed_bfloat16``."""

import keras
import numpy as np
import tensorflow as tf


def _flat(outputs):
    return [np.asarray(tf.cast(x, tf.float32)) for x in tf.nest.flatten(outputs)]


def run_layer_test(make_layer, call):
    """``make_layer()`` -> a fresh layer; ``call(layer)`` -> its outputs on
    fixed inputs (building it on first call). Checks:

    * ``from_config(get_config())`` gives the same config;
    * ``keras.saving`` serialize -> deserialize gives the same class and config;
    * the deserialized layer, built and given the original's weights, gives
      the same outputs (so ``get_config`` holds every argument that matters);
    * under ``mixed_bfloat16`` the layer runs and its float outputs are finite.
    """
    layer = make_layer()
    expected = call(layer)
    config = layer.get_config()
    assert {"name", "trainable", "dtype"} <= set(config), \
        f"{type(layer).__name__}.get_config drops super().get_config()"
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config
    call(restored)  # builds it
    assert len(restored.weights) == len(layer.weights)
    for target, source in zip(restored.weights, layer.weights):
        target.assign(source)
    for a, b in zip(_flat(call(restored)), _flat(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = make_layer()
        for x in _flat(call(mixed)):
            assert np.all(np.isfinite(x)), f"{type(mixed).__name__}: non-finite under bf16"
    finally:
        keras.config.set_dtype_policy(previous)
