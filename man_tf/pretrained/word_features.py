"""Contextual word features from the frozen multilingual encoder, in TF ops.

Words stay exactly as the data splits them: each word is normalized and cut
into SentencePiece pieces on its own (so its pieces carry the word-start
mark), a sentence's pieces are concatenated between ``<s>`` and ``</s>``,
the encoder runs, and each word's feature is the hidden state of its first
piece, at the encoder layers asked for. A sentence with more pieces than
the encoder's positions is cut into windows of ``max_positions - 2`` pieces,
each run as its own ``<s> ... </s>`` sequence (no overlap; words at a cut
see only their own window), so every word gets a feature.
"""

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from man_tf.pretrained.bert import e5_encoder
from man_tf.pretrained.sentencepiece_model import META, NormalizerTable, model_proto


class WordFeatures(tf.Module):
    """words (string ``[batch, (words)]`` ragged) -> float32
    ``[batch, max_words, len(layers), hidden]`` (zeros past each sentence).
    ``quantized_embeddings``: keep the piece embedding table in Q4_0 (for a
    SavedModel's size; same values). ``dtype``: the encoder's Keras dtype
    policy, float32 unless asked (not the global policy: training under
    mixed_bfloat16 still extracts float32 features); "mixed_bfloat16" runs
    its matmuls in bfloat16 (~1% off float32, faster on CPUs with native bf16).
    ``encoder``: a built :class:`BertEncoder` to run instead of a new one
    from ``weights`` (a fine-tuned model's; ``quantized_embeddings`` and
    ``dtype`` are then its own)."""

    def __init__(self, weights, layers=(7,), window=None, quantized_embeddings=False,
                 dtype="float32", encoder=None, name="word_features"):
        super().__init__(name=name)
        self.layers = tuple(int(layer) for layer in layers)
        if not self.layers or min(self.layers) < 0 or max(self.layers) > weights.layers:
            raise ValueError(f"layers must be in [0, {weights.layers}], got {layers}")
        self.hidden = weights.hidden
        self.window = int(window or weights.max_positions - 2)
        if encoder is None:
            encoder = e5_encoder(weights, num_layers=max(self.layers),
                                 quantized_embeddings=quantized_embeddings, dtype=dtype)
        elif encoder.num_layers < max(self.layers):
            raise ValueError(f"the encoder has {encoder.num_layers} layers; layer "
                             f"{max(self.layers)} was asked for")
        self.encoder = encoder
        self.tokenizer = tf_text.SentencepieceTokenizer(model=model_proto(weights))
        self.normalize = NormalizerTable(weights)
        self.bos, self.eos, self.pad = weights.bos_id, weights.eos_id, weights.pad_id
        self.meta_id = weights.pieces.index(META)
        # One graph for every batch shape.
        self.compiled = tf.function(self.__call__, input_signature=[tf.RaggedTensorSpec(
            [None, None], tf.string, ragged_rank=1, row_splits_dtype=tf.int64)])

    def pieces(self, words):
        """ragged words ``[batch, (words)]`` -> ragged piece ids ``[words_total, (pieces)]``;
        a word whose pieces would be empty (e.g. only control characters) gets ``▁``."""
        pieces = self.tokenizer.tokenize(self.normalize(words.flat_values))
        pieces = tf.cast(pieces, tf.int32)
        empty = tf.equal(pieces.row_lengths(), 0)
        fill = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], self.meta_id),
            tf.ones_like(tf.boolean_mask(pieces.row_lengths(), empty)))
        # Interleave: rows of `pieces`, with empty rows replaced by [▁].
        lengths = tf.where(empty, tf.ones_like(pieces.row_lengths()), pieces.row_lengths())
        starts = tf.cumsum(lengths, exclusive=True)
        values = tf.tensor_scatter_nd_update(
            tf.zeros([tf.reduce_sum(lengths)], tf.int32),
            tf.expand_dims(tf.boolean_mask(starts, empty), 1), fill.flat_values)
        kept_positions = tf.ragged.range(tf.boolean_mask(starts, ~empty),
                                         tf.boolean_mask(starts + lengths, ~empty)).flat_values
        values = tf.tensor_scatter_nd_update(values, tf.expand_dims(kept_positions, 1),
                                             pieces.flat_values)
        return tf.RaggedTensor.from_row_lengths(values, lengths)

    def __call__(self, words):
        batch = words.nrows(out_type=tf.int32)
        word_pieces = self.pieces(words)                       # [words_total, (pieces)]
        per_word = tf.cast(word_pieces.row_lengths(), tf.int32)
        # unsorted_segment_sum with ``batch`` segments: a sentence with no
        # words still gets its (empty) row.
        sentence_pieces = tf.RaggedTensor.from_row_lengths(
            word_pieces.flat_values,
            tf.math.unsorted_segment_sum(per_word, tf.cast(words.value_rowids(), tf.int32),
                                         batch))
        lengths = tf.cast(sentence_pieces.row_lengths(), tf.int32)   # [batch]
        W = self.window
        chunks = tf.maximum((tf.reduce_max(tf.concat([lengths, [1]], 0)) + W - 1) // W, 1)
        padded = sentence_pieces.to_tensor(default_value=self.pad, shape=[batch, chunks * W])
        rows = tf.reshape(padded, [batch * chunks, W])
        chunk_index = tf.tile(tf.range(chunks), [batch])
        row_len = tf.clip_by_value(tf.repeat(lengths, chunks) - chunk_index * W, 0, W)
        width = tf.reduce_max(row_len) + 2
        rows = rows[:, :width - 2]
        ids = tf.concat([tf.fill([batch * chunks, 1], self.bos), rows,
                         tf.fill([batch * chunks, 1], self.pad)], axis=1)
        positions = tf.range(width)[None, :]
        ids = tf.where(positions == row_len[:, None] + 1, self.eos, ids)
        mask = tf.cast(positions < row_len[:, None] + 2, tf.float32)
        # Each word's first piece: its index in the sentence's pieces.
        first = tf.cumsum(per_word, exclusive=True) - tf.gather(
            tf.cumsum(lengths, exclusive=True), tf.cast(words.value_rowids(), tf.int32))
        sentence = tf.cast(words.value_rowids(), tf.int32)
        row = sentence * chunks + first // W
        column = first % W + 1
        keep = tf.cast(tf.stack([row, column], axis=1), tf.int64)
        picked = self.encoder(ids, mask, layers=self.layers, keep=keep)  # [k, words_total, H]
        picked = tf.transpose(picked, [1, 0, 2])                          # [words_total, k, H]
        return words.with_flat_values(picked).to_tensor(
            shape=[None, None, len(self.layers), self.hidden])


class TrainableWordFeatures(keras.layers.Layer):
    """The encoder's word features as a model layer, fine-tuned with the
    model (``model.encoder_trainable``): padded tokens (string ``[batch,
    time]``) + ``lengths`` -> float32 ``[batch, time, len(layers), hidden]``
    (zeros past each sentence), computed in the step, in the layer's dtype
    policy (the training's). The encoder's layers up to ``max(layers)``,
    its position and type embeddings and its embedding LayerNorm are
    trainable; the piece embedding table stays as the weights file holds it
    (Q4_0, not trainable: 96 M parameters that a fine-tuning would barely
    move, and whose Adam slots would take 770 MB), and is left out of
    checkpoints (:meth:`constant_variables`: it is the bundled file's,
    whose SHA-256 is checked when it is read, or a keras-hub preset's, kept
    in float32 and frozen as well). ``remat``: recompute each encoder layer
    in the backward pass instead of keeping its activations
    (``model.encoder_remat``)."""

    def __init__(self, weights, layers=(7,), remat=False, **kwargs):
        super().__init__(**kwargs)
        self.layers = tuple(int(layer) for layer in layers)
        # The bundled file's table in Q4_0 as the file holds it; a keras-hub
        # preset's (which has an ``identity``) in float32, frozen too.
        quantized = not hasattr(weights, "identity")
        # Built (and its weights assigned) here, under this layer's name.
        with keras.name_scope(self.name):
            self.encoder = e5_encoder(weights, num_layers=max(self.layers),
                                      quantized_embeddings=quantized, dtype=self.dtype_policy,
                                      remat=remat, name="e5_encoder")
        if not quantized:
            self.encoder.word_embeddings.trainable = False
        self.features = WordFeatures(weights, self.layers, encoder=self.encoder)
        self.hidden = self.features.hidden

    def build(self, input_shape=None):
        self.built = True

    def constant_variables(self):
        """The frozen piece embedding table (Q4_0 nibbles and scales, or a
        preset's float32 table): read from its file whenever the model is built."""
        if self.encoder.quantized_embeddings:
            return [self.encoder.word_embedding_nibbles, self.encoder.word_embedding_scales]
        return [self.encoder.word_embeddings]

    def call(self, tokens, lengths):
        words = tf.RaggedTensor.from_tensor(tokens, lengths=tf.cast(lengths, tf.int64),
                                            row_splits_dtype=tf.int64)
        features = self.features(words)
        time = tf.shape(tokens)[1]
        return tf.pad(features, [[0, 0], [0, time - tf.shape(features)[1]], [0, 0], [0, 0]])
