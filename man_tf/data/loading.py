"""From a config to data and vocabularies: reading every configured file,
building the word/character/tag vocabularies, encoding corpora for the
pipeline (with the encoder's word features when the model reads them).

What differs between tasks (how a file is read, how labels are built and
encoded, whether the dev set is cut from train) is asked of the ``task``
(a ``man_tf.tasks.Task``) the caller passes.
"""

import dataclasses

import numpy as np
from absl import logging

from man_tf.data import conll, embeddings, pipeline, plaintext, reviews, vocab
from man_tf.data.errors import DataError
from man_tf.pretrained.encoder_inputs import is_trainable
from man_tf.settings import ConfigError, data_path, resolve_languages


def tokenize_texts(texts, batch=2000):
    """Raw texts -> token tuples with TF Text's ``UnicodeScriptTokenizer``, the
    op the classification SavedModel runs on raw text (so training and
    serving split alike; Japanese, with no spaces, splits at script changes)."""
    import tensorflow_text as tf_text

    tokenizer = tf_text.UnicodeScriptTokenizer()
    out = []
    for start in range(0, len(texts), batch):
        rows = tokenizer.tokenize(list(texts[start:start + batch])).to_list()
        out.extend(tuple(t.decode("utf-8") for t in row) for row in rows)
    return out


def read_documents(path, labeled, encoding):
    """A classification file (``.review`` XML, ``label<TAB>text``, or for
    unlabeled text ``.txt``), tokenized as the serving graph tokenizes."""
    if path.endswith(".review"):
        documents = reviews.read_reviews(path)
    elif path.endswith(".txt") and not labeled:
        documents = [reviews.Document(" ".join(s.tokens), None, s.source)
                     for s in plaintext.read_plain_text(path, encoding)]
    else:
        documents = reviews.read_labeled_text(path, encoding=encoding)
    tokens = tokenize_texts([d.text for d in documents])
    return [conll.Sentence(t or ("",), None, d.source, d.label if labeled else None)
            for t, d in zip(tokens, documents)]


def read_tagged(path, labeled, encoding):
    """A tagging file: CoNLL, or for unlabeled text ``.txt``."""
    if path.endswith(".txt"):
        if labeled:
            raise ConfigError(f"{path}: a plain-text file has no tags; labeled data must "
                              f"be in CoNLL format")
        return plaintext.read_plain_text(path, encoding)
    return conll.read_conll(path, encoding=encoding, labeled=labeled)


def read_files(task, paths, labeled, encoding):
    """``paths`` (comma-separated for several), each read as ``task`` reads
    its files."""
    return [s for path in paths.split(",") for s in task.read(path, labeled, encoding)]


def dev_seed(config):
    """The seed of the target's dev cut (``data.dev_seed``; -1: ``config.seed``).
    Workdirs written before the field existed read as -1."""
    seed = config.data.get("dev_seed", -1)
    return config.seed if seed == -1 else seed


def _cut_dev(documents, size, seed):
    """A balanced, seeded sample of ``size`` labeled documents (the target's
    dev set for classification)."""
    rng = np.random.RandomState(seed)
    by_class = {}
    for i, d in enumerate(documents):
        by_class.setdefault(d.label, []).append(i)
    per_class = size // max(len(by_class), 1)
    chosen = sorted(j for rows in by_class.values()
                    for j in rng.permutation(rows)[:per_class])
    return [documents[j] for j in chosen]


@dataclasses.dataclass
class Data:
    sources: list
    target: str
    labeled: dict     # source -> sentences with tags (train split)
    unlabeled: dict   # every language -> sentences, tags never read
    dev: dict         # language -> labeled dev sentences (those configured)
    test: dict

    @property
    def languages(self):
        return [*self.sources, self.target]


