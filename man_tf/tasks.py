"""The tasks man_tf trains, as objects chosen once from ``config.task``.

A task knows what differs between tagging (a label per token, entity span
F1) and classification (a label per document, accuracy): its model class,
how long evaluation inputs may be, how predictions are scored, written and
reported, and how a labeled file is read for ``man-tf-evaluate --input``.
Training, evaluation and export ask the task instead of comparing strings.
Data reading and serving graphs keep their own per-task modules
(``data/conll.py`` / ``data/reviews.py``, ``export/tagger_serving.py`` /
``export/classifier_serving.py``); the task names which one applies.
"""

from man_tf.settings import TASK_NAMES, ConfigError


class Task:
    name = ""
    metric = ""        # key in results.json: dev_<metric>, test_<metric>
    metric_name = ""   # as printed
    predictions_suffix = ""

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
        return loading.read_labeled_documents(config, path)

    def split_examples(self, config, language, split, labels):
        # Through load_data: the target's dev set may be cut from its train
        # file (data.dev_from_train, the authors' protocol).
        from man_tf.data import loading
        data = loading.load_data(config, splits=(split,))
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
assert tuple(TASKS) == TASK_NAMES  # settings checks config.task against the names


def build_model(config, num_words, num_chars, num_labels, num_sources, word_block_starts=(0,)):
    """The config's task's MAN-MoE model (``num_labels``: tags or classes)."""
    from man_tf.models import building
    from man_tf.pretrained import encoder_inputs
    word_features = (encoder_inputs.trainable_word_features(config)
                     if encoder_inputs.is_trainable(config) else None)
    return building.build_model(config, task_of(config), num_words, num_chars, num_labels,
                                num_sources, word_block_starts, word_features)


def task_of(config):
    """The task ``config.task`` names (default: tagging)."""
    name = config.task
    if name not in TASKS:
        raise ConfigError(f"task={name!r}: expected one of {list(TASKS)}")
    return TASKS[name]
