"""Plain-text reader for unlabeled text: one sentence per line, whitespace tokens."""

from man_tf.data.conll import Sentence
from man_tf.data.errors import DataError
from man_tf.data.textio import AUTO, iter_lines


def read_plain_text(path, encoding=AUTO):
    """Returns unlabeled :class:`Sentence` objects; blank lines are skipped."""
    sentences = [Sentence(tuple(line.split()), None, f"{path}:{number}")
                 for number, line in iter_lines(path, encoding) if line.strip()]
    if not sentences:
        raise DataError(path, 1, "empty file: expected one sentence per line")
    return sentences
