"""MAN-MoE models built from man_tf.layers: one model class, a backbone, a
head per task (token or sentence level) and the adversary."""

from man_tf.models.adversary import LanguageAdversary
from man_tf.models.backbone import Backbone
from man_tf.models.head import MoeHead, SentenceHead, TokenHead
from man_tf.models.man_moe import ManMoeModel

__all__ = ["Backbone", "LanguageAdversary", "ManMoeModel", "MoeHead", "SentenceHead",
           "TokenHead"]
