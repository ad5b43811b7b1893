"""The adversary: F_s features -> gradient reversal (λ) -> language discriminator D."""

import keras

from man_tf.layers import GradientReversal, LanguageDiscriminator


class LanguageAdversary(keras.layers.Layer):
    """F_s features ``[batch, time, dim]`` + lengths ``[batch]`` -> D's
    language logits (``[batch, languages]`` for the CNN discriminator,
    ``[batch, time, languages]`` for the per-token MLP).

    ``call(..., reverse=True)`` puts the gradient reversal in front: D's
    loss then trains D's *input* to confuse D, scaled by λ. λ is one
    float32 variable (``lambd``, the reversal's), built from the config's
    ``train.lambd``; a trainer reads, logs and may reassign it.
    """

    def __init__(self, num_languages, feature_dim, discriminator="cnn",
                 discriminator_filters=200, discriminator_kernel_sizes=(3, 4, 5),
                 discriminator_hidden=200, discriminator_layers=1, discriminator_dropout=0.5,
                 lambd=0.002, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim = int(feature_dim)
        self.gradient_reversal = GradientReversal(lambd, name="gradient_reversal")
        self.language_discriminator = LanguageDiscriminator(
            num_languages, discriminator, discriminator_filters, discriminator_kernel_sizes,
            discriminator_hidden, discriminator_layers, discriminator_dropout,
            name="language_discriminator")

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
