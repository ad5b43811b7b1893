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

In training the loop runs on packed rows (:class:`RowPacking`, in
:class:`BiLSTMEncoder`: a batch's sentences end to end, the state reset at
each one's start) with a hand-written backward pass
(:func:`lstm_recurrence`); evaluation runs the plain loop. Both give the
padded loop's values (tests). Why: benchmarks/results/speed.md.
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


def _gates(z):
    """``[..., 4 units]`` pre-activations -> (i, f, g, o), Keras' gate order.
    Split first: a slice's gradient writes a zero-filled copy of ``z``."""
    i, f, g, o = tf.split(z, 4, axis=-1)
    return tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)


@tf.custom_gradient
def lstm_recurrence(projected, recurrent, keep):
    """The LSTM recurrence over time with a hand-written backward pass.

    ``projected`` ``[time, directions, batch, 4 units]`` (each step's input
    projection plus bias), ``recurrent`` ``[directions, units, 4 units]``,
    ``keep`` ``[time, directions, batch, 1]`` (0 where the state restarts
    before that step: :class:`RowPacking`, else 1) -> ``h`` ``[time,
    directions, batch, units]``.

    Autodiff through ``tf.scan`` takes two matmuls a step backward and
    accumulates the recurrent kernel's gradient step by step in a loop of
    small ops; here the backward loop does one matmul a step (the gradient
    reaching the previous state) and the kernel's gradient is one matmul
    over every step afterwards. Tests hold it equal to autodiff.
    """
    units = recurrent.shape[1]
    step_shape = tf.shape(projected)[1:]  # [directions, batch, 4 units]
    zeros = tf.zeros(tf.concat([step_shape[:-1], [units]], 0), projected.dtype)
    zero_gates = tf.zeros(step_shape, projected.dtype)
    scope = tf.get_current_name_scope()  # the backward ops are named after it, as autodiff's

    def step(carry, inputs):
        h, c, _ = carry
        z, k = inputs
        h, c = h * k, c * k
        i, f, g, o = _gates(z + tf.matmul(h, recurrent))
        c = f * c + i * g
        return o * tf.tanh(c), c, tf.concat([i, f, g, o], axis=-1)

    h, c, gates = tf.scan(step, (projected, keep), initializer=(zeros, zeros, zero_gates))

    def backward(dh_out):
        with tf.name_scope(f"gradient_tape/{scope}/" if scope else "gradient_tape/"):
            return _backward(dh_out)

    def _backward(dh_out):
        dh_out = tf.cast(dh_out, h.dtype)
        # The states each step read, after its reset.
        h_in = tf.concat([zeros[None], h], 0)[:-1] * keep
        c_in = tf.concat([zeros[None], c], 0)[:-1] * keep
        recurrent_t = tf.transpose(recurrent, [0, 2, 1])

        def step_back(carry, inputs):
            dh_next, dc_next, _ = carry
            dh, gates_t, c_t, c_before, k = inputs
            i, f, g, o = tf.split(gates_t, 4, axis=-1)
            dh = dh + dh_next
            tanh_c = tf.tanh(c_t)
            dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
            dz = tf.concat([dc * g * i * (1 - i), dc * c_before * f * (1 - f),
                            dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)], axis=-1)
            return tf.matmul(dz, recurrent_t) * k, dc * f * k, dz

        _, _, dz = tf.scan(step_back, (dh_out, gates, c, c_in, keep),
                           initializer=(zeros, zeros, zero_gates), reverse=True)
        directions = tf.shape(h)[1]
        h_rows = tf.reshape(tf.transpose(h_in, [1, 0, 2, 3]), [directions, -1, units])
        dz_rows = tf.reshape(tf.transpose(dz, [1, 0, 2, 3]), [directions, -1, 4 * units])
        return dz, tf.matmul(h_rows, dz_rows, transpose_a=True), tf.zeros_like(keep)

    return h, backward


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

    def call(self, x, lengths, training=False, resets=None):
        """``resets`` (loop only; :class:`RowPacking`): ``[2, batch, time]``,
        1 where a direction's state restarts (a packed sentence's first
        token; direction 1 in reversed coordinates), else 0."""
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
        recurrent = tf.cast(self.recurrent_kernel, x.dtype)
        if training:
            if resets is None:
                keep = tf.ones_like(projected[..., :1])
            else:
                keep = tf.transpose(1 - tf.cast(resets, x.dtype), [2, 0, 1])[..., None]
            outputs = lstm_recurrence(projected, recurrent, keep)
        else:
            def step(carry, z):
                h, c = carry
                i, f, g, o = _gates(z + tf.matmul(h, recurrent))
                c = f * c + i * g
                return o * tf.tanh(c), c

            zeros = tf.zeros([2, batch, units], x.dtype)
            outputs, _ = tf.scan(step, projected, initializer=(zeros, zeros))
        # Unstacked, not indexed: an index's gradient is a zero-filled copy
        # of the whole [2, batch, time, units] tensor.
        forward, backward = tf.unstack(tf.transpose(outputs, [1, 2, 0, 3]))  # [batch, time, units]
        backward = tf.reverse_sequence(backward, lengths, seq_axis=1, batch_axis=0)
        mask = tf.sequence_mask(lengths, time, dtype=x.dtype)[:, :, None]
        return tf.concat([forward, backward], axis=-1) * mask

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


