"""MAN-MoE (Chen et al. 2019) composed: backbone, MoE head, adversary.

    inputs -> Backbone -> embeddings, F_s states ("shared"), F_p's BiLSTM states
    MoeHead (per token or per sentence) -> F_p's experts, C -> log p(label), gates
    LanguageAdversary: F_s states -> gradient reversal (λ) -> D -> language logits

The tagger and the classifier are this model at the ``"token"`` and the
``"sentence"`` level (:mod:`man_tf.models.tagger`, :mod:`man_tf.models.classifier`).
"""

import keras
import tensorflow as tf

from man_tf.models.adversary import LanguageAdversary
from man_tf.models.backbone import Backbone
from man_tf.models.head import MoeHead

# Constructor arguments of each part (the rest are the head's or the model's).
BACKBONE_ARGUMENTS = (
    "num_words", "num_chars", "word_dim", "word_embeddings_trainable", "use_char_cnn",
    "char_embedding_dim", "char_filters", "char_kernel_sizes", "char_output_dim",
    "char_embedding_trainable", "unique_char_words", "shared_hidden", "private_hidden",
    "lstm_layers", "use_private", "dropout", "word_dropout", "word_block_starts",
    "unk_replacement", "use_words", "encoder_dim", "encoder_layers")
ADVERSARY_ARGUMENTS = (
    "discriminator", "discriminator_filters", "discriminator_kernel_sizes",
    "discriminator_hidden", "discriminator_layers", "discriminator_dropout", "lambd")


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


class ManMoeModel(keras.Model):
    """Backbone + MoE head at ``level`` + adversary; ``call`` is the head's
    dict (:class:`MoeHead`). Subclasses name the level, the batch's label
    field and their own argument names (``num_tags``, ``num_classes``).

    The parts are built in ``build`` (every variable, before any step), in
    the order the models had before they were composed (inputs and F_s,
    F_s's pooling, F_p, the experts, the adversary), so a seed draws the
    same initial weights as before and checkpoints keep their keys
    (:func:`man_tf.training.checkpoints.model_variables` drops the parts'
    names from variable paths).
    """

    level = None
    label_key = None

    def __init__(self, num_outputs, num_sources, num_languages, expert_hidden=200,
                 predictor_hidden=None, private_moe_layers=2, predictor_layers=1,
                 mlp_dropout=0.5, use_predictor_moe=True, predictor_mixture="log_probabilities",
                 predictor_name="predictor", **parts_kwargs):
        super().__init__(**{k: parts_kwargs.pop(k) for k in ("name", "dtype", "trainable")
                            if k in parts_kwargs})
        unknown = set(parts_kwargs) - set(BACKBONE_ARGUMENTS) - set(ADVERSARY_ARGUMENTS)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(unknown)}")
        self.num_sources = int(num_sources)
        self.use_predictor_moe = bool(use_predictor_moe)
        self.backbone = Backbone(**{k: v for k, v in parts_kwargs.items()
                                    if k in BACKBONE_ARGUMENTS}, name="backbone")
        b = self.backbone
        self.adversary = LanguageAdversary(
            num_languages, b.shared_hidden, name="adversary",
            **{k: v for k, v in parts_kwargs.items() if k in ADVERSARY_ARGUMENTS})
        dropout = parts_kwargs.get("dropout", 0.5)
        self.head = MoeHead(
            self.level, num_outputs, self.num_sources, b.shared_hidden, b.private_hidden,
            use_private=b.use_private, expert_hidden=expert_hidden,
            private_moe_layers=private_moe_layers, predictor_hidden=predictor_hidden,
            predictor_layers=predictor_layers, mlp_dropout=mlp_dropout, dropout=dropout,
            use_predictor_moe=use_predictor_moe, predictor_mixture=predictor_mixture,
            predictor_name=predictor_name, name="head")
        self._parts_config = dict(parts_kwargs, num_sources=self.num_sources,
                                  num_languages=num_languages, expert_hidden=expert_hidden,
                                  private_moe_layers=private_moe_layers,
                                  predictor_layers=predictor_layers, mlp_dropout=mlp_dropout,
                                  use_predictor_moe=self.use_predictor_moe,
                                  predictor_mixture=predictor_mixture)
        for key in ("char_kernel_sizes", "discriminator_kernel_sizes", "word_block_starts"):
            if key in self._parts_config:
                self._parts_config[key] = list(self._parts_config[key])

    def build(self, input_shape=None):
        """Every variable, λ's included (see the class docstring for the order)."""
        self.backbone.build_shared()
        self.head.build_pooling()
        self.backbone.build_private()
        self.backbone.built = True
        self.head.build()
        self.adversary.build()
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
        outputs = self._head(x[:n, :time], labeled["lengths"], mask[:n, :time],
                             shared[:n, :time], training)
        outputs["adversarial_logits"] = self.adversary(
            shared[n:, :u_time], unlabeled["lengths"], training=training, reverse=True)
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
        encoder = self.backbone.trainable_encoder
        return list(encoder.trainable_variables) if encoder is not None else []

    def constant_variables(self):
        """Variables that hold a file's constants, not training state (a
        fine-tuned encoder's frozen piece table): left out of checkpoints."""
        encoder = self.backbone.trainable_encoder
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
        if b.trainable_encoder is not None:
            dummy["tokens"] = tf.fill([1, 5], "a")
            dummy["language"] = tf.zeros([1], tf.int32)
        elif b.encoder_dim:
            dummy["encoder_features"] = tf.zeros([1, 5, b.encoder_layers, b.encoder_dim],
                                                 tf.float16)
        return self(dummy, training=False)

    def get_config(self):
        return dict(self._parts_config)

    @classmethod
    def from_config(cls, config):
        return cls(**config)
