"""A BERT encoder as Keras layers, for frozen multilingual-e5-small features.

Own small layers instead of keras-hub's ``BertBackbone``: the features
MAN-MoE reads are *every* layer's hidden states (the middle layers carry the
best cross-lingual word features), the weights come from man_tf's own reader
of the offline 4-bit file, and the serving graph must hold plain core-TF ops
only. Post-LayerNorm BERT: embeddings (word + position + token type 0) ->
LayerNorm -> ``layers`` x [self-attention -> add & LayerNorm -> GELU (erf)
feed-forward -> add & LayerNorm].

Written for speed on CPU, where a served sentence is short and a batch is
ragged (benchmarks/results/serving.md): the dense layers run on the real
pieces only (``[pieces, hidden]``, padding gathered out; only attention needs
the padded ``[batch, heads, time, time]`` layout), query/key/value are one
matmul, and each layer is a few dozen plain TF ops. Under a bfloat16 compute
dtype (``dtype="mixed_bfloat16"``: serving CPUs with native bf16) the
matmuls run in bfloat16 while LayerNorm statistics and the attention softmax
stay float32.
"""

import keras
import numpy as np
import tensorflow as tf


def _dense(x, layer):
    """``x @ kernel + bias`` of a built ``keras.layers.Dense`` in ``x``'s dtype
    (one MatMul + BiasAdd, which grappler fuses)."""
    return tf.nn.bias_add(tf.matmul(x, tf.cast(layer.kernel, x.dtype)),
                          tf.cast(layer.bias, x.dtype))


def _layer_norm(x, norm):
    """``keras.layers.LayerNormalization`` over the last axis, in float32."""
    dtype, x = x.dtype, tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x, [-1], keepdims=True)
    x = (x - mean) * tf.math.rsqrt(variance + norm.epsilon)
    return tf.cast(x * tf.cast(norm.gamma, tf.float32) + tf.cast(norm.beta, tf.float32), dtype)


@keras.saving.register_keras_serializable(package="man_tf")
class TransformerLayer(keras.layers.Layer):
    """One post-LN encoder layer on the real pieces of a padded batch:
    ``x`` ``[pieces, hidden]`` (the pieces at ``positions``, int64 ``[pieces,
    2]`` (row, column) of a ``[batch, time]`` batch) + ``attention_bias``
    float32 ``[batch, 1, 1, time]`` (0 at real pieces, -1e9 at padding) ->
    ``[pieces, hidden]``."""

    def __init__(self, hidden, heads, intermediate, eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        if hidden % heads:
            raise ValueError(f"hidden {hidden} is not a multiple of heads {heads}")
        self.hidden, self.heads, self.intermediate, self.eps = hidden, heads, intermediate, eps
        dense = lambda units, name: keras.layers.Dense(units, name=name)
        # Query, key and value side by side: kernel [hidden, 3 * hidden].
        self.query_key_value = dense(3 * hidden, "query_key_value")
        self.attention_output = dense(hidden, "attention_output")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=eps, name="attention_norm")
        self.intermediate_dense = dense(intermediate, "intermediate")
        self.output_dense = dense(hidden, "output")
        self.output_norm = keras.layers.LayerNormalization(epsilon=eps, name="output_norm")

    def build(self, input_shape):
        for layer in (self.query_key_value, self.attention_output, self.intermediate_dense):
            layer.build((None, self.hidden))
        self.output_dense.build((None, self.intermediate))
        self.attention_norm.build((None, self.hidden))
        self.output_norm.build((None, self.hidden))
        super().build(input_shape)

    def call(self, x, positions, attention_bias, keep=None):
        """``keep``: int ``[kept]`` indices into ``x``'s pieces: every piece
        is attended to, but only these pieces' outputs are computed (the
        attention output and feed-forward run on them alone)."""
        batch, time = tf.shape(attention_bias)[0], tf.shape(attention_bias)[3]
        size = self.hidden // self.heads
        qkv = tf.scatter_nd(positions, _dense(x, self.query_key_value),
                            tf.stack([tf.cast(batch, tf.int64), tf.cast(time, tf.int64),
                                      3 * self.hidden]))
        # [batch, time, 3, heads, size] -> [3, batch, heads, time, size]
        qkv = tf.transpose(tf.reshape(qkv, [batch, time, 3, self.heads, size]), [2, 0, 3, 1, 4])
        q, k, v = qkv[0] * tf.cast(size ** -0.5, x.dtype), qkv[1], qkv[2]
        # (Keras casts attention_bias to the compute dtype: 0 and -1e9 survive bfloat16.)
        scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) + \
            tf.cast(attention_bias, tf.float32)
        context = tf.matmul(tf.cast(tf.nn.softmax(scores, axis=-1), x.dtype), v)
        context = tf.gather_nd(tf.transpose(context, [0, 2, 1, 3]), positions)
        context = tf.reshape(context, [-1, self.hidden])
        if keep is not None:
            x, context = tf.gather(x, keep), tf.gather(context, keep)
        x = _layer_norm(x + _dense(context, self.attention_output), self.attention_norm)
        # GELU (erf) in float32: TF's bfloat16 erf is over twice as slow.
        h = tf.cast(tf.nn.gelu(tf.cast(_dense(x, self.intermediate_dense), tf.float32),
                               approximate=False), x.dtype)
        return _layer_norm(x + _dense(h, self.output_dense), self.output_norm)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "heads": self.heads,
                "intermediate": self.intermediate, "eps": self.eps}


