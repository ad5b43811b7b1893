"""MAN-MoE text classifier (Chen et al. 2019, the cross-lingual sentiment variant).

Built from the same encoder as the tagger (embeddings, char-CNN, F_s, F_p's
BiLSTM, D behind gradient reversal); what differs is per-sentence:

    F_s sequence -> attention pooling                          -> shared  [B, Hs]
    F_p BiLSTM sequence -> attention pooling -> MoE (tanh)      -> private [B, Hp]
    C = MoE over source experts on [shared; private]            -> log p(label) [B, K]

D still reads the F_s *sequence* (the CNN discriminator pools it itself), so
the adversarial training step is the tagger's, unchanged.
"""

import keras
import tensorflow as tf

from man_tf.layers import AttentionPooling
from man_tf.models.encoder import ManMoeEncoder


class ManMoeClassifier(ManMoeEncoder):
    """``call`` returns ``log_probs`` ``[batch, classes]``, ``gate_logits``
    ``[batch, experts]`` (C's gate), ``private_gate_logits`` ``[batch,
    sources]`` (F_p's, absent without F_p), ``attention`` ``[batch, time]``
    (F_s pooling weights) and ``mask`` (``[batch]``, all true: one unit per
    sentence)."""

    label_key = "label"

    def __init__(self, num_classes, num_sources, expert_hidden=128, classifier_hidden=None,
                 private_moe_layers=2, predictor_layers=1, mlp_dropout=0.5, use_predictor_moe=True,
                 **encoder_kwargs):
        super().__init__(**encoder_kwargs)
        self.num_classes = int(num_classes)
        self.num_sources = int(num_sources)
        self.use_predictor_moe = bool(use_predictor_moe)
        classifier_hidden = classifier_hidden or self.feature_dim
        self._classifier_config = dict(
            num_classes=self.num_classes, num_sources=self.num_sources,
            expert_hidden=expert_hidden, classifier_hidden=classifier_hidden,
            private_moe_layers=private_moe_layers, predictor_layers=predictor_layers,
            mlp_dropout=mlp_dropout, use_predictor_moe=self.use_predictor_moe)
        self.shared_pooling = AttentionPooling(name="shared_pooling")
        private, self.class_experts = self._mixtures_of_experts(
            self.num_sources, self.num_classes, expert_hidden, private_moe_layers,
            classifier_hidden, predictor_layers, mlp_dropout, self.use_predictor_moe,
            name="class_experts")
        if private is not None:
            self.private_pooling = AttentionPooling(name="private_pooling")
            self.private_experts = private

    def task_outputs(self, embeddings, lengths, mask, shared, training=False):
        pooled, attention = self.shared_pooling(shared, lengths)
        features = [pooled]
        outputs = {"attention": attention, "mask": tf.ones_like(lengths, tf.bool)}
        if self.use_private:
            private = self.private_encoder(embeddings, lengths, training=training)
            private, _ = self.private_pooling(private, lengths)
            private, outputs["private_gate_logits"] = self.private_experts(private,
                                                                           training=training)
            features.append(private)
        features = tf.concat(features, axis=-1) if len(features) > 1 else features[0]
        outputs["log_probs"], outputs["gate_logits"] = self.class_experts(features,
                                                                          training=training)
        return outputs

    def get_config(self):
        return {**super().get_config(), **self._classifier_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


keras.saving.register_keras_serializable("man_tf")(ManMoeClassifier)
