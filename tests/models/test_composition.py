"""MAN-MoE composed: a backbone, an MoE head (per token or per sentence) and
the adversary, each with a real ``build``; checkpoint keys as before."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from man_tf.models import ManMoeClassifier, ManMoeTagger
from man_tf.models.adversary import LanguageAdversary
from man_tf.models.backbone import Backbone
from man_tf.models.head import MoeHead
from man_tf.training.checkpoints import model_variables

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "checkpoint_keys_b36872b.json")
MODELS = {"tagger": (ManMoeTagger, dict(num_tags=5)),
          "classifier": (ManMoeClassifier, dict(num_classes=2)),
          "tagger_mlp_d_no_private": (ManMoeTagger, dict(num_tags=5, use_private=False,
                                                         discriminator="mlp",
                                                         use_predictor_moe=False))}


def _golden():
    with open(GOLDEN, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_checkpoint_keys_and_shapes_are_those_of_the_models_before_composition(name):
    """Workdirs and exports written before the model was composed restore:
    every key (in order) and shape equals what b36872b's models wrote."""
    golden = _golden()
    cls, extra = MODELS[name]
    model = cls(num_languages=4, **golden["arguments"], **extra)
    model.build()
    keys = [[k, list(v.shape)] for k, v in model_variables(model).items()]
    assert keys == golden["models"][name]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_build_creates_every_variable_without_a_call(name):
    golden = _golden()
    cls, extra = MODELS[name]
    model = cls(num_languages=4, **golden["arguments"], **extra)
    model.build()
    built = {v.path for v in model.variables}
    batch = {"words": tf.ones([2, 4], tf.int32), "chars": tf.ones([2, 4, 3], tf.int32),
             "lengths": tf.constant([4, 2]), "encoder_features": tf.ones([2, 4, 2, 8])}
    features, _ = model.shared_features(batch)
    model(batch, training=True)
    model.discriminate(features, batch["lengths"], reverse=True)
    assert {v.path for v in model.variables} == built
    assert all(v.path.split("/")[1] in ("backbone", "head", "adversary")
               for v in model.variables if "seed_generator" not in v.path)


def test_the_parts_work_alone():
    backbone = Backbone(num_words=30, num_chars=10, word_dim=6, char_embedding_dim=4,
                        char_filters=3, char_output_dim=5, shared_hidden=8, private_hidden=10,
                        lstm_layers=1)
    backbone.build()
    assert backbone.built and len(backbone.trainable_variables) > 0
    batch = {"words": tf.constant([[3, 4, 5], [6, 7, 0]]), "chars": tf.ones([2, 3, 2], tf.int32),
             "lengths": tf.constant([3, 2])}
    out = backbone(batch)
    assert out["shared"].shape == (2, 3, 8) and out["private"].shape == (2, 3, 10)
    assert out["embeddings"].shape == (2, 3, 6 + 5)
    np.testing.assert_array_equal(out["mask"].numpy(), [[1, 1, 1], [1, 1, 0]])

    for level, shape in (("token", (2, 3, 4)), ("sentence", (2, 4))):
        head = MoeHead(level, num_outputs=4, num_sources=3, shared_hidden=8, private_hidden=10,
                       expert_hidden=6)
        head.build()
        result = head(out["shared"], out["private"], batch["lengths"], out["mask"])
        assert result["log_probs"].shape == shape
        assert result["gate_logits"].shape == (*shape[:-1], 3)
        np.testing.assert_allclose(tf.reduce_sum(tf.exp(result["log_probs"]), -1).numpy(), 1.0,
                                   atol=1e-5)
        assert ("attention" in result) == (level == "sentence")
    with pytest.raises(ValueError, match="level"):
        MoeHead("document", 4, 3, 8, 10)

    adversary = LanguageAdversary(num_languages=4, feature_dim=8, lambd=0.25)
    adversary.build()
    assert float(adversary.lambd.numpy()) == 0.25
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(out["shared"])
        plain = tf.reduce_sum(adversary(out["shared"], batch["lengths"]))
        reversed_ = tf.reduce_sum(adversary(out["shared"], batch["lengths"], reverse=True))
    np.testing.assert_allclose(tape.gradient(reversed_, out["shared"]).numpy(),
                               -0.25 * tape.gradient(plain, out["shared"]).numpy(), rtol=1e-5,
                               atol=1e-7)
