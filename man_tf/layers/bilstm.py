"""Bidirectional LSTM feature extractor (F_s, and the first half of F_p).

Written on TF ops rather than ``keras.layers.Bidirectional(LSTM)`` for speed
on CPU, where Keras runs each direction as its own loop of small per-step
ops: here both directions advance together in one loop (a batched matmul
over ``[2 directions, batch, hidden]``), and the input projections for all
time steps are one matmul before the loop. The backward direction reads each
sentence reversed within its length (``tf.reverse_sequence``), so padding
never reaches a real position. Gate layout and initialisation follow Keras'
LSTM (gates i, f, c, o; forget-gate bias 1), and a test checks outputs equal
Keras' ``Bidirectional(LSTM)`` with the same weights.

``implementation`` picks how training and evaluation run the recurrence:
``"loop"`` (the ``tf.scan`` above, fastest on CPU), ``"keras"`` (Keras'
own LSTM kernels, :func:`man_tf.keras_internals.keras_lstm`: cuDNN's fused
kernel on a GPU, Keras' generic loop elsewhere) or ``"auto"`` (``"keras"``
where a GPU is visible, else ``"loop"``). The weights are the same
variables either way, so checkpoints move freely between the two; a test
holds outputs and gradients equal.

Serving graphs set ``fused_inference``: each direction is then one
``BlockLSTMV2`` op (core TF's fused LSTM kernel: the same gate layout, the
whole sequence in one kernel call), faster than the loop on CPU
(benchmarks/results/serving.md), with the same outputs (a test checks them). Forward only: that op's
registered gradient does not match the loop's, so a gradient through the
fused path raises, and training never takes it.
"""

import keras
import tensorflow as tf

from man_tf.keras_internals import all_layers, keras_lstm

IMPLEMENTATIONS = ("auto", "loop", "keras")