def load_data(config, task, splits=("train", "dev", "test")):
    """Reads every configured file. The target's training text is read with
    ``labeled=False``: its tag column is never parsed."""
    sources, target = resolve_languages(config)
    encoding = config.data.encoding
    read = lambda paths, labeled: read_files(task, paths, labeled, encoding)
    data = Data(sources, target, {}, {}, {}, {})
    for lang in data.languages:
        if "train" in splits:
            unlabeled_path = data_path(config, lang, "unlabeled") or data_path(config, lang, "train")
            if unlabeled_path is None:
                raise ConfigError(f"language {lang!r} has no 'train' (or 'unlabeled') file in "
                                  f"config.data.languages.{lang}")
            data.unlabeled[lang] = read(unlabeled_path, False)
            if lang in sources:
                train_path = data_path(config, lang, "train")
                if train_path is None:
                    raise ConfigError(f"source {lang!r} has no labeled 'train' file")
                data.labeled[lang] = read(train_path, True)
        for split, store in (("dev", data.dev), ("test", data.test)):
            path = data_path(config, lang, split) if split in splits else None
            if path:
                store[lang] = read(path, True)
        if (task.cuts_dev_from_train and lang == target and "dev" in splits
                and lang not in data.dev and config.data.dev_from_train):
            # The authors' protocol: dev = reviews cut from the target's train
            # file (those reviews are never trained on with their labels).
            data.dev[lang] = _cut_dev(read(data_path(config, lang, "train"), True),
                                      config.data.dev_from_train, dev_seed(config))
    same_file = [lang for lang in data.labeled
                 if data_path(config, lang, "train") == data_path(config, target, "train")]
    if same_file and task.cuts_dev_from_train and config.data.dev_from_train \
            and not data_path(config, target, "dev"):
        # A source reading the target's train file (an in-language check,
        # configs/amazon_in_language.py) never trains on the dev cut, whether
        # or not this call reads the dev split.
        cut = {s.source for s in _cut_dev(read(data_path(config, target, "train"), True),
                                          config.data.dev_from_train, dev_seed(config))}
        for lang in same_file:
            data.labeled[lang] = [s for s in data.labeled[lang] if s.source not in cut]
    if "train" in splits:
        task.check_training_labels(data)
    return data


def warn_differing_entity_types(data):
    """Logs which sources lack entity types that others have."""
    types = {lang: set(vocab.TagVocabulary.build(s).entity_types)
             for lang, s in data.labeled.items()}
    union = set().union(*types.values())
    differences = {lang: sorted(union - t) for lang, t in types.items() if union - t}
    if differences:
        listed = "; ".join(f"{lang} lacks {missing}" for lang, missing in differences.items())
        logging.warning("entity types differ between sources (%s): the union %s is "
                        "used; a type a source never shows is learned from the others",
                        listed, sorted(union))


def class_vocabulary():
    """Classification labels, stored where a tagger stores its tags."""
    return vocab.LabelVocabulary(list(reviews.LABELS))


def lowercase_chars(config, task):
    """``data.lowercase_chars``, or where it is None (the default) the
    task's per-target choice (the authors' for NER: lowercase for German)."""
    value = config.data.lowercase_chars
    if value is None:
        return task.default_lowercase_chars(config.target)
    return bool(value)


def shared_word_table(config):
    """Whether all languages share one word table: ``data.shared_word_table``,
    or where it is None (the default) shared without ``.vec`` files and one
    table per language with them. A shared table cannot hold one language's
    vectors per row, so an explicit True with per-language files is refused."""
    value = config.data.shared_word_table
    files = {lang: path for lang, path in config.data.embeddings.items() if path}
    if value is None:
        return not files
    if value and files:
        one_file = len(set(files.values())) == 1 and set(files) >= set(config.data.languages)
        if not one_file:
            raise ConfigError(
                f"data.shared_word_table=True with per-language .vec files "
                f"({', '.join(sorted(files))}): one shared row per spelling cannot hold each "
                f"language's vector; set --config.data.shared_word_table=False (or leave it "
                f"unset)")
    return bool(value)


def read_pretrained_vectors(config, data):
    """``{language: Embeddings}`` for each language with a ``.vec`` file,
    keeping the vectors of every word of that language's files: train,
    unlabeled text, dev and test (words only, no labels are read), so a
    dev/test word keeps its pretrained vector instead of reading ``<unk>``."""
    lowercase = config.data.lowercase_words
    found = {}
    for lang, path in config.data.embeddings.items():
        if not path:
            continue
        if lang not in data.languages:
            raise ConfigError(f"embeddings given for {lang!r}, which is not a training "
                              f"language ({data.languages})")
        needed = {w.lower() if lowercase else w
                  for store in (data.labeled, data.unlabeled, data.dev, data.test)
                  for s in store.get(lang, []) for w in s.tokens}
        found[lang] = embeddings.read_vec(path, needed=needed, dim=config.model.word_dim,
                                          max_words=config.data.embeddings_max_words or None)
    return found


