import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from man_tf.data import pipeline
from man_tf.data.conll import Sentence
from man_tf.data.reviews import read_reviews
from man_tf.data.vocab import CharVocabulary, WordVocabulary
from man_tf.layers import AttentionPooling
from tests.conftest import SHARED_DATA
from tests.helpers import adversarial, fit_steps, tiny_model

WEBIS = os.path.join(SHARED_DATA, "webis-cls-10")


def test_attention_weights_sum_to_one_over_real_tokens_only():
    x = tf.random.stateless_normal([3, 6, 4], seed=[1, 1])
    lengths = tf.constant([6, 2, 1])
    pooled, weights = AttentionPooling()(x, lengths)
    mask = tf.sequence_mask(lengths, 6, dtype=tf.float32).numpy()
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-6)
    assert (weights.numpy()[mask == 0] == 0).all()
    np.testing.assert_allclose(pooled.numpy()[2], x.numpy()[2, 0], rtol=1e-6)


def reviews(language, n=96):
    """Real reviews tokenized with TF Text (the serving tokenizer), cut to 60 tokens."""
    path = os.path.join(WEBIS, language, "books", "train.review")
    if not os.path.exists(path):
        pytest.skip(f"real data not found at {WEBIS}")
    docs = read_reviews(path)
    docs = docs[:n // 2] + docs[-n // 2:]  # the files list positives first
    tokens = tf_text.UnicodeScriptTokenizer().tokenize([d.text for d in docs]).to_list()
    return ([Sentence(tuple(t.decode() for t in row[:60]) or ("",)) for row in tokens],
            [d.label for d in docs])


@pytest.fixture(scope="module")
def review_data():
    data = {lang: reviews(lang) for lang in ("en", "de", "fr")}
    words = WordVocabulary.build({lang: s for lang, (s, _) in data.items()})
    chars = CharVocabulary.build([s for v, _ in data.values() for s in v])
    labeled = [pipeline.encode(data[lang][0], lang, i, words, chars, labels=data[lang][1])
               for i, lang in enumerate(("en", "de"))]
    unlabeled = [pipeline.encode(data[lang][0], lang, i, words, chars)
                 for i, lang in enumerate(("en", "de", "fr"))]
    return labeled, unlabeled, words, chars


def make_model(words, chars, **overrides):
    return tiny_model((words, chars, 2), task="classification", num_sources=2,
                      **{"word_dim": 16, "shared_hidden": 16, "private_hidden": 16, **overrides})


def test_sentence_level_outputs(review_data):
    labeled, unlabeled, words, chars = review_data
    model = make_model(words, chars)
    batch = next(iter(pipeline.training_stream(labeled, unlabeled, 8, 0)))["labeled"]
    out = model(batch)
    assert out["log_probs"].shape == (16, 2) and out["gate_logits"].shape == (16, 2)
    np.testing.assert_allclose(tf.reduce_sum(tf.exp(out["log_probs"]), -1).numpy(), 1, atol=1e-5)
    np.testing.assert_allclose(tf.reduce_sum(tf.nn.softmax(out["gate_logits"]), -1).numpy(), 1,
                               atol=1e-5)
    np.testing.assert_allclose(
        tf.reduce_sum(tf.nn.softmax(out["private_gate_logits"]), -1).numpy(), 1, atol=1e-5)
    assert batch["label"].shape == (16,)


def test_tiny_training_on_real_reviews_lowers_the_loss(review_data):
    labeled, unlabeled, words, chars = review_data
    model = make_model(words, chars, dropout=0.0, word_dropout=0.0, mlp_dropout=0.0)
    trainer = adversarial(model, num_languages=3, learning_rate=1e-2)
    stream = pipeline.training_stream(labeled, unlabeled, 8, seed=0)
    history = [logs["task_loss"] for logs in fit_steps(trainer, stream, 100)]
    # Two source languages: the summed loss starts near 2 ln 2.
    assert np.mean(history[-8:]) < 0.8 * np.mean(history[:4]), history
