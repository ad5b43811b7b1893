"""The parts of MAN-MoE that tagger and classifier share.

``ManMoeEncoder`` holds the input embeddings (per-language word rows + the
shared character CNN), the shared extractor F_s, the private extractor's
BiLSTM, and the language discriminator D behind a gradient reversal layer.
Task models subclass it and add their mixtures of experts (per token for
tagging, per sentence for classification).
"""

import keras
import tensorflow as tf

from man_tf.layers import (BiLSTMEncoder, CharCNN, GradientReversal, LanguageDiscriminator,
                           MixtureOfExperts, ScalarMix, WordEmbedding)


def _concat_batches(a, b):
    """Stacks two batches' ``words``/``chars``/``lengths`` (and
    ``encoder_features``) rows, padding to the longer sentence and word."""
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
    return out


class ManMoeEncoder(keras.Model):
    """Inputs: ``{"words": [batch, time], "chars": [batch, time, chars], "lengths": [batch]}``,
    and with a pretrained encoder ``"encoder_features": [batch, time, layers, dim]`` (its
    word features, mixed over layers by a learned :class:`ScalarMix`)."""

    def __init__(self, num_words, num_chars, num_languages, word_dim=300,
                 word_embeddings_trainable=True, use_char_cnn=True, char_embedding_dim=128,
                 char_filters=200, char_kernel_sizes=(3, 4, 5), char_output_dim=128,
                 char_embedding_trainable=False, unique_char_words=True,
                 shared_hidden=200, private_hidden=200, lstm_layers=2, use_private=True,
                 dropout=0.5, word_dropout=0.5, discriminator="cnn",
                 discriminator_filters=200, discriminator_kernel_sizes=(3, 4, 5),
                 discriminator_hidden=200, discriminator_layers=1, discriminator_dropout=0.5,
                 lambd=0.002, word_block_starts=(0,), unk_replacement=0.0,
                 predictor_mixture="log_probabilities", use_words=True, encoder_dim=0,
                 encoder_layers=1, **kwargs):
        super().__init__(**kwargs)
        self._encoder_config = dict(
            num_words=num_words, num_chars=num_chars, num_languages=num_languages,
            word_dim=word_dim, word_embeddings_trainable=word_embeddings_trainable,
            use_char_cnn=use_char_cnn, char_embedding_dim=char_embedding_dim,
            char_filters=char_filters, char_kernel_sizes=list(char_kernel_sizes),
            char_output_dim=char_output_dim, char_embedding_trainable=char_embedding_trainable,
            unique_char_words=unique_char_words, shared_hidden=shared_hidden,
            private_hidden=private_hidden, lstm_layers=lstm_layers, use_private=use_private,
            dropout=dropout, word_dropout=word_dropout, discriminator=discriminator,
            discriminator_filters=discriminator_filters,
            discriminator_kernel_sizes=list(discriminator_kernel_sizes),
            discriminator_hidden=discriminator_hidden, discriminator_layers=discriminator_layers,
            discriminator_dropout=discriminator_dropout, lambd=lambd,
            word_block_starts=list(word_block_starts), unk_replacement=unk_replacement,
            predictor_mixture=predictor_mixture, use_words=use_words, encoder_dim=encoder_dim,
            encoder_layers=encoder_layers)
        self.use_char_cnn = use_char_cnn
        self.use_private = use_private
        self.use_words = bool(use_words)
        self.encoder_dim = int(encoder_dim)
        self.encoder_layers = int(encoder_layers)
        if not (self.use_words or use_char_cnn or self.encoder_dim):
            raise ValueError("no input: enable word vectors, the char-CNN or an encoder")
        if self.use_words:
            self.word_embedding = WordEmbedding(num_words, word_dim,
                                                trainable=word_embeddings_trainable,
                                                block_starts=word_block_starts,
                                                unk_replacement=unk_replacement,
                                                name="word_embedding")
        self.input_dim = word_dim if self.use_words else 0
        if self.encoder_dim:
            self.encoder_mix = ScalarMix(self.encoder_layers, name="encoder_mix")
            self.input_dim += self.encoder_dim
        if use_char_cnn:
            self.char_cnn = CharCNN(num_chars, char_embedding_dim, char_filters,
                                    char_kernel_sizes, char_output_dim, dropout,
                                    char_embedding_trainable, unique_char_words, name="char_cnn")
            self.input_dim += char_output_dim
        self.shared_encoder = BiLSTMEncoder(shared_hidden, lstm_layers, dropout, word_dropout,
                                            name="shared_encoder")
        if use_private:
            self.private_encoder = BiLSTMEncoder(private_hidden, lstm_layers, dropout,
                                                 word_dropout, name="private_encoder")
        self.gradient_reversal = GradientReversal(lambd, name="gradient_reversal")
        self.language_discriminator = LanguageDiscriminator(
            num_languages, discriminator, discriminator_filters, discriminator_kernel_sizes,
            discriminator_hidden, discriminator_layers, discriminator_dropout,
            name="language_discriminator")

    def _mixtures_of_experts(self, num_sources, num_outputs, expert_hidden, private_moe_layers,
                             predictor_hidden, predictor_layers, mlp_dropout, use_moe, name):
        """F_p's experts (tanh features; ``None`` without F_p) and C's (class
        log-probabilities; one expert when ``use_moe`` is False), the same for
        tokens and for sentences."""
        private = None
        if self.use_private:
            private = MixtureOfExperts(
                num_sources, self._encoder_config["private_hidden"],
                hidden_units=(expert_hidden,) * (private_moe_layers - 1), output="features",
                output_activation="tanh", dropout=self._encoder_config["dropout"],
                final_dropout=True, name="private_experts")
        predictor = MixtureOfExperts(
            num_sources if use_moe else 1, num_outputs,
            hidden_units=(predictor_hidden,) * predictor_layers, output="log_probs",
            dropout=mlp_dropout, final_dropout=False,
            mixture=self._encoder_config["predictor_mixture"], name=name)
        return private, predictor

    def build(self, input_shape=None):
        # Sub-layers build on their first call; build_all() makes that call.
        self.built = True

    @property
    def feature_dim(self):
        """Size of ``[F_s; F_p]``, the input of the predictor C."""
        config = self._encoder_config
        return config["shared_hidden"] + (config["private_hidden"] if self.use_private else 0)

    def embed(self, inputs, training=False):
        """-> (embeddings ``[batch, time, input_dim]``, mask ``[batch, time]`` bool)."""
        words = inputs["words"]
        mask = tf.sequence_mask(inputs["lengths"], tf.shape(words)[1])
        parts = []
        if self.use_words:
            parts.append(self.word_embedding(words, training=training))
        if self.encoder_dim:
            parts.append(self.encoder_mix(inputs["encoder_features"]))
        if self.use_char_cnn:
            parts.append(self.char_cnn(inputs["chars"], mask, training=training))
        x = tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]
        return x, mask

    def call(self, inputs, training=False):
        x, mask = self.embed(inputs, training)
        shared = self.shared_encoder(x, inputs["lengths"], training=training)
        return self.task_outputs(x, inputs["lengths"], mask, shared, training)

    def task_outputs(self, embeddings, lengths, mask, shared, training=False):
        """F_p and C on top of the embeddings and F_s features; returns the
        dict ``call`` documents. Implemented by each task model."""
        raise NotImplementedError

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
        x, mask = self.embed(both, training)
        shared = self.shared_encoder(x, both["lengths"], training=training)
        outputs = self.task_outputs(x[:n, :time], labeled["lengths"], mask[:n, :time],
                                    shared[:n, :time], training)
        outputs["adversarial_logits"] = self.discriminate(
            shared[n:, :u_time], unlabeled["lengths"], training=training, reverse=True)
        outputs["adversarial_mask"] = mask[n:, :u_time]
        return outputs

    def shared_features(self, inputs, training=False):
        """F_s: -> (``[batch, time, shared_hidden]``, mask)."""
        x, mask = self.embed(inputs, training)
        return self.shared_encoder(x, inputs["lengths"], training=training), mask

    def discriminate(self, features, lengths, training=False, reverse=False):
        """D on F_s features; ``reverse`` puts the gradient reversal (λ) in front."""
        if reverse:
            features = self.gradient_reversal(features)
        return self.language_discriminator(features, lengths, training=training)

    @property
    def lambd(self):
        """λ: the gradient reversal's float32 variable (a trainer reads,
        logs and may reassign it)."""
        return self.gradient_reversal.lambd

    def discriminator_variables(self):
        return self.language_discriminator.trainable_variables

    def main_variables(self):
        """Every trainable variable except D's: what the main optimizer updates."""
        d_ids = {id(v) for v in self.discriminator_variables()}
        return [v for v in self.trainable_variables if id(v) not in d_ids]

    def build_all(self):
        """Creates every variable (inside a strategy scope, before any step),
        by calling each part on a tiny dummy batch."""
        dummy = {"words": tf.zeros([1, 5], tf.int32), "chars": tf.ones([1, 5, 5], tf.int32),
                 "lengths": tf.constant([5], tf.int32)}
        if self.encoder_dim:
            dummy["encoder_features"] = tf.zeros([1, 5, self.encoder_layers, self.encoder_dim],
                                                 tf.float16)
        outputs = self(dummy, training=False)
        features, _ = self.shared_features(dummy)
        self.discriminate(features, dummy["lengths"], reverse=True)  # builds λ too
        return outputs

    def get_config(self):
        return dict(self._encoder_config)
