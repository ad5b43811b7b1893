"""What a workdir holds, and whether a new run may continue in it.

A run writes ``config.json`` and ``vocab.json`` only once everything that can
fail before training has passed (data read, embeddings loaded, model built),
so a run that stops on bad input leaves nothing behind for the corrected
rerun to trip on. A rerun into a workdir that already has a checkpoint
resumes it only if the settings that shape the data, the vocabularies or the
model are those the workdir was trained with; otherwise it stops and names the
fields that differ.
"""

import dataclasses
import json
import os

import ml_collections
from absl import logging

from man_tf.data.textio import atomic_write_json
from man_tf.settings import ConfigError, resolve_languages

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
# The layout of what a run writes (config fields, model, checkpoint keys);
# raised whenever they change shape, so an older workdir is refused in one line.
FORMAT_FILE = "workdir.json"
WORKDIR_FORMAT = 3

# Fields a resumed run may change: how long, how often to log, evaluate and
# save, how to run (devices, precision, compilation), and where the encoder
# feature cache lies (its files are named by their content). Everything else
# (data, languages, vocabulary and model settings, optimisation) must match.
RESUMABLE_CHANGES = (
    "train.steps", "train.log_every", "train.eval_every", "train.eval_source_dev",
    "train.checkpoint_every", "train.keep_checkpoints", "train.eval_batch_size",
    "train.profile_steps", "train.strategy", "train.num_cpu_devices", "train.precision",
    "train.intra_op_threads", "train.inter_op_threads",
    "train.jit_compile", "train.deterministic", "data.feature_cache",
    # The BiLSTMs' kernels (loop or Keras'/cuDNN's): the same weights.
    "model.lstm_implementation",
    # The char-CNN's convolutions (one matmul over windows, or Conv1D): the same weights.
    "model.char_convolution",
    # Self-training rounds after a finished run: they do not touch the run's
    # own model, and each student's workdir checks its own settings.
    "self_training.rounds", "self_training.steps", "self_training.weight")


# Fields added after workdirs were written, with the value an older workdir
# (which lacks them) was trained under.
ADDED_FIELDS = {"train.discriminator_batch": "own", "data.dev_seed": -1}


class WorkdirMismatch(ValueError):
    """A workdir trained with other settings than the rerun's."""


def flatten(tree, prefix=""):
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (JSON values: tuples are lists)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_as_json(config):
    return json.loads(config.to_json())


def _check_format(workdir):
    """Refuses a workdir written by an older man_tf (its config fields,
    model and checkpoint keys are not this version's)."""
    path = os.path.join(workdir, FORMAT_FILE)
    found = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            found = json.load(f).get("format")
    if found != WORKDIR_FORMAT:
        raise WorkdirMismatch(f"{workdir}: written by an older man_tf (workdir format "
                              f"{found or 1}, this version reads {WORKDIR_FORMAT}): retrain "
                              f"with a new --workdir")


