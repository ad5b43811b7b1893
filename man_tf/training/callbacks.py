"""The training loop's duties as Keras callbacks, on one global step count.

``fit`` runs the steps; these callbacks (in this order, before any of a
user's) do the rest: count steps and stop on a non-finite loss, log progress,
evaluate on the target dev set and keep the best checkpoint, save the latest
checkpoint (exact resume), trace steps with the profiler. Steps are global:
a resumed run continues the count in the checkpointed ``TrainingState``, so
every callback fires at the same steps as in an uninterrupted run.
"""

import json
import math
import os
import time

import keras
import tensorflow as tf
from absl import logging

from man_tf.data.textio import atomic_write_text


class MetricsHistory:
    """Appends one JSON line per logged step to ``metrics.jsonl`` (read by
    man-tf-report). A run resumed at step ``start`` first drops the rows an
    interrupted run wrote after its last checkpoint (and a line cut by the
    crash), so the file holds one row per kind and step, in order."""

    def __init__(self, path, start=0):
        self.path = path
        if path is not None and os.path.exists(path):
            kept = []
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue
                    if row.get("step", 0) <= start:
                        kept.append(json.dumps(row) + "\n")
            atomic_write_text(path, "".join(kept))

    def add(self, kind, step, **values):
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")


def _every(step, period, total):
    return (period and step % period == 0) or step == total


class StepCounter(keras.callbacks.Callback):
    """Advances ``state.step`` after each step, first checking the step's loss:
    a NaN or infinity stops training with an error before any callback can
    write it into a checkpoint (Keras' ``TerminateOnNaN`` only stops quietly).
    """

    def __init__(self, state, workdir, loss_key="total_loss"):
        super().__init__()
        self.state, self.workdir, self.loss_key = state, workdir, loss_key

    def on_train_batch_end(self, batch, logs=None):
        values = {k: float(v) for k, v in (logs or {}).items()}
        if not math.isfinite(values.get(self.loss_key, 0.0)):
            bad = ", ".join(f"{k}={v}" for k, v in values.items() if not math.isfinite(v))
            raise FloatingPointError(
                f"step {int(self.state.step.numpy()) + 1}: non-finite loss ({bad}); training "
                f"stopped, the last good checkpoint is kept in {self.workdir}/checkpoints (step "
                f"{self.state.saved_step}); lower --config.train.learning_rate or check the "
                f"input data")
        self.state.step.assign_add(1)


class ProgressLog(keras.callbacks.Callback):
    """Every ``every`` steps: a progress line with rate and ETA, the step's
    metrics (means since the last line) and ``extra_scalars`` (name -> a
    value, or a function read at that step, e.g. the step size) as
    TensorBoard scalars and in the metrics history; then resets the model's
    trackers."""

    def __init__(self, state, total, every, writer=None, history=None, extra_scalars=None,
                 last_score=lambda: None, metric="f1"):
        super().__init__()
        self.state, self.total, self.every = state, total, every
        self.writer = writer or tf.summary.create_noop_writer()
        self.history = history or MetricsHistory(None)
        self.extra_scalars = extra_scalars or {}
        self.last_score, self.metric = last_score, metric
        self._tick = self._tick_step = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.state.step.numpy())
        # The rate (and ETA) is measured from the end of the first step, whose
        # time is mostly tracing and compiling the step.
        if self._tick is None:
            self._tick, self._tick_step = time.time(), step
        if not _every(step, self.every, self.total):
            return
        values = {k: float(v) for k, v in (logs or {}).items()}
        now = time.time()
        rate = (step - self._tick_step) / (now - self._tick) if step > self._tick_step \
            else float("nan")
        self._tick, self._tick_step = now, step
        extra = {k: float(v() if callable(v) else v) for k, v in self.extra_scalars.items()}
        with self.writer.as_default(step=step):
            for k, v in {**values, **extra}.items():
                tf.summary.scalar(k, v)
            tf.summary.scalar("steps_per_second", rate)
        self.history.add("train", step, **values, **extra, steps_per_second=rate)
        if rate == rate and rate > 0:
            eta = int(round((self.total - step) / rate))
            eta_text = f"{eta // 3600}h{eta % 3600 // 60:02d}m" if eta >= 3600 else \
                f"{eta // 60}m{eta % 60:02d}s"
        else:
            eta_text = "-"
        d_accuracy = values.get("d_accuracy")
        score = self.last_score()
        logging.info("step %d/%d  %s it/s  eta %s  task %.3f  D acc %s  dev %s %s", step,
                     self.total, f"{rate:.2f}" if rate == rate else "-", eta_text,
                     values.get("task_loss", float("nan")),
                     "-" if d_accuracy is None else f"{d_accuracy:.3f}", self.metric,
                     "-" if score is None else f"{score:.2f}")
        self.model.reset_metrics()

    def on_train_end(self, logs=None):
        self.writer.flush()


