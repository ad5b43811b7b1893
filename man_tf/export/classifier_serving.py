"""The classifier's serving graph: raw text + language -> label, probabilities, experts.

``serving_default``: ``text`` (string ``[batch]``) + ``language`` (string
``[batch]``) -> ``label`` (string ``[batch]``), ``probabilities`` (float
``[batch, classes]``, classes in ``assets.extra/man_tf.json``), ``lengths``
(tokens read, int32 ``[batch]``, at most the training ``max_length``) and
``expert_weights`` (float ``[batch, sources]``: C's gate, how much each
source-language expert decided the label).
"""

import tensorflow as tf

from man_tf.export.text_encoder import TextEncoder
from man_tf.layers.bilstm import use_fused_inference


class ClassifierServing:
    """Serving functions around a trained MAN-MoE classifier."""

    def __init__(self, model, words, chars, classes, languages, max_chars, max_length,
                 features=None):
        self.model = model
        # The BiLSTMs as one fused op per direction (same outputs, faster).
        use_fused_inference(model)
        self.encoder = TextEncoder(words, chars, languages, max_chars, max_length,
                                   features=features)
        self.class_names = tf.constant(list(classes.tags))

    def resources(self):
        return self.encoder.resources()

    def classify_text(self, text, language):
        inputs = self.encoder.encode(self.encoder.tokenize(text), language)
        outputs = self.model(inputs, training=False)
        probabilities = tf.exp(tf.cast(outputs["log_probs"], tf.float32))
        return {"label": tf.gather(self.class_names, tf.argmax(probabilities, axis=-1)),
                "probabilities": probabilities, "lengths": inputs["lengths"],
                "expert_weights": tf.nn.softmax(tf.cast(outputs["gate_logits"], tf.float32), -1)}

    def endpoints(self):
        """``(name, function, input signature)`` for each signature."""
        return [("serving_default", self.classify_text,
                 [tf.TensorSpec([None], tf.string, name="text"),
                  tf.TensorSpec([None], tf.string, name="language")])]


def serving(trained, features):
    """The serving module of a trained classifier (``workdir.Trained``) and
    its export metadata; ``features``: the encoder's serving graph, if any."""
    config, classes = trained.config, trained.tags
    module = ClassifierServing(trained.model, trained.words, trained.chars, classes,
                               trained.languages, config.data.max_chars, config.data.max_length,
                               features=features)
    return module, {
        "classes": classes.tags, "max_length": config.data.max_length,
        "signatures": {
            "serving_default": {"inputs": {"text": "string [batch]",
                                           "language": "string [batch]"}},
            "outputs": {"label": "string [batch]", "probabilities": "float32 [batch, classes]",
                        "lengths": "int32 [batch]",
                        "expert_weights": "float32 [batch, expert_languages]"}}}
