"""Mixture of experts: one MLP expert per source language, mixed by a softmax gate.

The gate (a linear layer + softmax over experts) reads a stop-gradient copy of
the input, as in the authors' code (``detach_gate_input``): the gate loss
trains the gate to recognise which source an input resembles without pulling
the features themselves towards language identity. The experts run as batched matmuls over stacked weights, not a Python loop.

Two output modes:

* ``"features"``: experts end in ``output_activation`` (tanh for F_p) and are
  mixed linearly: ``sum_e g_e f_e(x)``.
* ``"log_probs"``: experts end in a softmax over classes; the layer returns
  log-probabilities of the mixture (C, the tagger/classifier). With
  ``mixture="probabilities"`` the *distributions* are mixed,
  ``p = sum_e g_e softmax(f_e(x))`` (computed stably with logsumexp); with
  ``mixture="log_probabilities"`` the experts' *log*-probabilities are, as in
  the authors' code, ``log p = log_softmax(sum_e g_e log softmax(f_e(x)))``
  (a product of experts; the authors leave it unnormalised).
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="man_tf")
class MixtureOfExperts(keras.layers.Layer):
    """``[..., input_dim]`` -> (``[..., output_dim]``, gate logits ``[..., num_experts]``).

    Each expert: for every size in ``hidden_units``: dropout -> dense -> relu;
    then (dropout if ``final_dropout``) -> dense ``output_dim`` -> output.
    Works per token (``[batch, time, dim]``) and per sentence (``[batch, dim]``).
    """

    def __init__(self, num_experts, output_dim, hidden_units=(), output="features",
                 output_activation="tanh", dropout=0.5, final_dropout=True,
                 mixture="probabilities", **kwargs):
        super().__init__(**kwargs)
        if output not in ("features", "log_probs"):
            raise ValueError(f"output must be 'features' or 'log_probs', got {output!r}")
        if mixture not in ("probabilities", "log_probabilities"):
            raise ValueError(f"mixture must be 'probabilities' or 'log_probabilities', "
                             f"got {mixture!r}")
        self.mixture = mixture
        self.num_experts = int(num_experts)
        self.output_dim = int(output_dim)
        self.hidden_units = tuple(int(h) for h in hidden_units)
        self.output_mode = output
        self.output_activation = output_activation
        self.dropout_rate = float(dropout)
        self.final_dropout = bool(final_dropout)
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.gate = keras.layers.Dense(self.num_experts, name="expert_gate")

    def build(self, input_shape):
        input_dim = int(input_shape[-1])
        self.gate.build((None, input_dim))
        self.kernels, self.biases = [], []
        sizes = [input_dim, *self.hidden_units, self.output_dim]
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.kernels.append(self.add_weight(
                name=f"kernel{i}", shape=(self.num_experts, fan_in, fan_out),
                initializer=keras.initializers.GlorotUniform()))
            self.biases.append(self.add_weight(
                name=f"bias{i}", shape=(self.num_experts, fan_out), initializer="zeros"))
        super().build(input_shape)

    def call(self, x, training=False, real=None):
        """``real`` (``x``'s leading shape, bool): compute only the true
        units; the others' outputs and gate logits are zeros (a training
        step's padded tokens, which every loss masks out)."""
        if real is not None:
            units = tf.cast(tf.where(tf.reshape(real, [-1])), tf.int32)  # [real units, 1]
            flat = tf.gather_nd(tf.reshape(x, [-1, x.shape[-1]]), units)
            out, gate_logits = self.call(flat, training=training)

            def scatter(values):
                full = tf.scatter_nd(units, values, tf.stack([tf.size(real), values.shape[-1]]))
                return tf.reshape(full, tf.concat([tf.shape(real), [values.shape[-1]]], 0))

            return scatter(out), scatter(gate_logits)
        # Gate softmax, log-probabilities and their mixture stay in float32
        # under a mixed-precision policy.
        gate_logits = tf.cast(self.gate(tf.stop_gradient(x)), tf.float32)
        gate = tf.nn.softmax(gate_logits, axis=-1)  # [..., experts]
        leading = tf.shape(x)[:-1]
        h = tf.reshape(x, [-1, x.shape[-1]])  # [units, input_dim]
        layers = len(self.kernels)
        # Layer 0 reads the input all experts share: one matmul against the
        # experts' kernels side by side. Later layers are a batched matmul over
        # experts on [experts, units, dim]. (A broadcasting einsum here has a
        # gradient that materialises [units, experts, in, out].)
        if layers > 1 or self.final_dropout:
            h = self.dropout(h, training=training)
        kernel0 = self.kernels[0]
        fan_out = kernel0.shape[-1]
        wide = tf.reshape(tf.transpose(kernel0, [1, 0, 2]), [kernel0.shape[1], -1])
        h = tf.matmul(h, wide)  # [units, experts * out]
        h = tf.transpose(tf.reshape(h, [-1, self.num_experts, fan_out]), [1, 0, 2])
        h = h + self.biases[0][:, None, :]  # [experts, units, out]
        for i in range(1, layers):
            h = tf.nn.relu(h)
            if i < layers - 1 or self.final_dropout:
                h = self.dropout(h, training=training)
            h = tf.matmul(h, self.kernels[i]) + self.biases[i][:, None, :]
        h = tf.transpose(h, [1, 0, 2])  # [units, experts, out]
        h = tf.reshape(h, tf.concat([leading, [self.num_experts, self.output_dim]], 0))
        if self.output_mode == "features":
            h = keras.activations.get(self.output_activation)(h)
            return tf.reduce_sum(tf.cast(gate, h.dtype)[..., None] * h, axis=-2), gate_logits
        log_probs = tf.nn.log_softmax(tf.cast(h, tf.float32), axis=-1)  # [..., experts, classes]
        if self.mixture == "log_probabilities":
            mixed = tf.reduce_sum(gate[..., None] * log_probs, axis=-2)
            return tf.nn.log_softmax(mixed, axis=-1), gate_logits
        log_gate = tf.nn.log_softmax(gate_logits, axis=-1)
        return tf.reduce_logsumexp(log_gate[..., None] + log_probs, axis=-2), gate_logits

    def compute_output_shape(self, input_shape):
        return ((*input_shape[:-1], self.output_dim), (*input_shape[:-1], self.num_experts))

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts,
                "output_dim": self.output_dim, "hidden_units": list(self.hidden_units),
                "output": self.output_mode, "output_activation": self.output_activation,
                "dropout": self.dropout_rate, "final_dropout": self.final_dropout,
                "mixture": self.mixture}
