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

from man_tf.models.man_moe import ManMoeModel


class ManMoeTagger(ManMoeModel):
    """:class:`ManMoeModel` per token. ``call`` returns a dict:

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

    level = "token"
    label_key = "tags"  # the batch field the trainer's task loss reads

    def __init__(self, num_tags, num_sources, expert_hidden=200, tagger_hidden=None,
                 num_languages=None, **kwargs):
        # C's layer keeps its first name ("tag_experts"): checkpoint keys.
        super().__init__(num_tags, num_sources, num_languages or num_sources + 1,
                         expert_hidden=expert_hidden, predictor_hidden=tagger_hidden,
                         predictor_name="tag_experts", **kwargs)
        self.num_tags = int(num_tags)

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags,
                "tagger_hidden": self.head.predictor_hidden}


keras.saving.register_keras_serializable("man_tf")(ManMoeTagger)
