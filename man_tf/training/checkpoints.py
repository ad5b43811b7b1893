"""Checkpoints: the latest state every N steps, and the best by dev score.

One ``tf.train.Checkpoint`` holds the model, its optimizers (main, D, and a
fine-tuned encoder's), the step and
the best dev score, so a restarted run continues exactly where the last
checkpoint left it. ``tf.train.CheckpointManager`` writes each checkpoint
under a new name and updates its index file last, so a crash mid-write
leaves the previous checkpoint in force.
"""

import os

import tensorflow as tf


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
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save_latest(self):
        return self.latest.save(checkpoint_number=int(self.step.numpy()))

    def save_best(self):
        return self.best.save(checkpoint_number=int(self.step.numpy()))


def checkpoint_path(workdir, which="best"):
    """Path of the ``best`` or ``latest`` checkpoint in a workdir (``None`` if none)."""
    directory = os.path.join(workdir, "best" if which == "best" else "checkpoints")
    return tf.train.latest_checkpoint(directory)


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
