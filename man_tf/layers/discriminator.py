"""Language discriminator D: which of all languages (targets included) a sentence is in."""

import keras
import tensorflow as tf

from man_tf.layers.conv_pooling import MaskedConvPooling


class LanguageDiscriminator(keras.layers.Layer):
    """F_s features ``[batch, time, dim]`` + lengths ``[batch]`` -> language logits.

    ``kind="cnn"`` (the paper's default): convolutions of widths
    ``kernel_sizes`` pooled over the sentence -> dropout -> dense ``hidden`` +
    relu (pooling projection), then ``num_layers`` x (dropout -> dense
    ``hidden`` + relu) -> dense ``num_languages``: logits ``[batch, languages]``.

    ``kind="mlp"``: the same MLP applied to every token: logits
    ``[batch, time, languages]`` (padding positions are excluded by the loss).
    """

    def __init__(self, num_languages, kind="cnn", filters=200, kernel_sizes=(3, 4, 5),
                 hidden=200, num_layers=1, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("cnn", "mlp"):
            raise ValueError(f"kind must be 'cnn' or 'mlp', got {kind!r}")
        self.num_languages = int(num_languages)
        self.kind = kind
        self.filters = int(filters)
        self.kernel_sizes = tuple(kernel_sizes)
        self.hidden = int(hidden)
        self.num_layers = int(num_layers)
        self.dropout_rate = float(dropout)
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        if kind == "cnn":
            self.pooling = MaskedConvPooling(self.filters, self.kernel_sizes, name="convolutions")
            self.pooling_projection = keras.layers.Dense(self.hidden, activation="relu",
                                                         name="pooling_projection")
        self.hidden_layers = [keras.layers.Dense(self.hidden, activation="relu", name=f"hidden{i}")
                              for i in range(self.num_layers)]
        self.classifier = keras.layers.Dense(self.num_languages, name="language_logits")

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if self.kind == "cnn":
            self.pooling.build((None, None, dim))
            self.pooling_projection.build((None, self.filters * len(self.kernel_sizes)))
            dim = self.hidden
        for layer in self.hidden_layers:
            layer.build((None, dim))
            dim = self.hidden
        self.classifier.build((None, dim))
        super().build(input_shape)

    def call(self, features, lengths, training=False):
        h = features
        if self.kind == "cnn":
            h = self.pooling(h, lengths)
            h = self.pooling_projection(self.dropout(h, training=training))
        for layer in self.hidden_layers:
            h = layer(self.dropout(h, training=training))
        return tf.cast(self.classifier(h), tf.float32)

    def compute_output_shape(self, input_shape):
        if self.kind == "cnn":
            return (input_shape[0], self.num_languages)
        return (*input_shape[:-1], self.num_languages)

    def get_config(self):
        return {**super().get_config(), "num_languages": self.num_languages, "kind": self.kind,
                "filters": self.filters, "kernel_sizes": list(self.kernel_sizes),
                "hidden": self.hidden, "num_layers": self.num_layers,
                "dropout": self.dropout_rate}
