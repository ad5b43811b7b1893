"""What a workdir holds, and whether a new run may continue in it.

A run writes ``config.json`` and ``vocab.json`` only once everything that can
fail before training has passed (data read, embeddings loaded, model built),
so a run that stops on bad input leaves nothing behind for the corrected
rerun to trip on. A rerun into a workdir that already has a checkpoint
resumes it only if the settings that shape the data, the vocabularies or the
model are those the workdir was trained with; otherwise it stops and names the
fields that differ.
"""

import json
import os

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"

# Fields a resumed run may change: how long, how often to log, evaluate and
# save, how to run (devices, precision, compilation), and where the encoder
# feature cache lies (its files are named by their content). Everything else
# (data, languages, vocabulary and model settings, optimisation) must match.
RESUMABLE_CHANGES = (
    "train.steps", "train.log_every", "train.eval_every", "train.eval_source_dev",
    "train.checkpoint_every", "train.keep_checkpoints", "train.eval_batch_size",
    "train.profile_steps", "train.strategy", "train.num_cpu_devices", "train.precision",
    "train.jit_compile", "train.deterministic", "data.feature_cache")


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


def stored_config(workdir):
    """The workdir's ``config.json`` as a dict, or None."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def differing_fields(stored, config):
    """Dotted names of the fields, outside :data:`RESUMABLE_CHANGES`, whose
    values differ between a stored config dict and ``config``."""
    old, new = flatten(stored), flatten(config_as_json(config))
    names = sorted(set(old) | set(new))
    return [n for n in names if n not in RESUMABLE_CHANGES and old.get(n) != new.get(n)]


def check_resumable(workdir, config, has_checkpoint):
    """Raises :class:`WorkdirMismatch` if ``workdir`` holds a checkpoint
    trained with other settings than ``config``. A workdir without a
    checkpoint (a run that stopped before its first save) is started afresh."""
    stored = stored_config(workdir)
    if not has_checkpoint or stored is None:
        return
    fields = differing_fields(stored, config)
    if fields:
        old, new = flatten(stored), flatten(config_as_json(config))
        shown = "; ".join(f"{n}: {old.get(n, '(unset)')!r} -> {new.get(n, '(unset)')!r}"
                          for n in fields[:6])
        more = f" and {len(fields) - 6} more" if len(fields) > 6 else ""
        raise WorkdirMismatch(
            f"{os.path.join(workdir, CONFIG_FILE)}: this workdir was trained with other "
            f"settings ({shown}{more}); use a new --workdir, or rerun with its settings to "
            f"resume")
