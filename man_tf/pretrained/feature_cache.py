"""Encoder word features computed once per sentence and kept on disk.

A frozen encoder's features depend only on the sentence, so training reads
them from a cache instead of running 12 transformer layers every step. The
cache is one ``.npy`` file of float16 ``[words, layers, hidden]`` per
(weights, tokenizer, layers, sentences) combination, named by a SHA-256 over
all four, written to a temporary name and renamed (a crash never leaves a
half-written cache), and read memory-mapped.
"""

import hashlib
import os
import time

import numpy as np
from absl import logging


def cache_key(weights_sha256, tokenizer_proto, layers, sentences):
    """SHA-256 naming a cache: the weights file, the tokenizer, the layers
    and every token of every sentence (in order)."""
    digest = hashlib.sha256()
    digest.update(weights_sha256.encode())
    digest.update(hashlib.sha256(tokenizer_proto).digest())
    digest.update(repr(tuple(layers)).encode())
    for sentence in sentences:
        digest.update("\x1e".join(sentence).encode("utf-8"))
        digest.update(b"\x1d")
    return digest.hexdigest()


def extract(features, sentences, batch_words=2048, log_every_s=10.0, name="features"):
    """Runs ``features`` (a :class:`WordFeatures`) over ``sentences`` (token
    lists) in length-sorted batches of about ``batch_words`` words; returns
    float16 ``[total words, layers, hidden]`` in sentence order, and logs a
    progress line with the rate and ETA every ``log_every_s`` seconds."""
    import tensorflow as tf

    lengths = np.array([len(s) for s in sentences], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    out = np.zeros([int(offsets[-1]), len(features.layers), features.hidden], np.float16)
    order = np.argsort(lengths, kind="stable")
    run = features.compiled
    start = last_log = time.time()
    done_words = i = 0
    while i < len(order):
        batch = [order[i]]
        words = max(int(lengths[order[i]]), 1)
        i += 1
        while i < len(order) and words + max(int(lengths[order[i]]), 1) <= batch_words:
            batch.append(order[i])
            words += max(int(lengths[order[i]]), 1)
            i += 1
        tokens = tf.ragged.constant([list(sentences[j]) for j in batch], dtype=tf.string,
                                    row_splits_dtype=tf.int64)
        values = run(tokens).numpy()
        for row, j in enumerate(batch):
            n = int(lengths[j])
            out[offsets[j]:offsets[j] + n] = values[row, :n]
        done_words += sum(int(lengths[j]) for j in batch)
        now = time.time()
        if now - last_log >= log_every_s or i == len(order):
            rate = done_words / max(now - start, 1e-9)
            eta = (offsets[-1] - done_words) / max(rate, 1e-9)
            logging.info("%s: %d/%d words  %.0f words/s  eta %dm%02ds", name, done_words,
                         offsets[-1], rate, eta // 60, eta % 60)
            last_log = now
    return out


def cached_features(directory, key, compute):
    """The cache file ``<directory>/<key>.npy`` memory-mapped; computed with
    ``compute()`` and written atomically when absent."""
    path = os.path.join(directory, f"{key}.npy")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        values = compute()
        tmp = f"{path}.tmp-{os.getpid()}.npy"
        np.save(tmp, values)
        os.replace(tmp, path)
        logging.info("wrote feature cache %s (%.1f MB)", path, os.path.getsize(path) / 2**20)
    return np.load(path, mmap_mode="r")
