"""Tag or classify text with an exported SavedModel, from Python.

Only TensorFlow and TF Text run here (no man_tf model code): the same
requests a TensorFlow Serving client sends. ``man-tf-predict`` is the
command around :func:`predict_lines`.
"""

import json
import os


def resolve_model_dir(path):
    """A version folder as is; an export base -> its highest integer version."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted(int(n) for n in os.listdir(path) if n.isdigit()) \
        if os.path.isdir(path) else []
    if not versions:
        raise FileNotFoundError(f"{path}: neither a SavedModel nor a folder of versions")
    return os.path.join(path, str(versions[-1]))


def predict_lines(model_dir, lines, language, tokenized=False, batch_size=64):
    """Yields one dict per input line."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    from man_tf.tasks import TASKS

    loaded = load_saved_model(model_dir)
    with open(os.path.join(model_dir, "assets.extra", "man_tf.json"), encoding="utf-8") as f:
        metadata = json.load(f)
    read = READERS[TASKS[metadata["task"]].client_reader]
    yield from read(loaded, metadata, lines, language, tokenized, batch_size)


def classify_lines(loaded, metadata, lines, language, tokenized, batch_size):
    """A classifier export's answers, one dict per line (``tokenized`` is
    a tagger's option: a document is always raw text)."""
    del tokenized
    import tensorflow as tf

    experts, classes = metadata["expert_languages"], metadata["classes"]
    for start in range(0, len(lines), batch_size):
        chunk = lines[start:start + batch_size]
        out = loaded.signatures["serving_default"](
            text=tf.constant(chunk), language=tf.constant([language] * len(chunk)))
        out = {k: v.numpy() for k, v in out.items()}
        for row, text in enumerate(chunk):
            yield {"text": text, "label": out["label"][row].decode("utf-8"),
                   "probabilities": {c: round(float(p), 4)
                                     for c, p in zip(classes, out["probabilities"][row])},
                   "expert_weights": {e: round(float(w), 4)
                                      for e, w in zip(experts, out["expert_weights"][row])}}


def tag_lines(loaded, metadata, lines, language, tokenized, batch_size):
    """A tagger export's answers, one dict per line (``tokenized``: split
    on spaces here and sent to the ``tag_tokens`` signature)."""
    import tensorflow as tf

    experts = metadata["expert_languages"]
    for start in range(0, len(lines), batch_size):
        chunk = lines[start:start + batch_size]
        codes = tf.constant([language] * len(chunk))
        if tokenized:
            split = [line.split() for line in chunk]
            width = max([len(s) for s in split] + [1])
            tokens = tf.constant([s + [""] * (width - len(s)) for s in split])
            out = loaded.signatures["tag_tokens"](
                tokens=tokens, lengths=tf.constant([len(s) for s in split], tf.int32),
                language=codes)
        else:
            out = loaded.signatures["serving_default"](text=tf.constant(chunk), language=codes)
        out = {k: v.numpy() for k, v in out.items()}
        for row, text in enumerate(chunk):
            n = int(out["lengths"][row])
            weights = out["expert_weights"][row, :n].mean(axis=0) if n else [0.0] * len(experts)
            yield {"text": text,
                   "tokens": [t.decode("utf-8") for t in out["tokens"][row, :n]],
                   "tags": [t.decode("utf-8") for t in out["tags"][row, :n]],
                   "scores": [round(float(s), 4) for s in out["tag_scores"][row, :n]],
                   "expert_weights": {e: round(float(w), 4) for e, w in zip(experts, weights)}}


# The task names its reader (man_tf.tasks.Task.client_reader).
READERS = {f.__name__: f for f in (classify_lines, tag_lines)}


class PredictError(ValueError):
    """Bad input to man-tf-predict; the message is the whole error line."""


def load_saved_model(model_dir):
    """``tf.saved_model.load``, with a damaged export reported as one line
    naming the file at fault (:class:`PredictError`)."""
    import tensorflow as tf

    from man_tf.training.checkpoints import damage

    graph = os.path.join(model_dir, "saved_model.pb")
    again = "export it again (man-tf-export) or give another version"
    if os.path.exists(graph) and os.path.getsize(graph) == 0:
        raise PredictError(f"{graph}: empty file, not a SavedModel graph; {again}")
    problem = damage(os.path.join(model_dir, "variables", "variables"))
    if problem is not None:
        raise PredictError(f"{problem[0]}: damaged SavedModel variables ({problem[1]}); {again}")
    try:
        return tf.saved_model.load(model_dir)
    except Exception as e:  # noqa: BLE001  -- protobuf and TF raise several kinds
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        reason = reason.split(": ")[-1] if "Cannot parse file" in reason else reason
        raise PredictError(f"{graph}: damaged SavedModel ({reason}); {again}") from None


def read_metadata(model_dir):
    path = os.path.join(model_dir, "assets.extra", "man_tf.json")
    if not os.path.exists(path):
        raise PredictError(f"{path}: not found; is {model_dir!r} a man-tf-export SavedModel?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_language(language, metadata, model_dir):
    """The served model answers only its trained language codes, exactly
    spelled; say so before loading the graph."""
    languages = metadata.get("languages", [])
    if language not in languages:
        hint = f" (did you mean {language.lower()!r}?)" if language.lower() in languages else ""
        raise PredictError(f"--language={language}: the model in {model_dir} knows "
                           f"{', '.join(languages)}{hint}")
