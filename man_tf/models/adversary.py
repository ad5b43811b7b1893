"""The adversary: F_s features -> gradient reversal (λ) -> language discriminator D."""

import keras

from man_tf.layers import GradientReversal, language_discriminator


@keras.saving.register_keras_serializable(package="man_tf")
class LanguageAdversary(keras.layers.Layer):
    """F_s features ``[batch, time, dim]`` + lengths ``[batch]`` -> D's
    language logits (``[batch, languages]`` for the CNN discriminator,
    ``[batch, time, languages]`` for the per-token MLP: ``per_token``).

    ``call(..., reverse=True)`` puts the gradient reversal in front: D's
    loss then trains D's *input* to confuse D, scaled by λ. λ is one
    float32 variable (``lambd``, the reversal's), initialised from the
    run's ``train.lambd``; a trainer reads, logs and may reassign it.
    ``num_languages`` and ``feature_dim`` (F_s's size) are the data's and
    the backbone's; the ``discriminator*`` arguments are ``config.model`` fields.
    """

    def __init__(self, *, num_languages, feature_dim, lambd, discriminator,
                 discriminator_filters, discriminator_kernel_sizes, discriminator_hidden,
                 discriminator_layers, discriminator_dropout, **kwargs):
        super().__init__(**kwargs)
        self.num_languages, self.feature_dim = int(num_languages), int(feature_dim)
        self.initial_lambd = float(lambd)
        self.discriminator = discriminator
        self.discriminator_filters = int(discriminator_filters)
        self.discriminator_kernel_sizes = tuple(int(k) for k in discriminator_kernel_sizes)
        self.discriminator_hidden = int(discriminator_hidden)
        self.discriminator_layers = int(discriminator_layers)
        self.discriminator_dropout = float(discriminator_dropout)
        self.gradient_reversal = GradientReversal(self.initial_lambd, name="gradient_reversal")
        self.language_discriminator = language_discriminator(
            discriminator, self.num_languages, self.discriminator_filters,
            self.discriminator_kernel_sizes, self.discriminator_hidden,
            self.discriminator_layers, self.discriminator_dropout)

    @property
    def per_token(self):
        """Whether D judges every token (else every sentence)."""
        return self.language_discriminator.per_token

    def build(self, input_shape=None):
        self.gradient_reversal.build((None, None, self.feature_dim))
        self.language_discriminator.build((None, None, self.feature_dim))
        self.built = True

    def call(self, features, lengths, training=False, reverse=False):
        if reverse:
            features = self.gradient_reversal(features)
        return self.language_discriminator(features, lengths, training=training)

    @property
    def lambd(self):
        return self.gradient_reversal.lambd

    def get_config(self):
        return {**super().get_config(), "num_languages": self.num_languages,
                "feature_dim": self.feature_dim, "lambd": self.initial_lambd,
                "discriminator": self.discriminator,
                "discriminator_filters": self.discriminator_filters,
                "discriminator_kernel_sizes": list(self.discriminator_kernel_sizes),
                "discriminator_hidden": self.discriminator_hidden,
                "discriminator_layers": self.discriminator_layers,
                "discriminator_dropout": self.discriminator_dropout}
