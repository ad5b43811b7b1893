"""MAN-MoE (Chen et al. 2019) composed: backbone, MoE head, adversary.

    inputs -> Backbone -> embeddings, F_s states ("shared"), F_p's BiLSTM states
    head (TokenHead / SentenceHead) -> F_p's experts, C -> log p(label), gates
    LanguageAdversary: F_s states -> gradient reversal (λ) -> D -> language logits

A tagger is this model with a :class:`TokenHead`, a classifier with a
:class:`SentenceHead`; :func:`man_tf.models.building.build_model` makes
either from a config.
"""

import keras
import tensorflow as tf

from man_tf.models.head import MoeHead

def _concat_batches(a, b):
    """Stacks two batches' ``words``/``chars``/``lengths`` (and
    ``encoder_features`` or ``tokens``) rows, padding to the longer sentence and word."""
    time = tf.maximum(tf.shape(a["words"])[1], tf.shape(b["words"])[1])
    chars = tf.maximum(tf.shape(a["chars"])[2], tf.shape(b["chars"])[2])

    def pad(batch):
        words, c = batch["words"], batch["chars"]
        return (tf.pad(words, [[0, 0], [0, time - tf.shape(words)[1]]]),
                tf.pad(c, [[0, 0], [0, time - tf.shape(c)[1]], [0, chars - tf.shape(c)[2]]]))

    (wa, ca), (wb, cb) = pad(a), pad(b)
    out = {"words": tf.concat([wa, wb], 0), "chars": tf.concat([ca, cb], 0),
           "lengths": tf.concat([a["lengths"], b["lengths"]], 0)}
    if "encoder_features" in a:
        fa, fb = (tf.pad(x["encoder_features"],
                         [[0, 0], [0, time - tf.shape(x["encoder_features"])[1]], [0, 0], [0, 0]])
                  for x in (a, b))
        out["encoder_features"] = tf.concat([fa, fb], 0)
    if "tokens" in a:
        ta, tb = (tf.pad(x["tokens"], [[0, 0], [0, time - tf.shape(x["tokens"])[1]]])
                  for x in (a, b))
        out["tokens"] = tf.concat([ta, tb], 0)
        # A fine-tuned encoder reads some languages' rows as one text.
        out["language"] = tf.concat([a["language"], b["language"]], 0)
    return out


