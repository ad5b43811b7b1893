"""From a config to data, vocabularies and a model: shared by every command.

Languages are ordered sources first (in config order), then the target, so a
source's language id is also its expert index in every mixture of experts.
"""

import contextlib
import dataclasses
import json
import logging as std_logging
import os
import sys

import ml_collections
import numpy as np
from absl import logging

from man_tf.data import conll, embeddings, pipeline, plaintext, reviews, vocab
from man_tf.data.errors import DataError
from man_tf.data.textio import atomic_write_json
from man_tf.models import ManMoeClassifier, ManMoeTagger
from man_tf.training import workdir as workdirs

CONFIG_FILE = "config.json"


class ConfigError(ValueError):
    """A configuration that cannot work; the message says what to change."""


def resolve_languages(config):
    """-> (sources, target); validates the choice against ``data.languages``."""
    available = list(config.data.languages.keys())
    target = config.target
    if target not in available:
        raise ConfigError(f"target {target!r} has no data: config.data.languages has "
                          f"{available}; set --config.target to one of them")
    sources = list(config.sources) or [lang for lang in available if lang != target]
    if target in sources:
        raise ConfigError(f"target {target!r} is also listed as a source; its labels "
                          f"must never be used: remove it from --config.sources")
    missing = [lang for lang in sources if lang not in available]
    if missing:
        raise ConfigError(f"sources {missing} have no data in config.data.languages "
                          f"({available})")
    if not sources:
        raise ConfigError("no source languages: MAN-MoE needs at least one labeled source")
    return sources, target


def resolve_data_root(config, config_file, typed=False):
    """Makes ``data.root`` absolute, one documented way: a relative root
    written in a config file is relative to that file's project (the folder
    holding its ``configs/`` folder: ``configs/conll_ner.py``'s
    ``../shared/data/conll`` is next to the project, whatever the current
    directory); a relative root typed on the command line
    (``--config.data.root=...``, ``typed``) is relative to the current
    directory, like every other path typed there."""
    root = config.data.get("root")
    if not root or os.path.isabs(root):
        return
    if typed or not config_file:
        config.data.root = os.path.abspath(root)
        return
    config_dir = os.path.dirname(os.path.abspath(config_file.split(":", 1)[0]))
    project = os.path.dirname(config_dir) if os.path.basename(config_dir) == "configs" \
        else config_dir
    config.data.root = os.path.normpath(os.path.join(project, root))


def check_config(config):
    """Settings no run can work with, as one line each (before any file is
    read or written)."""
    train = config.train
    positive = {"train.steps": train.steps, "train.batch_size": train.batch_size,
                "train.log_every": train.log_every, "train.eval_every": train.eval_every,
                "train.checkpoint_every": train.checkpoint_every,
                "train.keep_checkpoints": train.keep_checkpoints,
                "train.eval_batch_size": train.eval_batch_size}
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"{name}={value}: expected a whole number of at least 1")
    for name in ("learning_rate", "d_learning_rate"):
        if not train[name] > 0:
            raise ConfigError(f"train.{name}={train[name]}: expected a positive number")
    if train.discriminator_steps < 0 or train.lambd < 0:
        raise ConfigError(f"train.discriminator_steps={train.discriminator_steps}, "
                          f"train.lambd={train.lambd}: expected values >= 0")
    if not config.model.get("use_words", True) and any(config.data.embeddings.values()):
        raise ConfigError("data.embeddings given with model.use_words=False: the .vec files "
                          "would be unused; drop them or set --config.model.use_words=True")
    for name in ("dropout", "word_dropout", "mlp_dropout", "discriminator_dropout",
                 "unk_replacement"):
        value = config.model.get(name, 0.0)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"model.{name}={value}: expected a rate in [0, 1)")


def data_path(config, lang, split):
    """The configured file(s) of a language's split with ``{root}`` and
    ``{domain}`` filled in (comma-separated for several), or None."""
    spec = config.data.languages[lang]
    if split not in spec or not spec[split]:
        return None
    return spec[split].format(root=config.data.root, domain=config.get("domain", ""))


def _classification(config):
    return config.get("task", "tagging") == "classification"


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


def _read_documents(path, labeled, encoding):
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


def _read(path, labeled, encoding, classification=False):
    if "," in path:
        return [s for p in path.split(",") for s in _read(p, labeled, encoding, classification)]
    if classification:
        return _read_documents(path, labeled, encoding)
    if path.endswith(".txt"):
        if labeled:
            raise ConfigError(f"{path}: a plain-text file has no tags; labeled data must "
                              f"be in CoNLL format")
        return plaintext.read_plain_text(path, encoding)
    return conll.read_conll(path, encoding=encoding, labeled=labeled)


