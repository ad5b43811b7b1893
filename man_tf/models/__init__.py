"""MAN-MoE models built from man_tf.layers."""

from man_tf.models.tagger import ManMoeTagger

__all__ = ["ManMoeTagger"]
