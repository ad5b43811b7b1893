"""Checkpoints: the latest state every N steps, and the best by dev score.

One ``tf.train.Checkpoint`` holds the model, its optimizers (main, D, and a
fine-tuned encoder's), the step and
the best dev score, so a restarted run continues exactly where the last
checkpoint left it. ``tf.train.CheckpointManager`` writes each checkpoint
under a new name and updates its index file last, so a crash mid-write
leaves the previous checkpoint in force.
"""

import glob
import os
import re
import shutil

import tensorflow as tf
from absl import logging

from man_tf.data.errors import DataError


def model_variables(model):
    """``{path inside the model: variable}`` for every model variable.

    Checkpoints key the model's variables by their Keras path instead of
    relying on object tracking: Keras 3 lists of sub-layers (and of weights)
    are not TF-trackable, so ``tf.train.Checkpoint(model=model)`` silently
    skips the variables that only such lists hold.
    """
    # The model's own name is dropped: Keras numbers it per process
    # ("man_moe_1"), which must not change the keys. Dropout RNG states live
    # in globally numbered seed generators: they are keyed by their order in
    # the model instead. λ (the gradient reversal's variable) is a setting
    # (train.lambd, or a schedule's value at the step), not learned: not
    # saved. A fine-tuned encoder's frozen piece table is the weights file's
    # (checked by SHA-256 when read): not saved either.
    lambd = getattr(model, "lambd", None)
    constant = {id(v) for v in getattr(model, "constant_variables", list)()}
    kept = [v for v in model.variables if v is not lambd and id(v) not in constant]
    paths, rng = [], 0
    for v in kept:
        if v.path.endswith("seed_generator_state"):
            paths.append(f"rng/{rng}")
            rng += 1
        else:
            paths.append(v.path.split("/", 1)[-1])
    variables = dict(zip(paths, kept))
    if len(variables) != len(kept):
        raise ValueError(f"duplicate variable paths: "
                         f"{sorted({p for p in paths if paths.count(p) > 1})}")
    return variables


class TrainingState:
    """Everything a resumed run needs; ``step`` and ``best_score`` are variables."""

    def __init__(self, workdir, model, optimizer, d_optimizer, keep=3, encoder_optimizer=None):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.best_score = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_score")
        self.best_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_step")
        self.checkpoint = tf.train.Checkpoint(
            model=model_variables(model), optimizer=optimizer, d_optimizer=d_optimizer,
            step=self.step, best_score=self.best_score, best_step=self.best_step,
            **({"encoder_optimizer": encoder_optimizer} if encoder_optimizer is not None else {}))
        self.latest = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(workdir, "checkpoints"), max_to_keep=keep)
        self.best = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(workdir, "best"), max_to_keep=1)

    def attach_iterator(self, iterator):
        """Saves ``iterator``'s position with every later checkpoint."""
        self.checkpoint.iterator = iterator

    @property
    def saved_step(self):
        """The step of the latest saved checkpoint (0: none)."""
        path = self.latest.latest_checkpoint
        return int(path.rsplit("-", 1)[-1]) if path else 0

    def restore_latest(self, path=None):
        """Restores ``path`` (default: this manager's latest checkpoint) if
        there is one; returns it."""
        path = path or self.latest.latest_checkpoint
        if path:
            # expect_partial: the data iterator's position is restored when
            # the iterator exists (TrainingCheckpoint); a run that is already
            # finished never makes one, which must not print warnings.
            self.checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
        return path

    def save_latest(self):
        return self.latest.save(checkpoint_number=int(self.step.numpy()))

    def save_best(self):
        return self.best.save(checkpoint_number=int(self.step.numpy()))


def _listed(directory):
    """The newest checkpoint the folder's ``checkpoint`` file lists, whether
    or not its files are there (``tf.train.latest_checkpoint`` hides one
    whose index is gone)."""
    if not os.path.isdir(directory):
        return None
    state = tf.train.get_checkpoint_state(directory)
    return state.model_checkpoint_path if state and state.model_checkpoint_path else None


def checkpoint_path(workdir, which="best"):
    """Path of the ``best`` or ``latest`` checkpoint in a workdir (``None`` if
    none). Its files may be damaged or gone: :func:`readable` says."""
    directory = os.path.join(workdir, "best" if which == "best" else "checkpoints")
    listed = _listed(directory)
    if listed:
        return listed
    numbered = _numbered(directory)  # the `checkpoint` file itself lost
    return numbered[0] if numbered else None


