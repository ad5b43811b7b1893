"""MAN-MoE text classifier (Chen et al. 2019, the cross-lingual sentiment variant).

The tagger's backbone and adversary; what differs is the head, per sentence:

    F_s sequence -> attention pooling                          -> shared  [B, Hs]
    F_p BiLSTM sequence -> attention pooling -> MoE (tanh)      -> private [B, Hp]
    C = MoE over source experts on [shared; private]            -> log p(label) [B, K]

D still reads the F_s *sequence* (the CNN discriminator pools it itself), so
the adversarial training step is the tagger's, unchanged.
"""

import keras

from man_tf.models.man_moe import ManMoeModel


class ManMoeClassifier(ManMoeModel):
    """:class:`ManMoeModel` per sentence. ``call`` returns ``log_probs``
    ``[batch, classes]``, ``gate_logits`` ``[batch, experts]`` (C's gate),
    ``private_gate_logits`` ``[batch, sources]`` (F_p's, absent without F_p),
    ``attention`` ``[batch, time]`` (F_s pooling weights) and ``mask``
    (``[batch]``, all true: one unit per sentence)."""

    level = "sentence"
    label_key = "label"

    def __init__(self, num_classes, num_sources, expert_hidden=128, classifier_hidden=None,
                 num_languages=None, **kwargs):
        # C's layer keeps its first name ("class_experts"): checkpoint keys.
        super().__init__(num_classes, num_sources, num_languages or num_sources + 1,
                         expert_hidden=expert_hidden, predictor_hidden=classifier_hidden,
                         predictor_name="class_experts", **kwargs)
        self.num_classes = int(num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "classifier_hidden": self.head.predictor_hidden}


keras.saving.register_keras_serializable("man_tf")(ManMoeClassifier)
