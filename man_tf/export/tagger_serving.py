"""The tagger's serving graph: tokenization, vocabulary lookups, model, tag strings.

Everything a client needs happens inside the SavedModel, with ops TensorFlow
Serving ships (core TF + TF Text's ``UnicodeScriptTokenizer``):

* ``serving_default``: ``text`` (string ``[batch]``) + ``language`` (string
  ``[batch]``, a trained language code) -> ``tokens``, ``tags`` (padded
  strings ``[batch, time]``, ``""`` past each sentence), ``tag_scores``
  (probability of each predicted tag), ``lengths`` (int32 ``[batch]``), and
  ``expert_weights`` (``[batch, time, sources]``: C's gate, how much each
  source-language expert contributed to each token; the sources' order is in
  ``assets.extra/man_tf.json``).
* ``tag_tokens``: the same from pre-tokenized input: ``tokens`` (string
  ``[batch, time]``, padded) + ``lengths`` + ``language``; the ids are the
  ones training used, so scoring CoNLL files through it matches
  ``man-tf-evaluate``.

Words are looked up as in training: lowercased (``tf.strings.lower``, UTF-8)
when the vocabulary is, in the language's own block of rows (or the shared
block), unknown words to that language's ``<unk>``, unknown characters to
the character ``<unk>``. An unknown language code fails the request with an
``InvalidArgumentError`` naming the trained codes; empty or whitespace-only
text gives ``lengths`` 0 and empty rows.
"""

import tensorflow as tf
import tensorflow_text as tf_text

from man_tf.data.vocab import SHARED, UNK_ID

SEPARATOR = "\x1f"  # between block name and word in the word table's keys


def _table(keys, values, default):
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string),
                                            tf.constant(values, tf.int64)), default)


class TaggerServing:
    """Lookup tables and serving functions around a trained ``ManMoeTagger``."""

    def __init__(self, model, words, chars, tags, languages, max_chars):
        self.model = model
        self.languages = list(languages)
        self.max_chars = int(max_chars)
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
        self.tag_strings = tf.constant(tags.tags)
        self.tokenizer = tf_text.UnicodeScriptTokenizer()

    def resources(self):
        return [self.word_table, self.language_table, self.char_table]

    def _language_ids(self, language):
        ids = self.language_table.lookup(language)
        check = tf.debugging.Assert(
            tf.reduce_all(ids >= 0),
            ["unknown language code; trained languages are " + ", ".join(self.languages)
             + "; got:", language], summarize=8)
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def _tag(self, tokens, language):
        """``tokens``: ragged string ``[batch, (time)]``; ``language``: ``[batch]``."""
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
        # At least one time step, so a batch of empty texts still runs.
        time = tf.maximum(tf.reduce_max(tf.concat([lengths, [0]], 0)), 1)
        words = tokens.with_flat_values(rows).to_tensor(shape=[batch, time])
        char_ids = tokens.with_flat_values(char_ids).to_tensor()
        char_ids = tf.pad(char_ids, [[0, 0], [0, time - tf.shape(char_ids)[1]],
                                     [0, tf.maximum(1 - tf.shape(char_ids)[2], 0)]])
        outputs = self.model({"words": tf.cast(words, tf.int32),
                              "chars": tf.cast(char_ids, tf.int32), "lengths": lengths},
                             training=False)
        mask = outputs["mask"]
        probs = tf.exp(tf.cast(outputs["log_probs"], tf.float32))
        ids = tf.argmax(probs, axis=-1, output_type=tf.int32)
        tags = tf.where(mask, tf.gather(self.tag_strings, ids), "")
        scores = tf.where(mask, tf.reduce_max(probs, axis=-1), 0.0)
        gate = tf.nn.softmax(tf.cast(outputs["gate_logits"], tf.float32), axis=-1)
        gate = gate * tf.cast(mask, tf.float32)[..., None]
        return {"tokens": tokens.to_tensor(default_value="", shape=[batch, time]), "tags": tags,
                "tag_scores": scores, "lengths": lengths, "expert_weights": gate}

    def tag_text(self, text, language):
        return self._tag(self.tokenizer.tokenize(text), language)

    def tag_tokens(self, tokens, lengths, language):
        return self._tag(tf.RaggedTensor.from_tensor(tokens, lengths=lengths), language)
