"""GermEval 2014 reader: ``index<TAB>token<TAB>outer<TAB>nested`` rows, ``#`` source lines.

GermEval annotates 12 classes (PER, LOC, ORG, OTH, each also as ``-deriv`` and
``-part``). With ``map_to_conll=True`` the outer layer is mapped to the
CoNLL types: PER/LOC/ORG stay, OTH becomes MISC, ``-deriv`` (``deutsche``)
becomes MISC as CoNLL annotates nationality adjectives, and ``-part``
(``EU-Verordnung``) becomes O since CoNLL does not tag words that merely
contain a name. That is a different guideline from CoNLL's; use the mapped
tags for extra signal, not as a CoNLL test set.
"""

from man_tf.data.conll import Sentence, split_tag, to_bio2
from man_tf.data.errors import DataError
from man_tf.data.textio import AUTO, iter_lines

_BASE_TYPES = {"PER": "PER", "LOC": "LOC", "ORG": "ORG", "OTH": "MISC"}


def map_germeval_tag(tag):
    """Maps one GermEval outer tag to CoNLL's four types (see module docstring)."""
    prefix, entity_type = split_tag(tag)
    if prefix == "O":
        return "O"
    if entity_type.endswith("part"):
        return "O"
    if entity_type.endswith("deriv"):
        return f"{prefix}-MISC"
    if entity_type not in _BASE_TYPES:
        raise ValueError(tag)
    return f"{prefix}-{_BASE_TYPES[entity_type]}"


def _checked(tag):
    split_tag(tag)
    return tag


def read_germeval(path, encoding=AUTO, map_to_conll=False, labeled=True):
    """Reads GermEval 2014 TSV; tags are the outer layer, mapped if asked."""
    sentences = []
    tokens, tags, start = [], [], None

    def flush():
        nonlocal tokens, tags, start
        if tokens:
            labels = None
            if labeled:
                labels = to_bio2(tags) if map_to_conll else tuple(tags)
            sentences.append(Sentence(tuple(tokens), labels, f"{path}:{start}"))
        tokens, tags, start = [], [], None

    for number, line in iter_lines(path, encoding):
        if line.startswith("#"):
            continue
        if not line.strip():
            flush()
            continue
        columns = line.split("\t")
        if len(columns) < 3:
            raise DataError(path, number, f"expected 4 tab-separated columns "
                            f"(index, token, outer tag, nested tag), got {len(columns)}")
        if labeled:
            tag = columns[2]
            try:
                tags.append(map_germeval_tag(tag) if map_to_conll else _checked(tag))
            except ValueError:
                raise DataError(path, number, f"unknown GermEval tag {tag!r}") from None
        if start is None:
            start = number
        tokens.append(columns[1])
    flush()
    if not sentences:
        raise DataError(path, 1, "empty file: expected GermEval 2014 sentences")
    return sentences