Q4_BLOCK = 32  # weights per Q4_0 block: 16 bytes of nibbles + one float16 scale


def q4_0_rows(blocks, rows, cols):
    """Q4_0 blocks (``uint8 [rows * cols / 32, 18]``: float16 scale, 16 bytes of
    nibbles) -> ``(nibbles uint8 [rows, cols / 2], scales float16 [rows, cols / 32])``."""
    blocks = np.asarray(blocks, np.uint8).reshape(rows, cols // Q4_BLOCK, 2 + Q4_BLOCK // 2)
    scales = np.ascontiguousarray(blocks[:, :, :2]).view("<f2")[..., 0]
    nibbles = np.ascontiguousarray(blocks[:, :, 2:]).reshape(rows, cols // 2)
    return nibbles, scales.astype(np.float16)


def dequantize_rows(nibbles, scales):
    """TF ops: gathered Q4_0 rows ``uint8 [..., cols / 2]`` + ``float16 [..., cols / 32]``
    -> float32 ``[..., cols]``; within a block of 32 weights, byte j holds
    weight j (low nibble) and weight j + 16 (high nibble), w = (q - 8) * d."""
    shape = tf.shape(nibbles)
    blocks = tf.reshape(nibbles, tf.concat([shape[:-1], [-1, Q4_BLOCK // 2]], 0))
    low = tf.bitwise.bitwise_and(blocks, tf.constant(15, tf.uint8))
    high = tf.bitwise.right_shift(blocks, tf.constant(4, tf.uint8))
    q = tf.cast(tf.concat([low, high], axis=-1), tf.float32) - 8.0
    weights = q * tf.cast(scales, tf.float32)[..., None]
    return tf.reshape(weights, tf.concat([shape[:-1], [shape[-1] * 2]], 0))


@keras.saving.register_keras_serializable(package="man_tf")
class BertEncoder(keras.layers.Layer):
    """token ids ``[batch, time]`` + mask ``[batch, time]`` -> float32 hidden
    states of the embedding layer and of layers 1..``num_layers``:
    ``[num_layers + 1, batch, time, hidden]``, zeros at padding (only the
    first ``num_layers`` are built: a feature from layer 8 needs no layers
    above it); ``call(ids, mask, layers=(7,))`` runs the layers up to 7 and
    returns ``[1, batch, time, hidden]``.

    ``quantized_embeddings``: the word embedding table is held as the weights
    file holds it (Q4_0: 4 bits per weight + a float16 scale per 32, 54 MB
    instead of 384 MB in float32 for 250,037 x 384) and the rows a batch
    reads are dequantized in the graph with core TF ops; the values are
    exactly the float32 table's (the float32 table *is* the dequantized file).
    """

    def __init__(self, vocab_size, hidden=384, num_layers=12, heads=12, intermediate=1536,
                 max_positions=512, type_vocab_size=2, eps=1e-12, quantized_embeddings=False,
                 remat=False, **kwargs):
        super().__init__(**kwargs)
        # Recompute each layer in the backward pass instead of keeping its
        # activations (a fine-tuned encoder's memory; no effect when frozen).
        self.remat = bool(remat)
        if quantized_embeddings and hidden % Q4_BLOCK:
            raise ValueError(f"quantized embeddings need hidden % {Q4_BLOCK} == 0, got {hidden}")
        self.quantized_embeddings = bool(quantized_embeddings)
        self.vocab_size, self.hidden, self.num_layers = vocab_size, hidden, num_layers
        self.heads, self.intermediate, self.max_positions = heads, intermediate, max_positions
        self.type_vocab_size, self.eps = type_vocab_size, eps
        self.embedding_norm = keras.layers.LayerNormalization(epsilon=eps, name="embedding_norm")
        # The layers compute in this layer's dtype (Keras would cast their
        # inputs to the global policy's otherwise).
        self.transformer_layers = [TransformerLayer(hidden, heads, intermediate, eps,
                                                    name=f"layer{i}", dtype=self.dtype_policy)
                                   for i in range(num_layers)]

    def build(self, input_shape=None):
        if self.quantized_embeddings:
            self.word_embedding_nibbles = self.add_weight(
                name="word_embedding_nibbles", shape=(self.vocab_size, self.hidden // 2),
                dtype="uint8", trainable=False, initializer="zeros")
            self.word_embedding_scales = self.add_weight(
                name="word_embedding_scales", shape=(self.vocab_size, self.hidden // Q4_BLOCK),
                dtype="float16", trainable=False, initializer="zeros")
        else:
            self.word_embeddings = self.add_weight(name="word_embeddings",
                                                   shape=(self.vocab_size, self.hidden))
        self.position_embeddings = self.add_weight(name="position_embeddings",
                                                   shape=(self.max_positions, self.hidden))
        self.type_embedding = self.add_weight(name="type_embedding", shape=(self.hidden,))
        self.embedding_norm.build((None, self.hidden))
        for layer in self.transformer_layers:
            layer.build((None, None, self.hidden))
        super().build(input_shape)

    def call(self, ids, mask, layers=None, keep=None, training=None):
        """``layers``: which hidden states to return (default all, 0 = the
        embeddings); zeros at padded positions. ``keep``: int64 ``[kept, 2]``
        (row, column) positions of real pieces: then only their states are
        returned, ``[len(layers), kept, hidden]``, and the top layer computes
        nothing else (a word feature reads one piece per word). With
        ``remat`` and ``training``, each layer's activations are recomputed
        in the backward pass (``keras.remat``): only its input is kept."""
        layers = list(range(self.num_layers + 1)) if layers is None else [int(i) for i in layers]
        shape = tf.shape(ids, out_type=tf.int64)
        positions = tf.where(mask > 0)                     # [pieces, 2]: the real pieces
        piece_ids = tf.gather_nd(ids, positions)
        if self.quantized_embeddings:
            x = dequantize_rows(tf.gather(self.word_embedding_nibbles, piece_ids),
                                tf.gather(self.word_embedding_scales, piece_ids))
        else:
            x = tf.gather(self.word_embeddings, piece_ids)
        x = tf.cast(x, tf.float32) + tf.cast(tf.gather(self.position_embeddings, positions[:, 1])
                                             + self.type_embedding, tf.float32)
        x = tf.cast(_layer_norm(x, self.embedding_norm), self.compute_dtype)
        attention_bias = (1.0 - tf.cast(mask, tf.float32))[:, None, None, :] * -1e9
        top = max(layers)
        if keep is not None:
            # Index of each kept (row, column) among the real pieces, which
            # tf.where lists row by row, each row's from column 0.
            real = tf.reduce_sum(tf.cast(mask > 0, tf.int64), axis=1)
            keep = tf.gather(tf.cumsum(real, exclusive=True), keep[:, 0]) + keep[:, 1]
        states = {0: x}
        for i, layer in enumerate(self.transformer_layers[:top]):
            last = keep if keep is not None and i + 1 == top else None
            if self.remat and training:
                x = keras.remat(lambda x, layer=layer, last=last:
                                layer(x, positions, attention_bias, keep=last))(x)
            else:
                x = layer(x, positions, attention_bias, keep=last)
            states[i + 1] = x
        if keep is not None:
            # (The top layer computed only the kept pieces, unless it is the embeddings.)
            return tf.stack([tf.cast(states[i] if i == top > 0 else tf.gather(states[i], keep),
                                     tf.float32) for i in layers])
        padded = tf.concat([shape, [self.hidden]], 0)
        return tf.stack([tf.scatter_nd(positions, tf.cast(states[i], tf.float32), padded)
                         for i in layers])

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "hidden": self.hidden,
                "num_layers": self.num_layers, "heads": self.heads,
                "intermediate": self.intermediate, "max_positions": self.max_positions,
                "type_vocab_size": self.type_vocab_size, "eps": self.eps,
                "quantized_embeddings": self.quantized_embeddings, "remat": self.remat}


def e5_encoder(weights, num_layers=None, name="e5_encoder", quantized_embeddings=False,
               dtype="float32", remat=False):
    """A built :class:`BertEncoder` holding ``weights`` (an ``E5Weights``),
    dequantized to float32 (the word embedding table kept in Q4_0 with
    ``quantized_embeddings``); ``num_layers`` keeps only the lowest layers;
    ``dtype="mixed_bfloat16"`` computes the layers in bfloat16; ``remat``:
    see :class:`BertEncoder`."""
    w = weights
    num_layers = w.layers if num_layers is None else int(num_layers)
    if not 0 <= num_layers <= w.layers:
        raise ValueError(f"num_layers must be in [0, {w.layers}], got {num_layers}")
    encoder = BertEncoder(w.vocab_size, w.hidden, num_layers, w.heads, w.intermediate,
                          w.max_positions, w.type_vocab_size, w.layer_norm_eps,
                          quantized_embeddings=quantized_embeddings, remat=remat, name=name,
                          dtype=dtype)
    encoder.build()
    H, F = w.hidden, w.intermediate
    if quantized_embeddings:
        nibbles, scales = q4_0_rows(w.raw_q4_0("emb.word"), w.vocab_size, H)
        encoder.word_embedding_nibbles.assign(nibbles)
        encoder.word_embedding_scales.assign(scales)
    else:
        encoder.word_embeddings.assign(w.tensor("emb.word", (w.vocab_size, H)))
    encoder.position_embeddings.assign(w.tensor("emb.pos", (w.max_positions, H)))
    encoder.type_embedding.assign(w.tensor("emb.type", (-1, H))[0])
    encoder.embedding_norm.set_weights([w.tensor("emb.ln.w"), w.tensor("emb.ln.b")])

    def dense(layer, name, n_out, n_in):  # the file stores W [out, in]: y = x W^T + b
        layer.set_weights([np.ascontiguousarray(w.tensor(f"{name}.w", (n_out, n_in)).T),
                           w.tensor(f"{name}.b")])

    for i, layer in enumerate(encoder.transformer_layers):
        p = f"l{i}."
        layer.query_key_value.set_weights([
            np.ascontiguousarray(np.concatenate(
                [w.tensor(f"{p}{x}.w", (H, H)) for x in "qkv"]).T),
            np.concatenate([w.tensor(f"{p}{x}.b") for x in "qkv"])])
        dense(layer.attention_output, p + "ao", H, H)
        layer.attention_norm.set_weights([w.tensor(p + "aln.w"), w.tensor(p + "aln.b")])
        dense(layer.intermediate_dense, p + "fi", F, H)
        dense(layer.output_dense, p + "fo", H, F)
        layer.output_norm.set_weights([w.tensor(p + "oln.w"), w.tensor(p + "oln.b")])
    return encoder
