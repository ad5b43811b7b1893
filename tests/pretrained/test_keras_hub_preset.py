"""Encoder weights from a local keras-hub preset directory (the offline part
of ``model.encoder_weights``): a keras-hub ``BertBackbone`` that the test
fills with multilingual-e5-small's weights and saves with
``save_to_preset`` gives the same word features as the bundled file."""

import json

import numpy as np
import pytest

from man_tf.data import conll
from man_tf.pretrained import e5_file
from man_tf.pretrained.e5_file import read_e5
from man_tf.settings import ConfigError
from tests.conftest import conll_file
from tests.helpers import load_config

LAYERS = 2  # a preset with e5's first two layers keeps the test small


def fill_backbone(backbone, weights):
    """keras-hub's layout from the bundled file's, written here independently
    of man_tf's reader (file: dense ``[out, in]``; keras-hub: einsum kernels)."""
    H, heads = weights.hidden, weights.heads
    size = H // heads
    backbone.token_embedding.embeddings.assign(weights.tensor("emb.word", (-1, H)))
    backbone.position_embedding.position_embeddings.assign(weights.tensor("emb.pos", (-1, H)))
    backbone.segment_embedding.embeddings.assign(weights.tensor("emb.type", (-1, H)))
    backbone.embeddings_layer_norm.gamma.assign(weights.tensor("emb.ln.w"))
    backbone.embeddings_layer_norm.beta.assign(weights.tensor("emb.ln.b"))
    for i, layer in enumerate(backbone.transformer_layers):
        t = lambda name, shape=None: weights.tensor(f"l{i}.{name}", shape)  # noqa: E731
        attention = layer._self_attention_layer
        for short, dense in (("q", attention._query_dense), ("k", attention._key_dense),
                             ("v", attention._value_dense)):
            dense.kernel.assign(t(short + ".w", (H, H)).T.reshape(H, heads, size))
            dense.bias.assign(t(short + ".b").reshape(heads, size))
        attention._output_dense.kernel.assign(t("ao.w", (H, H)).T.reshape(heads, size, H))
        attention._output_dense.bias.assign(t("ao.b"))
        layer._self_attention_layer_norm.gamma.assign(t("aln.w"))
        layer._self_attention_layer_norm.beta.assign(t("aln.b"))
        F = weights.intermediate
        layer._feedforward_intermediate_dense.kernel.assign(t("fi.w", (F, H)).T)
        layer._feedforward_intermediate_dense.bias.assign(t("fi.b"))
        layer._feedforward_output_dense.kernel.assign(t("fo.w", (H, F)).T)
        layer._feedforward_output_dense.bias.assign(t("fo.b"))
        layer._feedforward_layer_norm.gamma.assign(t("oln.w"))
        layer._feedforward_layer_norm.beta.assign(t("oln.b"))


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory):
    import keras_hub

    weights = read_e5()
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=weights.vocab_size, num_layers=LAYERS, num_heads=weights.heads,
        hidden_dim=weights.hidden, intermediate_dim=weights.intermediate,
        max_sequence_length=weights.max_positions, num_segments=weights.type_vocab_size)
    fill_backbone(backbone, weights)
    path = str(tmp_path_factory.mktemp("e5_preset"))
    backbone.save_to_preset(path)
    return path


def config_with(weights_source, workdir):
    config = load_config("sample_ner:encoder")
    config.model.encoder_layers = (LAYERS,)
    config.model.encoder_weights = weights_source
    config.data.feature_cache = str(workdir)
    return config


def test_a_local_preset_gives_the_bundled_files_features(preset_dir, tmp_path):
    from man_tf.pretrained import encoder_inputs

    sentences = conll.read_conll(conll_file("deu.testa"), labeled=False)[:30]
    bundled = encoder_inputs.encoder_features(config_with("", tmp_path / "a"), None)
    preset = encoder_inputs.encoder_features(config_with(preset_dir, tmp_path / "b"), None)
    expected, got = bundled(sentences, "de"), preset(sentences, "de")
    assert got.shape == expected.shape == (sum(len(s) for s in sentences), 1, 384)
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(expected, np.float32),
                               atol=2e-3, rtol=0)  # both float16 in the cache
    assert np.mean(np.asarray(got) == np.asarray(expected)) > 0.99
    # The cache keys the preset's weights apart from the bundled file.
    assert set((tmp_path / "a").iterdir()).isdisjoint(set((tmp_path / "b").iterdir()))
    assert len(list((tmp_path / "b").iterdir())) == 1


def test_the_served_graph_records_and_holds_the_presets_weights(preset_dir):
    from man_tf.pretrained import encoder_inputs

    features = encoder_inputs.serving_word_features(config_with(preset_dir, "/nonexistent"))
    assert features.weights_description["piece_embeddings"] == "float32"
    assert preset_dir in features.weights_description["weights"]
    assert features.weights_description["weights_sha256"] != e5_file.WEIGHTS_SHA256
    json.dumps(dict(features.weights_description))  # goes into man_tf.json
    assert not features.encoder.quantized_embeddings


def test_a_fine_tuned_preset_encoder_keeps_its_float32_table_frozen(preset_dir):
    import tensorflow as tf

    from man_tf.pretrained import encoder_inputs

    config = config_with(preset_dir, "/nonexistent")
    config.model.encoder_trainable = True
    layer = encoder_inputs.trainable_word_features(config)
    table = layer.encoder.word_embeddings
    assert layer.constant_variables() == [table] and not table.trainable
    trainable = {id(v) for v in layer.trainable_variables}
    assert id(table) not in trainable and len(trainable) > 10
    tokens = tf.constant([["Angela", "Merkel", "besuchte", "Paris"], ["Ja", "", "", ""]])
    with tf.GradientTape() as tape:
        out = layer(tokens, tf.constant([4, 1]))
        loss = tf.reduce_sum(out ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert out.shape == (2, 4, 1, 384) and float(tf.reduce_sum(tf.abs(out[1, 1:]))) == 0.0
    assert all(g is not None for g in grads)
    # The same features as the frozen graph computes from the preset.
    frozen = encoder_inputs.serving_word_features(config_with(preset_dir, "/nonexistent"))
    expected = frozen(tf.ragged.constant([["Angela", "Merkel", "besuchte", "Paris"], ["Ja"]]))
    np.testing.assert_allclose(out[0].numpy(), expected[0].numpy(), atol=1e-4)


def test_a_preset_with_too_few_layers_or_no_preset_is_one_line(preset_dir, tmp_path):
    from man_tf.pretrained import encoder_inputs

    config = config_with(preset_dir, tmp_path)
    config.model.encoder_layers = (7,)
    with pytest.raises(ConfigError, match=r"encoder_layers=\(7,\).*have 2 layers"):
        encoder_inputs.encoder_features(config, None)
    with pytest.raises(ConfigError, match="could not load as a keras-hub BertBackbone preset"):
        encoder_inputs.encoder_features(config_with(str(tmp_path), tmp_path), None)


def test_a_preset_with_another_vocabulary_is_refused(tmp_path):
    import keras_hub

    from man_tf.pretrained import keras_hub_weights

    backbone = keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=1, num_heads=12,
                                             hidden_dim=384, intermediate_dim=64)
    backbone.save_to_preset(str(tmp_path))
    with pytest.raises(e5_file.WeightsFileError, match="100 piece embeddings, but multilingual-e5's tokenizer needs 250037"):
        keras_hub_weights.read_preset(str(tmp_path), read_e5())
