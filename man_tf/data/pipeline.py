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
    tags     int32 [N, T]     tag ids (labeled batches only; 0 at padding)
"""

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

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

    def __len__(self):
        return len(self.lengths)


def encode(sentences, language_name, language_id, words, chars, tags=None,
           max_chars=20, max_length=None):
    """Turns :class:`Sentence` objects into an :class:`EncodedCorpus`.

    ``tags`` (a ``TagVocabulary``) is given for labeled data only; it is never
    read for unlabeled text even when the sentences carry tags.
    """
    lengths, word_ids, char_lengths, char_ids, tag_ids = [], [], [], [], []
    truncated = 0
    for sentence in sentences:
        tokens = sentence.tokens
        if max_length and len(tokens) > max_length:
            tokens = tokens[:max_length]
            truncated += 1
        lengths.append(len(tokens))
        word_ids.extend(words.ids(language_name, tokens))
        for token in tokens:
            ids = chars.ids(token, max_chars) or [0]
            char_lengths.append(len(ids))
            char_ids.extend(ids)
        if tags is not None:
            tag_ids.extend(tags.id(t) for t in sentence.tags[:len(tokens)])
    as_int = lambda x: np.asarray(x, dtype=np.int32)
    return EncodedCorpus(language_id, as_int(lengths), as_int(word_ids), as_int(char_lengths),
                         as_int(char_ids), as_int(tag_ids) if tags is not None else None,
                         truncated)


def sentence_dataset(corpus, labeled, index=None):
    """A dataset of single sentences, each a dict of dense tensors; ``index``
    (default ``0..n-1``) labels each sentence with its position in a file."""
    words = tf.RaggedTensor.from_row_lengths(corpus.words, corpus.lengths)
    chars = tf.RaggedTensor.from_nested_row_lengths(
        corpus.chars, [corpus.lengths, corpus.char_lengths])
    features = {"words": words, "chars": chars,
                "index": np.arange(len(corpus), dtype=np.int32) if index is None else index}
    if labeled:
        if corpus.tags is None:
            raise ValueError("a labeled dataset needs tags")
        features["tags"] = tf.RaggedTensor.from_row_lengths(corpus.tags, corpus.lengths)
    language = corpus.language

    def densify(x):
        out = dict(x, chars=x["chars"].to_tensor(), language=tf.constant(language, tf.int32))
        out["lengths"] = tf.shape(x["words"])[0]
        return out

    return tf.data.Dataset.from_tensor_slices(features).map(densify)


def _drop_index(batch):
    return {k: v for k, v in batch.items() if k != "index"}


def language_stream(corpus, batch_size, seed, labeled, buckets=DEFAULT_BUCKETS):
    """Endless shuffled batches of one language, bucketed by sentence length.

    Deterministic for a given ``seed``; every batch has exactly ``batch_size``
    sentences. Sentences longer than the last bucket boundary form their own
    bucket.
    """
    dataset = sentence_dataset(corpus, labeled)
    dataset = dataset.shuffle(len(corpus), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda x: x["lengths"],
        bucket_boundaries=list(buckets),
        bucket_batch_sizes=[batch_size] * (len(buckets) + 1),
        drop_remainder=True)
    return dataset.map(_drop_index)


def stacked(*batches):
    """Pads per-language batches to a common ``[T, C]`` and concatenates them."""
    max_t = tf.reduce_max([tf.shape(b["words"])[1] for b in batches])
    max_c = tf.reduce_max([tf.shape(b["chars"])[2] for b in batches])
    out = {}
    for key in batches[0]:
        parts = []
        for b in batches:
            x = b[key]
            if key == "chars":
                x = tf.pad(x, [[0, 0], [0, max_t - tf.shape(x)[1]], [0, max_c - tf.shape(x)[2]]])
            elif x.shape.rank == 2:
                x = tf.pad(x, [[0, 0], [0, max_t - tf.shape(x)[1]]])
            parts.append(x)
        out[key] = tf.concat(parts, axis=0)
    return out


def stacked_stream(corpora, batch_size, seed, labeled, buckets=DEFAULT_BUCKETS):
    """One batch per language per element, stacked along the batch axis."""
    streams = tuple(language_stream(c, batch_size, seed * 7919 + i, labeled, buckets)
                    for i, c in enumerate(corpora))
    return tf.data.Dataset.zip(streams).map(stacked)


def training_stream(labeled, unlabeled, batch_size, seed, discriminator_steps=1,
                    adversarial=True, buckets=DEFAULT_BUCKETS):
    """The data of one training iteration per element.

    ``{"labeled": stacked source batches,
       "discriminator": tuple of k stacked unlabeled batches (k D updates),
       "unlabeled": stacked unlabeled batches for the adversarial term}``.
    Each stream has its own seed, so the k D batches and the adversarial batch
    are different samples, as in the authors' separate iterators. Without an
    adversary (λ = 0) the ``unlabeled`` stream is left out.
    """
    streams = {"labeled": stacked_stream(labeled, batch_size, seed, True, buckets),
               "discriminator": tuple(
                   stacked_stream(unlabeled, batch_size, seed + 101 * (i + 1), False, buckets)
                   for i in range(discriminator_steps))}
    if adversarial:
        streams["unlabeled"] = stacked_stream(unlabeled, batch_size, seed + 50021, False, buckets)
    return tf.data.Dataset.zip(streams).prefetch(tf.data.AUTOTUNE)


def evaluation_batches(corpus, batch_size=64, labeled=True):
    """Batches in length order (less padding); each batch's ``index`` gives the
    sentences' positions in the corpus, to restore file order."""
    order = np.argsort(corpus.lengths, kind="stable").astype(np.int32)
    dataset = sentence_dataset(_ordered_corpus(corpus, order), labeled, index=order)
    return dataset.padded_batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _ordered_corpus(corpus, order):
    """The corpus with its sentences permuted by ``order``."""
    starts = np.concatenate([[0], np.cumsum(corpus.lengths)])
    token_idx = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in order]) \
        if len(order) else np.zeros(0, np.int64)
    char_starts = np.concatenate([[0], np.cumsum(corpus.char_lengths)])
    char_idx = np.concatenate([np.arange(char_starts[t], char_starts[t + 1]) for t in token_idx]) \
        if len(token_idx) else np.zeros(0, np.int64)
    return EncodedCorpus(
        corpus.language, corpus.lengths[order], corpus.words[token_idx],
        corpus.char_lengths[token_idx], corpus.chars[char_idx],
        None if corpus.tags is None else corpus.tags[token_idx], corpus.truncated)
