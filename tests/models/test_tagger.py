import numpy as np
import pytest
import tensorflow as tf

from man_tf.models import ManMoeModel
from tests.helpers import NO_DROPOUT, first_batch, sample_corpora, tiny_model


@pytest.fixture(scope="module")
def data():
    return sample_corpora()


def test_outputs_are_distributions_and_gates_sum_to_one(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies)
    batch = first_batch(labeled, unlabeled)["labeled"]
    out = model(batch)
    n, t = batch["words"].shape
    assert out["log_probs"].shape == (n, t, len(vocabularies[2]))
    np.testing.assert_allclose(tf.reduce_sum(tf.exp(out["log_probs"]), -1).numpy(), 1.0,
                               atol=1e-5)
    for key in ("gate_logits", "private_gate_logits"):
        assert out[key].shape == (n, t, 3)
        np.testing.assert_allclose(tf.reduce_sum(tf.nn.softmax(out[key]), -1).numpy(), 1.0,
                                   atol=1e-5)


def test_padding_never_changes_real_positions(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies)
    batch = first_batch(labeled, unlabeled)["labeled"]
    mask = tf.sequence_mask(batch["lengths"], tf.shape(batch["words"])[1])
    garbage = dict(batch)
    garbage["words"] = tf.where(mask, batch["words"], 7)
    garbage["chars"] = tf.where(mask[..., None], batch["chars"], 5)
    a, b = model(batch), model(garbage)
    for key in ("log_probs", "gate_logits", "private_gate_logits"):
        np.testing.assert_allclose(tf.boolean_mask(a[key], mask).numpy(),
                                   tf.boolean_mask(b[key], mask).numpy(), atol=1e-5)


def test_one_pass_over_labeled_and_unlabeled_equals_separate_calls(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, **NO_DROPOUT)
    batch = first_batch(labeled, unlabeled)
    joint = model.call_with_adversary(batch["labeled"], batch["unlabeled"])
    alone = model(batch["labeled"])
    np.testing.assert_allclose(joint["log_probs"].numpy(), alone["log_probs"].numpy(), atol=1e-5)
    features, _ = model.shared_features(batch["unlabeled"])
    np.testing.assert_allclose(joint["adversarial_logits"].numpy(),
                               model.discriminate(features, batch["unlabeled"]["lengths"]).numpy(),
                               atol=1e-5)


def test_training_pass_packs_rows_and_skips_padding_with_the_same_values(data):
    """In training the BiLSTMs run on packed rows and the experts on real
    tokens only: every real token's outputs equal the plain pass's (the
    inference path, every position) and padding gets zeros."""
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, lstm_layers=2, **NO_DROPOUT)
    batch = first_batch(labeled, unlabeled)
    joint = model.call_with_adversary(batch["labeled"], batch["unlabeled"], training=True)
    alone = model(batch["labeled"], training=False)
    mask = alone["mask"]
    assert joint["log_probs"].shape == alone["log_probs"].shape
    for key in ("log_probs", "gate_logits", "private_gate_logits"):
        np.testing.assert_allclose(tf.boolean_mask(joint[key], mask).numpy(),
                                   tf.boolean_mask(alone[key], mask).numpy(), atol=1e-5)
        assert not np.any(tf.boolean_mask(joint[key], ~mask).numpy())
    features, _ = model.shared_features(batch["unlabeled"], training=True)
    np.testing.assert_allclose(joint["adversarial_logits"].numpy(),
                               model.discriminate(features, batch["unlabeled"]["lengths"]).numpy(),
                               atol=1e-5)


def test_config_round_trip(data):
    _, _, vocabularies = data
    model = tiny_model(vocabularies, use_private=False, use_predictor_moe=False)
    clone = ManMoeModel.from_config(model.get_config())
    clone.build_all()
    assert clone.count_params() == model.count_params()
    assert clone.head.private_experts is None and clone.head.predictor.num_experts == 1