def resolve_implementation(implementation):
    """``"auto"`` -> ``"keras"`` where TensorFlow sees a GPU (cuDNN), else ``"loop"``."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation={implementation!r}: expected one of "
                         f"{', '.join(IMPLEMENTATIONS)}")
    if implementation == "auto":
        return "keras" if tf.config.list_logical_devices("GPU") else "loop"
    return implementation


@keras.saving.register_keras_serializable(package="man_tf")
class BidirectionalLSTM(keras.layers.Layer):
    """One bidirectional layer: ``[batch, time, dim]`` + lengths ``[batch]``
    -> ``[batch, time, 2 * units]`` (forward ; backward), zeros at padding."""

    def __init__(self, units, implementation="auto", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.implementation = implementation
        resolve_implementation(implementation)  # a known name

    def build(self, input_shape):
        dim, units = int(input_shape[-1]), self.units
        glorot = keras.initializers.GlorotUniform()
        orthogonal = keras.initializers.Orthogonal()
        self.kernel = self.add_weight(
            name="kernel", shape=(2, dim, 4 * units),
            initializer=lambda shape, dtype=None: tf.stack([glorot(shape[1:], dtype),
                                                            glorot(shape[1:], dtype)]))
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(2, units, 4 * units),
            initializer=lambda shape, dtype=None: tf.stack([orthogonal(shape[1:], dtype),
                                                            orthogonal(shape[1:], dtype)]))
        forget_bias = tf.concat([tf.zeros([units]), tf.ones([units]), tf.zeros([2 * units])], 0)
        self.bias = self.add_weight(
            name="bias", shape=(2, 4 * units),
            initializer=lambda shape, dtype=None: tf.stack([forget_bias, forget_bias]))
        super().build(input_shape)

    # Set by the serving modules (man_tf/export): inference runs BlockLSTMV2.
    fused_inference = False

    def call(self, x, lengths, training=False):
        if self.fused_inference and not training:
            return self._fused(x, lengths)
        if resolve_implementation(self.implementation) == "keras":
            return self._keras(x, lengths, training)
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        units = self.units
        backward_input = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
        both = tf.reshape(tf.stack([x, backward_input]), [2, batch * time, x.shape[-1]])
        projected = tf.matmul(both, self.kernel) + self.bias[:, None, :]
        projected = tf.transpose(tf.reshape(projected, [2, batch, time, 4 * units]), [2, 0, 1, 3])

        # Padding only ever follows a sentence's real tokens (the backward pass
        # reads reversed sentences), and the final state is never used, so the
        # loop needs no per-step masking: padded outputs are zeroed once below.
        def step(carry, z):
            h, c = carry
            z = z + tf.matmul(h, self.recurrent_kernel)  # [2, batch, 4 units]
            gates = tf.sigmoid(z)
            i, f, _, o = tf.split(gates, 4, axis=-1)
            g = tf.tanh(z[..., 2 * units:3 * units])
            c = f * c + i * g
            return o * tf.tanh(c), c

        zeros = tf.zeros([2, batch, units], x.dtype)
        outputs, _ = tf.scan(step, projected, initializer=(zeros, zeros))
        outputs = tf.transpose(outputs, [1, 2, 0, 3])  # [2, batch, time, units]
        backward = tf.reverse_sequence(outputs[1], lengths, seq_axis=1, batch_axis=0)
        mask = tf.sequence_mask(lengths, time, dtype=x.dtype)[:, :, None]
        return tf.concat([outputs[0], backward], axis=-1) * mask

    def _keras(self, x, lengths, training):
        """Each direction through Keras' LSTM kernels (cuDNN on a GPU; a
        bfloat16 input runs them in float32, which cuDNN supports)."""
        dtype = x.dtype
        compute = tf.float32 if dtype == tf.bfloat16 else dtype
        x = tf.cast(x, compute)
        time = tf.shape(x)[1]
        # cuDNN refuses an all-padding row: such a row runs one step and is
        # zeroed by the mask below like any padding.
        mask = tf.sequence_mask(tf.maximum(lengths, 1), time)
        outputs = []
        for direction, inputs in enumerate(
                (x, tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0))):
            outputs.append(keras_lstm(inputs, mask, tf.cast(self.kernel[direction], compute),
                                      tf.cast(self.recurrent_kernel[direction], compute),
                                      tf.cast(self.bias[direction], compute), training))
        backward = tf.reverse_sequence(outputs[1], lengths, seq_axis=1, batch_axis=0)
        real = tf.sequence_mask(lengths, time, dtype=compute)[:, :, None]
        return tf.cast(tf.concat([outputs[0], backward], axis=-1) * real, dtype)

    def _fused(self, x, lengths):
        """The forward pass with one ``BlockLSTMV2`` op per direction
        (float32: the op has no bfloat16 kernel)."""
        dtype, x = x.dtype, tf.cast(x, tf.float32)
        time = tf.shape(x)[1]
        zeros = tf.zeros([tf.shape(x)[0], self.units])
        no_peephole = tf.zeros([self.units])
        outputs = []
        for direction, inputs in enumerate(
                (x, tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0))):
            # w = [input kernel; recurrent kernel]: the op multiplies [x_t, h_{t-1}].
            w = tf.concat([tf.cast(self.kernel[direction], tf.float32),
                           tf.cast(self.recurrent_kernel[direction], tf.float32)], axis=0)
            h = tf.raw_ops.BlockLSTMV2(
                seq_len_max=tf.cast(time, tf.int64), x=tf.transpose(inputs, [1, 0, 2]),
                cs_prev=zeros, h_prev=zeros, w=w, wci=no_peephole, wcf=no_peephole,
                wco=no_peephole, b=tf.cast(self.bias[direction], tf.float32), cell_clip=0.0,
                use_peephole=False)[6]                     # h: [time, batch, units]
            outputs.append(tf.transpose(h, [1, 0, 2]))
        backward = tf.reverse_sequence(outputs[1], lengths, seq_axis=1, batch_axis=0)
        mask = tf.sequence_mask(lengths, time, dtype=tf.float32)[:, :, None]
        return _inference_only(tf.cast(tf.concat([outputs[0], backward], axis=-1) * mask, dtype))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], 2 * self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "implementation": self.implementation}


def _inference_only(x):
    # PreventGradient: a core op whose gradient raises (no custom gradient
    # for a SavedModel to trace or to warn about on loading).
    return tf.raw_ops.PreventGradient(
        input=x, message="BidirectionalLSTM.fused_inference is for serving graphs: its "
                         "BlockLSTMV2 op has no matching gradient; unset it to train")


def use_fused_inference(model):
    """Makes every :class:`BidirectionalLSTM` of ``model`` run the fused
    inference op (for serving graphs; outputs unchanged)."""
    for layer in all_layers(model):
        if isinstance(layer, BidirectionalLSTM):
            layer.fused_inference = True


@keras.saving.register_keras_serializable(package="man_tf")
class BiLSTMEncoder(keras.layers.Layer):
    """``[batch, time, dim]`` + lengths ``[batch]`` -> ``[batch, time, hidden]``.

    ``num_layers`` bidirectional LSTMs of ``hidden // 2`` units per direction
    (the authors' convention: ``hidden`` is the concatenated size). Dropout
    ``input_dropout`` on the input (the authors' "word dropout", applied to
    embeddings) and ``dropout`` between layers, as PyTorch's LSTM does.
    """

    def __init__(self, hidden=200, num_layers=2, dropout=0.5, input_dropout=0.5,
                 implementation="auto", **kwargs):
        super().__init__(**kwargs)
        if hidden % 2:
            raise ValueError(f"hidden must be even (two directions), got {hidden}")
        self.hidden = int(hidden)
        self.num_layers = int(num_layers)
        self.dropout_rate = float(dropout)
        self.input_dropout_rate = float(input_dropout)
        self.implementation = implementation
        self.input_dropout = keras.layers.Dropout(self.input_dropout_rate)
        self.between_dropout = keras.layers.Dropout(self.dropout_rate)
        self.lstms = [BidirectionalLSTM(self.hidden // 2, implementation, name=f"bilstm{i}")
                      for i in range(self.num_layers)]

    def build(self, input_shape):
        dim = input_shape[-1]
        for lstm in self.lstms:
            lstm.build((None, None, dim))
            dim = self.hidden
        super().build(input_shape)

    def call(self, x, lengths, training=False):
        x = self.input_dropout(x, training=training)
        for i, lstm in enumerate(self.lstms):
            if i:
                x = self.between_dropout(x, training=training)
            x = lstm(x, lengths, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.hidden)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "num_layers": self.num_layers,
                "dropout": self.dropout_rate, "input_dropout": self.input_dropout_rate,
                "implementation": self.implementation}
