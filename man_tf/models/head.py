"""MAN-MoE's head: F_p's experts and the predictor C, per token or per sentence.

    TokenHead (tagging):
        F_p states -> MoE over source experts (tanh)           -> private [B, T, Hp]
        C = MoE over source experts on [shared; private]       -> log p(tag) [B, T, K]
    SentenceHead (classification):
        F_s states -> attention pooling                        -> shared  [B, Hs]
        F_p states -> attention pooling -> MoE (tanh)          -> private [B, Hp]
        C = MoE over source experts on [shared; private]       -> log p(label) [B, K]

Both mixtures have a gate whose training target is the sentence's source
language (the gate losses); on a target-language input the gates decide how
much of each source expert to use. ``use_predictor_moe=False`` makes C one MLP.
"""

import keras
import tensorflow as tf

from man_tf.layers import AttentionPooling, MixtureOfExperts, crf


class MoeHead(keras.layers.Layer):
    """``call(shared, private, lengths, mask)`` -> ``{"log_probs",
    "gate_logits", "mask"}`` plus ``"private_gate_logits"`` with F_p;
    ``mask`` is the units' mask (tokens, or all true: one unit per
    sentence). ``private`` is F_p's BiLSTM states (None without F_p).

    ``shared_dim`` / ``private_dim`` are the backbone's F_s and F_p sizes
    (``private_dim=0``: no F_p), ``num_sources`` the number of experts,
    ``labels`` the label names (tags or classes, in id order); the rest are
    ``config.model`` fields.
    ``predictor_hidden=0``: C's hidden layers are as wide as its input.
    ``real_units_only``: a training step runs the experts on the real tokens
    only (their outputs at padding are zeros, which every loss masks out;
    evaluation and serving run every position); False under XLA, whose
    shapes must be static.
    """

    label_key = None  # the batch field holding this head's labels

    def __init__(self, *, labels, num_sources, shared_dim, private_dim, expert_hidden,
                 expert_dropout, private_moe_layers, predictor_hidden, predictor_layers,
                 mlp_dropout, use_predictor_moe, predictor_mixture, real_units_only=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.real_units_only = bool(real_units_only)
        self.labels, self.num_sources = tuple(map(str, labels)), int(num_sources)
        self.num_outputs = len(self.labels)
        self.shared_dim, self.private_dim = int(shared_dim), int(private_dim)
        self.expert_hidden, self.expert_dropout = int(expert_hidden), float(expert_dropout)
        self.private_moe_layers = int(private_moe_layers)
        self.predictor_hidden, self.predictor_layers = int(predictor_hidden), int(predictor_layers)
        self.mlp_dropout = float(mlp_dropout)
        self.use_predictor_moe, self.predictor_mixture = bool(use_predictor_moe), predictor_mixture
        self.feature_dim = self.shared_dim + self.private_dim
        self.private_experts = None
        if self.private_dim:
            self.private_experts = MixtureOfExperts(
                self.num_sources, self.private_dim,
                hidden_units=(self.expert_hidden,) * (self.private_moe_layers - 1),
                output="features", output_activation="tanh", dropout=self.expert_dropout,
                final_dropout=True, name="private_experts")
        self.predictor = MixtureOfExperts(
            self.num_sources if self.use_predictor_moe else 1, self.num_outputs,
            hidden_units=(self.predictor_hidden or self.feature_dim,) * self.predictor_layers,
            output="log_probs", dropout=self.mlp_dropout, final_dropout=False,
            mixture=self.predictor_mixture, name="predictor")

    def build(self, input_shape=None):
        if self.private_experts is not None:
            self.private_experts.build(self.unit_shape(self.private_dim))
        self.predictor.build(self.unit_shape(self.feature_dim))
        self.built = True

    def unit_shape(self, dim):
        """The shape of one unit's features (a token's or a sentence's)."""
        raise NotImplementedError

    def pool(self, shared, private, lengths, mask, outputs):
        """-> (shared, private) per unit; sets ``outputs["mask"]``."""
        raise NotImplementedError

    # Whether the units are tokens (a padded batch's units are then mostly
    # padding) or sentences (every unit real).
    per_token_units = False

    def call(self, shared, private, lengths, mask, training=False):
        outputs = {}
        shared, private = self.pool(shared, private, lengths, mask, outputs)
        units = outputs["mask"] if (training and self.real_units_only
                                    and self.per_token_units) else None
        features = shared
        if self.private_experts is not None:
            private, outputs["private_gate_logits"] = self.private_experts(
                private, training=training, real=units)
            features = tf.concat([shared, private], axis=-1)
        outputs["log_probs"], outputs["gate_logits"] = self.predictor(
            features, training=training, real=units)
        return outputs

    def cut_time(self, outputs, time):
        """``call``'s outputs with their time axes cut to ``time`` positions."""
        raise NotImplementedError

    def unit_losses(self, outputs, labels):
        """The task loss of each unit (token or sentence): ``[batch(, time)]``,
        averaged per language over real units by the trainer."""
        labels = tf.cast(labels, tf.int32)
        return -tf.gather(outputs["log_probs"], labels, batch_dims=labels.shape.rank)

    def decode(self, outputs):
        """The predicted label ids of each unit: int32 ``[batch(, time)]``."""
        return tf.argmax(outputs["log_probs"], axis=-1, output_type=tf.int32)

    def get_config(self):
        return {**super().get_config(), "labels": self.labels,
                "num_sources": self.num_sources, "shared_dim": self.shared_dim,
                "private_dim": self.private_dim, "expert_hidden": self.expert_hidden,
                "expert_dropout": self.expert_dropout,
                "private_moe_layers": self.private_moe_layers,
                "predictor_hidden": self.predictor_hidden,
                "predictor_layers": self.predictor_layers, "mlp_dropout": self.mlp_dropout,
                "use_predictor_moe": self.use_predictor_moe,
                "predictor_mixture": self.predictor_mixture,
                "real_units_only": self.real_units_only}


@keras.saving.register_keras_serializable(package="man_tf")
class TokenHead(MoeHead):
    """A label per token (tagging): ``log_probs`` ``[batch, time, labels]``,
    gates ``[batch, time, experts]``, ``mask`` the token mask.

    ``output_layer``: "softmax" (each token's tag on its own; loss: each
    token's negative log-likelihood) or "crf" (a linear-chain CRF whose
    emissions are C's mixed log-probabilities, with learned transition,
    start and end scores; loss: the sentence's negative log-likelihood,
    shared out over its tokens). ``bio_decoding``: decode the best
    BIO-valid sequence (Viterbi under the constraints of
    :func:`man_tf.layers.crf.bio_constraints`); False: argmax per token
    (softmax) or unconstrained Viterbi (crf).
    """

    label_key = "tags"
    OUTPUT_LAYERS = ("softmax", "crf")
    per_token_units = True

    def __init__(self, *, output_layer, bio_decoding, **kwargs):
        super().__init__(**kwargs)
        if output_layer not in self.OUTPUT_LAYERS:
            raise ValueError(f"output_layer={output_layer!r}: expected one of "
                             f"{', '.join(self.OUTPUT_LAYERS)}")
        self.output_layer, self.bio_decoding = output_layer, bool(bio_decoding)
        allowed, allowed_start = crf.bio_constraints(self.labels)
        self._constraints = crf.constraint_scores(allowed, allowed_start)

    def build(self, input_shape=None):
        if self.output_layer == "crf":
            k = self.num_outputs
            # float32 whatever the policy: the forward algorithm sums many.
            self.transitions = self.add_weight(name="transitions", shape=(k, k),
                                               initializer="zeros", autocast=False)
            self.start_scores = self.add_weight(name="start_scores", shape=(k,),
                                                initializer="zeros", autocast=False)
            self.end_scores = self.add_weight(name="end_scores", shape=(k,),
                                              initializer="zeros", autocast=False)
        super().build(input_shape)

    def unit_shape(self, dim):
        return (None, None, dim)

    def pool(self, shared, private, lengths, mask, outputs):
        outputs["mask"] = mask
        return shared, private

    def cut_time(self, outputs, time):
        return {key: value[:, :time] for key, value in outputs.items()}

    def _chain(self):
        """(transitions, start, end) float32: the CRF's learned scores (or
        none), plus the BIO constraints when decoding with them."""
        k = self.num_outputs
        if self.output_layer == "crf":
            chain = [tf.convert_to_tensor(w) for w in
                     (self.transitions, self.start_scores, self.end_scores)]
        else:
            chain = [tf.zeros([k, k]), tf.zeros([k]), tf.zeros([k])]
        if self.bio_decoding:
            chain[0] += self._constraints[0]
            chain[1] += self._constraints[1]
        return chain

    def unit_losses(self, outputs, labels):
        if self.output_layer == "softmax":
            return super().unit_losses(outputs, labels)
        mask = outputs["mask"]
        transitions, start, end = (tf.convert_to_tensor(w) for w in
                                   (self.transitions, self.start_scores, self.end_scores))
        # Trained without the constraints: a piece of a split sentence may
        # start inside an entity (I-X first), which they would score -inf.
        nll = -crf.crf_log_likelihood(outputs["log_probs"], labels, mask, transitions, start,
                                      end)
        lengths = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1, keepdims=True)
        per_token = nll[:, None] / tf.maximum(lengths, 1.0)
        return tf.broadcast_to(per_token, tf.shape(mask))

    def decode(self, outputs):
        if self.output_layer == "softmax" and not self.bio_decoding:
            return super().decode(outputs)
        path, _ = crf.viterbi_decode(outputs["log_probs"], outputs["mask"], *self._chain())
        return path

    def get_config(self):
        return {**super().get_config(), "output_layer": self.output_layer,
                "bio_decoding": self.bio_decoding}


@keras.saving.register_keras_serializable(package="man_tf")
class SentenceHead(MoeHead):
    """A label per sentence (classification): F_s and F_p pooled by
    attention first; ``log_probs`` ``[batch, labels]``, gates ``[batch,
    experts]``, ``attention`` ``[batch, time]`` (F_s's pooling weights),
    ``mask`` ``[batch]`` all true."""

    label_key = "label"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shared_pooling = AttentionPooling(name="shared_pooling")
        self.private_pooling = (AttentionPooling(name="private_pooling")
                                if self.private_dim else None)

    def build(self, input_shape=None):
        self.shared_pooling.build((None, None, self.shared_dim))
        if self.private_pooling is not None:
            self.private_pooling.build((None, None, self.private_dim))
        super().build(input_shape)

    def unit_shape(self, dim):
        return (None, dim)

    def cut_time(self, outputs, time):
        return dict(outputs, attention=outputs["attention"][:, :time])

    def pool(self, shared, private, lengths, mask, outputs):
        shared, outputs["attention"] = self.shared_pooling(shared, lengths)
        outputs["mask"] = tf.ones_like(lengths, tf.bool)
        if self.private_pooling is not None:
            private, _ = self.private_pooling(private, lengths)
        return shared, private
