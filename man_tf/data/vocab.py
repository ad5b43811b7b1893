"""Vocabularies saved with the model: words (per language or shared), characters, tags.

Word ids index one embedding matrix for all languages. With per-language
tables every language owns a block of rows (its own ``<pad>`` and ``<unk>``),
as in the paper where each language has its own embeddings; with a shared
table, identical strings in different languages share a row (useful without
aligned embeddings: many names are spelled alike across en/de/es/nl).
Evaluation, export and prediction load these files, never rebuild them.
"""

import collections
import json
import os

from man_tf.data.conll import split_tag
from man_tf.data.textio import atomic_write_json

PAD = "<pad>"
UNK = "<unk>"
PAD_ID, UNK_ID = 0, 1
SHARED = "*"  # block name of a shared word table


class Vocabulary:
    """A token <-> id map with ``<pad>`` = 0 and ``<unk>`` = 1."""

    def __init__(self, tokens):
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            tokens = [PAD, UNK] + [t for t in tokens if t not in (PAD, UNK)]
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}
        if len(self.index) != len(tokens):
            raise ValueError("duplicate tokens in vocabulary")

    def __len__(self):
        return len(self.tokens)

    def __contains__(self, token):
        return token in self.index

    def id(self, token):
        return self.index.get(token, UNK_ID)

    @classmethod
    def from_counts(cls, counts, min_count=1, max_size=None):
        """Most frequent first (ties alphabetical, so builds are reproducible)."""
        ranked = sorted((t for t, c in counts.items() if c >= min_count),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max(0, max_size - 2)]
        return cls(ranked)


class WordVocabulary:
    """Maps ``(language, word)`` to a row of the one word-embedding matrix."""

    def __init__(self, blocks, lowercase=True):
        """``blocks``: ordered ``{language or SHARED: Vocabulary}``."""
        self.blocks = dict(blocks)
        self.lowercase = lowercase
        self.offsets, offset = {}, 0
        for name, vocab in self.blocks.items():
            self.offsets[name] = offset
            offset += len(vocab)
        self.size = offset

    @property
    def shared(self):
        return list(self.blocks) == [SHARED]

    def block(self, language):
        return SHARED if self.shared else language

    def normalize(self, word):
        return word.lower() if self.lowercase else word

    def ids(self, language, words):
        name = self.block(language)
        if name not in self.blocks:
            raise KeyError(f"language {language!r} has no word vocabulary; "
                           f"trained languages: {sorted(self.blocks)}")
        vocab, offset = self.blocks[name], self.offsets[name]
        return [offset + vocab.id(self.normalize(w)) for w in words]

    def unk_id(self, language):
        return self.offsets[self.block(language)] + UNK_ID

    def rows(self):
        """Yields ``(row, block name, word)`` for every row, in row order."""
        for name, vocab in self.blocks.items():
            for i, word in enumerate(vocab.tokens):
                yield self.offsets[name] + i, name, word

    @classmethod
    def build(cls, sentences_by_language, shared=False, lowercase=True, min_count=1,
              max_size=None, extra_words=None):
        """Builds from training text; ``extra_words[lang]`` (e.g. words that
        have pretrained vectors) are added even when rarer than ``min_count``."""
        counts = collections.defaultdict(collections.Counter)
        for language, sentences in sentences_by_language.items():
            name = SHARED if shared else language
            for sentence in sentences:
                counts[name].update(w.lower() if lowercase else w for w in sentence.tokens)
        for language, words in (extra_words or {}).items():
            name = SHARED if shared else language
            for w in words:
                w = w.lower() if lowercase else w
                counts[name][w] = max(counts[name][w], min_count)
        blocks = {name: Vocabulary.from_counts(c, min_count, max_size)
                  for name, c in counts.items()}
        return cls(blocks, lowercase)

    def to_json(self):
        return {"lowercase": self.lowercase,
                "blocks": {name: v.tokens for name, v in self.blocks.items()}}

    @classmethod
    def from_json(cls, data):
        return cls({name: Vocabulary(tokens) for name, tokens in data["blocks"].items()},
                   data["lowercase"])


class CharVocabulary(Vocabulary):
    """One character vocabulary shared by all languages (the char-CNN is shared)."""

    def __init__(self, tokens, lowercase=False):
        super().__init__(tokens)
        self.lowercase = lowercase

    def ids(self, word, max_chars):
        word = word.lower() if self.lowercase else word
        return [self.id(c) for c in word[:max_chars]]

    @classmethod
    def build(cls, sentences, lowercase=False, min_count=1):
        counts = collections.Counter()
        for sentence in sentences:
            for word in sentence.tokens:
                counts.update(word.lower() if lowercase else word)
        vocab = Vocabulary.from_counts(counts, min_count)
        return cls(vocab.tokens, lowercase)


class LabelVocabulary:
    """The labels a model predicts (a classifier's classes), in id order.
    ``tags`` is the same list: the name the workdir files and the tagging
    code use."""

    kind = "label"

    def __init__(self, labels):
        self.labels = list(labels)
        self.index = {t: i for i, t in enumerate(self.labels)}

    @property
    def tags(self):
        return self.labels

    def __len__(self):
        return len(self.labels)

    def id(self, label):
        if label not in self.index:
            raise KeyError(f"{self.kind} {label!r} is not in the training {self.kind} set "
                           f"{self.labels}")
        return self.index[label]


class TagVocabulary(LabelVocabulary):
    """BIO2 tags, ``O`` first; every type gets both ``B-`` and ``I-``."""

    kind = "tag"

    @property
    def entity_types(self):
        return sorted({t[2:] for t in self.tags if t != "O"})

    @classmethod
    def build(cls, sentences):
        types = set()
        for sentence in sentences:
            for tag in sentence.tags:
                prefix, entity_type = split_tag(tag)
                if entity_type:
                    types.add(entity_type)
        return cls(["O"] + [f"{p}-{t}" for t in sorted(types) for p in ("B", "I")])


def save_vocabularies(directory, words, chars, tags):
    """Writes ``vocab.json`` atomically (temporary file, then rename)."""
    path = os.path.join(directory, "vocab.json")
    atomic_write_json(path, {"words": words.to_json(),
                             "chars": {"tokens": chars.tokens, "lowercase": chars.lowercase},
                             "tags": tags.tags})
    return path


def load_vocabularies(directory, label_vocabulary=TagVocabulary):
    """Returns ``(WordVocabulary, CharVocabulary, label_vocabulary(labels))``
    (``label_vocabulary``: the task's, ``Task.label_vocabulary``; a
    classifier's labels are its classes)."""
    with open(os.path.join(directory, "vocab.json"), encoding="utf-8") as f:
        data = json.load(f)
    return (WordVocabulary.from_json(data["words"]),
            CharVocabulary(data["chars"]["tokens"], data["chars"]["lowercase"]),
            label_vocabulary(data["tags"]))