@keras.saving.register_keras_serializable(package="man_tf")
class ManMoeModel(keras.Model):
    """``backbone`` (a :class:`Backbone`) + ``head`` (a :class:`TokenHead`
    or :class:`SentenceHead`) + ``adversary`` (a :class:`LanguageAdversary`);
    ``call`` returns the head's dict (:class:`MoeHead`). Every variable is
    created by ``build`` (parts in that order), before any step.
    """

    def __init__(self, backbone, head, adversary, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(head, MoeHead):
            raise TypeError(f"head must be a TokenHead or SentenceHead, got {type(head).__name__}")
        self.backbone, self.head, self.adversary = backbone, head, adversary

    @property
    def label_key(self):
        """The batch field the task loss reads (``"tags"`` or ``"label"``)."""
        return self.head.label_key

    @property
    def num_sources(self):
        return self.head.num_sources

    def build(self, input_shape=None):
        """Every variable, λ's included (parts built already, e.g. by
        deserialization, are kept)."""
        for part in (self.backbone, self.head, self.adversary):
            if not part.built:
                part.build()
        self.built = True

    @property
    def feature_dim(self):
        """Size of ``[F_s; F_p]``, the input of the predictor C."""
        return self.head.feature_dim

    def call(self, inputs, training=False):
        x, mask = self.backbone.embed(inputs, training)
        shared = self.backbone.shared(x, inputs["lengths"], training)
        return self._head(x, inputs["lengths"], mask, shared, training)

    def _head(self, embeddings, lengths, mask, shared, training):
        private = self.backbone.private(embeddings, lengths, training) \
            if self.backbone.use_private else None
        return self.head(shared, private, lengths, mask, training=training)

    def call_with_adversary(self, labeled, unlabeled, training=False):
        """``call(labeled)`` plus D's logits on ``unlabeled`` behind the
        gradient reversal, with the embeddings and F_s run *once* over both
        batches stacked (one char-CNN pass, one BiLSTM loop).

        Returns ``call``'s dict plus ``adversarial_logits`` and
        ``adversarial_mask`` (the unlabeled batch's token mask).
        """
        n, time = tf.shape(labeled["words"])[0], tf.shape(labeled["words"])[1]
        u_time = tf.shape(unlabeled["words"])[1]
        both = _concat_batches(labeled, unlabeled)
        x, mask = self.backbone.embed(both, training)
        shared = self.backbone.shared(x, both["lengths"], training)
        # Rows split, not sliced (a slice's gradient is a zero-filled copy of
        # the whole input); the head runs on the stacked batch's time axis
        # (F_p packs its rows, the experts run on real tokens) and its
        # outputs are cut to the labeled batch's.
        rows = tf.stack([n, tf.shape(x)[0] - n])
        x_labeled, _ = tf.split(x, rows, num=2)
        shared_labeled, shared_unlabeled = tf.split(shared, rows, num=2)
        outputs = self.head.cut_time(
            self._head(x_labeled, labeled["lengths"], mask[:n], shared_labeled, training), time)
        outputs["adversarial_logits"] = self.adversary(
            shared_unlabeled[:, :u_time], unlabeled["lengths"], training=training, reverse=True)
        outputs["adversarial_mask"] = mask[n:, :u_time]
        return outputs

    def shared_features(self, inputs, training=False):
        """F_s: -> (``[batch, time, shared_hidden]``, mask)."""
        x, mask = self.backbone.embed(inputs, training)
        return self.backbone.shared(x, inputs["lengths"], training), mask

    def discriminate(self, features, lengths, training=False, reverse=False):
        """D on F_s features; ``reverse`` puts the gradient reversal (λ) in front."""
        return self.adversary(features, lengths, training=training, reverse=reverse)

    @property
    def lambd(self):
        """λ: the adversary's float32 variable (a trainer reads, logs and may
        reassign it)."""
        return self.adversary.lambd

    def discriminator_variables(self):
        return self.adversary.language_discriminator.trainable_variables

    def encoder_variables(self):
        """A fine-tuned encoder's trainable variables (none when frozen)."""
        encoder = self.backbone.word_features
        return list(encoder.trainable_variables) if encoder is not None else []

    def constant_variables(self):
        """Variables that hold a file's constants, not training state (a
        fine-tuned encoder's frozen piece table): left out of checkpoints."""
        encoder = self.backbone.word_features
        return encoder.constant_variables() if encoder is not None else []

    def main_variables(self):
        """Every trainable variable except D's and a fine-tuned encoder's:
        what the main optimizer updates."""
        other = {id(v) for v in self.discriminator_variables() + self.encoder_variables()}
        return [v for v in self.trainable_variables if id(v) not in other]

    def build_all(self):
        """Builds every variable (inside a strategy scope, before any step)
        and returns the outputs on a tiny dummy batch (which losses exist)."""
        if not self.built:
            self.build()
        dummy = {"words": tf.zeros([1, 5], tf.int32), "chars": tf.ones([1, 5, 5], tf.int32),
                 "lengths": tf.constant([5], tf.int32)}
        b = self.backbone
        if b.word_features is not None:
            dummy["tokens"] = tf.fill([1, 5], "a")
            dummy["language"] = tf.zeros([1], tf.int32)
        elif b.encoder_dim:
            dummy["encoder_features"] = tf.zeros([1, 5, b.num_encoder_layers, b.encoder_dim],
                                                 tf.float16)
        return self(dummy, training=False)

    def build_from_config(self, config):
        self.build()

    def get_config(self):
        return {**super().get_config(),
                **{name: keras.saving.serialize_keras_object(getattr(self, name))
                   for name in ("backbone", "head", "adversary")}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("backbone", "head", "adversary"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)
