"""MAN-MoE composed from its parts: a backbone, a head (per token or per
sentence) and the adversary, built from one config, each with a real
``build``; every ``config.model`` field reaches exactly one constructor."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from man_tf.config_files import CONFIG_DIR, load_config_file
from man_tf.models import building
from man_tf.settings import ConfigError
from man_tf.tasks import TASKS, task_of
from man_tf.training.checkpoints import model_variables
from tests.helpers import tiny_config

MODELS = {"tagger": ("tagging", {}),
          "classifier": ("classification", {}),
          "tagger_mlp_d_no_private": ("tagging", dict(use_private=False, discriminator="mlp",
                                                      use_predictor_moe=False)),
          "tagger_crf": ("tagging", dict(output_layer="crf"))}
BATCH = {"words": tf.ones([2, 4], tf.int32), "chars": tf.ones([2, 4, 3], tf.int32),
         "lengths": tf.constant([4, 2])}


def _model(name):
    task, overrides = MODELS[name]
    config = tiny_config(task, **overrides)
    return building.build_model(config, TASKS[task], num_words=30, num_chars=10,
                                labels=("O", "B-A", "I-A", "B-B", "I-B"), num_sources=3)


def _config_files():
    """Every config file with each of its inputs."""
    names = []
    for path in sorted(glob.glob(os.path.join(CONFIG_DIR, "*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if name == "base" or name.endswith("_in_language"):
            continue
        names += [f"{name}:encoder", f"{name}:words"]
    return names + ["conll_in_language:de", "amazon_in_language:jp"]


@pytest.mark.parametrize("name", _config_files())
def test_every_model_field_reaches_exactly_one_constructor_argument(name):
    config = load_config_file(name)
    routed = building.route_fields(config.model, task_of(config).head_class)
    taken = [field for arguments in routed.values() for field in arguments]
    assert sorted(taken) == sorted(config.model.keys())
    model = building.build_model(config, task_of(config), 40, 12, ("O", "B-A", "I-A"), 3)
    parts = {type(model.backbone): model.backbone, type(model.head): model.head,
             type(model.adversary): model.adversary}
    for part, arguments in routed.items():
        if part in parts:  # the layers hand their arguments back in get_config
            saved = parts[part].get_config()
            for field, value in arguments.items():
                expected = list(value) if isinstance(value, tuple) else value
                assert saved[field] == expected, (part.__name__, field)


def test_a_field_no_part_takes_is_an_error_and_a_missing_one_too():
    config = tiny_config()
    config.model.unlike_any_argument = 3
    with pytest.raises(ConfigError, match="config.model.unlike_any_argument: no model part"):
        building.route_fields(config.model, TASKS["tagging"].head_class)
    config = tiny_config()
    del config.model["expert_hidden"]
    with pytest.raises(ConfigError, match="expert_hidden"):
        building.build_model(config, TASKS["tagging"], 30, 10, ("O", "B-A", "I-A"), 3)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_build_creates_every_variable_without_a_call(name):
    model = _model(name)
    model.build()
    built = {v.path for v in model.variables}
    features, _ = model.shared_features(BATCH)
    model(BATCH, training=True)
    model.discriminate(features, BATCH["lengths"], reverse=True)
    assert {v.path for v in model.variables} == built
    assert all(v.path.split("/")[1] in ("backbone", "head", "adversary")
               for v in model.variables if "seed_generator" not in v.path)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_checkpoint_keys_name_the_part_and_do_not_depend_on_the_process(name):
    first, second = _model(name), _model(name)  # Keras numbers the second model's name
    first.build()
    second.build()
    keys = [(k, tuple(v.shape)) for k, v in model_variables(first).items()]
    assert keys == [(k, tuple(v.shape)) for k, v in model_variables(second).items()]
    assert all(k.split("/")[0] in ("backbone", "head", "adversary", "rng") for k, _ in keys)
    assert not any("lambd" in k for k, _ in keys)  # λ is a setting, not saved


def test_the_parts_work_alone():
    model = _model("tagger")
    backbone, head, adversary = model.backbone, model.head, model.adversary
    backbone.build()
    batch = {"words": tf.constant([[3, 4, 5], [6, 7, 0]]), "chars": tf.ones([2, 3, 2], tf.int32),
             "lengths": tf.constant([3, 2])}
    out = backbone(batch)
    assert out["shared"].shape == (2, 3, 8) and out["private"].shape == (2, 3, 8)
    assert out["embeddings"].shape == (2, 3, backbone.input_dim)
    np.testing.assert_array_equal(out["mask"].numpy(), [[1, 1, 1], [1, 1, 0]])

    for name, shape in (("tagger", (2, 3, 5)), ("classifier", (2, 5))):
        head = _model(name).head
        head.build()
        result = head(out["shared"], out["private"], batch["lengths"], out["mask"])
        assert result["log_probs"].shape == shape
        assert result["gate_logits"].shape == (*shape[:-1], 3)
        np.testing.assert_allclose(tf.reduce_sum(tf.exp(result["log_probs"]), -1).numpy(), 1.0,
                                   atol=1e-5)
        assert ("attention" in result) == (name == "classifier")

    adversary.build()
    adversary.lambd.assign(0.25)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(out["shared"])
        plain = tf.reduce_sum(adversary(out["shared"], batch["lengths"]))
        reversed_ = tf.reduce_sum(adversary(out["shared"], batch["lengths"], reverse=True))
    np.testing.assert_allclose(tape.gradient(reversed_, out["shared"]).numpy(),
                               -0.25 * tape.gradient(plain, out["shared"]).numpy(), rtol=1e-5,
                               atol=1e-7)


def test_the_settings_choices_are_the_layers_own():
    """man_tf.settings checks a config without importing TensorFlow, so it
    repeats the layers' lists of implementations; they must not drift apart
    (a value the check lets through would fail later, inside the layer)."""
    from man_tf.layers import bilstm, char_cnn
    from man_tf.models.head import TokenHead
    from man_tf.settings import CHOICES

    assert CHOICES["model.lstm_implementation"] == bilstm.IMPLEMENTATIONS
    assert CHOICES["model.char_convolution"] == char_cnn.CONVOLUTIONS
    assert CHOICES["model.output_layer"] == TokenHead.OUTPUT_LAYERS
