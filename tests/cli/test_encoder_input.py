"""Training with the frozen multilingual encoder's word features as input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import ROOT

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def train(workdir, steps, *extra):
    return subprocess.run(
        [sys.executable, "-m", "man_tf.cli.train", "--config=configs/sample_ner.py",
         "--config.model.encoder=e5-small", "--config.model.encoder_layers=(6,7,8)",
         f"--config.train.steps={steps}", "--config.train.eval_every=3",
         "--config.train.checkpoint_every=3", "--config.train.log_every=1",
         f"--workdir={workdir}", *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("encoder") / "run")
    done = train(workdir, 6)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def test_features_are_cached_and_the_encoder_is_not_trained(trained):
    caches = os.listdir(os.path.join(trained, "features"))
    # en/es/nl/de training text (labeled and unlabeled share one file), de dev, de test.
    assert len(caches) == 6 and all(name.endswith(".npy") for name in caches)
    names = tf.train.load_checkpoint(os.path.join(trained, "checkpoints")) \
        .get_variable_to_shape_map()
    model = [n for n in names if n.startswith("model/")]
    assert any("encoder_mix" in n for n in model)
    # The encoder's 12 layers and 250k-piece table are not model variables.
    assert not any("e5_encoder" in n or "word_embeddings" in n for n in model)
    mix = [n for n in model if "encoder_mix" in n and "layer_logits" in n][0]
    logits = tf.train.load_checkpoint(os.path.join(trained, "checkpoints")).get_tensor(mix)
    assert logits.shape == (3,) and np.abs(logits).max() > 0  # trained from zeros


def test_evaluate_reproduces_the_training_score_and_export_refuses(trained):
    results = json.load(open(os.path.join(trained, "results.json"), encoding="utf-8"))
    from man_tf.cli.evaluate import evaluate

    scores, _ = evaluate(trained, "test")
    assert scores.primary == pytest.approx(results["test_f1"])
    done = subprocess.run([sys.executable, "-m", "man_tf.cli.export", f"--workdir={trained}",
                           f"--export_base={trained}/exported"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "exporting encoder-input models is not implemented yet" in done.stderr
    assert not os.path.exists(os.path.join(trained, "exported"))


def test_resume_with_encoder_features_ends_like_an_uninterrupted_run(trained, tmp_path):
    workdir = str(tmp_path / "resumed")
    cache = os.path.join(trained, "features")  # reuse: same features, no recomputation
    assert train(workdir, 3, f"--config.data.feature_cache={cache}").returncode == 0
    done = train(workdir, 6, f"--config.data.feature_cache={cache}")
    assert done.returncode == 0, done.stderr[-3000:]
    straight = json.load(open(os.path.join(trained, "results.json"), encoding="utf-8"))
    resumed = json.load(open(os.path.join(workdir, "results.json"), encoding="utf-8"))
    for r in (straight, resumed):
        r.pop("checkpoint")
    assert resumed == straight
