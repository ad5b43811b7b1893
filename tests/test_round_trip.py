"""Every Keras layer and model in man_tf round-trips through its config and
``keras.saving`` with equal outputs, and runs under mixed_bfloat16
(:func:`tests.layer_testing.run_layer_test`). A new layer without a case
here fails :func:`test_every_layer_has_a_case`."""

import importlib
import inspect
import pkgutil

import keras
import pytest
import tensorflow as tf

from man_tf import layers as L
from man_tf.models import building
from man_tf.models.adversary import LanguageAdversary
from man_tf.models.backbone import Backbone
from man_tf.models.head import SentenceHead, TokenHead
from man_tf.models.man_moe import ManMoeModel
from man_tf.pretrained import bert
from man_tf.pretrained.encoder_inputs import EncoderSettings
from man_tf.pretrained.weights import read_weights
from man_tf.pretrained.word_features import TrainableWordFeatures
from man_tf.tasks import TASKS
from man_tf.training.adversarial import AdversarialModel
from tests.helpers import tiny_config
from tests.layer_testing import run_layer_test

X = tf.random.stateless_normal([2, 4, 6], seed=[1, 2])
LENGTHS = tf.constant([4, 2])
MASK = tf.sequence_mask(LENGTHS, 4)
BATCH = {"words": tf.constant([[3, 4, 5, 6], [7, 8, 0, 0]]),
         "chars": tf.constant([[[2, 3], [4, 0], [5, 6], [7, 2]], [[3, 3], [2, 0], [0, 0], [0, 0]]]),
         "lengths": LENGTHS}


def _parts(task, **overrides):
    """The tiny config's parts, as ``build_model`` makes them."""
    config = tiny_config("tagging" if task == "tagging" else "classification", **overrides)
    return building.build_model(config, TASKS[task], num_words=12, num_chars=9,
                                labels=("O", "B-X", "I-X"), num_sources=2)


def _backbone_outputs(backbone):
    return backbone(BATCH)


def _head_call(head):
    shared = tf.random.stateless_normal([2, 4, head.shared_dim], seed=[3, 4])
    private = tf.random.stateless_normal([2, 4, head.private_dim], seed=[5, 6])
    return head(shared, private, LENGTHS, MASK)


CASES = {
    L.AttentionPooling: (lambda: L.AttentionPooling(), lambda l: l(X, LENGTHS)),
    L.bilstm.BidirectionalLSTM: (lambda: L.bilstm.BidirectionalLSTM(3), lambda l: l(X, LENGTHS)),
    L.BiLSTMEncoder: (lambda: L.BiLSTMEncoder(6, 2, 0.5, 0.5), lambda l: l(X, LENGTHS)),
    L.CharCNN: (lambda: L.CharCNN(9, 4, 3, (2, 3), 5),
                lambda l: l(BATCH["chars"], MASK)),
    L.MaskedConvPooling: (lambda: L.MaskedConvPooling(3, (2,)), lambda l: l(X, LENGTHS)),
    L.SentenceLanguageDiscriminator: (
        lambda: L.language_discriminator("cnn", 3, 4, (2, 3), 5, 1, 0.5), lambda l: l(X, LENGTHS)),
    L.TokenLanguageDiscriminator: (
        lambda: L.language_discriminator("mlp", 3, 4, (2, 3), 5, 2, 0.5), lambda l: l(X, LENGTHS)),
    L.GradientReversal: (lambda: L.GradientReversal(0.3), lambda l: l(X)),
    L.MixtureOfExperts: (lambda: L.MixtureOfExperts(3, 4, hidden_units=(5,), output="log_probs",
                                                    mixture="log_probabilities"),
                         lambda l: l(X)),
    L.ScalarMix: (lambda: L.ScalarMix(2), lambda l: l(tf.ones([2, 4, 2, 6]))),
    L.WordEmbedding: (lambda: L.WordEmbedding(12, 6, block_starts=(0, 6), unk_replacement=0.1),
                      lambda l: l(BATCH["words"])),
    bert.TransformerLayer: (
        lambda: bert.TransformerLayer(8, 2, 16),
        lambda l: l(tf.ones([3, 8]), tf.constant([[0, 0], [0, 1], [1, 0]], tf.int64),
                    tf.zeros([2, 1, 1, 2]))),
    bert.BertEncoder: (
        lambda: bert.BertEncoder(20, hidden=8, num_layers=1, heads=2, intermediate=16,
                                 max_positions=8),
        lambda l: l(tf.constant([[1, 2, 3], [4, 5, 0]]), tf.constant([[1, 1, 1], [1, 1, 0]]))),
    Backbone: (lambda: _parts("tagging").backbone, _backbone_outputs),
    TokenHead: (lambda: _parts("tagging").head, _head_call),
    SentenceHead: (lambda: _parts("classification").head, _head_call),
    LanguageAdversary: (lambda: _parts("tagging").adversary,
                        lambda l: l(tf.ones([2, 4, l.feature_dim]), LENGTHS, reverse=True)),
    ManMoeModel: (lambda: _parts("tagging"), lambda m: m(BATCH)),
    AdversarialModel: (lambda: AdversarialModel(_parts("classification"), 3, lambd=0.1),
                       lambda m: m(BATCH)),
}


def _man_tf_layers():
    found = set()
    for package in ("layers", "models", "pretrained", "training", "export"):
        module = importlib.import_module(f"man_tf.{package}")
        for info in pkgutil.iter_modules(module.__path__):
            sub = importlib.import_module(f"man_tf.{package}.{info.name}")
            for _, cls in inspect.getmembers(sub, inspect.isclass):
                if issubclass(cls, keras.layers.Layer) and cls.__module__ == sub.__name__ \
                        and not cls.__name__.startswith("_") and cls.__name__ != "MoeHead":
                    found.add(cls)
    return found


def test_every_layer_has_a_case():
    missing = {cls.__name__ for cls in _man_tf_layers()} - \
        {cls.__name__ for cls in CASES} - {"TrainableWordFeatures"}
    assert not missing, f"layers without a round-trip case: {sorted(missing)}"


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_round_trip(cls):
    make, call = CASES[cls]
    run_layer_test(make, call)


def test_crf_head_round_trips_with_its_transitions():
    def make():
        head = _parts("tagging", output_layer="crf").head
        head.build()
        for weight in (head.transitions, head.start_scores, head.end_scores):
            weight.assign(tf.random.stateless_normal(weight.shape, seed=[7, 8]) * 5)
        return head

    def decoded(head):
        outputs = _head_call(head)
        return {**outputs, "ids": head.decode(outputs)}

    run_layer_test(make, decoded)


def test_fine_tuned_encoder_round_trips_with_its_weights_read_again():
    weights = read_weights()

    def make():
        return TrainableWordFeatures(weights, (1,), joined=(False, True), name="word_features")

    tokens = tf.constant([["Angela", "Weber", ""], ["Berlin", "", ""]])
    run_layer_test(make, lambda l: l(tokens, tf.constant([2, 1]), tf.constant([0, 1])))


def test_encoder_settings_are_the_configs_encoder_fields():
    config = tiny_config()
    settings = EncoderSettings.of(config)
    assert {f: getattr(settings, f) for f in building.constructor_arguments(EncoderSettings)} == \
        {f: config.model[f] for f in building.constructor_arguments(EncoderSettings)}