def _data_files(path):
    return sorted(glob.glob(glob.escape(path) + ".data-*"))


def damage(path):
    """``None`` if the checkpoint ``path`` (a prefix such as
    ``.../ckpt-300``) reads whole; else ``(file, reason)``: the file at
    fault (its ``.index``, or a data file) and what is wrong with it. Every
    value is read, so a truncated data file is found here, not halfway
    through a restore."""
    index = path + ".index"
    if not os.path.exists(index):
        return index, "no such file"
    try:
        reader = tf.train.load_checkpoint(path)
    except Exception as e:  # noqa: BLE001  -- TF raises several kinds for a bad index
        if "No such file" in str(e):  # the index names a data file that is gone
            data = re.search(r"(\S+\.data-\d+-of-\d+)", str(e))
            return (data.group(1).rstrip(";") if data else path + ".data-*"), "no such file"
        return index, _first_line(e)
    try:
        for name, dtype in reader.get_variable_to_dtype_map().items():
            if dtype != tf.variant:  # the data iterator's state: not readable as an array
                reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001  -- IndexError, DataLossError, ...
        files = _data_files(path)
        return (files[0] if len(files) == 1 else path + ".data-*"), _first_line(e)
    return None


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _numbered(directory):
    """``ckpt-N`` prefixes in ``directory``, newest (highest N) first."""
    found = []
    for index in glob.glob(os.path.join(glob.escape(directory), "*.index")):
        prefix = index[:-len(".index")]
        number = re.search(r"-(\d+)$", prefix)
        if number:
            found.append((int(number.group(1)), prefix))
    listed = _listed(directory)
    if listed and not os.path.exists(listed + ".index"):  # listed, its index gone
        number = re.search(r"-(\d+)$", listed)
        found.append((int(number.group(1)) if number else -1, listed))
    return [prefix for _, prefix in sorted(set(found), reverse=True)]


def resumable_checkpoint(workdir):
    """The newest checkpoint in ``workdir/checkpoints`` that reads whole
    (``None``: there is none, a new run). A damaged newer one is named in a
    warning and left in place (the run overwrites it when it gets there);
    when none reads, one line (:class:`DataError`) names the newest's file
    and the way out. Also removes the ``ckpt-N_temp`` folders a save cut
    off by a crash leaves behind."""
    directory = os.path.join(workdir, "checkpoints")
    remove_partial_saves(directory)
    remove_partial_saves(os.path.join(workdir, "best"))
    damaged = []
    for path in _numbered(directory):
        problem = damage(path)
        if problem is None:
            for file, reason in damaged:
                logging.warning("%s: damaged checkpoint (%s), left in place; resuming from %s",
                                file, reason, path)
            return path
        damaged.append(problem)
    if damaged:
        file, reason = damaged[0]
        raise DataError(file, None, f"damaged checkpoint ({reason}) and no older checkpoint in "
                                    f"{directory} reads; move {workdir} away and train anew")
    return None


def remove_partial_saves(directory):
    """Deletes ``*_temp`` folders: a checkpoint's shards while it is being
    written, left behind only when the process was killed mid-save."""
    for partial in glob.glob(os.path.join(glob.escape(directory), "*_temp")):
        if os.path.isdir(partial):
            shutil.rmtree(partial, ignore_errors=True)


def readable(path, way_out):
    """``path`` if that checkpoint reads whole, else one line naming the
    file at fault and ``way_out`` (:class:`DataError`)."""
    problem = damage(path)
    if problem is not None:
        file, reason = problem
        raise DataError(file, None, f"damaged checkpoint ({reason}); {way_out}")
    return path


def restore_model(model, path):
    """Loads only the model's variables (optimizer slots are not needed to predict)."""
    variables = model_variables(model)
    saved = [k for k in tf.train.load_checkpoint(path).get_variable_to_shape_map()
             if k.startswith("model/")]
    if len(saved) != len(variables):
        raise ValueError(f"{path}: holds {len(saved)} model variables, the model built from "
                         f"the config has {len(variables)}: was it trained with this config?")
    tf.train.Checkpoint(model=variables).restore(path).expect_partial() \
        .assert_existing_objects_matched()
