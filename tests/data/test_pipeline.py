import itertools

import numpy as np
import pytest

from man_tf.data.conll import read_conll
from man_tf.data.pipeline import (encode, evaluation_batches, stacked_stream, training_stream)
from man_tf.data.vocab import CharVocabulary, TagVocabulary, WordVocabulary
from tests.conftest import conll_file


@pytest.fixture(scope="module")
def corpora():
    sentences = {"en": read_conll(conll_file("eng.testb"))[:200],
                 "es": read_conll(conll_file("esp.testb"))[:150],
                 "de": read_conll(conll_file("deu.testb"))[:100]}
    words = WordVocabulary.build(sentences)
    chars = CharVocabulary.build([s for v in sentences.values() for s in v])
    tags = TagVocabulary.build(sentences["en"] + sentences["es"])
    labeled = [encode(sentences[lang], lang, i, words, chars, tags, max_chars=12)
               for i, lang in enumerate(["en", "es"])]
    unlabeled = [encode(sentences[lang], lang, i, words, chars, None, max_chars=12)
                 for i, lang in enumerate(["en", "es", "de"])]
    return sentences, words, chars, tags, labeled, unlabeled


def test_encode_round_trip(corpora):
    sentences, words, chars, tags, labeled, _ = corpora
    en = labeled[0]
    assert len(en) == 200 and en.lengths.sum() == len(en.words) == len(en.tags)
    first = sentences["en"][0]
    assert list(en.words[:len(first)]) == words.ids("en", first.tokens)
    assert [tags.tags[i] for i in en.tags[:len(first)]] == list(first.tags)
    assert en.char_lengths.max() <= 12


def test_stacked_batch_shapes_and_masks(corpora):
    *_, labeled, _ = corpora
    batch = next(iter(stacked_stream(labeled, 8, seed=3, labeled=True)))
    words, chars, tags = batch["words"].numpy(), batch["chars"].numpy(), batch["tags"].numpy()
    lengths, language = batch["lengths"].numpy(), batch["language"].numpy()
    assert words.shape[0] == 16 and list(language) == [0] * 8 + [1] * 8
    assert words.shape == tags.shape == chars.shape[:2]
    mask = np.arange(words.shape[1])[None, :] < lengths[:, None]
    assert (words[~mask] == 0).all() and (chars[~mask] == 0).all() and (tags[~mask] == 0).all()
    assert (words[mask] > 0).all() and (chars[mask][:, 0] > 0).all()


def test_streams_are_deterministic_and_endless(corpora):
    *_, labeled, unlabeled = corpora

    def take(seed, n):
        stream = training_stream(labeled, unlabeled, 16, seed=seed)
        return [b["labeled"]["words"].numpy() for b in itertools.islice(iter(stream), n)]

    # 200 English sentences / 16 per batch: 40 batches run through every stream
    # several times.
    a, b, c = take(5, 40), take(5, 40), take(6, 40)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, c))


def test_training_stream_structure(corpora):
    *_, labeled, unlabeled = corpora
    batch = next(iter(training_stream(labeled, unlabeled, 4, seed=1, discriminator_steps=2)))
    assert len(batch["discriminator"]) == 2
    assert list(batch["unlabeled"]["language"].numpy()) == [0] * 4 + [1] * 4 + [2] * 4
    assert "tags" not in batch["unlabeled"] and "tags" in batch["labeled"]
    plain = next(iter(training_stream(labeled, unlabeled, 4, seed=1, adversarial=False)))
    assert "unlabeled" not in plain


def test_bucketing_groups_similar_lengths(corpora):
    *_, labeled, _ = corpora
    spreads = []
    for batch in itertools.islice(iter(stacked_stream(labeled[:1], 8, 1, True)), 20):
        lengths = batch["lengths"].numpy()
        spreads.append(lengths.max() - lengths.min())
    assert np.median(spreads) <= 16  # within one bucket (boundaries 8 apart below 32)


def test_evaluation_batches_cover_every_sentence_once(corpora):
    *_, labeled, _ = corpora
    seen = []
    for batch in evaluation_batches(labeled[1], batch_size=32):
        index, lengths = batch["index"].numpy(), batch["lengths"].numpy()
        np.testing.assert_array_equal(lengths, labeled[1].lengths[index])
        seen.extend(index)
    assert sorted(seen) == list(range(len(labeled[1])))


def test_encode_data_splits_long_training_sentences_when_asked():
    from man_tf.data import loading
    from man_tf.tasks import task_of
    from man_tf import settings
    from tests.helpers import load_config

    config = load_config("sample_ner")
    data = loading.load_data(config, task_of(config))
    words, chars, tags = loading.build_vocabularies(config, task_of(config), data)
    whole, _ = loading.encode_data(config, task_of(config), data, words, chars, tags)
    config.data.max_length, config.data.long_sentences = 6, "split"
    cut, cut_unlabeled = loading.encode_data(config, task_of(config), data, words, chars, tags)
    for lang in data.sources:
        assert whole[lang].lengths.max() > 6 >= cut[lang].lengths.max()
        # every token and tag is still there, in order
        np.testing.assert_array_equal(cut[lang].words, whole[lang].words)
        np.testing.assert_array_equal(cut[lang].tags, whole[lang].tags)
        assert cut[lang].truncated == 0
    assert cut_unlabeled[data.target].lengths.max() <= 6
    config.data.long_sentences = "chop"
    with pytest.raises(settings.ConfigError, match="expected truncate, split or error"):
        loading.encode_data(config, task_of(config), data, words, chars, tags)
