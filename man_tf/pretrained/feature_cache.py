"""Encoder word features computed once per sentence and kept on disk.

A frozen encoder's features depend only on the sentence, so training reads
them from a cache instead of running the transformer every step. The cache
holds one ``.npy`` file of float16 ``[words, hidden]`` per (weights,
tokenizer, layer, sentences, compute dtype, and whether the sentences were
read as one text: ``model.encoder_joined_languages``) combination, named by
a SHA-256 over all of them (features are computed in float32 whatever the training
precision, as the serving graph computes them; caches written before the
dtype was part of the key held features computed in the training's
mixed_bfloat16 and are not read),
written to a temporary name and renamed (a crash never leaves a
half-written cache), and read memory-mapped. One file per layer: runs that
ask for other layers (or a mix of several) reuse the layers already there,
and the layers missing are extracted together in one pass.
"""

import hashlib
import os
import time

import numpy as np
from absl import logging


def sentences_digest(sentences):
    """SHA-256 (bytes) over every token of every sentence, in order."""
    digest = hashlib.sha256()
    for sentence in sentences:
        digest.update("\x1e".join(sentence).encode("utf-8"))
        digest.update(b"\x1d")
    return digest.digest()


def cache_key(weights_sha256, tokenizer_proto, layer, sentences_sha256, compute_dtype="float32",
              joined=False):
    """SHA-256 naming one layer's cache file: the weights file, the
    tokenizer, the layer, the sentences (:func:`sentences_digest`), the
    dtype the encoder computed in, and ``joined`` (each sentence read as one
    text; word-by-word keys are those of caches written before the option)."""
    digest = hashlib.sha256()
    digest.update(weights_sha256.encode())
    digest.update(hashlib.sha256(tokenizer_proto).digest())
    digest.update(f"layer {int(layer)}".encode())
    digest.update(sentences_sha256)
    digest.update(f"compute {compute_dtype}".encode())
    if joined:
        digest.update(b"joined text")
    return digest.hexdigest()


def _batches(order, cost, budget):
    """Consecutive runs of ``order`` whose summed padded cost
    (``len(run) * max(cost)``) stays within ``budget`` (at least one each)."""
    i = 0
    while i < len(order):
        j, longest = i + 1, cost[order[i]]
        while j < len(order) and (j + 1 - i) * max(longest, cost[order[j]]) <= budget:
            longest = max(longest, cost[order[j]])
            j += 1
        yield order[i:j]
        i = j


def extract(features, sentences, batch_pieces=1024, log_every_s=10.0, name="features",
            joined=False):
    """Runs ``features`` (a :class:`WordFeatures`) over ``sentences`` (token
    lists; ``joined``: each read as one text) in batches of sentences with
    similar piece counts (about ``batch_pieces`` pieces with padding); returns float16
    ``[total words, layers, hidden]`` in sentence order, and logs a progress
    line with the rate and ETA every ``log_every_s`` seconds."""
    import tensorflow as tf

    lengths = np.array([len(s) for s in sentences], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    out = np.zeros([int(offsets[-1]), len(features.layers), features.hidden], np.float16)
    ragged = lambda rows: tf.RaggedTensor.from_row_lengths(
        tf.constant([t for s in rows for t in s], tf.string),
        tf.constant([len(s) for s in rows], tf.int64))
    # Piece counts first (tokenizing is cheap next to the encoder), so that a
    # batch pads to its own longest sentence in pieces, not in words.
    pieces = np.zeros(len(sentences), np.int64)
    marks = lambda n: tf.fill([n], True) if joined else None
    for at in range(0, len(sentences), 4096):
        chunk = sentences[at:at + 4096]
        cut, _ = features.sentence_pieces(ragged(chunk), marks(len(chunk)))
        pieces[at:at + len(chunk)] = cut.row_lengths().numpy()
    cost = np.minimum(pieces, features.window) + 2
    order = np.argsort(pieces, kind="stable")
    start = last_log = time.time()
    done_words = done_pieces = 0
    for batch in _batches(order, cost, batch_pieces):
        values = features.compiled(ragged([sentences[j] for j in batch]),
                                   marks(len(batch))).numpy()
        for row, j in enumerate(batch):
            n = int(lengths[j])
            out[offsets[j]:offsets[j] + n] = values[row, :n]
        done_words += int(lengths[batch].sum())
        done_pieces += int(pieces[batch].sum())
        now = time.time()
        if now - last_log >= log_every_s or done_words == offsets[-1]:
            rate = done_pieces / max(now - start, 1e-9)
            eta = (pieces.sum() - done_pieces) / max(rate, 1e-9)
            logging.info("%s: %d/%d words  %.0f pieces/s  eta %dm%02ds", name, done_words,
                         offsets[-1], rate, eta // 60, eta % 60)
            last_log = now
    return out


class LayerStack:
    """Several layers' memory-mapped ``[words, hidden]`` files read as one
    ``[words, layers, hidden]`` array, without copying them into memory:
    indexing rows gathers those rows of each layer."""

    def __init__(self, layers):
        self.layers = list(layers)
        self.shape = (len(self.layers[0]), len(self.layers), self.layers[0].shape[1])
        self.dtype = self.layers[0].dtype

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        return np.stack([layer[rows] for layer in self.layers], axis=-2)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


def cached_features(directory, keys, compute):
    """Features ``[words, len(keys), hidden]`` float16 for ``keys`` (layer ->
    :func:`cache_key`), from ``<directory>/<key>.npy``; the layers whose file
    is absent are computed with ``compute(layers)`` (-> ``[words,
    len(layers), hidden]``) and written atomically. One layer comes back as
    a memory-mapped view, several as a :class:`LayerStack` of them (nothing
    copied into memory: corpora that share a file share its pages)."""
    paths = {layer: os.path.join(directory, f"{key}.npy") for layer, key in keys.items()}
    missing = [layer for layer, path in paths.items() if not os.path.exists(path)]
    if missing:
        os.makedirs(directory, exist_ok=True)
        values = compute(missing)
        for i, layer in enumerate(missing):
            path = paths[layer]
            tmp = f"{path}.tmp-{os.getpid()}.npy"
            np.save(tmp, np.ascontiguousarray(values[:, i]))
            os.replace(tmp, path)
            logging.info("wrote feature cache %s (layer %d, %.1f MB)", path, layer,
                         os.path.getsize(path) / 2**20)
    maps = [np.load(paths[layer], mmap_mode="r") for layer in keys]
    return maps[0][:, None, :] if len(maps) == 1 else LayerStack(maps)
