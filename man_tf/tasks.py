"""The tasks man_tf trains, as objects chosen once from ``config.task``
(:func:`task_of`) or from an export's metadata (``TASKS[name]``).

A task knows what differs between tagging (a label per token, entity span
F1) and classification (a label per document, accuracy): its model head,
how its files are read and its labels built and encoded, how long
evaluation inputs may be, how predictions are scored, written and reported,
which serving module exports it and how a client reads that export. Data
loading, training, evaluation and export ask the task instead of comparing
strings. Data reading and serving graphs keep their own per-task modules
(``data/conll.py`` / ``data/reviews.py``, ``export/tagger_serving.py`` /
``export/classifier_serving.py``); the task names which one applies.
"""

from man_tf.settings import ConfigError


class Task:
    name = ""
    metric = ""        # key in results.json: dev_<metric>, test_<metric>
    metric_name = ""   # as printed
    predictions_suffix = ""
    cuts_dev_from_train = False  # whether data.dev_from_train applies
    splits_long_inputs = False   # whether data.long_sentences=split may cut an input
    serving_module = ""          # man_tf.export module whose serving() exports it
    client_reader = ""           # man_tf.export.client function that reads its answers
    per_token = False            # a label per token (tagging), else per input

    def read(self, path, labeled, encoding):
        """One data file -> ``conll.Sentence`` list (labels read if ``labeled``)."""
        raise NotImplementedError

    def check_training_labels(self, data):
        """Warnings about the sources' labels (``data``: ``loading.Data``)."""

    def default_lowercase_chars(self, target):
        """Whether characters are lowercased when ``data.lowercase_chars`` is None."""
        return False

    def training_labels(self, data):
        """The label vocabulary built from the sources' training data."""
        raise NotImplementedError

    def label_arguments(self, examples, labels):
        """``pipeline.encode``'s keyword arguments for the labels of ``examples``."""
        raise NotImplementedError

    @property
    def head_class(self):
        """The model head of this task (:mod:`man_tf.models.head`)."""
        raise NotImplementedError

    def eval_max_length(self, config):
        """Longest input at evaluation (None: whole)."""
        return None

    def label_vocabulary(self, labels):
        """The vocabulary of a workdir's labels (``vocab.json``'s ``tags``)."""
        from man_tf.data.vocab import LabelVocabulary
        return LabelVocabulary(labels)

    def score(self, examples, prediction_ids, labels):
        """Scores (``.primary`` is what model selection maximises)."""
        raise NotImplementedError

    def read_labeled(self, config, path, labels):
        """A labeled file for ``man-tf-evaluate --input``; unknown labels are
        one-line errors."""
        raise NotImplementedError

    def split_examples(self, config, language, split, labels):
        """A language's configured ``split`` (dev or test), labeled."""
        from man_tf.settings import data_path
        path = data_path(config, language, split)
        if path is None:
            raise ConfigError(f"{language} has no {split!r} file in the config; pass --input")
        return self.read_labeled(config, path, labels)

    def predictions_text(self, examples, prediction_ids, labels):
        """The written predictions (``<output><predictions_suffix>``)."""
        raise NotImplementedError

    def report(self, scores):
        raise NotImplementedError


