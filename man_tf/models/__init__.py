"""MAN-MoE models built from man_tf.layers."""

from man_tf.models.classifier import ManMoeClassifier
from man_tf.models.man_moe import ManMoeModel
from man_tf.models.tagger import ManMoeTagger

__all__ = ["ManMoeClassifier", "ManMoeModel", "ManMoeTagger"]