def build_vocabularies(config, task, data, pretrained=None):
    """Word, character and tag (or class) vocabularies. Words: every word of
    the training text, plus, for a language with pretrained vectors, every
    word of its dev/test files that has a vector (``pretrained`` from
    :func:`read_pretrained_vectors`)."""
    lowercase = config.data.lowercase_words
    extra = {}
    for lang, found in (pretrained or {}).items():
        words_of_lang = {w.lower() if lowercase else w
                         for store in (data.dev, data.test) for s in store.get(lang, [])
                         for w in s.tokens}
        extra[lang] = sorted(w for w in words_of_lang if found.lookup(w) is not None)
    words = vocab.WordVocabulary.build(
        {**{lang: data.labeled.get(lang, []) + data.unlabeled[lang] for lang in data.languages}},
        shared=shared_word_table(config), lowercase=lowercase,
        min_count=config.data.min_count, extra_words=extra)
    every = [s for lang in data.languages for s in data.unlabeled[lang]]
    chars = vocab.CharVocabulary.build(every, lowercase=lowercase_chars(config, task))
    return words, chars, task.training_labels(data)


def _split_logged(sentences, max_length, lang, name):
    pieces, cut = conll.split_long(sentences, max_length)
    if cut:
        logging.info("%s %s: %d sentences longer than %d tokens cut into %d pieces", lang, name,
                     cut, max_length, len(pieces) - len(sentences) + cut)
    return pieces


def encode_data(config, task, data, words, chars, tags, features=None):
    """-> (labeled corpora by source, unlabeled corpora by language);
    ``features`` from :func:`encoder_features`."""
    ids = {lang: i for i, lang in enumerate(data.languages)}
    max_length = config.data.max_length or None
    mode = config.data.long_sentences
    if mode not in ("truncate", "split", "error"):
        raise ConfigError(f"data.long_sentences={mode!r}: expected truncate, split or error")
    if mode == "split" and not task.splits_long_inputs:
        raise ConfigError(f"data.long_sentences=split is for tagging; a {config.task} input "
                          f"cut in pieces would repeat its label: use truncate")
    labeled_text, unlabeled_text = data.labeled, data.unlabeled
    if max_length and mode == "error":
        for store in (data.labeled, data.unlabeled):
            for sentences in store.values():
                for sentence in sentences:
                    if len(sentence) > max_length:
                        raise DataError(sentence.source, None,
                                        f"sentence of {len(sentence)} tokens is longer than "
                                        f"data.max_length={max_length}; raise the limit or set "
                                        f"--config.data.long_sentences=split (or truncate)")
    elif max_length and mode == "split":
        cut_store = lambda store, name: {lang: _split_logged(sentences, max_length, lang, name)
                                         for lang, sentences in store.items()}
        labeled_text = cut_store(data.labeled, "labeled")
        unlabeled_text = cut_store(data.unlabeled, "unlabeled")
    labeled = {lang: encode_split(config, task, labeled_text[lang], lang, ids[lang], words,
                                  chars, tags, max_length, features)
               for lang in data.sources}
    unlabeled = {lang: pipeline.encode(
        unlabeled_text[lang], lang, ids[lang], words, chars, None, config.data.max_chars,
        max_length, features=features(
            [conll.Sentence(s.tokens[:max_length], None, s.source) for s in unlabeled_text[lang]],
            lang, f"{lang} unlabeled") if features else None, keep_tokens=is_trainable(config))
        for lang in data.languages}
    for name, corpora in (("labeled", labeled), ("unlabeled", unlabeled)):
        for lang, corpus in corpora.items():
            if corpus.truncated:
                logging.warning("%s %s: %d sentences truncated to %d tokens", lang, name,
                                corpus.truncated, max_length)
    return labeled, unlabeled


def encode_split(config, task, sentences, language, language_id, words, chars, tags,
                 max_length=None, features=None):
    """Labeled sentences -> an ``EncodedCorpus`` with tags (tagging) or
    document labels (classification), and encoder features if ``features``."""
    values = None
    if features:
        cut = [conll.Sentence(s.tokens[:max_length], None, s.source) for s in sentences]
        values = features(cut, language, f"{language} {len(sentences)} sentences")
    keep = is_trainable(config)  # a fine-tuned encoder reads the tokens in the step
    return pipeline.encode(sentences, language, language_id, words, chars,
                           max_chars=config.data.max_chars, max_length=max_length,
                           features=values, keep_tokens=keep,
                           **task.label_arguments(sentences, tags))
