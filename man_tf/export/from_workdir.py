"""Export a trained workdir as a TensorFlow Serving SavedModel.

Writes ``<export_base>/<next version>/`` (never overwriting a version); see
``man_tf/export/tagger_serving.py`` and ``classifier_serving.py`` for the
signatures. ``man-tf-export`` is the command around :func:`export`.
"""

import importlib
import os

import man_tf


def _warmup_examples(config, languages):
    """A few real sentences (or reviews) per language from the config's files."""
    from man_tf import settings
    from man_tf.data import conll, reviews

    texts, codes = [], []
    for lang in languages:
        for split in ("dev", "test", "train", "unlabeled"):
            path = (settings.data_path(config, lang, split) or "").split(",")[0]
            if path and os.path.exists(path) and not path.endswith(".txt"):
                if path.endswith(".review"):
                    found = [d.text[:400] for d in reviews.read_reviews(path)[:2]]
                else:
                    found = [" ".join(s.tokens) for s in
                             conll.read_conll(path, config.data.encoding, labeled=False)[:2]]
                texts += found
                codes += [lang] * len(found)
                break
    if not texts:
        texts, codes = ["Angela Merkel visited Paris ."], [languages[0]]
    return [(texts, codes), (texts[:1], codes[:1])]


PRECISIONS = ("float32", "mixed_bfloat16")


def export(workdir, export_base, which="best", precision="float32"):
    """Returns the path of the new version. ``precision``: "float32" (any
    CPU), or "mixed_bfloat16" (bfloat16 matmuls, float32 variables: for
    hardware with native bfloat16, i.e. CPUs with AVX512_BF16 or AMX and
    Ampere+ GPUs; elsewhere it is emulated; outputs move slightly; speeds
    by batch size: benchmarks/results/serving.md)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    from man_tf import tasks
    from man_tf.export.saved_model import export_serving
    from man_tf.pretrained import encoder_inputs
    from man_tf.training import workdir as workdirs

    # Served in float32 unless asked: a serving CPU may lack bf16.
    trained = workdirs.load_trained(workdir, which, precision=precision)
    config, languages = trained.config, trained.languages
    # The encoder and its tokenizer go into the graph; the piece embedding
    # table stays in Q4_0 as in the bundled weights file (54 MB, not 384 MB).
    # A fine-tuned encoder is the model's own layer (its weights are the
    # checkpoint's), fed the tokens.
    features = (encoder_inputs.serving_word_features(config, dtype=precision)
                or trained.model.backbone.word_features)
    common = {"man_tf_version": man_tf.__version__, "languages": languages, "precision": precision,
              "target": trained.target, "expert_languages": trained.sources,
              "checkpoint": os.path.abspath(trained.checkpoint),
              # A self-training student (its round, its teacher's folder in the
              # workdir, "." for the first run), or null: the run's own model.
              "self_training": ({"student_round": trained.student["round"],
                                 "teacher": trained.student["teacher"]}
                                if trained.student else None)}
    if features is not None:
        common["encoder"] = {"name": config.model.encoder,
                             "layers": list(config.model.encoder_layers),
                             **dict(features.weights_description)}
    task = tasks.task_of(config)
    serving, metadata = importlib.import_module(task.serving_module).serving(trained, features)
    metadata = {"task": task.name, **metadata}
    return export_serving(serving, export_base, {**common, **metadata},
                          _warmup_examples(config, languages))
