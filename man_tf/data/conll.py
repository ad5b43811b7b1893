"""CoNLL-2002/2003 NER reader: word in the first column, tag in the last.

Handles what the real files throw at a reader: 2 or more columns (even mixed
within a file; the columns between word and tag are ignored), latin-1 and UTF-8, CRLF line ends, whitespace-only separator
lines, and ``-DOCSTART-`` document markers (never sentences). Tags are converted
to BIO2 by default, so that IOB1 files (``I-`` opens most entities) and BIO2
files share one tag vocabulary.
"""

import dataclasses
from typing import Optional

from man_tf.data.errors import DataError
from man_tf.data.textio import AUTO, iter_lines

DOCSTART = "-DOCSTART-"
OUTSIDE = "O"
PREFIXES = ("B", "I")


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One sentence (or document): tokens, tags or a class label (``None``
    when unlabeled), and where it came from."""

    tokens: tuple
    tags: Optional[tuple] = None
    source: str = ""  # "path:line" of the first token
    label: Optional[int] = None  # a document's class (classification data)

    def __len__(self):
        return len(self.tokens)


def split_long(sentences, max_length):
    """Cuts sentences longer than ``max_length`` tokens into consecutive
    pieces of at most ``max_length`` (tags cut alongside; every token kept).
    Returns ``(sentences, number of sentences cut)``."""
    out, cut = [], 0
    for sentence in sentences:
        if len(sentence) <= max_length:
            out.append(sentence)
            continue
        cut += 1
        for start in range(0, len(sentence), max_length):
            out.append(dataclasses.replace(
                sentence, tokens=sentence.tokens[start:start + max_length],
                tags=None if sentence.tags is None else
                sentence.tags[start:start + max_length]))
    return out, cut


def split_tag(tag):
    """``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", None)``; ``ValueError`` otherwise."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, sep, entity_type = tag.partition("-")
    if not sep or prefix not in PREFIXES or not entity_type:
        raise ValueError(tag)
    return prefix, entity_type


def to_bio2(tags):
    """Converts IOB1 (or mixed) tags to BIO2; BIO2 input comes back unchanged.

    An ``I-X`` that does not continue an ``X`` entity opens one, exactly as
    conlleval reads it, so the entities a scorer sees are the same before and
    after conversion.
    """
    out = []
    previous_type = None
    for tag in tags:
        prefix, entity_type = split_tag(tag)
        if prefix == "I" and previous_type != entity_type:
            prefix = "B"
        out.append(tag if prefix == OUTSIDE else f"{prefix}-{entity_type}")
        previous_type = entity_type
    return tuple(out)


def read_conll(path, encoding=AUTO, bio2=True, labeled=True):
    """Reads a CoNLL NER file into a list of :class:`Sentence`.

    Args:
      path: the file.
      encoding: ``"auto"`` (UTF-8 if the whole file decodes, else latin-1),
        or an explicit codec name; undecodable bytes are a ``DataError``.
      bio2: convert tags to BIO2.
      labeled: when False the tag column is not read (unlabeled target text:
        its labels must never reach training) and rows may have one column.

    Raises:
      DataError naming ``path:line`` for a row without a tag, an unknown tag
      prefix, or a file with no sentences.
    """
    sentences = []
    tokens, tags, start = [], [], None

    def flush():
        nonlocal tokens, tags, start
        if tokens:
            labels = None
            if labeled:
                labels = to_bio2(tags) if bio2 else tuple(tags)
            sentences.append(Sentence(tuple(tokens), labels, f"{path}:{start}"))
        tokens, tags, start = [], [], None

    for number, line in iter_lines(path, encoding):
        columns = line.split()
        if not columns:
            flush()
            continue
        if columns[0] == DOCSTART:
            flush()
            continue
        if labeled:
            if len(columns) < 2:
                raise DataError(path, number,
                                f"expected at least 2 columns (word ... tag), got 1: {line!r}")
            tag = columns[-1]
            try:
                split_tag(tag)
            except ValueError:
                raise DataError(path, number,
                                f"unknown tag {tag!r}: expected O, B-TYPE or I-TYPE") from None
            tags.append(tag)
        if start is None:
            start = number
        tokens.append(columns[0])
    flush()
    if not sentences:
        raise DataError(path, 1, "empty file: expected CoNLL sentences "
                        "(one 'word ... tag' row per token, blank line between sentences)")
    return sentences