class Tagging(Task):
    """A tag per token (NER, slot filling); entity F1 with conlleval semantics."""

    name, metric, metric_name, predictions_suffix = "tagging", "f1", "F1", ".conll"
    splits_long_inputs = True
    per_token = True
    serving_module, client_reader = "man_tf.export.tagger_serving", "tag_lines"
    # The authors' --lowercase_char runs: German capitalises every noun, so
    # case says little about names there.
    lowercase_char_targets = ("de",)

    def read(self, path, labeled, encoding):
        from man_tf.data import loading
        return loading.read_tagged(path, labeled, encoding)

    def check_training_labels(self, data):
        from man_tf.data import loading
        loading.warn_differing_entity_types(data)

    def default_lowercase_chars(self, target):
        return target in self.lowercase_char_targets

    def training_labels(self, data):
        from man_tf.data.vocab import TagVocabulary
        return TagVocabulary.build([s for lang in data.sources for s in data.labeled[lang]])

    def label_arguments(self, examples, labels):
        return {"tags": labels}

    @property
    def head_class(self):
        from man_tf.models import TokenHead
        return TokenHead

    def label_vocabulary(self, labels):
        from man_tf.data.vocab import TagVocabulary
        return TagVocabulary(labels)

    def score(self, examples, prediction_ids, labels):
        from man_tf.evaluation import tagging
        return tagging.score(examples, tagging.decode(prediction_ids, labels))

    def read_labeled(self, config, path, labels):
        from man_tf.data import conll
        sentences = conll.read_conll(path, encoding=config.data.encoding)
        unknown = sorted({t for s in sentences for t in s.tags} - set(labels.tags))
        if unknown:
            raise ConfigError(f"{path}: tags {unknown} were never seen in training (trained "
                              f"tags: {labels.tags})")
        return sentences

    def predictions_text(self, examples, prediction_ids, labels):
        from man_tf.evaluation import tagging
        return "".join(tagging.conll_lines(examples, tagging.decode(prediction_ids, labels)))

    def report(self, scores):
        from man_tf.evaluation.span_f1 import format_report
        return format_report(scores)


class Classification(Task):
    """A class per document (sentiment); accuracy."""

    name, metric, metric_name, predictions_suffix = "classification", "acc", "accuracy", ".tsv"
    # The authors' protocol: the target's dev reviews are cut from its train file.
    cuts_dev_from_train = True
    serving_module, client_reader = "man_tf.export.classifier_serving", "classify_lines"

    def read(self, path, labeled, encoding):
        from man_tf.data import loading
        return loading.read_documents(path, labeled, encoding)

    def training_labels(self, data):
        from man_tf.data import loading
        return loading.class_vocabulary()

    def label_arguments(self, examples, labels):
        return {"labels": [example.label for example in examples]}

    def eval_max_length(self, config):
        # Documents are read up to the training length, as served.
        return config.data.max_length or None

    @property
    def head_class(self):
        from man_tf.models import SentenceHead
        return SentenceHead

    def score(self, examples, prediction_ids, labels):
        from man_tf.evaluation import classification
        return classification.score(examples, prediction_ids)

    def read_labeled(self, config, path, labels):
        from man_tf.data import loading
        return loading.read_files(self, path, True, config.data.encoding)

    def split_examples(self, config, language, split, labels):
        # Through load_data: the target's dev set may be cut from its train
        # file (data.dev_from_train, the authors' protocol).
        from man_tf.data import loading
        data = loading.load_data(config, self, splits=(split,))
        store = data.dev if split == "dev" else data.test
        if language not in store:
            raise ConfigError(f"{language} has no {split!r} data in the config; pass --input")
        return store[language]

    def predictions_text(self, examples, prediction_ids, labels):
        return "".join(f"{labels.tags[d.label]}\t{labels.tags[int(p)]}\t{d.source}\n"
                       for d, p in zip(examples, prediction_ids))

    def report(self, scores):
        return f"accuracy: {scores.accuracy:.2f}% ({scores.correct} of {scores.total})"


TASKS = {task.name: task for task in (Tagging(), Classification())}


def build_model(config, num_words, num_chars, labels, num_sources, word_block_starts=(0,)):
    """The config's task's MAN-MoE model (``labels``: the tag or class names)."""
    from man_tf.models import building
    from man_tf.pretrained import encoder_inputs
    word_features = (encoder_inputs.trainable_word_features(config)
                     if encoder_inputs.is_trainable(config) else None)
    return building.build_model(config, task_of(config), num_words, num_chars, labels,
                                num_sources, word_block_starts, word_features)


def task_of(config):
    """The task ``config.task`` names (default: tagging)."""
    name = config.task
    if name not in TASKS:
        raise ConfigError(f"task={name!r}: expected one of {list(TASKS)}")
    return TASKS[name]
