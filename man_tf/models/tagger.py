"""MAN-MoE sequence tagger (Chen et al. 2019, section 3, tagging variant).

    embeddings -> F_s (BiLSTM)                                  -> shared  [B,T,Hs]
    embeddings -> F_p = BiLSTM + MoE over source experts (tanh) -> private [B,T,Hp]
    C = MoE over source experts on [shared; private], per token -> log p(tag)
    D = language discriminator on shared, behind gradient reversal

Both MoEs have a gate whose targets in training are the source language of
the sentence (the gate losses). On a target-language sentence the gates
decide how much of each source expert to use. No CRF: tags are predicted per
token, as in the authors' code.
"""

import keras
import tensorflow as tf

from man_tf.models.encoder import ManMoeEncoder


class ManMoeTagger(ManMoeEncoder):
    """``call`` returns a dict:

    * ``log_probs`` ``[batch, time, num_tags]``: log of the gate-weighted
      mixture of the experts' tag distributions.
    * ``gate_logits`` ``[batch, time, num_experts]``: C's gate.
    * ``private_gate_logits`` ``[batch, time, num_sources]``: F_p's gate
      (absent without F_p).
    * ``mask`` ``[batch, time]``.

    ``use_predictor_moe=False`` makes C a single MLP (one "expert", gate constant);
    with ``use_private=False`` and λ = 0 this is the concatenated-sources
    BiLSTM baseline.
    """

    label_key = "tags"  # the batch field the trainer's task loss reads

    def __init__(self, num_tags, num_sources, expert_hidden=200, tagger_hidden=None,
                 private_moe_layers=2, predictor_layers=1, mlp_dropout=0.5, use_predictor_moe=True,
                 **encoder_kwargs):
        super().__init__(**encoder_kwargs)
        self.num_tags = int(num_tags)
        self.num_sources = int(num_sources)
        self.use_predictor_moe = bool(use_predictor_moe)
        tagger_hidden = tagger_hidden or self.feature_dim
        self._tagger_config = dict(num_tags=self.num_tags, num_sources=self.num_sources,
                                   expert_hidden=expert_hidden, tagger_hidden=tagger_hidden,
                                   private_moe_layers=private_moe_layers,
                                   predictor_layers=predictor_layers, mlp_dropout=mlp_dropout,
                                   use_predictor_moe=self.use_predictor_moe)
        private, self.tag_experts = self._mixtures_of_experts(
            self.num_sources, self.num_tags, expert_hidden, private_moe_layers, tagger_hidden,
            predictor_layers, mlp_dropout, self.use_predictor_moe, name="tag_experts")
        if private is not None:
            self.private_experts = private

    def task_outputs(self, embeddings, lengths, mask, shared, training=False):
        features = [shared]
        outputs = {"mask": mask}
        if self.use_private:
            private = self.private_encoder(embeddings, lengths, training=training)
            private, outputs["private_gate_logits"] = self.private_experts(private, training=training)
            features.append(private)
        features = tf.concat(features, axis=-1) if len(features) > 1 else features[0]
        outputs["log_probs"], outputs["gate_logits"] = self.tag_experts(features, training=training)
        return outputs

    def get_config(self):
        return {**super().get_config(), **self._tagger_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


keras.saving.register_keras_serializable("man_tf")(ManMoeTagger)
