"""Self-training on the target's unlabeled text (teacher-student), after training.

With ``config.self_training.rounds = R > 0``, ``man-tf-train`` goes on after
the usual run (the first teacher) for R rounds. In round r:

1. the teacher (the best model so far by target dev score: the first run,
   or a student of an earlier round) scores every sentence (tagging) or
   review (classification) of the target's unlabeled text: its label
   distribution per token or per review, saved in the student's folder
   (``teacher_labels.npz``; reused when the run resumes);
2. a student, a new MAN-MoE of the same configuration (seed + r, fresh
   weights, the teacher's vocabularies), trains as the teacher did (source
   labels, gate losses, adversary) plus ``self_training.weight`` x the
   cross-entropy from the teacher's distributions to its own on one batch of
   the target's text per iteration; its checkpoint is chosen on target dev
   like any run's. It lives in ``<workdir>/student-<r>/``, a workdir of its
   own (resume, logs, TensorBoard, results.json as for any run).

Why this student (BUILD_NOTES.md, "Self-training"): the same model on the
same inputs serves every language as the teacher does, so the export, the
serving signatures and the evaluation do not change; fresh weights (not the
teacher's) let the student learn the target from the start instead of
confirming the teacher's own decisions (Wu et al. 2020's Multi-TS trains
new students too).

The rounds are run by :func:`man_tf.training.train.self_train`. Finally
the best of teacher and students by target dev score is *selected*:
``results.json`` of the workdir reports its scores (the teacher's under
``"teacher"``, each round under ``"self_training"``), and
:func:`man_tf.training.workdir.load_trained` (so ``man-tf-evaluate`` and
``man-tf-export``) loads it.
"""

import copy
import os

import numpy as np
from absl import logging

STUDENT_DIR = "student-{}"
LABELS_FILE = "teacher_labels.npz"


def student_dir(workdir, round_):
    return os.path.join(workdir, STUDENT_DIR.format(round_))


def student_config(config, workdir, round_):
    """The student's config: the run's, with its own seed, its step budget,
    no rounds of its own, the teacher's dev cut and encoder feature cache."""
    student = copy.deepcopy(config)
    student.seed = config.seed + round_
    if config.data.dev_from_train:
        # Selected against its teacher on the same dev reviews: a dev set
        # cut from the target's train file keeps the teacher's seed.
        from man_tf.data import loading
        student.data.dev_seed = loading.dev_seed(config)
    student.self_training.rounds = 0
    if config.self_training.steps:
        student.train.steps = config.self_training.steps
    if config.model.encoder and not config.data.feature_cache:
        student.data.feature_cache = os.path.join(workdir, "features")
    return student


def _soft_labels(trained, corpus, task, batch_size):
    """The teacher's label distributions on ``corpus``: ``[tokens, labels]``
    (tagging) or ``[sentences, labels]``."""
    from man_tf.data import pipeline
    from man_tf.models import inference

    predictions = inference.predict_corpus(
        inference.make_predict_fn(trained.model),
        pipeline.evaluation_batches(corpus, batch_size, labeled=False), len(corpus),
        keep_probs=True)
    return np.concatenate(predictions.probs, axis=0).astype(np.float16)


def taught_corpus(teacher, corpus, task, workdir, batch_size):
    """``corpus`` (the target's unlabeled text, encoded) with the teacher's
    distributions attached; computed once per student and kept in its
    folder. A student begun under another teacher checkpoint is refused."""
    import dataclasses

    from man_tf.settings import ConfigError
    from man_tf.training import checkpoints
    from man_tf.training import workdir as workdirs

    path = os.path.join(workdir, LABELS_FILE)
    teacher_checkpoint = os.path.abspath(checkpoints.checkpoint_path(teacher, "best") or "")
    soft = None
    if os.path.exists(path):
        with np.load(path) as stored:
            same = (str(stored["teacher_checkpoint"]) == teacher_checkpoint
                    and len(stored["soft"]) == (corpus.lengths.sum() if task.per_token
                                                else len(corpus)))
            if same:
                soft = stored["soft"]
        if soft is None and checkpoints.checkpoint_path(workdir, "latest"):
            raise ConfigError(f"{path}: this student was taught by another teacher checkpoint "
                              f"than {teacher_checkpoint}; remove {workdir} to train it anew")
    if soft is None:
        trained = workdirs.load_trained(teacher, follow_selection=False)
        logging.info("self-training: teacher %s scores %d %s sentences", trained.checkpoint,
                     len(corpus), trained.target)
        soft = _soft_labels(trained, corpus, task, batch_size)
        os.makedirs(workdir, exist_ok=True)
        temporary = path + ".tmp.npz"
        np.savez(temporary, soft=soft, teacher_checkpoint=np.array(teacher_checkpoint))
        os.replace(temporary, path)
    return dataclasses.replace(corpus, soft=soft, soft_per_token=task.per_token)
