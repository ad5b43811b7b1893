"""man-tf-predict: tag or classify text with an exported SavedModel (no training code).

    echo "Angela Weber besuchte Berlin ." | man-tf-predict --model=saved_models/conll_de --language=de
    man-tf-predict --model=saved_models/conll_de/3 --language=de --input=news.txt --format=jsonl
    man-tf-predict --model=... --language=de --input=tokens.txt --tokenized

``--model`` is a version folder or an export base (its highest version).
Input: one sentence (tagger) or document (classifier) per line; for a
tagger, whitespace-separated tokens with ``--tokenized``. Output for a
tagger: CoNLL columns (token tag) or JSON lines with tokens, tags, scores
and the per-source expert weights averaged over the sentence; for a
classifier: ``label<TAB>text`` lines or JSON lines with the label, class
probabilities and expert weights. The model's kind is read from
``assets.extra/man_tf.json``.
"""

import json
import os
import sys

from absl import flags

from man_tf.cli.common import harmless_lines_hidden, run_command

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model", None, "SavedModel version folder or export base.")
    flags.DEFINE_string("language", None, "Language code of the input (a trained language).")
    flags.DEFINE_string("input", "-", "Input file, '-' for stdin.")
    flags.DEFINE_enum("format", "conll", ["conll", "jsonl"], "Output format.")
    flags.DEFINE_bool("tokenized", False, "Input lines are whitespace-separated tokens.")
    flags.DEFINE_integer("batch_size", 64, "Sentences per request.")
    flags.mark_flags_as_required(["model", "language"])


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

    loaded = tf.saved_model.load(model_dir)
    with open(os.path.join(model_dir, "assets.extra", "man_tf.json"), encoding="utf-8") as f:
        metadata = json.load(f)
    experts = metadata["expert_languages"]
    if metadata.get("task") == "classification":
        classes = metadata["classes"]
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
        return
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


class PredictError(ValueError):
    """Bad input to man-tf-predict; the message is the whole error line."""


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


def read_input(path):
    """Lines of ``path`` (``-``: stdin) without line ends; UTF-8 only."""
    if path == "-":
        return [line.rstrip("\n").rstrip("\r") for line in sys.stdin]
    if not os.path.exists(path):
        raise PredictError(f"--input={path}: no such file")
    if os.path.isdir(path):
        raise PredictError(f"--input={path}: is a directory, expected a text file")
    lines = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                lines.append(raw.decode("utf-8").rstrip("\n").rstrip("\r"))
            except UnicodeDecodeError as e:
                raise PredictError(f"{path}:{number}: byte 0x{raw[e.start]:02x} at column "
                                   f"{e.start + 1} is not valid UTF-8; convert the file "
                                   f"(e.g. iconv -f latin1 -t utf-8)") from None
    return lines


def main(argv):
    del argv
    try:
        model_dir = resolve_model_dir(FLAGS.model)
        check_language(FLAGS.language, read_metadata(model_dir), model_dir)
        lines = read_input(FLAGS.input)
        with harmless_lines_hidden():  # oneDNN's int64 notice on the first request
            results = list(predict_lines(model_dir, lines, FLAGS.language, FLAGS.tokenized,
                                         FLAGS.batch_size))
        for result in results:
            if FLAGS.format == "jsonl":
                print(json.dumps(result, ensure_ascii=False))
            elif "label" in result:
                print(f"{result['label']}\t{result['text']}")
            elif result["tokens"]:  # an empty input line is no sentence in CoNLL output
                for token, tag in zip(result["tokens"], result["tags"]):
                    print(f"{token} {tag}")
                print()
    except (FileNotFoundError, PredictError) as e:
        print(f"man-tf-predict: error: {e}", file=sys.stderr)
        sys.exit(2)


def run():
    run_command("man-tf-predict", __doc__, define_flags, main)


if __name__ == "__main__":
    run()
