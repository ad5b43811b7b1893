"""Contextual word features from the frozen multilingual encoder, in TF ops.

Words stay exactly as the data splits them: each word is normalized and cut
into SentencePiece pieces on its own (so its pieces carry the word-start
mark), a sentence's pieces are concatenated between ``<s>`` and ``</s>``,
the encoder runs, and each word's feature is the hidden state of its first
piece, at the encoder layers asked for. A sentence with more pieces than
the encoder's positions is cut into windows of ``max_positions - 2`` pieces,
each run as its own ``<s> ... </s>`` sequence (no overlap; words at a cut
see only their own window), so every word gets a feature.

Languages written without spaces between words (Japanese, Chinese, Thai)
cut into "words" by script runs would reach the encoder as a text it never
saw, every run with its own word-start mark. For the sentences marked
``joined``, the words are therefore joined back into one text (a space
between two words only where neither side is written without spaces, so
Latin words inside Japanese keep theirs), the text is cut into pieces as a
whole (``tokenize_with_offsets``), and each word's feature is the state of
the piece holding its first character (two words can share a piece).
"""

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from man_tf.pretrained.bert import e5_encoder
from man_tf.pretrained.sentencepiece_model import META, NormalizerTable, model_proto

# ICU script codes (tf.strings.unicode_script) of scripts written without
# spaces between words: Han, Hiragana, Katakana, Khmer, Lao, Myanmar, Thai,
# Tibetan; and code point ranges of their punctuation and marks (CJK
# symbols and punctuation with the kana blocks, U+3000-U+30FF, where the
# prolonged sound mark is script Common; halfwidth and fullwidth forms).
UNSPACED_SCRIPTS = (17, 20, 22, 23, 24, 28, 38, 39)
UNSPACED_RANGES = ((0x3000, 0x30FF), (0xFF00, 0xFFEF))


def _unspaced(codepoints):
    """int32 code points (-1: none) -> bool: written without spaces around it."""
    script = tf.strings.unicode_script(tf.maximum(codepoints, 0))
    out = tf.reduce_any(tf.equal(script[:, None], UNSPACED_SCRIPTS), axis=1)
    for low, high in UNSPACED_RANGES:
        out |= (codepoints >= low) & (codepoints <= high)
    return out & (codepoints >= 0)


