"""A BERT encoder as Keras layers, for frozen multilingual-e5-small features.

Own small layers instead of keras-hub's ``BertBackbone``: the features
MAN-MoE reads are *every* layer's hidden states (the middle layers carry the
best cross-lingual word features), the weights come from man_tf's own reader
of the offline 4-bit file, and the serving graph must hold plain core-TF ops
only. Post-LayerNorm BERT: embeddings (word + position + token type 0) ->
LayerNorm -> ``layers`` x [self-attention -> add & LayerNorm -> GELU (erf)
feed-forward -> add & LayerNorm].
"""

import keras
import numpy as np
import tensorflow as tf


class TransformerLayer(keras.layers.Layer):
    """One post-LN encoder layer: ``[batch, time, hidden]`` + mask ``[batch, time]``."""

    def __init__(self, hidden, heads, intermediate, eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        if hidden % heads:
            raise ValueError(f"hidden {hidden} is not a multiple of heads {heads}")
        self.hidden, self.heads, self.intermediate, self.eps = hidden, heads, intermediate, eps
        dense = lambda units, name: keras.layers.Dense(units, name=name)
        self.query, self.key, self.value = dense(hidden, "query"), dense(hidden, "key"), \
            dense(hidden, "value")
        self.attention_output = dense(hidden, "attention_output")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=eps, name="attention_norm")
        self.intermediate_dense = dense(intermediate, "intermediate")
        self.output_dense = dense(hidden, "output")
        self.output_norm = keras.layers.LayerNormalization(epsilon=eps, name="output_norm")

    def build(self, input_shape):
        for layer in (self.query, self.key, self.value, self.attention_output):
            layer.build((None, self.hidden))
        self.intermediate_dense.build((None, self.hidden))
        self.output_dense.build((None, self.intermediate))
        self.attention_norm.build((None, self.hidden))
        self.output_norm.build((None, self.hidden))
        super().build(input_shape)

    def call(self, x, mask):
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        size = self.hidden // self.heads

        def split(t):  # [batch, time, hidden] -> [batch, heads, time, size]
            return tf.transpose(tf.reshape(t, [batch, time, self.heads, size]), [0, 2, 1, 3])

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = tf.matmul(q, k, transpose_b=True) / tf.cast(tf.sqrt(float(size)), x.dtype)
        scores += (1.0 - tf.cast(mask, scores.dtype))[:, None, None, :] * -1e9
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch, time, self.hidden])
        x = self.attention_norm(x + self.attention_output(context))
        h = tf.nn.gelu(self.intermediate_dense(x), approximate=False)
        return self.output_norm(x + self.output_dense(h))

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


class BertEncoder(keras.layers.Layer):
    """token ids ``[batch, time]`` + mask ``[batch, time]`` -> hidden states of
    the embedding layer and of layers 1..``num_layers``: ``[num_layers + 1,
    batch, time, hidden]`` (only the first ``num_layers`` are built: a
    feature from layer 8 needs no layers above it).

    ``quantized_embeddings``: the word embedding table is held as the weights
    file holds it (Q4_0: 4 bits per weight + a float16 scale per 32, 54 MB
    instead of 384 MB in float32 for 250,037 x 384) and the rows a batch
    reads are dequantized in the graph with core TF ops; the values are
    exactly the float32 table's (the float32 table *is* the dequantized file).
    """

    def __init__(self, vocab_size, hidden=384, num_layers=12, heads=12, intermediate=1536,
                 max_positions=512, type_vocab_size=2, eps=1e-12, quantized_embeddings=False,
                 **kwargs):
        super().__init__(**kwargs)
        if quantized_embeddings and hidden % Q4_BLOCK:
            raise ValueError(f"quantized embeddings need hidden % {Q4_BLOCK} == 0, got {hidden}")
        self.quantized_embeddings = bool(quantized_embeddings)
        self.vocab_size, self.hidden, self.num_layers = vocab_size, hidden, num_layers
        self.heads, self.intermediate, self.max_positions = heads, intermediate, max_positions
        self.type_vocab_size, self.eps = type_vocab_size, eps
        self.embedding_norm = keras.layers.LayerNormalization(epsilon=eps, name="embedding_norm")
        self.transformer_layers = [TransformerLayer(hidden, heads, intermediate, eps,
                                                    name=f"layer{i}")
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

    def call(self, ids, mask):
        time = tf.shape(ids)[1]
        if self.quantized_embeddings:
            x = dequantize_rows(tf.gather(self.word_embedding_nibbles, ids),
                                tf.gather(self.word_embedding_scales, ids))
            x = tf.cast(x, self.compute_dtype)
        else:
            x = tf.gather(self.word_embeddings, ids)
        x += tf.gather(self.position_embeddings, tf.range(time))[None] + self.type_embedding
        x = self.embedding_norm(x)
        states = [x]
        for layer in self.transformer_layers:
            x = layer(x, mask)
            states.append(x)
        return tf.stack(states)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "hidden": self.hidden,
                "num_layers": self.num_layers, "heads": self.heads,
                "intermediate": self.intermediate, "max_positions": self.max_positions,
                "type_vocab_size": self.type_vocab_size, "eps": self.eps,
                "quantized_embeddings": self.quantized_embeddings}


def e5_encoder(weights, num_layers=None, name="e5_encoder", quantized_embeddings=False):
    """A built :class:`BertEncoder` holding ``weights`` (an ``E5Weights``),
    dequantized to float32 (the word embedding table kept in Q4_0 with
    ``quantized_embeddings``); ``num_layers`` keeps only the lowest layers."""
    w = weights
    num_layers = w.layers if num_layers is None else int(num_layers)
    if not 0 <= num_layers <= w.layers:
        raise ValueError(f"num_layers must be in [0, {w.layers}], got {num_layers}")
    encoder = BertEncoder(w.vocab_size, w.hidden, num_layers, w.heads, w.intermediate,
                          w.max_positions, w.type_vocab_size, w.layer_norm_eps,
                          quantized_embeddings=quantized_embeddings, name=name)
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
        dense(layer.query, p + "q", H, H)
        dense(layer.key, p + "k", H, H)
        dense(layer.value, p + "v", H, H)
        dense(layer.attention_output, p + "ao", H, H)
        layer.attention_norm.set_weights([w.tensor(p + "aln.w"), w.tensor(p + "aln.b")])
        dense(layer.intermediate_dense, p + "fi", F, H)
        dense(layer.output_dense, p + "fo", H, F)
        layer.output_norm.set_weights([w.tensor(p + "oln.w"), w.tensor(p + "oln.b")])
    return encoder
