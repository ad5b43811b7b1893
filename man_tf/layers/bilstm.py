"""Bidirectional LSTM feature extractor (F_s, and the first half of F_p)."""

import keras
import tensorflow as tf


class BiLSTMEncoder(keras.layers.Layer):
    """``[batch, time, dim]`` + mask ``[batch, time]`` -> ``[batch, time, hidden]``.

    ``num_layers`` bidirectional LSTMs of ``hidden // 2`` units per direction
    (the authors' convention: ``hidden`` is the concatenated size). Dropout
    ``input_dropout`` on the input (the authors' "word dropout", applied to
    embeddings) and ``dropout`` between layers, as PyTorch's LSTM does. The
    mask makes the backward direction start at each sentence's last real token.
    """

    def __init__(self, hidden=200, num_layers=2, dropout=0.5, input_dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        if hidden % 2:
            raise ValueError(f"hidden must be even (two directions), got {hidden}")
        self.hidden = int(hidden)
        self.num_layers = int(num_layers)
        self.dropout_rate = float(dropout)
        self.input_dropout_rate = float(input_dropout)
        self.input_dropout = keras.layers.Dropout(self.input_dropout_rate)
        self.between_dropout = keras.layers.Dropout(self.dropout_rate)
        self.lstms = [keras.layers.Bidirectional(
            keras.layers.LSTM(self.hidden // 2, return_sequences=True), name=f"bilstm{i}")
            for i in range(self.num_layers)]

    def build(self, input_shape):
        dim = input_shape[-1]
        for lstm in self.lstms:
            lstm.build((None, None, dim))
            dim = self.hidden
        super().build(input_shape)

    def call(self, x, mask, training=False):
        x = self.input_dropout(x, training=training)
        for i, lstm in enumerate(self.lstms):
            if i:
                x = self.between_dropout(x, training=training)
            x = lstm(x, mask=mask, training=training)
        # A fresh tensor without Keras' implicit mask: masks are passed explicitly.
        return tf.identity(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.hidden)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "num_layers": self.num_layers,
                "dropout": self.dropout_rate, "input_dropout": self.input_dropout_rate}
