"""The encoder's weights, from the bundled file or a keras-hub preset."""

from man_tf.settings import ConfigError


def read_weights(preset=""):
    """The encoder's weights: the bundled file's (``preset=""``) or a
    keras-hub preset's with the bundled tokenizer; one-line errors."""
    from man_tf.pretrained import e5_file

    try:
        weights = e5_file.read_e5()
        if preset:
            from man_tf.pretrained import keras_hub_weights
            weights = keras_hub_weights.read_preset(preset, weights)
    except e5_file.WeightsFileError as e:
        raise ConfigError(str(e)) from None
    return weights
