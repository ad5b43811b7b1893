"""Sentences -> ids -> endless, shuffled, length-bucketed ``tf.data`` streams.

One labeled stream per source language and one unlabeled stream per language
(sources and targets). A training *iteration* takes one batch from every
stream; :func:`stacked` pads a tuple of per-language batches to one shape and
concatenates them, so the shared layers run once over all languages.

Batch structure (``N`` sentences, ``T`` tokens, ``C`` characters per token)::

    words    int32 [N, T]     rows of the one word-embedding matrix
    chars    int32 [N, T, C]  character ids, 0 = padding
    lengths  int32 [N]        tokens per sentence
    language int32 [N]        index into the config's ``languages`` (sources first)
    tags     int32 [N, T]     tag ids (labeled tagging batches only; 0 at padding)
    label    int32 [N]        class ids (labeled classification batches only)
    encoder_features float16 [N, T, layers, dim]   a frozen encoder's word features
    tokens   string [N, T]    the tokens ("" at padding), for a fine-tuned encoder
    soft     float32 [N, T, K] or [N, K]   a teacher's label distributions per token
                              (tagging) or per document (self-training's target batches)
"""

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from man_tf.data.errors import DataError

DEFAULT_BUCKETS = (8, 16, 24, 32, 48, 64)


@dataclasses.dataclass
class EncodedCorpus:
    """A language's sentences as flat id arrays (ragged by ``lengths``)."""

    language: int
    lengths: np.ndarray          # [sentences]
    words: np.ndarray            # [tokens]
    char_lengths: np.ndarray     # [tokens]
    chars: np.ndarray            # [characters]
    tags: Optional[np.ndarray]   # [tokens] or None
    truncated: int = 0           # sentences cut to max_length
    labels: Optional[np.ndarray] = None  # [sentences]: document classes, or None
    # [tokens, layers, dim] float16: frozen encoder features of each token, or None
    features: Optional[np.ndarray] = None
    # [tokens] str: the tokens themselves (a fine-tuned encoder reads them), or None
    tokens: Optional[np.ndarray] = None
    # A teacher's label distributions (self-training): [tokens, labels] per
    # token (tagging: soft_per_token) or [sentences, labels] per document, or None.
    soft: Optional[np.ndarray] = None
    soft_per_token: bool = False

    def __len__(self):
        return len(self.lengths)


def encode(sentences, language_name, language_id, words, chars, tags=None,
           max_chars=20, max_length=None, labels=None, features=None, keep_tokens=False):
    """Turns :class:`Sentence` objects into an :class:`EncodedCorpus`.

    ``tags`` (a ``TagVocabulary``) is given for labeled tagging data only; it
    is never read for unlabeled text even when the sentences carry tags.
    ``labels`` (one class id per sentence) is given for labeled documents.
    ``features`` (``[tokens, layers, dim]``, the tokens of every sentence as
    cut to ``max_length``, in order) are the encoder's word features.
    ``keep_tokens``: keep the token strings too (a fine-tuned encoder's input).
    """
    lengths, word_ids, char_lengths, char_ids, tag_ids, kept = [], [], [], [], [], []
    truncated = 0
    for sentence in sentences:
        tokens = sentence.tokens
        if max_length and len(tokens) > max_length:
            tokens = tokens[:max_length]
            truncated += 1
        lengths.append(len(tokens))
        if keep_tokens:
            kept.extend(tokens)
        word_ids.extend(words.ids(language_name, tokens))
        for token in tokens:
            ids = chars.ids(token, max_chars) or [0]
            char_lengths.append(len(ids))
            char_ids.extend(ids)
        if tags is not None:
            try:
                tag_ids.extend(tags.id(t) for t in sentence.tags[:len(tokens)])
            except KeyError:
                unknown = next(t for t in sentence.tags if t not in tags.index)
                raise DataError(sentence.source or language_name, None,
                                f"tag {unknown!r} never occurs in the sources' training data "
                                f"(tags: {' '.join(tags.tags)}); a model cannot predict or be "
                                f"scored on it: map it to a trained type or to O") from None
    as_int = lambda x: np.asarray(x, dtype=np.int32)
    if features is not None and len(features) != sum(lengths):
        raise ValueError(f"{language_name}: {len(features)} feature rows for {sum(lengths)} "
                         f"tokens")
    return EncodedCorpus(language_id, as_int(lengths), as_int(word_ids), as_int(char_lengths),
                         as_int(char_ids), as_int(tag_ids) if tags is not None else None,
                         truncated, as_int(labels) if labels is not None else None, features,
                         np.array(kept, dtype=object) if keep_tokens else None)


