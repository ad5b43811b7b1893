"""Raw text or tokens -> the model's input ids, inside a serving graph.

Shared by the tagger's and the classifier's serving graphs. Uses only ops
TensorFlow Serving ships: the classifier splits raw text with TF Text's
``UnicodeScriptTokenizer`` (what classification training uses too), the
tagger with :func:`man_tf.export.raw_text.conll_tokenize` (core TF regex
rewrites that cut text as the CoNLL files it was trained on are cut). Words are looked up as in
training: lowercased (``tf.strings.lower``, UTF-8) when the vocabulary is,
in the language's own block of rows (or the shared block), unknown words to
that language's ``<unk>``, unknown characters to the character ``<unk>``. An
unknown language code fails the request with an ``InvalidArgumentError``
naming the trained codes. A model trained on a pretrained encoder's word
features gets them computed in the graph from the same tokens
(:class:`man_tf.pretrained.word_features.WordFeatures`: TF Text's
SentencePiece tokenizer + the encoder's layers, core TF ops); a model with a
fine-tuned encoder gets the tokens themselves and computes them with its own
layer (:class:`~man_tf.pretrained.word_features.TrainableWordFeatures`).
"""

import tensorflow as tf
import tensorflow_text as tf_text

from man_tf.data.vocab import SHARED, UNK_ID
from man_tf.export.raw_text import conll_tokenize
from man_tf.pretrained.word_features import TrainableWordFeatures

SEPARATOR = "\x1f"  # between block name and word in the word table's keys


def _table(keys, values, default):
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string),
                                            tf.constant(values, tf.int64)), default)


class TextEncoder:
    """Lookup tables built from the training vocabularies, and the encoding."""

    def __init__(self, words, chars, languages, max_chars, max_length=None,
                 tokenizer="unicode_script", features=None):
        self.languages = list(languages)
        self.max_chars = int(max_chars)
        self.max_length = int(max_length) if max_length else None
        self.lowercase_words = words.lowercase
        self.lowercase_chars = chars.lowercase
        self.shared = words.shared
        keys, rows = [], []
        for row, block, word in words.rows():
            keys.append(f"{block}{SEPARATOR}{word}")
            rows.append(row)
        self.word_table = _table(keys, rows, -1)
        self.language_table = _table(self.languages, list(range(len(self.languages))), -1)
        self.unknown_rows = tf.constant([words.unk_id(lang) for lang in self.languages], tf.int64)
        self.char_table = _table(chars.tokens, list(range(len(chars.tokens))), UNK_ID)
        # A WordFeatures (frozen encoder: computed here), or the model's own
        # TrainableWordFeatures (fine-tuned: the model reads the tokens).
        self.features = features
        self.model_tokens = isinstance(features, TrainableWordFeatures)
        # Which trained languages' sentences the encoder reads as one text
        # (model.encoder_joined_languages), by language id; None if none.
        joined = [lang in getattr(features, "joined_languages", ()) for lang in self.languages]
        self.joined = tf.constant(joined) if any(joined) and not self.model_tokens else None
        if tokenizer == "unicode_script":
            self._split = tf_text.UnicodeScriptTokenizer().tokenize
        elif tokenizer == "conll":
            self._split = conll_tokenize
        else:
            raise ValueError(f"tokenizer must be 'unicode_script' or 'conll', got {tokenizer!r}")

    def resources(self):
        """The tables (and encoder) an export must track."""
        tracked = [self.word_table, self.language_table, self.char_table]
        if self.features is not None:
            # Not the encoder layer: the variables the endpoints read are
            # saved anyway, and tracking the layer too saves them twice.
            pieces = self.features.features if self.model_tokens else self.features
            tracked += [pieces.tokenizer, pieces.normalize.table]
        return tracked

    def tokenize(self, text):
        """string ``[batch]`` -> ragged tokens ``[batch, (time)]`` (cut to ``max_length``)."""
        tokens = self._split(text)
        return tokens[:, :self.max_length] if self.max_length else tokens

    def _language_ids(self, language):
        ids = self.language_table.lookup(language)
        check = tf.debugging.Assert(
            tf.reduce_all(ids >= 0),
            ["unknown language code; trained languages are " + ", ".join(self.languages)
             + "; got:", language], summarize=8)
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def encode(self, tokens, language):
        """Ragged tokens + language codes -> ``{"words", "chars", "lengths"}``
        (at least one time step, so a batch of empty texts still runs)."""
        language_ids = self._language_ids(language)
        flat = tokens.flat_values
        token_language = tf.gather(language_ids, tokens.value_rowids())
        normalized = tf.strings.lower(flat, encoding="utf-8") if self.lowercase_words else flat
        block = (tf.fill(tf.shape(flat), SHARED) if self.shared
                 else tf.gather(tf.constant(self.languages), token_language))
        rows = self.word_table.lookup(tf.strings.join([block, normalized], SEPARATOR))
        rows = tf.where(rows >= 0, rows, tf.gather(self.unknown_rows, token_language))
        char_source = tf.strings.lower(flat, encoding="utf-8") if self.lowercase_chars else flat
        characters = tf.strings.unicode_split(char_source, "UTF-8")[:, :self.max_chars]
        char_ids = tf.ragged.map_flat_values(self.char_table.lookup, characters)
        lengths = tf.cast(tokens.row_lengths(), tf.int32)
        batch = tf.shape(lengths)[0]
        time = tf.maximum(tf.reduce_max(tf.concat([lengths, [0]], 0)), 1)
        words = tokens.with_flat_values(rows).to_tensor(shape=[batch, time])
        char_ids = tokens.with_flat_values(char_ids).to_tensor()
        char_ids = tf.pad(char_ids, [[0, 0], [0, time - tf.shape(char_ids)[1]],
                                     [0, tf.maximum(1 - tf.shape(char_ids)[2], 0)]])
        out = {"words": tf.cast(words, tf.int32), "chars": tf.cast(char_ids, tf.int32),
               "lengths": lengths}
        if self.model_tokens:
            out["tokens"] = tokens.to_tensor(default_value="", shape=[batch, time])
            out["language"] = tf.cast(language_ids, tf.int32)  # rows read as one text
        elif self.features is not None:
            # Rounded to float16 as training read them from its cache.
            joined = None if self.joined is None else tf.gather(self.joined, language_ids)
            features = tf.cast(tf.cast(self.features(tokens, joined), tf.float16), tf.float32)
            out["encoder_features"] = tf.pad(
                features, [[0, 0], [0, time - tf.shape(features)[1]], [0, 0], [0, 0]])
        return out
