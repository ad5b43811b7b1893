"""Language discriminator D: which of all languages (targets included) a
sentence, or each token, is in. Two kinds, chosen once by
:func:`language_discriminator`:

* :class:`SentenceLanguageDiscriminator` (``"cnn"``, the paper's default):
  convolutions of widths ``kernel_sizes`` pooled over the sentence ->
  dropout -> dense ``hidden`` + relu (pooling projection), then the MLP
  below: logits ``[batch, languages]``.
* :class:`TokenLanguageDiscriminator` (``"mlp"``): the MLP applied to every
  token: logits ``[batch, time, languages]`` (padding positions are left to
  the loss's mask).

The MLP: ``num_layers`` x (dropout -> dense ``hidden`` + relu) -> dense
``num_languages``.
"""

import keras
import tensorflow as tf

from man_tf.layers.conv_pooling import MaskedConvPooling


class _LanguageDiscriminator(keras.layers.Layer):
    """F_s features ``[batch, time, dim]`` + lengths ``[batch]`` -> language logits."""

    kind = None
    per_token = None  # whether the logits are per token (else per sentence)

    def __init__(self, num_languages, hidden, num_layers, dropout, **kwargs):
        super().__init__(**kwargs)
        self.num_languages = int(num_languages)
        self.hidden = int(hidden)
        self.num_layers = int(num_layers)
        self.dropout_rate = float(dropout)
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.hidden_layers = [keras.layers.Dense(self.hidden, activation="relu", name=f"hidden{i}")
                              for i in range(self.num_layers)]
        self.classifier = keras.layers.Dense(self.num_languages, name="language_logits")

    def _build_mlp(self, dim):
        for layer in self.hidden_layers:
            layer.build((None, dim))
            dim = self.hidden
        self.classifier.build((None, dim))

    def _mlp(self, h, training):
        for layer in self.hidden_layers:
            h = layer(self.dropout(h, training=training))
        return tf.cast(self.classifier(h), tf.float32)

    def get_config(self):
        return {**super().get_config(), "num_languages": self.num_languages,
                "hidden": self.hidden, "num_layers": self.num_layers,
                "dropout": self.dropout_rate}


@keras.saving.register_keras_serializable(package="man_tf")
class SentenceLanguageDiscriminator(_LanguageDiscriminator):
    """One language per sentence: ``[batch, time, dim]`` -> ``[batch, languages]``."""

    kind, per_token = "cnn", False

    def __init__(self, num_languages, filters, kernel_sizes, hidden, num_layers, dropout,
                 **kwargs):
        super().__init__(num_languages, hidden, num_layers, dropout, **kwargs)
        self.filters = int(filters)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.pooling = MaskedConvPooling(self.filters, self.kernel_sizes, name="convolutions")
        self.pooling_projection = keras.layers.Dense(self.hidden, activation="relu",
                                                     name="pooling_projection")

    def build(self, input_shape):
        self.pooling.build((None, None, int(input_shape[-1])))
        self.pooling_projection.build((None, self.filters * len(self.kernel_sizes)))
        self._build_mlp(self.hidden)
        super().build(input_shape)

    def call(self, features, lengths, training=False):
        h = self.pooling(features, lengths)
        h = self.pooling_projection(self.dropout(h, training=training))
        return self._mlp(h, training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_languages)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_sizes": list(self.kernel_sizes)}


@keras.saving.register_keras_serializable(package="man_tf")
class TokenLanguageDiscriminator(_LanguageDiscriminator):
    """One language per token: ``[batch, time, dim]`` -> ``[batch, time, languages]``."""

    kind, per_token = "mlp", True

    def build(self, input_shape):
        self._build_mlp(int(input_shape[-1]))
        super().build(input_shape)

    def call(self, features, lengths, training=False):
        return self._mlp(features, training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_languages)


DISCRIMINATORS = {cls.kind: cls for cls in (SentenceLanguageDiscriminator,
                                            TokenLanguageDiscriminator)}


def language_discriminator(kind, num_languages, filters, kernel_sizes, hidden, num_layers,
                           dropout, name="language_discriminator"):
    """D of ``kind`` (``"cnn"``: per sentence, ``"mlp"``: per token); the
    convolution settings are read by the CNN only."""
    if kind not in DISCRIMINATORS:
        raise ValueError(f"discriminator must be one of {sorted(DISCRIMINATORS)}, got {kind!r}")
    if kind == "cnn":
        return SentenceLanguageDiscriminator(num_languages, filters, kernel_sizes, hidden,
                                             num_layers, dropout, name=name)
    return TokenLanguageDiscriminator(num_languages, hidden, num_layers, dropout, name=name)