class WordFeatures(tf.Module):
    """words (string ``[batch, (words)]`` ragged) -> float32
    ``[batch, max_words, len(layers), hidden]`` (zeros past each sentence).
    ``quantized_embeddings``: keep the piece embedding table in Q4_0 (for a
    SavedModel's size; same values). ``dtype``: the encoder's Keras dtype
    policy, float32 unless asked (not the global policy: training under
    mixed_bfloat16 still extracts float32 features); "mixed_bfloat16" runs
    its matmuls in bfloat16 (slightly off float32, faster on CPUs with native
    bf16: benchmarks/results/serving.md).
    ``encoder``: a built :class:`BertEncoder` to run instead of a new one
    from ``weights`` (a fine-tuned model's; ``quantized_embeddings`` and
    ``dtype`` are then its own). Calls take ``joined`` (bool ``[batch]``,
    optional): the sentences to encode as one text (module docstring);
    ``joined_languages`` records which languages' sentences callers mark so
    (``model.encoder_joined_languages``)."""

    def __init__(self, weights, layers=(7,), window=None, quantized_embeddings=False,
                 dtype="float32", encoder=None, joined_languages=(), name="word_features"):
        super().__init__(name=name)
        # The language codes whose sentences callers mark ``joined``.
        self.joined_languages = tuple(joined_languages)
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
        # One graph for every batch shape (and one with ``joined`` marks).
        words_spec = tf.RaggedTensorSpec([None, None], tf.string, ragged_rank=1,
                                         row_splits_dtype=tf.int64)
        self._by_word = tf.function(self.__call__, input_signature=[words_spec])
        self._with_joined = tf.function(self.__call__, input_signature=[
            words_spec, tf.TensorSpec([None], tf.bool)])

    def compiled(self, words, joined=None):
        """:meth:`__call__` as a compiled graph (int64 row splits)."""
        return self._by_word(words) if joined is None else self._with_joined(words, joined)

    def _fill_empty(self, pieces, where):
        """ragged piece ids -> the same with the rows ``where`` marks that are
        empty replaced by ``[▁]`` (int32 ids, int64 row splits)."""
        pieces = tf.cast(pieces, tf.int32).with_row_splits_dtype(tf.int64)
        empty = tf.equal(pieces.row_lengths(), 0) & where
        lengths = tf.where(empty, tf.ones_like(pieces.row_lengths()), pieces.row_lengths())
        starts = tf.cumsum(lengths, exclusive=True)
        values = tf.fill([tf.reduce_sum(lengths)], self.meta_id)
        kept_positions = tf.ragged.range(tf.boolean_mask(starts, ~empty),
                                         tf.boolean_mask(starts + lengths, ~empty)).flat_values
        values = tf.tensor_scatter_nd_update(values, tf.expand_dims(kept_positions, 1),
                                             pieces.flat_values)
        return tf.RaggedTensor.from_row_lengths(values, lengths)

    def pieces(self, words):
        """ragged words ``[batch, (words)]`` -> ragged piece ids ``[words_total, (pieces)]``;
        a word whose pieces would be empty (e.g. only control characters) gets ``▁``."""
        pieces = self.tokenizer.tokenize(self.normalize(words.flat_values))
        return self._fill_empty(pieces, tf.ones_like(pieces.row_lengths(), tf.bool))

    def _word_pieces(self, words):
        """Each word cut on its own: (piece ids ``[batch, (pieces)]``, each
        word's first piece's index in its sentence's pieces ``[words_total]``)."""
        batch = words.nrows(out_type=tf.int32)
        word_pieces = self.pieces(words)                       # [words_total, (pieces)]
        per_word = tf.cast(word_pieces.row_lengths(), tf.int32)
        sentence = tf.cast(words.value_rowids(), tf.int32)
        # unsorted_segment_sum with ``batch`` segments: a sentence with no
        # words still gets its (empty) row.
        lengths = tf.math.unsorted_segment_sum(per_word, sentence, batch)
        first = tf.cumsum(per_word, exclusive=True) - tf.gather(
            tf.cumsum(lengths, exclusive=True), sentence)
        return tf.RaggedTensor.from_row_lengths(word_pieces.flat_values,
                                                tf.cast(lengths, tf.int64)), first

    def joined_text(self, words):
        """ragged words ``[batch, (words)]`` -> (each sentence's normalized
        words joined into one text, string ``[batch]``; each word's first
        byte in it, int64 ``[words_total]``). A space goes before a word
        unless it opens its sentence, a character next to the gap is written
        without spaces (:data:`UNSPACED_SCRIPTS`), or a word is empty."""
        normalized = self.normalize(words.flat_values)
        codepoints = tf.strings.unicode_decode(normalized, "UTF-8")
        # An empty word (e.g. only control characters) reads the -1 appended.
        flat = tf.concat([codepoints.flat_values, [-1]], 0)
        count = codepoints.row_lengths()
        none = tf.cast(tf.size(flat) - 1, tf.int64)
        first_char = tf.gather(flat, tf.where(count > 0, codepoints.row_starts(), none))
        last_char = tf.gather(flat, tf.where(count > 0, codepoints.row_limits() - 1, none))
        opens = tf.equal(tf.range(tf.size(normalized, out_type=tf.int64)),
                         tf.gather(words.row_starts(), words.value_rowids()))
        previous_last = tf.concat([[-1], last_char[:-1]], 0)
        spaced = ~opens & (count > 0) & (previous_last >= 0) & \
            ~_unspaced(first_char) & ~_unspaced(previous_last)
        text = tf.strings.reduce_join(
            words.with_flat_values(tf.strings.join([tf.where(spaced, " ", ""), normalized])),
            axis=1)
        ends = tf.concat([[0], tf.cumsum(tf.cast(tf.strings.length(normalized), tf.int64)
                                         + tf.cast(spaced, tf.int64))], 0)
        word_byte = ends[:-1] + tf.cast(spaced, tf.int64) - tf.gather(
            tf.gather(ends, words.row_starts()), words.value_rowids())
        return text, word_byte

    def _joined_pieces(self, words):
        """Each sentence cut as one text (:meth:`joined_text`): (piece ids
        ``[batch, (pieces)]``, the index of the piece holding each word's
        first character ``[words_total]``)."""
        text, word_byte = self.joined_text(words)
        pieces, starts, _ = self.tokenizer.tokenize_with_offsets(text)
        starts = starts.with_row_splits_dtype(tf.int64)
        # Every sentence's offsets moved past the previous texts (+1 each), so
        # one sorted search serves the whole batch.
        shift = tf.cumsum(tf.cast(tf.strings.length(text), tf.int64) + 1, exclusive=True)
        global_starts = starts + tf.expand_dims(shift, 1)
        word_key = word_byte + tf.gather(shift, words.value_rowids())
        holding = tf.searchsorted(global_starts.flat_values, word_key, side="right",
                                  out_type=tf.int64) - 1
        holding -= tf.gather(starts.row_starts(), words.value_rowids())
        pieces = self._fill_empty(pieces, words.row_lengths() > 0)  # [▁] if all words vanish
        most = tf.gather(pieces.row_lengths(), words.value_rowids()) - 1
        first = tf.clip_by_value(holding, 0, tf.maximum(most, 0))
        return pieces, tf.cast(first, tf.int32)

    def sentence_pieces(self, words, joined=None):
        """-> (piece ids ``[batch, (pieces)]``, the index of each word's
        piece in its sentence's pieces ``[words_total]``), the sentences that
        ``joined`` marks cut as one text, the others word by word."""
        batch = words.nrows(out_type=tf.int32)
        sentence_pieces, first = self._word_pieces(words)
        if joined is None:
            return sentence_pieces, first
        joined = tf.reshape(tf.cast(joined, tf.bool), [batch])
        as_text, first_in_text = self._joined_pieces(words)
        sentence_pieces = tf.gather(tf.concat([sentence_pieces, as_text], 0),
                                    tf.range(batch) + batch * tf.cast(joined, tf.int32))
        first = tf.where(tf.gather(joined, words.value_rowids()), first_in_text, first)
        return sentence_pieces, first

    def __call__(self, words, joined=None):
        batch = words.nrows(out_type=tf.int32)
        sentence = tf.cast(words.value_rowids(), tf.int32)
        sentence_pieces, first = self.sentence_pieces(words, joined)
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
        row = sentence * chunks + first // W
        column = first % W + 1
        keep = tf.cast(tf.stack([row, column], axis=1), tf.int64)
        picked = self.encoder(ids, mask, layers=self.layers, keep=keep)  # [k, words_total, H]
        picked = tf.transpose(picked, [1, 0, 2])                          # [words_total, k, H]
        return words.with_flat_values(picked).to_tensor(
            shape=[None, None, len(self.layers), self.hidden])