def read_labeled_documents(config, path):
    """A labeled classification file (``.review`` or ``label<TAB>text``),
    tokenized as training tokenizes."""
    return _read(path, True, config.data.encoding, classification=True)


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


def load_data(config, splits=("train", "dev", "test")):
    """Reads every configured file. The target's training text is read with
    ``labeled=False``: its tag column is never parsed."""
    sources, target = resolve_languages(config)
    encoding = config.data.encoding
    classification = _classification(config)
    read = lambda path, labeled: _read(path, labeled, encoding, classification)
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
        if (classification and lang == target and "dev" in splits and lang not in data.dev
                and config.data.get("dev_from_train")):
            # The authors' protocol: dev = reviews cut from the target's train
            # file (those reviews are never trained on with their labels).
            data.dev[lang] = _cut_dev(read(data_path(config, lang, "train"), True),
                                      config.data.dev_from_train, config.seed)
    if "train" in splits and not classification:
        _check_tag_sets(config, data)
    return data


def _check_tag_sets(config, data):
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
    return vocab.TagVocabulary(list(reviews.LABELS))


LOWERCASE_CHAR_TARGETS = ("de",)  # the authors' --lowercase_char runs


def lowercase_chars(config):
    """``data.lowercase_chars``, or where it is None (the default) the
    authors' per-target choice: lowercase for a German NER target."""
    value = config.data.get("lowercase_chars")
    if value is None:
        return not _classification(config) and config.target in LOWERCASE_CHAR_TARGETS
    return bool(value)


def shared_word_table(config):
    """Whether all languages share one word table: ``data.shared_word_table``,
    or where it is None (the default) shared without ``.vec`` files and one
    table per language with them. A shared table cannot hold one language's
    vectors per row, so an explicit True with per-language files is refused."""
    value = config.data.get("shared_word_table")
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


def build_vocabularies(config, data, pretrained=None):
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
    chars = vocab.CharVocabulary.build(every, lowercase=lowercase_chars(config))
    if _classification(config):
        return words, chars, class_vocabulary()
    tags = vocab.TagVocabulary.build([s for lang in data.sources for s in data.labeled[lang]])
    return words, chars, tags


def _split_logged(sentences, max_length, lang, name):
    pieces, cut = conll.split_long(sentences, max_length)
    if cut:
        logging.info("%s %s: %d sentences longer than %d tokens cut into %d pieces", lang, name,
                     cut, max_length, len(pieces) - len(sentences) + cut)
    return pieces


ENCODER_DIMS = {"e5-small": 384}  # model.encoder -> feature size


def _e5_weights_and_layers(config):
    """(weights, layers) for ``model.encoder``; one-line errors."""
    from man_tf.pretrained import e5_file

    name = config.model.get("encoder", "")
    if name not in ENCODER_DIMS:
        raise ConfigError(f"model.encoder={name!r}: expected '' or one of "
                          f"{sorted(ENCODER_DIMS)}")
    try:
        weights = e5_file.read_e5()
    except e5_file.WeightsFileError as e:
        raise ConfigError(str(e)) from None
    layers = tuple(int(layer) for layer in config.model.encoder_layers)
    if not layers or min(layers) < 0 or max(layers) > weights.layers or \
            len(set(layers)) < len(layers):
        raise ConfigError(f"model.encoder_layers={layers}: expected layers in "
                          f"[0, {weights.layers}], each once")
    return weights, layers


def serving_word_features(config):
    """The encoder's word features as a graph for serving (``None`` without
    ``model.encoder``): same layers as training, piece embeddings in Q4_0."""
    if not config.model.get("encoder", ""):
        return None
    from man_tf.pretrained.word_features import WordFeatures

    weights, layers = _e5_weights_and_layers(config)
    return WordFeatures(weights, layers, quantized_embeddings=True)