class DevEvaluation(keras.callbacks.Callback):
    """Every ``every`` steps and at the last: scores the dev sets with
    ``evaluate() -> {language: (scores, predictions)}``, writes the scores
    (and C's expert weights) to TensorBoard and the history, and saves the
    best checkpoint when the target's score beats the best so far."""

    def __init__(self, state, total, every, evaluate, target, sources, metric="f1",
                 writer=None, history=None):
        super().__init__()
        self.state, self.total, self.every = state, total, every
        self.evaluate, self.target, self.sources, self.metric = evaluate, target, sources, metric
        self.writer = writer or tf.summary.create_noop_writer()
        self.history = history or MetricsHistory(None)
        self.last_score = None  # shown as "-" until this process has evaluated

    def on_train_batch_end(self, batch, logs=None):
        from man_tf.models import inference

        step = int(self.state.step.numpy())
        if not _every(step, self.every, self.total):
            return
        results = self.evaluate()
        with self.writer.as_default(step=step):
            for lang, (scores, predictions) in results.items():
                tf.summary.scalar(f"{self.metric}/{lang}", scores.primary)
                weights = inference.expert_weights(self.sources, predictions.gates)
                for source, weight in weights.items():
                    tf.summary.scalar(f"expert_weight/{lang}/{source}", weight)
                self.history.add("dev", step, language=lang, metric=self.metric,
                                 score=scores.primary, expert_weights=weights)
        if self.target not in results:
            return
        self.last_score = results[self.target][0].primary
        state = self.state
        new_best = self.last_score > float(state.best_score.numpy())
        if new_best:
            state.best_score.assign(self.last_score)
            state.best_step.assign(step)
            state.save_best()
        logging.info("step %d: %s dev %s %.2f (%s)", step, self.target, self.metric,
                     self.last_score, "new best" if new_best else
                     f"best {float(state.best_score.numpy()):.2f} at step "
                     f"{int(state.best_step.numpy())}")

    def on_train_end(self, logs=None):
        self.writer.flush()


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves ``state`` (model, both optimizers, step, best score, and the data
    iterator's position where TF can checkpoint it) every ``every`` steps and
    at the last, and restores the iterator's position on resume.

    Keras' ``BackupAndRestore`` is not enough here: it restores at epoch
    granularity, holds one optimizer, and does not save the data iterator,
    so a resumed run would see other batches than an uninterrupted one.
    """

    def __init__(self, state, total, every, resume_from=None):
        super().__init__()
        self.state, self.total, self.every = state, total, every
        self.resume_from = resume_from

    def set_model(self, model):
        super().set_model(model)
        model.add_iterator_hook(self._attach)

    def _attach(self, iterator):
        """Checkpoints the iterator from now on; on resume, first moves it to
        where the checkpoint's run had got to. Only a ``tf.data.Iterator``
        (one replica) can be saved: a multi-replica iterator cannot, and a
        resumed multi-replica run draws batches from a stream seeded by its
        step instead (see ``pipeline.training_stream``)."""
        if not isinstance(iterator, tf.data.Iterator):
            return
        if self.resume_from and "iterator" in {
                name.split("/")[0] for name, _ in tf.train.list_variables(self.resume_from)}:
            tf.train.Checkpoint(iterator=iterator).read(self.resume_from).expect_partial()
        self.state.attach_iterator(iterator)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.state.step.numpy())
        if _every(step, self.every, self.total):
            self.state.save_latest()


class Profiler(keras.callbacks.Callback):
    """Traces global steps ``start+1 .. end`` with the TensorBoard profiler
    into ``logdir`` (Keras' ``TensorBoard(profile_batch=...)`` counts batches
    from each ``fit`` call's start, so a resumed run would trace other steps)."""

    def __init__(self, state, start, end, logdir):
        super().__init__()
        self.state, self.start, self.end, self.logdir = state, start, end, logdir
        self._on = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self._on and int(self.state.step.numpy()) == self.start:
            tf.profiler.experimental.start(self.logdir)
            self._on = True

    def on_train_batch_end(self, batch, logs=None):
        if self._on and int(self.state.step.numpy()) == self.end:
            tf.profiler.experimental.stop()
            self._on = False
            logging.info("profiled steps %d-%d: open TensorBoard's Profile tab on %s",
                         self.start, self.end, self.logdir)

    def on_train_end(self, logs=None):
        if self._on:
            tf.profiler.experimental.stop()
            self._on = False


def profile_range(spec):
    """``"START,END"`` -> (start, end) steps to trace, or None."""
    from man_tf.settings import ConfigError
    if not spec:
        return None
    try:
        start, end = (int(x) for x in str(spec).split(","))
    except ValueError:
        raise ConfigError(f"profile_steps must be 'START,END' (two step numbers), got {spec!r}") \
            from None
    if not 0 <= start < end:
        raise ConfigError(f"profile_steps: need 0 <= START < END, got {spec!r}")
    return start, end
