"""The tagger's serving graph: tokenization, vocabulary lookups, model, tag strings.

* ``serving_default``: ``text`` (string ``[batch]``) + ``language`` (string
  ``[batch]``, a trained language code) -> ``tokens``, ``tags`` (padded
  strings ``[batch, time]``, ``""`` past each sentence; the model's
  decoding: by default the best BIO-valid sequence), ``tag_scores``
  (C's probability of each predicted tag), ``lengths`` (int32 ``[batch]``), and
  ``expert_weights`` (``[batch, time, sources]``: C's gate, how much each
  source-language expert contributed to each token; the sources' order is in
  ``assets.extra/man_tf.json``).
* ``tag_tokens``: the same from pre-tokenized input: ``tokens`` (string
  ``[batch, time]``, padded) + ``lengths`` + ``language``; the ids are the
  ones training used, so scoring CoNLL files through it matches
  ``man-tf-evaluate``.

Tokenization and lookups: :class:`man_tf.export.text_encoder.TextEncoder`.
Empty or whitespace-only text gives ``lengths`` 0 and empty rows.
"""

import tensorflow as tf

from man_tf.export.text_encoder import TextEncoder
from man_tf.layers.bilstm import use_fused_inference


class TaggerServing:
    """Serving functions around a trained MAN-MoE tagger."""

    def __init__(self, model, words, chars, tags, languages, max_chars, tokenizer="conll",
                 features=None):
        self.model = model
        # The BiLSTMs as one fused op per direction (same outputs, faster).
        use_fused_inference(model)
        # Raw text is cut as the CoNLL training files are (U.S., EU-Kommission
        # whole; punctuation split off), not at every change of script
        # ("unicode_script", kept for comparison: benchmarks/serving_tokens.py).
        self.encoder = TextEncoder(words, chars, languages, max_chars, tokenizer=tokenizer,
                                   features=features)
        self.tag_strings = tf.constant(tags.tags)

    def resources(self):
        return self.encoder.resources()

    def _tag(self, tokens, language):
        """``tokens``: ragged string ``[batch, (time)]``; ``language``: ``[batch]``."""
        inputs = self.encoder.encode(tokens, language)
        outputs = self.model(inputs, training=False)
        mask = outputs["mask"]
        probs = tf.exp(tf.cast(outputs["log_probs"], tf.float32))
        # The decoding evaluation uses (BIO-valid Viterbi by default).
        ids = self.model.head.decode(outputs)
        tags = tf.where(mask, tf.gather(self.tag_strings, ids), "")
        scores = tf.where(mask, tf.gather(probs, ids, batch_dims=2), 0.0)
        gate = tf.nn.softmax(tf.cast(outputs["gate_logits"], tf.float32), axis=-1)
        gate = gate * tf.cast(mask, tf.float32)[..., None]
        shape = tf.shape(inputs["words"])
        return {"tokens": tokens.to_tensor(default_value="", shape=shape), "tags": tags,
                "tag_scores": scores, "lengths": inputs["lengths"], "expert_weights": gate}

    def tag_text(self, text, language):
        return self._tag(self.encoder.tokenize(text), language)

    def tag_tokens(self, tokens, lengths, language):
        return self._tag(tf.RaggedTensor.from_tensor(tokens, lengths=lengths), language)

    def endpoints(self):
        """``(name, function, input signature)`` for each signature."""
        return [("serving_default", self.tag_text,
                 [tf.TensorSpec([None], tf.string, name="text"),
                  tf.TensorSpec([None], tf.string, name="language")]),
                ("tag_tokens", self.tag_tokens,
                 [tf.TensorSpec([None, None], tf.string, name="tokens"),
                  tf.TensorSpec([None], tf.int32, name="lengths"),
                  tf.TensorSpec([None], tf.string, name="language")])]


def serving(trained, features):
    """The serving module of a trained tagger (``workdir.Trained``) and its
    export metadata; ``features``: the encoder's serving graph, if any."""
    tags = trained.tags
    module = TaggerServing(trained.model, trained.words, trained.chars, tags, trained.languages,
                           trained.config.data.max_chars, features=features)
    return module, {
        "tags": tags.tags,
        "signatures": {
            "serving_default": {"inputs": {"text": "string [batch]",
                                           "language": "string [batch]"}},
            "tag_tokens": {"inputs": {"tokens": "string [batch, time]",
                                      "lengths": "int32 [batch]",
                                      "language": "string [batch]"}},
            "outputs": {"tokens": "string [batch, time]", "tags": "string [batch, time]",
                        "tag_scores": "float32 [batch, time]", "lengths": "int32 [batch]",
                        "expert_weights": "float32 [batch, time, expert_languages]"}}}