def encoder_features(config, workdir):
    """``None`` without ``model.encoder``; else ``fn(sentences, name)`` ->
    float16 ``[tokens, layers, dim]``: the frozen encoder's word features of
    the sentences' tokens (the caller cuts them as it encodes them), from the
    cache in ``data.feature_cache`` (default ``<workdir>/features``),
    computed once."""
    name = config.model.get("encoder", "")
    if not name:
        return None
    from man_tf.pretrained import e5_file, feature_cache, sentencepiece_model
    from man_tf.pretrained.word_features import WordFeatures

    weights, layers = _e5_weights_and_layers(config)
    proto = sentencepiece_model.model_proto(weights)
    directory = config.data.get("feature_cache") or os.path.join(workdir, "features")
    extractor = []  # built on the first cache miss (loading takes seconds)

    def features(sentences, label):
        tokens = [list(s.tokens) for s in sentences]
        digest = feature_cache.sentences_digest(tokens)
        keys = {layer: feature_cache.cache_key(e5_file.WEIGHTS_SHA256, proto, layer, digest)
                for layer in layers}

        def compute(missing):
            if not extractor or extractor[0].layers != tuple(missing):
                extractor[:] = [WordFeatures(weights, missing)]
            return feature_cache.extract(extractor[0], tokens, name=f"{label} encoder features")

        return feature_cache.cached_features(directory, keys, compute)

    return features


def encode_data(config, data, words, chars, tags, features=None):
    """-> (labeled corpora by source, unlabeled corpora by language);
    ``features`` from :func:`encoder_features`."""
    ids = {lang: i for i, lang in enumerate(data.languages)}
    max_length = config.data.max_length or None
    mode = config.data.long_sentences
    if mode not in ("truncate", "split", "error"):
        raise ConfigError(f"data.long_sentences={mode!r}: expected truncate, split or error")
    if mode == "split" and _classification(config):
        raise ConfigError("data.long_sentences=split is for tagging; a review cut in pieces "
                          "would repeat its label: use truncate")
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
    labeled = {lang: encode_split(config, labeled_text[lang], lang, ids[lang], words, chars,
                                  tags, max_length, features)
               for lang in data.sources}
    unlabeled = {lang: pipeline.encode(
        unlabeled_text[lang], lang, ids[lang], words, chars, None, config.data.max_chars,
        max_length, features=features(
            [conll.Sentence(s.tokens[:max_length], None, s.source) for s in unlabeled_text[lang]],
            f"{lang} unlabeled") if features else None)
        for lang in data.languages}
    for name, corpora in (("labeled", labeled), ("unlabeled", unlabeled)):
        for lang, corpus in corpora.items():
            if corpus.truncated:
                logging.warning("%s %s: %d sentences truncated to %d tokens", lang, name,
                                corpus.truncated, max_length)
    return labeled, unlabeled


def encode_split(config, sentences, language, language_id, words, chars, tags,
                 max_length=None, features=None):
    """Labeled sentences -> an ``EncodedCorpus`` with tags (tagging) or
    document labels (classification), and encoder features if ``features``."""
    values = None
    if features:
        cut = [conll.Sentence(s.tokens[:max_length], None, s.source) for s in sentences]
        values = features(cut, f"{language} {len(sentences)} sentences")
    if _classification(config):
        return pipeline.encode(sentences, language, language_id, words, chars, None,
                               config.data.max_chars, max_length,
                               labels=[s.label for s in sentences], features=values)
    return pipeline.encode(sentences, language, language_id, words, chars, tags,
                           config.data.max_chars, max_length, features=values)


def build_model(config, num_words, num_chars, num_tags, num_sources, word_block_starts=(0,)):
    """The task's model (``num_tags``: tags, or classes for classification;
    ``word_block_starts``: ``WordVocabulary.offsets`` values, where each
    block's ``<pad>``/``<unk>`` rows are)."""
    m = config.model
    pretrained = any(config.data.embeddings.values())
    if _classification(config):
        model_class, task_kwargs = ManMoeClassifier, dict(
            num_classes=num_tags, classifier_layers=m.tagger_layers)
    else:
        model_class, task_kwargs = ManMoeTagger, dict(
            num_tags=num_tags, tagger_layers=m.tagger_layers)
    return model_class(
        **task_kwargs, num_sources=num_sources, num_words=num_words, num_chars=num_chars,
        num_languages=num_sources + 1, word_dim=m.word_dim,
        word_embeddings_trainable=not (pretrained and m.fix_embeddings),
        use_char_cnn=m.use_char_cnn, char_embedding_dim=m.char_embedding_dim,
        char_filters=m.char_filters, char_kernel_sizes=tuple(m.char_kernel_sizes),
        char_output_dim=m.char_output_dim, char_embedding_trainable=m.char_embedding_trainable,
        unique_char_words=not config.train.jit_compile, shared_hidden=m.shared_hidden,
        private_hidden=m.private_hidden, lstm_layers=m.lstm_layers, use_private=m.use_private,
        expert_hidden=m.expert_hidden, private_moe_layers=m.private_moe_layers,
        use_tag_moe=m.use_tag_moe, dropout=m.dropout,
        word_dropout=m.word_dropout, mlp_dropout=m.mlp_dropout, discriminator=m.discriminator,
        discriminator_filters=m.discriminator_filters,
        discriminator_kernel_sizes=tuple(m.discriminator_kernel_sizes),
        discriminator_hidden=m.discriminator_hidden,
        discriminator_layers=m.discriminator_layers,
        discriminator_dropout=m.discriminator_dropout, lambd=config.train.lambd,
        word_block_starts=tuple(word_block_starts),
        # Workdirs written before this field existed trained without it.
        unk_replacement=m.get("unk_replacement", 0.0),
        predictor_mixture=m.get("predictor_mixture", "probabilities"),
        use_words=m.get("use_words", True),
        encoder_dim=ENCODER_DIMS.get(m.get("encoder", ""), 0),
        encoder_layers=len(m.get("encoder_layers", (0,))))


