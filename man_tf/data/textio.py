"""Line-by-line reading of text files with an explicit or detected encoding.

Corpora come in UTF-8 and latin-1 side by side (CoNLL-2002 is latin-1,
CoNLL-2003 German is UTF-8). ``encoding="auto"`` checks the whole file as UTF-8
first (streaming, constant memory) and falls back to latin-1, which can decode
any byte sequence. An explicit ``"utf-8"`` turns undecodable bytes into a
:class:`DataError` naming the file, line and byte.
"""

import codecs
import json
import os

from man_tf.data.errors import DataError

AUTO = "auto"
_CHUNK = 1 << 20


def _is_utf8(path):
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def resolve_encoding(path, encoding=AUTO):
    """Returns the encoding that will be used to read ``path``."""
    if not os.path.exists(path):
        raise DataError(path, None, "no such file")
    if os.path.isdir(path):
        raise DataError(path, None, "is a directory, expected a text file")
    if encoding != AUTO:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DataError(path, None, f"unknown encoding {encoding!r}") from None
        return encoding
    return "utf-8" if _is_utf8(path) else "latin-1"


def not_text(path):
    """What the file looks like when it is no single-byte or UTF-8 text:
    ``"UTF-16 (it starts with a byte-order mark)"``, ``"UTF-16"`` (every
    other byte NUL), ``"binary"`` (NUL bytes), or ``None``."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "UTF-16 (it starts with a byte-order mark)"
    nuls = [i for i, byte in enumerate(head) if byte == 0]
    odd = sum(i % 2 for i in nuls)
    if len(nuls) >= len(head) // 3 and max(odd, len(nuls) - odd) >= 0.95 * len(nuls):
        return "UTF-16"  # ASCII in UTF-16: a NUL in every other byte, on one side
    return "binary" if nuls else None


def _not_text_error(path, number, offset, encoding, kind):
    fix = ("convert it to UTF-8, e.g. iconv -f utf-16 -t utf-8" if kind.startswith("UTF-16")
           else "give a CoNLL or plain-text file")
    return DataError(path, number, f"byte offset {offset}: not {encoding} text; the file "
                                   f"looks {kind}: {fix}")


def iter_lines(path, encoding=AUTO):
    """Yields ``(line_number, text)`` with line ends (LF or CRLF) removed.
    A byte that does not decode, or a NUL (UTF-16 or a binary file read as
    text), is a :class:`DataError` naming the line, the byte offset in the
    file and the encoding tried."""
    tried = "UTF-8 or latin-1" if encoding == AUTO else encoding
    encoding = resolve_encoding(path, encoding)
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as e:
                kind = not_text(path)
                if kind:
                    raise _not_text_error(path, number, offset + e.start, tried,
                                          kind) from None
                raise DataError(
                    path, number,
                    f"byte 0x{raw[e.start]:02x} at column {e.start + 1} (byte offset "
                    f"{offset + e.start}) is not valid {encoding}; give the file's encoding "
                    f"(--config.data.encoding=latin-1) or 'auto' to detect it per "
                    f"file") from None
            if "\x00" in text:
                raise _not_text_error(path, number, offset + raw.index(0), tried,
                                      not_text(path) or "binary")
            offset += len(raw)
            yield number, text.rstrip("\r\n")


def atomic_write_text(path, text):
    """Writes ``text`` to ``path`` via a temporary file and a rename, so a crash
    leaves either the old file or the new one, never half of one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path, data):
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=False) + "\n")