class RowPacking:
    """A padded batch's sentences packed end to end into fewer rows, for
    the training loop: ``[batch, time, dim]`` -> ``[rows, capacity, dim]``.

    A training iteration stacks one bucketed batch per language, padded to
    the longest of them, so most of a batch's positions are padding (on
    CoNLL about two thirds: benchmarks/results/speed.md), and the loop pays
    for every position. Packed, the loop runs ``capacity`` (the longest
    sentence) steps over far fewer rows; each packed sentence's state
    starts from zero (``resets``), so every output equals the unpacked one.
    Rows are filled first-fit, longest sentence first (a loop in the graph
    over the batch's rows).

    ``pack`` / ``unpack`` are gathers (their gradients scatter back);
    ``loads`` ``[rows]`` is each packed row's real length, ``resets``
    ``[2, rows, capacity]`` marks each sentence's first position in the
    forward direction and, in the backward direction, in each row reversed
    within its load (what :class:`BidirectionalLSTM` reads).
    """

    def __init__(self, lengths, time):
        lengths = tf.cast(lengths, tf.int32)
        batch = tf.shape(lengths)[0]
        capacity = tf.maximum(tf.reduce_max(tf.concat([lengths, [1]], 0)), 1)
        order = tf.argsort(lengths, direction="DESCENDING", stable=True)
        longest_first = tf.gather(lengths, order)

        def place(i, loads, bins, offsets):
            length = longest_first[i]
            # The first row with room (an empty row always has room, and the
            # used rows are a prefix: first-fit never skips an empty one).
            row = tf.argmax(tf.cast(loads + length <= capacity, tf.int32), output_type=tf.int32)
            offsets = tf.tensor_scatter_nd_update(offsets, [[i]], [loads[row]])
            bins = tf.tensor_scatter_nd_update(bins, [[i]], [row])
            return i + 1, tf.tensor_scatter_nd_add(loads, [[row]], [length]), bins, offsets

        zeros = tf.zeros([batch], tf.int32)
        _, _, bins, offsets = tf.while_loop(lambda i, *_: i < batch, place,
                                            (tf.constant(0), zeros, zeros, zeros),
                                            parallel_iterations=1)
        row = tf.scatter_nd(order[:, None], bins, [batch])        # each sentence's packed row
        offset = tf.scatter_nd(order[:, None], offsets, [batch])  # and where it starts there
        rows = tf.reduce_max(tf.concat([row, [0]], 0)) + 1  # at least one (an empty batch)
        self.capacity, self.rows, self.batch, self.time = capacity, rows, batch, time
        self.loads = tf.math.unsorted_segment_sum(lengths, row, rows)
        tokens = tf.cast(tf.where(tf.sequence_mask(lengths, time)), tf.int32)  # [n, 2]
        sentence, position = tokens[:, 0], tokens[:, 1]
        packed = tf.gather(row, sentence) * capacity + tf.gather(offset, sentence) + position
        unpacked = sentence * time + position
        # Gather indices shifted by one: 0 reads a zero row (padding).
        self._pack_index = tf.scatter_nd(packed[:, None], unpacked + 1, [rows * capacity])
        self._unpack_index = tf.scatter_nd(unpacked[:, None], packed + 1, [batch * time])
        real = lengths > 0
        row, offset, length = (tf.boolean_mask(v, real) for v in (row, offset, lengths))
        forward = row * capacity + offset
        backward = rows * capacity + row * capacity + tf.gather(self.loads, row) - offset - length
        self.resets = tf.reshape(
            tf.scatter_nd(tf.concat([forward, backward], 0)[:, None],
                          tf.ones([2 * tf.size(row)], tf.int32), [2 * rows * capacity]),
            [2, rows, capacity])

    @staticmethod
    def _gather(x, index, shape):
        flat = tf.reshape(x, [-1, x.shape[-1]])
        flat = tf.concat([tf.zeros([1, x.shape[-1]], x.dtype), flat], 0)
        return tf.reshape(tf.gather(flat, index), tf.concat([shape, [x.shape[-1]]], 0))

    def pack(self, x):
        """``[batch, time, dim]`` -> ``[rows, capacity, dim]``."""
        return self._gather(x, self._pack_index, [self.rows, self.capacity])

    def unpack(self, x):
        """``[rows, capacity, dim]`` -> ``[batch, time, dim]`` (zeros at padding)."""
        return self._gather(x, self._unpack_index, [self.batch, self.time])