@keras.saving.register_keras_serializable(package="man_tf")
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
    (``model.encoder_remat``). ``joined``: by language id, whether that
    language's sentences are read as one text (``model.encoder_joined_languages``);
    calls then take the batch's ``language`` ids. ``weights``: an
    ``E5Weights`` (the bundled file's, or ``preset``'s: ``model.encoder_weights``);
    from a config (``from_config``) they are read again from ``preset``."""

    def __init__(self, weights, layers, remat=False, joined=(), preset="", **kwargs):
        super().__init__(**kwargs)
        self.layers = tuple(int(layer) for layer in layers)
        self.remat, self.preset = bool(remat), preset
        self.joined_languages = tuple(bool(j) for j in joined)
        self.joined = tf.constant(self.joined_languages) if any(joined) else None
        # For an export's metadata, without reading the weights file again.
        self.weights_description = {
            **weights.description(), "fine_tuned": True,
            "weights": weights.description()["weights"] + " (layers fine-tuned: the checkpoint's)"}
        # The bundled file's table in Q4_0 as the file holds it; a keras-hub
        # preset's in float32, frozen too.
        quantized = weights.quantized_embeddings
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

    def get_config(self):
        return {**super().get_config(), "layers": list(self.layers), "remat": self.remat,
                "joined": list(self.joined_languages), "preset": self.preset}

    @classmethod
    def from_config(cls, config):
        from man_tf.pretrained.weights import read_weights
        return cls(read_weights(config.get("preset", "")), **config)

    def constant_variables(self):
        """The frozen piece embedding table (Q4_0 nibbles and scales, or a
        preset's float32 table): read from its file whenever the model is built."""
        if self.encoder.quantized_embeddings:
            return [self.encoder.word_embedding_nibbles, self.encoder.word_embedding_scales]
        return [self.encoder.word_embeddings]

    def call(self, tokens, lengths, language=None):
        words = tf.RaggedTensor.from_tensor(tokens, lengths=tf.cast(lengths, tf.int64),
                                            row_splits_dtype=tf.int64)
        marks = None
        if self.joined is not None:
            if language is None:
                raise ValueError("this encoder reads some languages as one text: call it with "
                                 "the batch's language ids")
            marks = tf.gather(self.joined, language)
        features = self.features(words, marks)
        time = tf.shape(tokens)[1]
        return tf.pad(features, [[0, 0], [0, time - tf.shape(features)[1]], [0, 0], [0, 0]])
