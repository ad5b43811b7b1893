"""A SentencePiece model proto for the bundled XLM-R vocabulary, so that TF
Text's ``SentencepieceTokenizer`` (an op TensorFlow Serving links) segments
words inside the graph exactly as the unigram reference does.

The proto holds the pieces with their unigram scores (``<s>``, ``<pad>``,
``</s>``, ``<mask>`` as control pieces, ``<unk>`` as the unknown piece) and
an *identity* normalizer: the file's per-codepoint normalization table is
applied before, in TF ops (:func:`normalize_words`), because SentencePiece
only takes it as a compiled trie. Written directly in protobuf's wire
format (fields of ``sentencepiece_model.proto``), so the ``sentencepiece``
package is not needed.
"""

import struct

import tensorflow as tf

NORMAL, UNKNOWN, CONTROL = 1, 2, 3
UNIGRAM = 1
META = "\u2581"


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(field, wire_type):
    return _varint((field << 3) | wire_type)


def _bytes_field(field, data):
    return _key(field, 2) + _varint(len(data)) + data


def _int_field(field, value):
    return _key(field, 0) + _varint(value)


def _float_field(field, value):
    return _key(field, 5) + struct.pack("<f", value)


def model_proto(weights):
    """``E5Weights`` -> serialized ``sentencepiece.ModelProto`` bytes."""
    specials = {weights.bos_id, weights.eos_id, weights.pad_id}
    out = bytearray()
    for i, piece in enumerate(weights.pieces):
        kind = UNKNOWN if i == weights.unk_id else \
            CONTROL if i in specials or (piece.startswith("<") and piece.endswith(">")
                                         and piece in ("<mask>",)) else NORMAL
        body = _bytes_field(1, piece.encode("utf-8")) + \
            _float_field(2, float(weights.scores[i])) + _int_field(3, kind)
        out += _bytes_field(1, body)
    trainer = _int_field(3, UNIGRAM) + _int_field(4, len(weights.pieces)) + \
        _int_field(40, weights.unk_id) + _int_field(41, weights.bos_id) + \
        _int_field(42, weights.eos_id) + _int_field(43, weights.pad_id)
    out += _bytes_field(2, trainer)
    normalizer = _bytes_field(1, b"identity") + _int_field(3, 1) + _int_field(4, 0) + \
        _int_field(5, 1)
    out += _bytes_field(3, normalizer)
    return bytes(out)


class NormalizerTable:
    """The file's per-codepoint normalization as a TF lookup table."""

    MISSING = "\x00"

    def __init__(self, weights):
        keys = [chr(c) for c in weights.normalizer]
        values = ["".join(chr(r) for r in v) for v in weights.normalizer.values()]
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)),
            self.MISSING)

    def __call__(self, words):
        """string ``[n]`` -> normalized string ``[n]`` (each character replaced
        by its table entry, if any; runs of spaces collapsed)."""
        chars = tf.strings.unicode_split(words, "UTF-8")
        mapped = self.table.lookup(chars.flat_values)
        flat = tf.where(tf.equal(mapped, self.MISSING), chars.flat_values, mapped)
        joined = tf.strings.reduce_join(chars.with_flat_values(flat), axis=-1)
        return tf.strings.regex_replace(joined, " {2,}", " ")
