"""The commands end to end on the embedded sample (small budget)."""

import json
import os
import subprocess
import sys

import pytest

from man_tf.data import loading
from man_tf.tasks import task_of
from man_tf import settings
from man_tf.training.evaluate import evaluate
from man_tf.training.train import train
from tests.helpers import ROOT, load_config, sample_config, valid_bio


def small_config(steps=40):
    return sample_config(steps, every=20, log_every=10)


def test_train_evaluate_and_resume(tmp_path):
    workdir = str(tmp_path / "run")
    results = train(small_config(40), workdir)
    for name in ("config.json", "vocab.json", "results.json"):
        assert os.path.exists(os.path.join(workdir, name))
    assert results["steps"] == 40 and results["best_step"] in (20, 40)
    assert os.listdir(os.path.join(workdir, "tensorboard", "train"))
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["test_f1"] == pytest.approx(results["test_f1"])
    weights = results["test_expert_weights"]
    assert set(weights) == {"en", "es", "nl"} and sum(weights.values()) == pytest.approx(1, 1e-5)

    # The evaluate command restores the same best checkpoint: same F1.
    scores, output = evaluate(workdir, "test")
    assert scores.f1 == pytest.approx(results["test_f1"])
    lines = open(output + ".conll", encoding="utf-8").read().splitlines()
    assert lines[0].split()[0] == "Eva" and len(lines[0].split()) == 3
    assert all(map(valid_bio, predicted_sentences(output + ".conll")))

    # Rerunning with a larger budget resumes from step 40.
    more = train(small_config(60), workdir)
    assert more["steps"] == 60
    log = open(os.path.join(workdir, "results.json")).read()
    assert '"steps": 60' in log


def predicted_sentences(path):
    """The predicted tags (last column) of an evaluation's ``.conll`` file."""
    sentences = [[]]
    for line in open(path, encoding="utf-8"):
        if line.strip():
            sentences[-1].append(line.split()[-1])
        elif sentences[-1]:
            sentences.append([])
    return [s for s in sentences if s]


def test_config_errors_are_clear(tmp_path):
    config = small_config()
    config.sources = ("en", "de")
    with pytest.raises(settings.ConfigError, match="target 'de' is also listed as a source"):
        train(config, str(tmp_path / "a"))
    config = small_config()
    config.target = "fr"
    with pytest.raises(settings.ConfigError, match="target 'fr' has no data"):
        train(config, str(tmp_path / "b"))


def test_command_line(tmp_path):
    workdir = str(tmp_path / "cli")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-m", "man_tf.cli.train", "--config=configs/sample_ner.py:words",
         "--config.train.steps=20", "--config.train.eval_every=10", f"--workdir={workdir}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "de: dev F1" in done.stdout
    log = open(os.path.join(workdir, "train.log"), encoding="utf-8").read()
    assert "step 20/20" in log and "done: best step" in log
    bad = subprocess.run(
        [sys.executable, "-m", "man_tf.cli.train", "--config=configs/sample_ner.py:words",
         "--config.target=xx", f"--workdir={workdir}x"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "target 'xx' has no data" in bad.stderr


def test_plain_text_unlabeled_target(tmp_path, write):
    text = write("de.txt", "Angela Weber besuchte Berlin .\n\nDie Bahn fährt nach Hamburg .\n")
    config = small_config(10)
    config.data.languages.de.unlabeled = text
    data = loading.load_data(config, task_of(config))
    assert [s.tokens[0] for s in data.unlabeled["de"]] == ["Angela", "Die"]
    assert all(s.tags is None for s in data.unlabeled["de"])
    config.data.languages.en.train = text
    with pytest.raises(settings.ConfigError, match="a plain-text file has no tags"):
        loading.load_data(config, task_of(config))


def test_profile_steps_write_a_trace(tmp_path):
    workdir = str(tmp_path / "profile")
    done = subprocess.run(
        [sys.executable, "-m", "man_tf.cli.train", "--config=configs/sample_ner.py:words",
         "--config.train.steps=6", "--config.train.eval_every=6", "--profile_steps=2,4",
         f"--workdir={workdir}"],
        cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True,
        text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    traces = [os.path.join(d, f) for d, _, files in os.walk(workdir) for f in files
              if f.endswith(".xplane.pb")]
    assert traces and os.path.getsize(traces[0]) > 1000


def small_webis(root, per_file=40):
    """A Webis-CLS-10-shaped folder with the first and last reviews of each real file."""
    from tests.conftest import SHARED_DATA
    webis = os.path.join(SHARED_DATA, "webis-cls-10")
    if not os.path.isdir(webis):
        pytest.skip(f"real data not found at {webis}")
    import re
    for lang in ("en", "de", "fr", "jp"):
        for domain in ("books", "dvd", "music"):
            for split in ("train", "test"):
                text = open(os.path.join(webis, lang, domain, f"{split}.review"),
                            encoding="utf-8").read()
                items = re.findall(r"<item>.*?</item>", text, flags=re.S)
                keep = items[:per_file // 2] + items[-per_file // 2:]
                folder = os.path.join(root, lang, domain)
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, f"{split}.review"), "w", encoding="utf-8") as f:
                    f.write("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<items>"
                            + "".join(keep) + "</items>\n")
    return root


def test_classification_trains_through_the_same_command(tmp_path):
    root = small_webis(str(tmp_path / "webis"))
    config = load_config("amazon_cls:words")
    config.data.root = root
    config.domain, config.target = "dvd", "jp"
    config.data.dev_from_train = 20
    config.data.max_length = 40
    config.data.buckets = (16, 32)
    for field in ("shared_hidden", "private_hidden", "expert_hidden", "discriminator_hidden"):
        config.model[field] = 16
    config.model.word_dim = 16
    config.train.steps, config.train.eval_every, config.train.batch_size = 20, 10, 4
    data = loading.load_data(config, task_of(config))
    assert data.sources == ["de", "en", "fr"] and "jp" not in data.labeled
    assert len(data.dev["jp"]) == 20 and sum(s.label for s in data.dev["jp"]) == 10
    assert len(data.unlabeled["jp"]) == 3 * 40  # every domain's train text, labels unread
    assert all(s.label is None for s in data.unlabeled["jp"])
    workdir = str(tmp_path / "cls")
    results = train(config, workdir)
    assert 0 <= results["dev_acc"] <= 100 and 0 <= results["test_acc"] <= 100
    assert results["test_scores"]["total"] == 40
    assert set(results["test_expert_weights"]) == {"de", "en", "fr"}
    scores, output = evaluate(workdir)  # the target's test split, like results.json
    assert scores.accuracy == pytest.approx(results["test_acc"])
    assert len(open(output + ".tsv", encoding="utf-8").read().splitlines()) == 40

    # Self-training added to the finished run: only a student trains, on the
    # teacher's distribution over the classes for each of the 120 reviews.
    import numpy as np
    config.self_training.rounds, config.self_training.steps = 1, 10
    again = train(config, workdir)
    assert again["teacher"]["dev_acc"] == pytest.approx(results["dev_acc"])
    assert again["self_training"]["rounds"][0]["workdir"] == "student-1"
    with np.load(os.path.join(workdir, "student-1", "teacher_labels.npz")) as stored:
        assert stored["soft"].shape == (120, 2)
        np.testing.assert_allclose(stored["soft"].astype(np.float32).sum(-1), 1.0, atol=1e-2)
    scores, _ = evaluate(workdir)  # the selected model's
    assert scores.accuracy == pytest.approx(again["test_acc"])
