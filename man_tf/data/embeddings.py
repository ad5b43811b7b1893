"""Streaming reader for fastText/MUSE/VecMap/UMWE ``.vec`` text embeddings.

Format: an optional header ``<count> <dim>``, then ``word v1 ... vdim`` per
line. Files run to gigabytes, so lines are read one at a time and only the
vectors a vocabulary needs are kept (``needed``), up to ``max_words`` lines
(``.vec`` files are sorted by frequency, so a cap keeps the frequent words,
like the 200k-word files the authors used).

Lookup is exact first, then by lowercase: a vocabulary word ``berlin`` takes
the vector of ``Berlin`` when the file has no ``berlin``.
"""

import dataclasses

import numpy as np
from absl import logging

from man_tf.data.errors import DataError
from man_tf.data.textio import resolve_encoding


@dataclasses.dataclass
class Embeddings:
    """Vectors found for a vocabulary, and what happened while reading."""

    vectors: dict  # word -> np.ndarray [dim], exactly as spelled in the file
    dim: int
    lowercased: dict = dataclasses.field(default_factory=dict)  # lower(word) -> first vector
    lines_read: int = 0
    duplicates: int = 0
    undecodable: int = 0
    first_undecodable_line: int = 0

    def lookup(self, word):
        """Exact vector, else the lowercase one, else ``None``."""
        vector = self.vectors.get(word)
        if vector is None:
            lower = word.lower()
            vector = self.vectors.get(lower)
            if vector is None:
                vector = self.lowercased.get(lower)
        return vector


def _parse_header(fields):
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[1])
    return None


def read_vec(path, needed=None, max_words=None, dim=None, strict_utf8=False):
    """Reads a ``.vec`` file.

    Args:
      path: the ``.vec`` file (UTF-8 text).
      needed: words to keep (a set), or ``None`` to keep every word read. A
        file word is also kept when its lowercase form is needed.
      max_words: stop after this many vector lines (``None``: read all).
      dim: expected dimension; ``None`` takes it from the header or first line.
      strict_utf8: a line that is not valid UTF-8 is an error when True;
        otherwise it is skipped and counted (real fastText dumps contain a
        few broken byte sequences).

    Raises:
      DataError naming ``path:line`` for a wrong number of values, a value
      that is not a finite number, a header that contradicts ``dim``, or a file
      with no vectors.
    """
    resolve_encoding(path, "utf-8")  # existence and type checks
    needed_lower = None if needed is None else {w.lower() for w in needed}
    result = Embeddings(vectors={}, dim=dim or 0)
    header_dim_checked = False
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if strict_utf8:
                    raise DataError(path, number, f"byte 0x{raw[e.start]:02x} is not "
                                    "valid UTF-8; .vec files must be UTF-8") from None
                result.undecodable += 1
                result.first_undecodable_line = result.first_undecodable_line or number
                continue
            fields = text.rstrip("\r\n").rstrip(" ").split(" ")
            if number == 1 and not header_dim_checked:
                header_dim_checked = True
                header_dim = _parse_header(fields)
                if header_dim is not None:
                    if dim and header_dim != dim:
                        raise DataError(path, 1, f"header says dimension {header_dim}, "
                                        f"expected {dim} (the configured embedding size)")
                    result.dim = header_dim
                    continue
            if max_words is not None and result.lines_read >= max_words:
                break
            result.lines_read += 1
            word, values = fields[0], fields[1:]
            if not result.dim:
                result.dim = len(values)
            if len(values) != result.dim:
                raise DataError(path, number, f"expected {result.dim} values after the "
                                f"word, got {len(values)}")
            keep = needed is None or word in needed or word.lower() in needed_lower
            if not keep:
                continue
            if word in result.vectors:
                result.duplicates += 1
                continue
            try:
                vector = np.asarray(values, dtype=np.float32)
            except ValueError:
                raise DataError(path, number, "expected numbers after the word") from None
            if not np.all(np.isfinite(vector)):
                raise DataError(path, number, "vector has NaN or Inf values")
            result.vectors[word] = vector
            result.lowercased.setdefault(word.lower(), vector)
    if result.lines_read == 0:
        raise DataError(path, 1, "no vectors: expected lines 'word v1 ... vN'")
    if result.duplicates:
        logging.warning("%s: %d duplicate words; kept the first vector of each",
                        path, result.duplicates)
    if result.undecodable:
        logging.warning("%s: skipped %d lines that are not valid UTF-8 (first: line %d)",
                        path, result.undecodable, result.first_undecodable_line)
    return result