def stored_config(workdir):
    """The workdir's ``config.json`` as a dict, or None."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    _check_format(workdir)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _flat_pair(stored, config):
    """(stored fields, ``config``'s fields), flattened; a field the stored
    config predates reads as its old value (:data:`ADDED_FIELDS`)."""
    old, new = flatten(stored), flatten(config_as_json(config))
    return {**{n: v for n, v in ADDED_FIELDS.items() if n in new}, **old}, new


def differing_fields(stored, config):
    """Dotted names of the fields, outside :data:`RESUMABLE_CHANGES`, whose
    values differ between a stored config dict and ``config``."""
    old, new = _flat_pair(stored, config)
    names = sorted(set(old) | set(new))
    return [n for n in names if n not in RESUMABLE_CHANGES and old.get(n) != new.get(n)]


def check_resumable(workdir, config, has_checkpoint):
    """Raises :class:`WorkdirMismatch` if ``workdir`` holds a checkpoint
    trained with other settings than ``config``. A workdir without a
    checkpoint (a run that stopped before its first save) is started afresh."""
    if not has_checkpoint:
        return
    stored = stored_config(workdir)
    if stored is None:
        return
    fields = differing_fields(stored, config)
    if fields:
        old, new = _flat_pair(stored, config)
        shown = "; ".join(f"{n}: {old.get(n, '(unset)')!r} -> {new.get(n, '(unset)')!r}"
                          for n in fields[:6])
        more = f" and {len(fields) - 6} more" if len(fields) > 6 else ""
        raise WorkdirMismatch(
            f"{os.path.join(workdir, CONFIG_FILE)}: this workdir was trained with other "
            f"settings ({shown}{more}); use a new --workdir, or rerun with its settings to "
            f"resume")


def save_config(workdir, config):
    atomic_write_json(os.path.join(workdir, FORMAT_FILE), {"format": WORKDIR_FORMAT})
    atomic_write_json(os.path.join(workdir, CONFIG_FILE), json.loads(config.to_json()))


def load_config(workdir):
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{path}: not found; is {workdir!r} a man-tf-train workdir?")
    _check_format(workdir)
    with open(path, encoding="utf-8") as f:
        return ml_collections.ConfigDict(json.load(f))


@dataclasses.dataclass
class Trained:
    """A trained model restored from a workdir, with what it was trained with."""

    config: ml_collections.ConfigDict
    sources: list
    target: str
    words: object     # WordVocabulary
    chars: object     # CharVocabulary
    tags: object      # the task's label vocabulary (TagVocabulary; classes: LabelVocabulary)
    model: object
    checkpoint: str
    # Self-training's selection, when a student was loaded: {"round",
    # "workdir", "teacher", ...} (see man_tf.training.self_training).
    student: dict = None

    @property
    def languages(self):
        return [*self.sources, self.target]


def selected_student(workdir):
    """The self-training round a workdir's results select (a dict from its
    results.json), or None: the workdir's own model."""
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        self_training = json.load(f).get("self_training") or {}
    selected = self_training.get("selected", ".")
    return next((r for r in self_training.get("rounds", []) if r["workdir"] == selected), None)


def load_trained(workdir, which="best", precision=None, bio_decoding=None,
                 follow_selection=True):
    """Rebuilds the model of a workdir and restores its ``best``/``latest``
    checkpoint. ``precision`` overrides the config's dtype policy,
    ``bio_decoding`` a tagger's ``model.bio_decoding`` (how tags are read
    from the scores; the weights are the same either way). ``best`` of a
    self-trained workdir is the model its self-training selected (a
    student's best, unless the teacher's was better on target dev), unless
    ``follow_selection`` is False."""
    student = selected_student(workdir) if which == "best" and follow_selection else None
    if student is not None:
        trained = load_trained(os.path.join(workdir, student["workdir"]), which, precision,
                               bio_decoding, follow_selection=False)
        trained.student = student
        logging.info("%s: self-training selected %s (round %d)", workdir, student["workdir"],
                     student["round"])
        return trained
    from man_tf.data import vocab
    from man_tf.tasks import build_model, task_of
    from man_tf.training import checkpoints, strategy as strategies

    config = load_config(workdir)
    if bio_decoding is not None:
        if "bio_decoding" not in config.model:
            raise ConfigError(f"{workdir}: bio_decoding is a tagger's setting; this model is "
                              f"a {config.task} model")
        config.model.bio_decoding = bool(bio_decoding)
    strategies.set_precision(precision or config.train.precision)
    sources, target = resolve_languages(config)
    words, chars, tags = vocab.load_vocabularies(workdir, task_of(config).label_vocabulary)
    model = build_model(config, words.size, len(chars), tags.tags, len(sources),
                        list(words.offsets.values()))
    model.build_all()
    path = checkpoints.checkpoint_path(workdir, which)
    if path is None:
        raise ConfigError(f"{workdir}: no {which} checkpoint; train first")
    other = "latest" if which == "best" else "best"
    checkpoints.readable(path, f"use --checkpoint={other} (the {other} checkpoint), or train "
                               f"again into a new --workdir")
    checkpoints.restore_model(model, path)
    return Trained(config, sources, target, words, chars, tags, model, path)
