"""man-tf-predict: tag or classify text with an exported SavedModel (no training code).

    echo "Angela Weber besuchte Berlin ." | man-tf-predict --model=saved_models/conll_de --language=de
    man-tf-predict --model=saved_models/conll_de/3 --language=de --input=news.txt --format=jsonl
    man-tf-predict --model=... --language=de --input=tokens.txt --tokenized

``--model`` is a version folder or an export base (its highest version).
Input: one sentence (tagger) or document (classifier) per line; for a
tagger, whitespace-separated tokens with ``--tokenized``. Output for a
tagger: CoNLL columns (token tag), one block per input line (an empty
or blank line gets an empty block, so block N answers line N), or JSON lines with tokens, tags, scores
and the per-source expert weights averaged over the sentence; for a
classifier: ``label<TAB>text`` lines or JSON lines with the label, class
probabilities and expert weights. The model's kind is read from
``assets.extra/man_tf.json``.
"""

import json
import os
import sys

from absl import flags

from man_tf.cli.common import run_command
from man_tf.export.client import (PredictError, check_language, predict_lines, read_metadata,
                                  resolve_model_dir)

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model", None, "SavedModel version folder or export base.")
    flags.DEFINE_string("language", None, "Language code of the input (a trained language).")
    flags.DEFINE_string("input", "-", "Input file, '-' for stdin.")
    flags.DEFINE_enum("format", "conll", ["conll", "jsonl"], "Output format.")
    flags.DEFINE_bool("tokenized", False, "Input lines are whitespace-separated tokens.")
    flags.DEFINE_integer("batch_size", 64, "Sentences per request.", lower_bound=1)
    flags.mark_flags_as_required(["model", "language"])


def read_input(path):
    """Lines of ``path`` (``-``: stdin) without line ends; UTF-8 only."""
    if path == "-":
        return [line.rstrip("\n").rstrip("\r") for line in sys.stdin]
    if not os.path.exists(path):
        raise PredictError(f"--input={path}: no such file")
    if os.path.isdir(path):
        raise PredictError(f"--input={path}: is a directory, expected a text file")
    from man_tf.data.textio import not_text

    lines, offset = [], 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                kind = not_text(path)
                if kind:
                    raise PredictError(f"{path}:{number}: byte offset {offset + e.start}: not "
                                       f"UTF-8 text; the file looks {kind}") from None
                raise PredictError(f"{path}:{number}: byte 0x{raw[e.start]:02x} at column "
                                   f"{e.start + 1} (byte offset {offset + e.start}) is not "
                                   f"valid UTF-8; convert the file (e.g. iconv -f latin1 -t "
                                   f"utf-8)") from None
            if "\x00" in line:
                raise PredictError(f"{path}:{number}: byte offset {offset + raw.index(0)}: "
                                   f"not UTF-8 text; the file looks "
                                   f"{not_text(path) or 'binary'}")
            offset += len(raw)
            lines.append(line.rstrip("\n").rstrip("\r"))
    return lines


def main(argv):
    del argv
    try:
        model_dir = resolve_model_dir(FLAGS.model)
        check_language(FLAGS.language, read_metadata(model_dir), model_dir)
        lines = read_input(FLAGS.input)
        # oneDNN's int64 notice on the first request: hidden by run_command's filter.
        results = list(predict_lines(model_dir, lines, FLAGS.language, FLAGS.tokenized,
                                     FLAGS.batch_size))
        for result in results:
            if FLAGS.format == "jsonl":
                print(json.dumps(result, ensure_ascii=False))
            elif "label" in result:
                print(f"{result['label']}\t{result['text']}")
            else:  # one block per input line; an empty or blank line, an empty block
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
