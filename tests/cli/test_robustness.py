"""Crash safety, NaN stops, clear errors, and the what-to-share report."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf

from man_tf.evaluation.report import write_report
from tests.helpers import ROOT

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
# Default precision (auto: mixed_bfloat16 on a CPU with bf16) and default
# (non-deterministic) op settings: what a user runs. A decaying step size, so
# that a resumed run matches only if it continues the curve where it was.
SMALL = ["--config=configs/sample_ner.py:words", "--config.train.steps=60",
         "--config.train.eval_every=10", "--config.train.checkpoint_every=10",
         "--config.train.log_every=5", "--config.train.lr_schedule=linear"]


def train_command(workdir, *extra):
    return [sys.executable, "-m", "man_tf.cli.train", *SMALL, *extra, f"--workdir={workdir}"]


def results(workdir):
    with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("robust") / "straight")
    subprocess.run(train_command(workdir), cwd=ROOT, env=ENV, check=True, capture_output=True,
                   timeout=600)
    return workdir


def test_sigkill_then_rerun_ends_like_an_uninterrupted_run(uninterrupted, tmp_path):
    workdir = str(tmp_path / "killed")
    process = subprocess.Popen(train_command(workdir), cwd=ROOT, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed once the checkpoint of step 30 is in force: its files written
    # *and* the manager's state file naming it (written last; a kill between
    # the two resumes from the checkpoint before, as it should).
    state = os.path.join(workdir, "checkpoints", "checkpoint")

    def step_30_in_force():
        try:
            with open(state, encoding="utf-8") as f:
                return re.search(r'^model_checkpoint_path: ".*ckpt-(\d+)"', f.read(), re.M)
        except OSError:
            return None

    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline:
        found = step_30_in_force()
        if found and int(found.group(1)) >= 30:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    subprocess.run(train_command(workdir), cwd=ROOT, env=ENV, check=True, capture_output=True,
                   timeout=600)
    resumed, straight = results(workdir), results(uninterrupted)
    assert resumed["steps"] == straight["steps"] == 60
    # Everything but where the checkpoint lies: dev and test scores per type,
    # best step, expert weights, precision.
    for name in (resumed, straight):
        name.pop("checkpoint")
    assert resumed == straight
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        resumed_log = [json.loads(line) for line in f]
    with open(os.path.join(uninterrupted, "metrics.jsonl"), encoding="utf-8") as f:
        straight_log = [json.loads(line) for line in f]
    # One row per logged step, in order: the killed run's rows after its
    # last checkpoint were dropped on resume, not kept beside the new ones.
    def key(row):
        return row["kind"], row["step"], row.get("language")

    assert [key(r) for r in resumed_log] == [key(r) for r in straight_log]
    last = {key(r): r for r in resumed_log}
    rates = {r["step"]: r["learning_rate"] for r in straight_log if r["kind"] == "train"}
    assert rates[5] == pytest.approx(2e-3 * (1 - 4 / 60), rel=1e-6)
    assert rates[60] == pytest.approx(2e-3 / 60, rel=1e-6)  # the last update's
    for row in straight_log:  # losses and step size of every logged step after the restart
        again = last[(row["kind"], row["step"], row.get("language"))]
        for key, value in row.items():
            if key != "steps_per_second":
                assert again[key] == value, (row["step"], key)
    log = open(os.path.join(workdir, "train.log"), encoding="utf-8").read()
    # It resumed from a checkpoint (30 or later: on a loaded machine the kill
    # can land after a later one), not from scratch.
    resumed_at = [int(n) for n in re.findall(r"resumed at step (\d+)", log)]
    assert resumed_at and 30 <= resumed_at[0] < 60, resumed_at


def test_nan_loss_stops_and_keeps_finite_checkpoints(tmp_path):
    workdir = str(tmp_path / "nan")
    done = subprocess.run(train_command(workdir, "--config.train.learning_rate=1e30",
                                        "--config.train.checkpoint_every=1"),
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert "man-tf-train: error: step " in done.stderr and "non-finite loss" in done.stderr
    assert "the last good checkpoint is kept in" in done.stderr
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if latest:  # every checkpoint written before the stop is finite
        reader = tf.train.load_checkpoint(latest)
        for name in reader.get_variable_to_shape_map():
            if name.startswith("model/"):
                value = reader.get_tensor(name)
                assert np.all(np.isfinite(value)), name


def test_report_from_a_real_run(uninterrupted, tmp_path):
    paths = write_report(uninterrupted, str(tmp_path / "report"))
    for png in [p for p in paths if p.endswith(".png")]:
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0.01  # not a blank canvas
    summary = open([p for p in paths if p.endswith(".md")][0], encoding="utf-8").read()
    for source in ("en", "es", "nl"):
        assert f"| {source} |" in summary
    assert "D accuracy" in summary


@pytest.mark.parametrize("flags,message", [
    (["--config.data.languages.en.train=/no/such.conll"], "/no/such.conll: no such file"),
    (["--config.target=xx"], "target 'xx' has no data"),
    (["--config.sources=('en','de')"], "target 'de' is also listed as a source"),
    (["--config.data.max_length=5", "--config.data.long_sentences=error"],
     "tokens is longer than data.max_length=5"),
    (["--profile_steps=9"], "profile_steps must be 'START,END'"),
])
def test_bad_configs_fail_before_training_with_a_clear_line(tmp_path, flags, message):
    done = subprocess.run(train_command(str(tmp_path / "w"), *flags), cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert message in done.stderr
    assert not os.path.exists(os.path.join(tmp_path, "w", "checkpoints"))


def test_embedding_dimension_mismatch(tmp_path, write):
    vec = write("en.vec", "2 4\nberlin 1 2 3 4\nparis 1 2 3 4\n")
    done = subprocess.run(train_command(str(tmp_path / "w"), f"--config.data.embeddings.en={vec}"),
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert f"{vec}:1: header says dimension 4, expected 50" in done.stderr