class SentenceTable:
    """Every sentence of several corpora as ragged constants, addressed by row.

    A batch is a gather of rows followed by one ``to_tensor`` per field, so
    batching costs a few ops per batch, not per sentence, and a batch that
    mixes languages comes out padded to one ``[T, C]`` directly.
    """

    def __init__(self, corpora, labeled):
        self.labeled = labeled
        self.sizes = [len(c) for c in corpora]
        self.offsets = np.cumsum([0] + self.sizes)[:-1]
        cat = lambda name: np.concatenate([getattr(c, name) for c in corpora])
        lengths = cat("lengths")
        self.lengths = tf.constant(lengths)
        self.language = tf.constant(np.concatenate(
            [np.full(len(c), c.language, np.int32) for c in corpora]))
        self.words = tf.RaggedTensor.from_row_lengths(cat("words"), lengths)
        self.chars = tf.RaggedTensor.from_nested_row_lengths(
            cat("chars"), [lengths, cat("char_lengths")])
        self.has_tags = labeled and all(c.tags is not None for c in corpora)
        self.has_labels = labeled and all(c.labels is not None for c in corpora)
        if labeled and not (self.has_tags or self.has_labels):
            raise ValueError("a labeled table needs tags or labels in every corpus")
        if self.has_tags:
            self.tags = tf.RaggedTensor.from_row_lengths(cat("tags"), lengths)
        if self.has_labels:
            self.labels = tf.constant(cat("labels"))
        self.has_soft = all(c.soft is not None for c in corpora)
        if self.has_soft:
            soft = cat("soft").astype(np.float32)
            self.soft = (tf.RaggedTensor.from_row_lengths(soft, lengths)
                         if corpora[0].soft_per_token else tf.constant(soft))
        self.has_tokens = all(c.tokens is not None for c in corpora)
        if self.has_tokens:
            self.tokens = tf.RaggedTensor.from_row_lengths(
                tf.constant(cat("tokens").tolist(), tf.string), lengths)
        # Encoder features stay in NumPy (they can exceed a graph constant's
        # 2 GB), each corpus's own (memory-mapped) array, not concatenated:
        # a language's labeled and unlabeled corpora read one cache file, and
        # a copy of every corpus would hold gigabytes with several layers.
        # Gathered per batch by a NumPy call in the pipeline.
        self.has_features = all(c.features is not None for c in corpora)
        if self.has_features:
            self.feature_parts = [c.features for c in corpora]
            self.feature_shape = tuple(corpora[0].features.shape[1:])
            self.feature_starts = np.cumsum([0] + [len(f) for f in self.feature_parts])
            self.feature_rows = tf.RaggedTensor.from_row_lengths(
                np.arange(self.feature_starts[-1], dtype=np.int64), lengths)

    def _gather_features(self, rows):
        out = np.zeros(rows.shape + self.feature_shape, np.float16)
        real = np.flatnonzero(rows.reshape(-1) >= 0)
        flat_rows = rows.reshape(-1)[real]
        part = np.searchsorted(self.feature_starts, flat_rows, side="right") - 1
        flat_out = out.reshape(-1, *self.feature_shape)
        for p in np.unique(part):
            chosen = part == p
            local = flat_rows[chosen] - self.feature_starts[p]
            order = np.argsort(local, kind="stable")  # sorted reads from the memory map
            values = np.asarray(self.feature_parts[p][local[order]])
            flat_out[real[chosen][order]] = values
        return out

    def batch(self, rows):
        """``rows`` int ``[N]`` -> the batch dict described in the module docstring."""
        out = {"words": tf.gather(self.words, rows).to_tensor(),
               "chars": tf.gather(self.chars, rows).to_tensor(),
               "lengths": tf.gather(self.lengths, rows),
               "language": tf.gather(self.language, rows)}
        if self.has_tags:
            out["tags"] = tf.gather(self.tags, rows).to_tensor()
        if self.has_labels:
            out["label"] = tf.gather(self.labels, rows)
        if self.has_soft:
            soft = tf.gather(self.soft, rows)
            out["soft"] = soft.to_tensor() if isinstance(soft, tf.RaggedTensor) else soft
        if self.has_tokens:
            out["tokens"] = tf.gather(self.tokens, rows).to_tensor(default_value="")
        if self.has_features:
            index = tf.gather(self.feature_rows, rows).to_tensor(default_value=-1)
            features = tf.numpy_function(self._gather_features, [index], tf.float16,
                                         stateful=False)
            features.set_shape([None, None, *self.feature_shape])
            out["encoder_features"] = features
        return out


