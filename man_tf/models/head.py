"""MAN-MoE's head: F_p's experts and the predictor C, per token or per sentence.

    level "token" (tagging):
        F_p states -> MoE over source experts (tanh)           -> private [B, T, Hp]
        C = MoE over source experts on [shared; private]       -> log p(tag) [B, T, K]
    level "sentence" (classification):
        F_s states -> attention pooling                        -> shared  [B, Hs]
        F_p states -> attention pooling -> MoE (tanh)          -> private [B, Hp]
        C = MoE over source experts on [shared; private]       -> log p(label) [B, K]

Both mixtures have a gate whose training target is the sentence's source
language (the gate losses); on a target-language input the gates decide how
much of each source expert to use. ``use_moe=False`` makes C one MLP.
"""

import keras
import tensorflow as tf

from man_tf.layers import AttentionPooling, MixtureOfExperts
from man_tf.models.backbone import build_once

LEVELS = ("token", "sentence")


class MoeHead(keras.layers.Layer):
    """``call(shared, private, lengths, mask)`` -> ``{"log_probs",
    "gate_logits", "mask"}`` plus ``"private_gate_logits"`` with F_p and, per
    sentence, ``"attention"`` (F_s pooling weights); ``mask`` is the units'
    mask (tokens, or all true: one unit per sentence). ``private`` is F_p's
    BiLSTM states (None without F_p)."""

    def __init__(self, level, num_outputs, num_sources, shared_hidden, private_hidden,
                 use_private=True, expert_hidden=200, private_moe_layers=2,
                 predictor_hidden=None, predictor_layers=1, mlp_dropout=0.5, dropout=0.5,
                 use_predictor_moe=True, predictor_mixture="log_probabilities",
                 predictor_name="predictor", **kwargs):
        super().__init__(**kwargs)
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        self.level = level
        self.use_private = bool(use_private)
        self.feature_dim = int(shared_hidden) + (int(private_hidden) if use_private else 0)
        self.shared_hidden, self.private_hidden = int(shared_hidden), int(private_hidden)
        self.predictor_hidden = int(predictor_hidden or self.feature_dim)
        # Built in the order of the models before this head existed, so a
        # seed gives the same initial weights (see BUILD_NOTES).
        if level == "sentence":
            self.shared_pooling = AttentionPooling(name="shared_pooling")
        private = None
        if self.use_private:
            private = MixtureOfExperts(
                num_sources, self.private_hidden,
                hidden_units=(expert_hidden,) * (private_moe_layers - 1), output="features",
                output_activation="tanh", dropout=dropout, final_dropout=True,
                name="private_experts")
        self.predictor = MixtureOfExperts(
            num_sources if use_predictor_moe else 1, num_outputs,
            hidden_units=(self.predictor_hidden,) * predictor_layers, output="log_probs",
            dropout=mlp_dropout, final_dropout=False, mixture=predictor_mixture,
            name=predictor_name)
        if self.use_private:
            if level == "sentence":
                self.private_pooling = AttentionPooling(name="private_pooling")
            self.private_experts = private

    def build(self, input_shape=None):
        self.build_pooling()
        if self.use_private:
            if self.level == "sentence":
                build_once(self.private_pooling, (None, None, self.private_hidden))
                build_once(self.private_experts, (None, self.private_hidden))
            else:
                build_once(self.private_experts, (None, None, self.private_hidden))
        build_once(self.predictor, (None, self.feature_dim))
        self.built = True

    def build_pooling(self):
        """F_s's attention pooling (sentence level; nothing per token)."""
        if self.level == "sentence":
            with keras.name_scope(self.name, caller=self):
                build_once(self.shared_pooling, (None, None, self.shared_hidden))

    def call(self, shared, private, lengths, mask, training=False):
        outputs = {}
        if self.level == "sentence":
            shared, outputs["attention"] = self.shared_pooling(shared, lengths)
            outputs["mask"] = tf.ones_like(lengths, tf.bool)
        else:
            outputs["mask"] = mask
        features = [shared]
        if self.use_private:
            if self.level == "sentence":
                private, _ = self.private_pooling(private, lengths)
            private, outputs["private_gate_logits"] = self.private_experts(private,
                                                                           training=training)
            features.append(private)
        features = tf.concat(features, axis=-1) if len(features) > 1 else features[0]
        outputs["log_probs"], outputs["gate_logits"] = self.predictor(features,
                                                                      training=training)
        return outputs
