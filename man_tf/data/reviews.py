"""Readers for document classification data.

``read_reviews``: Webis-CLS-10 ``.review`` files (Prettenhofer & Stein 2010),
the XML the paper's cross-lingual sentiment experiments use: one ``<item>``
per review with ``<rating>``, ``<summary>``, ``<text>`` and more. Parsed as
a stream with expat (constant memory; errors carry a line number). Ratings
1-2 are negative (label 0), 4-5 positive (label 1); any other rating is an
error naming the line, or (``skip_unknown=True``) skipped and counted.

``read_labeled_text``: users' own data, ``label<TAB>text`` per line.
"""

import dataclasses
from xml.parsers import expat

from man_tf.data.errors import DataError
from man_tf.data.textio import AUTO, iter_lines, resolve_encoding

NEGATIVE, POSITIVE = 0, 1
LABELS = ("negative", "positive")
_CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Document:
    """One document: its text, label id (``None`` when unlabeled), source."""

    text: str
    label: int = None
    source: str = ""  # "path:line" of the item / row
    summary: str = ""


def rating_label(rating):
    """``"5.0"`` -> 1, ``"1.0"`` -> 0; ``ValueError`` for 3 or anything else."""
    value = float(rating)
    if value in (1.0, 2.0):
        return NEGATIVE
    if value in (4.0, 5.0):
        return POSITIVE
    raise ValueError(rating)


def read_reviews(path, skip_unknown=False, with_counts=False):
    """Reads a Webis-CLS-10 ``.review`` file into a list of :class:`Document`.

    Returns the list, or ``(list, skipped)`` with ``with_counts=True``.
    """
    resolve_encoding(path, "utf-8")
    documents, skipped = [], 0
    item, field, buffer, item_line = None, None, [], 0
    parser = expat.ParserCreate("utf-8")

    def start(name, attrs):
        nonlocal item, field, buffer, item_line
        if name == "item":
            item, item_line = {}, parser.CurrentLineNumber
        elif item is not None:
            field, buffer = name, []

    def data(text):
        if field is not None:
            buffer.append(text)

    def end(name):
        nonlocal item, field, skipped
        if name == "item" and item is not None:
            where = f"{path}:{item_line}"
            if "rating" not in item or "text" not in item:
                raise DataError(path, item_line, "review without <rating> or <text>")
            try:
                label = rating_label(item["rating"])
            except ValueError:
                if not skip_unknown:
                    raise DataError(path, item_line, f"rating {item['rating']!r} is neither "
                                    f"negative (1-2) nor positive (4-5)") from None
                skipped += 1
            else:
                documents.append(Document(item["text"].strip(), label, where,
                                          item.get("summary", "").strip()))
            item = None
        elif item is not None and name == field:
            item[field] = "".join(buffer)
            field = None

    parser.StartElementHandler = start
    parser.CharacterDataHandler = data
    parser.EndElementHandler = end
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as e:
        raise DataError(path, e.lineno, f"malformed XML: {expat.ErrorString(e.code)} "
                        f"(column {e.offset + 1})") from None
    if not documents and not skipped:
        raise DataError(path, 1, "no <item> reviews found")
    return (documents, skipped) if with_counts else documents


def read_labeled_text(path, labels=LABELS, encoding=AUTO):
    """``label<TAB>text`` lines -> documents; ``labels`` maps names to ids."""
    index = {name: i for i, name in enumerate(labels)}
    documents = []
    for number, line in iter_lines(path, encoding):
        if not line.strip():
            continue
        name, sep, text = line.partition("\t")
        if not sep:
            raise DataError(path, number, "expected 'label<TAB>text'")
        if name not in index:
            raise DataError(path, number, f"unknown label {name!r}: expected one of "
                            f"{list(labels)}")
        documents.append(Document(text.strip(), index[name], f"{path}:{number}"))
    if not documents:
        raise DataError(path, 1, "empty file: expected 'label<TAB>text' lines")
    return documents
