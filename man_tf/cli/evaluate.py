"""man-tf-evaluate: score a trained tagger on a CoNLL file with conlleval semantics.

    man-tf-evaluate --workdir=workdirs/de                      # target test split
    man-tf-evaluate --workdir=workdirs/de --split=dev
    man-tf-evaluate --workdir=workdirs/de --input=my.conll --language=de

Prints conlleval's report (overall and per entity type), and writes
``<output>.conll`` (word gold predicted) and ``<output>.json``.
"""

import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("workdir", None, "A man-tf-train workdir.")
    flags.DEFINE_enum("split", "test", ["dev", "test"],
                      "Which configured split of the language to score.")
    flags.DEFINE_string("input", None, "A CoNLL file to score instead of a split.")
    flags.DEFINE_string("language", None, "Language of the input (default: the target).")
    flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint.")
    flags.DEFINE_string("output", None,
                        "Output path prefix (default: <workdir>/eval/<language>.<split>).")
    flags.mark_flag_as_required("workdir")


def evaluate(workdir, split="test", input_path=None, language=None, which="best", output=None):
    """Returns ``(SpanScores, output prefix)``."""
    from man_tf.cli import experiment
    from man_tf.data import conll, pipeline, vocab
    from man_tf.data.textio import atomic_write_json, atomic_write_text
    from man_tf.evaluation import tagging
    from man_tf.evaluation.span_f1 import format_report
    from man_tf.models import inference
    from man_tf.training import checkpoints, strategy as strategies

    config = experiment.load_config(workdir)
    strategies.set_precision(config.train.precision)
    sources, target = experiment.resolve_languages(config)
    languages = [*sources, target]
    language = language or target
    if language not in languages:
        raise experiment.ConfigError(f"language {language!r} was not trained; the model knows "
                                     f"{languages}")
    if input_path is None:
        spec = config.data.languages[language]
        if split not in spec:
            raise experiment.ConfigError(f"{language} has no {split!r} file in the config; "
                                         f"pass --input")
        input_path = spec[split].format(root=config.data.root)
        name = f"{language}.{split}"
    else:
        name = f"{language}.{os.path.basename(input_path)}"
    sentences = conll.read_conll(input_path, encoding=config.data.encoding)
    words, chars, tags = vocab.load_vocabularies(workdir)
    unknown = sorted({t for s in sentences for t in s.tags} - set(tags.tags))
    if unknown:
        raise experiment.ConfigError(f"{input_path}: tags {unknown} were never seen in "
                                     f"training (trained tags: {tags.tags})")
    model = experiment.build_model(config, words.size, len(chars), len(tags), len(sources))
    model.build_all()
    path = checkpoints.checkpoint_path(workdir, which)
    if path is None:
        raise experiment.ConfigError(f"{workdir}: no {which} checkpoint; train first")
    checkpoints.restore_model(model, path)
    corpus = pipeline.encode(sentences, language, languages.index(language), words, chars, tags,
                             config.data.max_chars)
    ids, gates = inference.predict_corpus(
        inference.make_predict_fn(model),
        pipeline.evaluation_batches(corpus, config.train.eval_batch_size), len(corpus))
    predicted = tagging.decode(ids, tags)
    scores = tagging.score(sentences, predicted)
    output = output or os.path.join(workdir, "eval", name)
    atomic_write_text(output + ".conll", "".join(tagging.conll_lines(sentences, predicted)))
    atomic_write_json(output + ".json", {
        "input": input_path, "language": language, "checkpoint": path, **scores.to_dict(),
        "expert_weights": dict(zip(sources, map(float, inference.mean_gate(gates))))})
    print(format_report(scores))
    return scores, output


def main(argv):
    del argv
    from man_tf.cli.experiment import ConfigError
    from man_tf.data.errors import DataError
    try:
        scores, output = evaluate(FLAGS.workdir, FLAGS.split, FLAGS.input, FLAGS.language,
                                  FLAGS.checkpoint, FLAGS.output)
    except (ConfigError, DataError) as e:
        logging.error("%s", e)
        print(f"man-tf-evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"F1 {scores.f1:.2f}; predictions in {output}.conll, scores in {output}.json")


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
