"""Small real batches and tiny models shared by model and training tests."""

import os

import keras
import tensorflow as tf

from man_tf.config_files import load_config_file
from man_tf.data import conll, pipeline
from man_tf.data.vocab import CharVocabulary, TagVocabulary, WordVocabulary
from man_tf.evaluation.tagging import bio_valid as valid_bio  # noqa: F401 (tests' name)
from man_tf.models import building
from man_tf.tasks import TASKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "man_tf", "data", "sample")
SOURCES, TARGET = ["en", "es", "nl"], "de"

TINY = dict(word_dim=8, char_embedding_dim=6, char_filters=5, char_kernel_sizes=(2, 3),
            char_output_dim=6, shared_hidden=8, private_hidden=8, expert_hidden=8,
            discriminator_filters=4, discriminator_kernel_sizes=(2, 3),
            discriminator_hidden=8, lstm_layers=1, unk_replacement=0.0)
NO_DROPOUT = dict(dropout=0.0, word_dropout=0.0, mlp_dropout=0.0, expert_dropout=0.0,
                  discriminator_dropout=0.0)


def sample_corpora():
    """Encoded sample data: (labeled by source, unlabeled by language, vocabularies)."""
    sentences = {lang: conll.read_conll(os.path.join(SAMPLE, f"{lang}.train.conll"))
                 for lang in SOURCES + [TARGET]}
    words = WordVocabulary.build(sentences)
    chars = CharVocabulary.build([s for v in sentences.values() for s in v])
    tags = TagVocabulary.build([s for lang in SOURCES for s in sentences[lang]])
    languages = SOURCES + [TARGET]
    labeled = [pipeline.encode(sentences[lang], lang, i, words, chars, tags)
               for i, lang in enumerate(SOURCES)]
    unlabeled = [pipeline.encode(sentences[lang], lang, i, words, chars)
                 for i, lang in enumerate(languages)]
    return labeled, unlabeled, (words, chars, tags)


def tiny_config(task="tagging", lambd=None, **overrides):
    """The word-vector config of ``task`` with :data:`TINY` sizes and
    ``overrides`` (``config.model`` fields)."""
    config = load_config("sample_ner:words" if task == "tagging" else "amazon_cls:words")
    config.model.update({**TINY, **overrides})
    if lambd is not None:
        config.train.lambd = lambd
    return config


def tiny_model(vocabularies, seed=0, task="tagging", num_sources=len(SOURCES), lambd=None,
               **overrides):
    """A built model of ``task`` for the vocabularies ``(words, chars, labels)``
    (``labels`` may be a number of classes)."""
    words, chars, tags = vocabularies
    keras.utils.set_random_seed(seed)
    config = tiny_config(task, lambd, **overrides)
    labels = tuple(f"class{i}" for i in range(tags)) if isinstance(tags, int) else tags.tags
    model = building.build_model(config, TASKS[task], words.size, len(chars), labels,
                                 num_sources)
    model.build_all()
    return model


def first_batch(labeled, unlabeled, batch_size=4, seed=0, **kwargs):
    stream = pipeline.training_stream(labeled, unlabeled, batch_size, seed, **kwargs)
    return next(iter(stream))


def load_config(name):
    return load_config_file(name)


def sample_config(steps, every, log_every):
    """The sample NER config with word vectors (the loop is under test here,
    not the input) for a short run: dev evaluation and checkpoints
    every ``every`` steps, a log line every ``log_every``."""
    config = load_config("sample_ner:words")
    config.train.steps = steps
    config.train.eval_every = every
    config.train.checkpoint_every = every
    config.train.log_every = log_every
    return config


CLEAN_PROCESS_PREAMBLE = r"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "man_tf" or name.startswith("man_tf."):
            raise ImportError("man_tf must not be imported here")
sys.meta_path.insert(0, Block())
import tensorflow as tf
import tensorflow_text  # noqa: F401
"""


def snapshot(variables):
    return [tf.identity(v).numpy().copy() for v in variables]


def adversarial(model, num_languages=4, learning_rate=1e-3, **kwargs):
    """``model`` wrapped for ``fit`` and compiled with the default optimizers."""
    from man_tf.training.adversarial import AdversarialModel
    from man_tf.training.optimizers import LazyAdam

    wrapped = AdversarialModel(model, num_languages, **kwargs)
    wrapped.compile(optimizer=LazyAdam(learning_rate),
                    d_optimizer=keras.optimizers.Adam(learning_rate))
    return wrapped


class StepLogs(keras.callbacks.Callback):
    """Records each step's own logs (resetting the trackers after each)."""

    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in logs.items()})
        self.model.reset_metrics()