def row_stream(table, corpus_index, batch_size, seed, buckets=DEFAULT_BUCKETS):
    """Endless shuffled batches of row indices of one corpus, bucketed by length.

    Deterministic for a given ``seed``; every batch has exactly ``batch_size``
    rows. Sentences longer than the last boundary form their own bucket.
    """
    offset, size = int(table.offsets[corpus_index]), table.sizes[corpus_index]
    lengths = table.lengths
    rows = tf.data.Dataset.range(offset, offset + size).map(lambda r: tf.cast(r, tf.int32))
    rows = rows.shuffle(size, seed=seed, reshuffle_each_iteration=True).repeat()
    return rows.bucket_by_sequence_length(
        element_length_func=lambda r: tf.gather(lengths, r),
        bucket_boundaries=list(buckets),
        bucket_batch_sizes=[batch_size] * (len(buckets) + 1),
        drop_remainder=True)


def stacked_stream(corpora, batch_size, seed, labeled, buckets=DEFAULT_BUCKETS):
    """One batch per language per element, stacked along the batch axis
    (language 0's rows first), padded to the longest sentence and word."""
    table = SentenceTable(corpora, labeled)
    streams = tuple(row_stream(table, i, batch_size, seed * 7919 + i, buckets)
                    for i in range(len(corpora)))
    return tf.data.Dataset.zip(streams).map(lambda *rows: table.batch(tf.concat(rows, 0)))


def training_stream(labeled, unlabeled, batch_size, seed, discriminator_steps=1,
                    adversarial=True, buckets=DEFAULT_BUCKETS, taught=None):
    """The data of one training iteration per element.

    ``{"labeled": stacked source batches,
       "discriminator": tuple of k stacked unlabeled batches (k D updates),
       "unlabeled": stacked unlabeled batches for the adversarial term,
       "taught": a batch of the target's text with a teacher's ``soft`` labels}``.
    Each stream has its own seed, so the k D batches and the adversarial batch
    are different samples, as in the authors' separate iterators. Without an
    adversary (λ = 0) the ``unlabeled`` stream is left out; ``taught`` (an
    :class:`EncodedCorpus` with ``soft``) only in self-training.
    """
    streams = {"labeled": stacked_stream(labeled, batch_size, seed, True, buckets),
               "discriminator": tuple(
                   stacked_stream(unlabeled, batch_size, seed + 101 * (i + 1), False, buckets)
                   for i in range(discriminator_steps))}
    if adversarial:
        streams["unlabeled"] = stacked_stream(unlabeled, batch_size, seed + 50021, False, buckets)
    if taught is not None:
        streams["taught"] = stacked_stream([taught], batch_size, seed + 70001, False, buckets)
    # Encoder features come from a NumPy gather, a pure function of the row
    # ids: the iterator's checkpoint need not (and cannot) save its state.
    options = tf.data.Options()
    options.experimental_external_state_policy = \
        tf.data.experimental.ExternalStatePolicy.IGNORE
    return tf.data.Dataset.zip(streams).with_options(options).prefetch(tf.data.AUTOTUNE)


def evaluation_batches(corpus, batch_size=64, labeled=True):
    """Batches in length order (less padding) with an ``index`` field giving
    each sentence's position in the corpus, to restore file order."""
    table = SentenceTable([corpus], labeled)
    order = np.argsort(corpus.lengths, kind="stable").astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
    return dataset.map(lambda rows: dict(table.batch(rows), index=rows)).prefetch(
        tf.data.AUTOTUNE)