def load_pretrained_embeddings(config, model, words, pretrained):
    """Fills each language's word rows from its ``.vec`` vectors
    (``pretrained`` from :func:`read_pretrained_vectors`); returns
    ``{language: fraction of its vocabulary covered}``."""
    coverage = {}
    for lang, found in pretrained.items():
        path = config.data.embeddings[lang]
        block = words.block(lang)
        block_vocab, offset = words.blocks[block], words.offsets[block]
        rows, vectors = [], []
        for i, word in enumerate(block_vocab.tokens[2:], start=2):
            vector = found.lookup(word)
            if vector is not None:
                rows.append(offset + i)
                vectors.append(vector)
        needed = len(block_vocab) - 2
        if not vectors:
            raise DataError(path, None, f"no vector for any of the {needed} {lang} "
                            f"vocabulary words: is this the right language's file?")
        model.word_embedding.load(np.stack(vectors), rows)
        coverage[lang] = len(rows) / max(needed, 1)
        if coverage[lang] < 0.05:
            logging.warning("%s: embeddings cover only %.1f%% of the %s vocabulary", path,
                            100 * coverage[lang], lang)
        logging.info("%s: %d of %d %s words have pretrained vectors (%.1f%%)", path, len(rows),
                     needed, lang, 100 * coverage[lang])
    return coverage


def save_config(workdir, config):
    atomic_write_json(os.path.join(workdir, CONFIG_FILE), json.loads(config.to_json()))


def load_config(workdir):
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{path}: not found; is {workdir!r} a man-tf-train workdir?")
    with open(path, encoding="utf-8") as f:
        return ml_collections.ConfigDict(json.load(f))


@dataclasses.dataclass
class Trained:
    """A trained model restored from a workdir, with what it was trained with."""

    config: ml_collections.ConfigDict
    sources: list
    target: str
    words: vocab.WordVocabulary
    chars: vocab.CharVocabulary
    tags: vocab.TagVocabulary
    model: object
    checkpoint: str

    @property
    def languages(self):
        return [*self.sources, self.target]


def load_trained(workdir, which="best", precision=None):
    """Rebuilds the model of a workdir and restores its ``best``/``latest``
    checkpoint. ``precision`` overrides the config's dtype policy."""
    from man_tf.training import checkpoints, strategy as strategies

    config = load_config(workdir)
    strategies.set_precision(precision or config.train.precision)
    sources, target = resolve_languages(config)
    words, chars, tags = vocab.load_vocabularies(workdir)
    model = build_model(config, words.size, len(chars), len(tags), len(sources),
                        list(words.offsets.values()))
    model.build_all()
    path = checkpoints.checkpoint_path(workdir, which)
    if path is None:
        raise ConfigError(f"{workdir}: no {which} checkpoint; train first")
    checkpoints.restore_model(model, path)
    return Trained(config, sources, target, words, chars, tags, model, path)


def _log_to_files(message):
    """The error line into the run's log file(s) only: stderr gets it once,
    from :func:`user_errors`."""
    record = std_logging.LogRecord("absl", std_logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.get_absl_logger().handlers:
        if isinstance(handler, std_logging.FileHandler):
            handler.handle(record)


@contextlib.contextmanager
def user_errors(command):
    """Turns errors in the user's input or config into one clear line and exit 2."""
    try:
        yield
    except (ConfigError, DataError, FileExistsError, FloatingPointError,
            workdirs.WorkdirMismatch) as e:
        _log_to_files(str(e))
        print(f"{command}: error: {e}", file=sys.stderr)
        sys.exit(2)
