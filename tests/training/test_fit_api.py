"""Training from Python: ``train(config, workdir, callbacks=[...])`` runs
``AdversarialModel.fit`` with the loop's callbacks, then the user's."""

import json
import os

import keras
import pytest

from man_tf.training.adversarial import AdversarialModel
from man_tf.training.train import train
from tests.helpers import sample_config


def small_config(steps):
    return sample_config(steps, every=10, log_every=5)


class Recorder(keras.callbacks.Callback):
    """Sees the global step and the step's logs; stops at ``stop_at``."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.steps, self.logs, self.stop_at = [], [], stop_at

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(int(self.model.state.step.numpy()))
        self.logs.append({k: float(v) for k, v in logs.items()})
        if self.stop_at and self.steps[-1] >= self.stop_at:
            self.model.stop_training = True


def test_own_callbacks_see_global_steps_and_can_stop_training(tmp_path):
    workdir = str(tmp_path / "run")
    first = Recorder(stop_at=12)
    results = train(small_config(30), workdir, callbacks=[first])
    assert isinstance(first.model, AdversarialModel)
    # Stopped after step 12 (Keras ends the epoch at the batch that asks).
    assert first.steps == list(range(1, 13))
    assert {"task_loss", "d_loss", "adversarial_d_loss", "gate_loss", "total_loss",
            "task_accuracy", "d_accuracy", "lambda"} <= set(first.logs[0])
    assert first.logs[0]["lambda"] == pytest.approx(0.002)
    # The best checkpoint so far (dev was scored at step 10) is what was evaluated.
    assert results["best_step"] == 10 and "test_f1" in results
    # The loop's callbacks ran before the user's: step 10's dev score and
    # checkpoint exist, and the history holds steps 5 and 10.
    history = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [h["step"] for h in history if h["kind"] == "train"] == [5, 10]
    assert [h["step"] for h in history if h["kind"] == "dev"] == [10]
    assert os.path.exists(os.path.join(workdir, "checkpoints", "ckpt-10.index"))
    # Rerun: resumes from the checkpoint at step 10, the global count goes on.
    second = Recorder()
    results = train(small_config(30), workdir, callbacks=[second])
    assert second.steps == list(range(11, 31))
    assert results["steps"] == 30


def test_a_run_with_d_learning_in_the_main_update(tmp_path):
    """train.discriminator_batch="main" through man-tf-train's own path
    (stream, trainer, callbacks): D's loss and accuracy are logged each
    step from the main update's batch, and the run finishes with its dev
    score."""
    config = small_config(6)
    config.train.discriminator_batch = "main"
    recorder = Recorder()
    results = train(config, str(tmp_path / "run"), callbacks=[recorder])
    assert recorder.steps == [1, 2, 3, 4, 5, 6]
    assert all(log["d_loss"] > 0 and 0 <= log["d_accuracy"] <= 1 for log in recorder.logs)
    assert recorder.logs[0]["adversarial_d_loss"] == pytest.approx(recorder.logs[0]["d_loss"])
    assert "dev_f1" in results