def fit_steps(model, dataset, steps):
    """Runs ``steps`` steps of ``model.fit`` on ``dataset`` (a ``tf.data``
    dataset is repeated); returns the per-step logs."""
    record = StepLogs()
    if isinstance(dataset, tf.data.Dataset):
        dataset = dataset.repeat()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=[record], verbose=0,
              shuffle=False)
    return record.logs


def fit_batch(model, batch):
    """One ``fit`` step on ``batch``; returns its logs."""
    return fit_steps(model, tf.data.Dataset.from_tensors(batch), 1)[0]


def matmuls(function, *args):
    """MatMul and BatchMatMul ops in ``function``'s traced graph (a
    ``tf.function``), those of the functions it calls (gradients and
    ``tf.recompute_grad`` live there) included."""
    graph_def = function.get_concrete_function(*args).graph.as_graph_def()
    nodes = list(graph_def.node) + [node for f in graph_def.library.function
                                    for node in f.node_def]
    return sum(node.op in ("MatMul", "BatchMatMulV2") for node in nodes)


def entity_counts(sentences):
    """Counts entities by type in BIO2 sentences: ``{"PER": 2773, ...}``."""
    counts = {}
    for sentence in sentences:
        for tag in sentence.tags:
            prefix, entity_type = conll.split_tag(tag)
            if prefix == "B":
                counts[entity_type] = counts.get(entity_type, 0) + 1
    return counts


def assert_cc_serves_like_predict(binary, model_dir, language, lines):
    """Every signature of the export, loaded and run in C++ as TensorFlow
    Serving does (man_tf.export.cc_check), answers ``lines`` as
    ``man-tf-predict`` does (raw text; for a tagger also ``--tokenized``)."""
    import json
    import subprocess
    import sys

    import numpy as np

    from man_tf.export import cc_check

    with open(os.path.join(model_dir, "assets.extra", "man_tf.json"), encoding="utf-8") as f:
        metadata = json.load(f)
    tagger = metadata["task"] == "tagging"
    assert not any("\n" in line for line in lines), "one request per line"
    libraries = None
    for signature in ["serving_default"] + (["tag_tokens"] if tagger else []):
        tokenized = signature == "tag_tokens"
        served = subprocess.run(
            [sys.executable, "-m", "man_tf.cli.predict", f"--model={model_dir}",
             f"--language={language}", "--format=jsonl", f"--tokenized={tokenized}"],
            input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=ROOT,
            timeout=600)
        assert served.returncode == 0, served.stderr[-3000:]
        predicted = [json.loads(row) for row in served.stdout.splitlines()]
        assert len(predicted) == len(lines)
        if libraries is None:  # found once, in a process without TF Text
            found = subprocess.run([sys.executable, "-m", "man_tf.export.cc_check",
                                    "--libraries", f"--model={model_dir}"],
                                   capture_output=True, text=True, cwd=ROOT, timeout=600)
            assert found.returncode == 0, found.stderr[-3000:]
            libraries = json.loads(found.stdout.strip().splitlines()[-1])
            assert all("tensorflow_text" in path for path in libraries), libraries
        out = {k: v["values"] for k, v in
               cc_check.run(model_dir, signature, language, lines, binary, libraries).items()}
        for row, expected in enumerate(predicted):
            if tagger:
                n = int(out["lengths"][row])
                assert list(out["tokens"][row, :n]) == expected["tokens"], (signature, row)
                assert list(out["tags"][row, :n]) == expected["tags"], (signature, row)
                np.testing.assert_allclose(out["tag_scores"][row, :n].astype(float),
                                           expected["scores"], atol=1.5e-4)
                weights = out["expert_weights"][row, :n].astype(float).mean(axis=0) if n \
                    else np.zeros(len(metadata["expert_languages"]))
            else:
                assert out["label"][row] == expected["label"], row
                np.testing.assert_allclose(out["probabilities"][row].astype(float),
                                           list(expected["probabilities"].values()), atol=1.5e-4)
                weights = out["expert_weights"][row].astype(float)
            np.testing.assert_allclose(weights, list(expected["expert_weights"].values()),
                                       atol=1.5e-4)
    return libraries