@keras.saving.register_keras_serializable(package="man_tf")
class BiLSTMEncoder(keras.layers.Layer):
    """``[batch, time, dim]`` + lengths ``[batch]`` -> ``[batch, time, hidden]``.

    ``num_layers`` bidirectional LSTMs of ``hidden // 2`` units per direction
    (the authors' convention: ``hidden`` is the concatenated size). Dropout
    ``input_dropout`` on the input (the authors' "word dropout", applied to
    embeddings) and ``dropout`` between layers, as PyTorch's LSTM does.

    ``pack_rows``: in training, the loop implementation runs on the batch's
    sentences packed into fewer rows (:class:`RowPacking`; same outputs,
    much less padding). False under XLA, whose shapes must be static.
    """

    def __init__(self, hidden=200, num_layers=2, dropout=0.5, input_dropout=0.5,
                 implementation="auto", pack_rows=True, **kwargs):
        super().__init__(**kwargs)
        if hidden % 2:
            raise ValueError(f"hidden must be even (two directions), got {hidden}")
        self.hidden = int(hidden)
        self.num_layers = int(num_layers)
        self.dropout_rate = float(dropout)
        self.input_dropout_rate = float(input_dropout)
        self.implementation = implementation
        self.pack_rows = bool(pack_rows)
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
        packing = resets = None
        if self.pack_rows and training and resolve_implementation(self.implementation) == "loop":
            packing = RowPacking(lengths, tf.shape(x)[1])
            x, lengths, resets = packing.pack(x), packing.loads, packing.resets
        x = self.input_dropout(x, training=training)
        for i, lstm in enumerate(self.lstms):
            if i:
                x = self.between_dropout(x, training=training)
            x = lstm(x, lengths, training=training, resets=resets)
        return packing.unpack(x) if packing is not None else x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.hidden)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "num_layers": self.num_layers,
                "dropout": self.dropout_rate, "input_dropout": self.input_dropout_rate,
                "implementation": self.implementation, "pack_rows": self.pack_rows}
