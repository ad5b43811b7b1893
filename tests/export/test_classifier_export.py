"""A small trained classifier, exported and used from a clean process."""

import json
import os
import subprocess
import sys

import pytest

from man_tf.data import loading
from man_tf.tasks import task_of
from man_tf.training import workdir as workdirs
from man_tf.export.from_workdir import export
from man_tf.export.client import predict_lines
from man_tf.training.train import train
from man_tf.data import conll, pipeline
from man_tf.data.reviews import read_reviews
from man_tf.models import inference
from tests.cli.test_train_evaluate import small_webis
from tests.helpers import (CLEAN_PROCESS_PREAMBLE, assert_cc_serves_like_predict,
                           load_config)

CLEAN = CLEAN_PROCESS_PREAMBLE + r"""
model_dir, texts = sys.argv[1], json.loads(sys.argv[2])
out = tf.saved_model.load(model_dir).signatures["serving_default"](
    text=tf.constant(texts), language=tf.constant(["fr"] * len(texts)))
print(json.dumps({"labels": [x.decode() for x in out["label"].numpy()],
                  "weights": out["expert_weights"].numpy().sum(-1).tolist()}))
"""


def small_classifier_config(root, steps, eval_every):
    """music -> fr on a small real Webis-CLS-10 subset, 16-unit layers, float32."""
    config = load_config("amazon_cls:words")
    config.data.root = small_webis(str(root / "webis"))
    config.domain, config.target = "music", "fr"
    config.data.dev_from_train, config.data.max_length = 20, 48
    config.data.buckets = (16, 32)
    config.model.word_dim = 16
    for field in ("shared_hidden", "private_hidden", "expert_hidden", "discriminator_hidden"):
        config.model[field] = 16
    config.train.steps, config.train.eval_every, config.train.batch_size = steps, eval_every, 4
    config.train.precision = "float32"
    return config


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    config = small_classifier_config(root, steps=30, eval_every=10)
    workdir = str(root / "run")
    train(config, workdir)
    return config, workdir, export(workdir, str(root / "saved_models" / "cls"))


def test_clean_process_labels_match_the_in_memory_model(exported):
    config, workdir, path = exported
    documents = read_reviews(os.path.join(config.data.root, "fr", "music", "test.review"))[:30]
    trained = workdirs.load_trained(workdir)
    sentences = [conll.Sentence(t or ("",), None, d.source, d.label) for t, d in
                 zip(loading.tokenize_texts([d.text for d in documents]), documents)]
    corpus = loading.encode_split(config, task_of(config), sentences, "fr", trained.languages.index("fr"),
                                     trained.words, trained.chars, trained.tags,
                                     config.data.max_length)
    ids = inference.predict_corpus(inference.make_predict_fn(trained.model),
                                   pipeline.evaluation_batches(corpus, 16), len(corpus)).ids
    expected = [trained.tags.tags[int(i)] for i in ids]
    done = subprocess.run([sys.executable, "-c", CLEAN, path,
                           json.dumps([d.text for d in documents])], capture_output=True,
                          text=True, cwd="/", env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["labels"] == expected
    assert result["weights"] == pytest.approx([1.0] * len(documents), abs=1e-4)


def test_predict_command_handles_classifiers(exported):
    _, _, path = exported
    out = list(predict_lines(path, ["Un disque magnifique.", ""], "fr"))
    assert out[0]["label"] in ("negative", "positive")
    assert sum(out[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(out[0]["expert_weights"]) == {"de", "en", "jp"}
    metadata = json.load(open(os.path.join(path, "assets.extra", "man_tf.json")))
    assert metadata["task"] == "classification" and metadata["classes"] == ["negative",
                                                                               "positive"]


def test_cc_loader_serves_what_predict_serves(exported, serve_check):
    config, _, path = exported
    documents = read_reviews(os.path.join(config.data.root, "fr", "music", "test.review"))[:6]
    # One document per line, as man-tf-predict reads them.
    assert_cc_serves_like_predict(serve_check, path, "fr", [" ".join(d.text.split())
                                                            for d in documents])
