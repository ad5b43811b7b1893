"""Small Keras layers MAN-MoE is built from; each file holds one idea."""

from man_tf.layers.attention_pooling import AttentionPooling
from man_tf.layers.bilstm import BiLSTMEncoder
from man_tf.layers.char_cnn import CharCNN
from man_tf.layers.conv_pooling import MaskedConvPooling
from man_tf.layers.discriminator import (SentenceLanguageDiscriminator,
                                          TokenLanguageDiscriminator, language_discriminator)
from man_tf.layers.gradient_reversal import GradientReversal, reverse_gradient
from man_tf.layers.mixture_of_experts import MixtureOfExperts
from man_tf.layers.scalar_mix import ScalarMix
from man_tf.layers.word_embedding import WordEmbedding

__all__ = ["AttentionPooling", "BiLSTMEncoder", "CharCNN", "GradientReversal",
           "MaskedConvPooling", "MixtureOfExperts", "ScalarMix", "SentenceLanguageDiscriminator",
           "TokenLanguageDiscriminator", "WordEmbedding", "language_discriminator",
           "reverse_gradient"]
