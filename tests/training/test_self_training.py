"""Self-training: the teacher's distributions reach the student's loss (both
tasks), a run trains a student after the teacher, resumes without redoing
anything, and the selected model is the one evaluated and served."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from man_tf import settings
from man_tf.data import pipeline
from man_tf.training import self_training
from man_tf.training import workdir as workdirs
from man_tf.training.evaluate import evaluate
from man_tf.training.train import train
from tests.helpers import (NO_DROPOUT, adversarial, first_batch, sample_config, sample_corpora,
                           tiny_model, valid_bio)


@pytest.fixture(scope="module")
def data():
    return sample_corpora()


def _with_soft(corpus, labels, per_token, seed=0):
    units = int(corpus.lengths.sum()) if per_token else len(corpus)
    logits = np.random.default_rng(seed).normal(size=(units, labels))
    soft = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    import dataclasses
    return dataclasses.replace(corpus, soft=soft.astype(np.float16), soft_per_token=per_token)


def test_taught_batches_carry_the_soft_labels_of_their_rows(data):
    labeled, unlabeled, (_, _, tags) = data
    taught = _with_soft(unlabeled[-1], len(tags), per_token=True)
    table = pipeline.SentenceTable([taught], labeled=False)
    rows = tf.constant([3, 0])
    batch = table.batch(rows)
    starts = np.concatenate([[0], np.cumsum(taught.lengths)])
    for i, row in enumerate(rows.numpy()):
        n = taught.lengths[row]
        np.testing.assert_allclose(batch["soft"][i, :n].numpy(),
                                   taught.soft[starts[row]:starts[row] + n], rtol=1e-3)
        assert not batch["soft"][i, n:].numpy().any()  # padding: no label mass
    per_document = _with_soft(unlabeled[-1], 2, per_token=False)
    batch = pipeline.SentenceTable([per_document], labeled=False).batch(rows)
    assert batch["soft"].shape == (2, 2)


@pytest.mark.parametrize("task", ["tagging", "classification"])
def test_the_taught_loss_is_the_cross_entropy_to_the_teacher(data, task):
    labeled, unlabeled, vocabularies = data
    labels = len(vocabularies[2]) if task == "tagging" else 2
    model = tiny_model(vocabularies if task == "tagging" else (*vocabularies[:2], 2),
                       task=task, **NO_DROPOUT)
    trainer = adversarial(model, self_training_weight=0.5)
    taught = _with_soft(unlabeled[-1], labels, per_token=task == "tagging")
    batch = pipeline.SentenceTable([taught], labeled=False).batch(tf.constant([1, 2, 5]))
    outputs = model(batch, training=True)
    soft, log_probs = batch["soft"].numpy(), outputs["log_probs"].numpy()
    values = -(soft * log_probs).sum(-1)
    mask = outputs["mask"].numpy()
    expected = (values * mask).sum() / mask.sum()  # one language: the target's mean
    np.testing.assert_allclose(trainer._taught_loss(batch).numpy(), expected, rtol=1e-4)


def test_settings_are_checked():
    config = sample_config(10, every=5, log_every=5)
    config.self_training.rounds = -1
    with pytest.raises(settings.ConfigError, match="self_training.rounds=-1"):
        settings.check_config(config)
    config.self_training.rounds, config.self_training.weight = 1, 0.0
    with pytest.raises(settings.ConfigError, match="self_training.weight=0.0"):
        settings.check_config(config)


@pytest.fixture(scope="module")
def self_trained(tmp_path_factory):
    config = sample_config(30, every=15, log_every=15)
    config.self_training.rounds = 1
    config.self_training.steps = 30
    workdir = str(tmp_path_factory.mktemp("self_training") / "run")
    import keras

    class Probe(keras.callbacks.Callback):
        """Whether results.json existed as each fit began (teacher, student)."""
        seen = []

        def on_train_begin(self, logs=None):
            self.seen.append(os.path.exists(os.path.join(workdir, "results.json")))

    results = train(config, workdir, callbacks=[Probe()])
    # results.json appears only once every round is done: a run stopped in
    # a student's training is not taken for a finished one.
    assert Probe.seen == [False, False]
    return config, workdir, results


def test_a_run_trains_a_student_on_the_teachers_labels(self_trained):
    config, workdir, results = self_trained
    student = self_training.student_dir(workdir, 1)
    # The teacher's distributions of every token of the target's text.
    with np.load(os.path.join(student, self_training.LABELS_FILE)) as stored:
        soft = stored["soft"].astype(np.float32)
        assert str(stored["teacher_checkpoint"]).startswith(
            os.path.abspath(os.path.join(workdir, "best")))
    from man_tf.data import loading
    from man_tf.tasks import task_of
    target_text = loading.load_data(config, task_of(config)).unlabeled["de"]
    assert soft.shape[0] == sum(len(s) for s in target_text)
    np.testing.assert_allclose(soft.sum(-1), 1.0, atol=2e-2)
    # The student: its own seed, the teacher's vocabularies, the taught loss logged.
    student_config = workdirs.load_config(student)
    assert student_config.seed == config.seed + 1 and student_config.self_training.rounds == 0
    assert open(os.path.join(student, "vocab.json")).read() == \
        open(os.path.join(workdir, "vocab.json")).read()
    rows = [json.loads(line) for line in open(os.path.join(student, "metrics.jsonl"))]
    assert any("taught_loss" in row for row in rows)
    # results.json: the teacher, the round, the selection (best dev F1).
    stored = json.load(open(os.path.join(workdir, "results.json")))
    assert stored["teacher"]["dev_f1"] == pytest.approx(results["teacher"]["dev_f1"])
    (round_,) = stored["self_training"]["rounds"]
    assert round_["workdir"] == "student-1" and round_["teacher"] == "."
    best = max(stored["teacher"]["dev_f1"], round_["dev_f1"])
    assert stored["dev_f1"] == pytest.approx(best)
    assert stored["self_training"]["selected"] == (
        "student-1" if round_["dev_f1"] > stored["teacher"]["dev_f1"] else ".")


def test_rerunning_a_finished_run_redoes_nothing(self_trained):
    config, workdir, results = self_trained
    labels = os.path.join(self_training.student_dir(workdir, 1), self_training.LABELS_FILE)
    before = os.path.getmtime(labels)
    again = train(config, workdir)
    assert os.path.getmtime(labels) == before
    assert again["dev_f1"] == pytest.approx(results["dev_f1"])
    assert again["self_training"]["rounds"] == results["self_training"]["rounds"]


def test_the_selected_student_is_evaluated_and_served(self_trained, tmp_path):
    from man_tf.data import conll
    from man_tf.export.from_workdir import export
    config, workdir, results = self_trained
    # Whichever won at this tiny budget, select the student as a run whose
    # student scored higher would.
    path = os.path.join(workdir, "results.json")
    stored = json.load(open(path))
    stored["self_training"]["selected"] = "student-1"
    json.dump(stored, open(path, "w"))
    student = stored["self_training"]["rounds"][0]
    scores, output = evaluate(workdir, "test")
    assert scores.f1 == pytest.approx(student["test_f1"])
    trained = workdirs.load_trained(workdir)
    assert trained.student["round"] == 1 and "student-1" in trained.checkpoint
    exported = export(workdir, str(tmp_path / "export"))
    metadata = json.load(open(os.path.join(exported, "assets.extra", "man_tf.json")))
    assert metadata["self_training"] == {"student_round": 1, "teacher": "."}
    assert "student-1" in metadata["checkpoint"]
    served = tf.saved_model.load(exported)
    sentences = conll.read_conll(settings.data_path(config, "de", "test"))
    tokens = [list(s.tokens) for s in sentences]
    width = max(map(len, tokens))
    out = served.signatures["tag_tokens"](
        tokens=tf.constant([t + [""] * (width - len(t)) for t in tokens]),
        lengths=tf.constant([len(t) for t in tokens], tf.int32),
        language=tf.constant(["de"] * len(tokens)))
    tags = [[t.decode() for t in row[:n]] for row, n in zip(out["tags"].numpy(),
                                                           out["lengths"].numpy())]
    evaluated = [[line.split()[-1] for line in block.splitlines()]
                 for block in open(output + ".conll", encoding="utf-8").read().split("\n\n")
                 if block.strip()]
    assert tags == evaluated and all(map(valid_bio, tags))


def test_a_student_is_selected_on_its_teachers_dev_cut(tmp_path):
    """Webis-CLS-10 cuts the target's dev reviews from its train file, seeded:
    a student (seed + round) must be scored on its teacher's reviews, or the
    teacher-student selection compares two different dev sets."""
    from man_tf.config_files import load_config_file
    from man_tf.data import loading
    from man_tf.tasks import task_of
    from tests.conftest import SHARED_DATA

    config = load_config_file("amazon_cls:words")
    config.data.root = os.path.join(SHARED_DATA, "webis-cls-10")
    if not os.path.isdir(config.data.root):
        pytest.skip(f"real data not found at {config.data.root}")
    config.seed = 3
    task = task_of(config)

    def dev(c):
        return [d.source for d in loading.load_data(c, task, splits=("dev",)).dev["de"]]

    student = self_training.student_config(config, str(tmp_path), 1)
    assert student.seed == 4 and len(dev(config)) == 400
    assert dev(student) == dev(config)
    other = self_training.student_config(config, str(tmp_path), 1)
    other.data.dev_seed = -1  # the student's own seed: another sample
    assert dev(other) != dev(config)
