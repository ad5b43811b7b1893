"""man-tf-evaluate: score a trained model (tagger or classifier) on labeled data.

    man-tf-evaluate --workdir=workdirs/de                      # target test split
    man-tf-evaluate --workdir=workdirs/de --split=dev
    man-tf-evaluate --workdir=workdirs/de --input=my.conll --language=de

A tagger: prints conlleval's report (overall and per entity type) and
writes ``<output>.conll`` (word gold predicted). A classifier: prints the
accuracy and writes ``<output>.tsv`` (gold predicted source). Both write
``<output>.json``.
"""

from absl import flags

from man_tf.cli.common import run_command

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
    flags.DEFINE_bool("bio_decoding", None,
                      "A tagger's decoding: true, the best BIO-valid tag sequence; false, "
                      "argmax per token (or a CRF's unconstrained Viterbi). Default: the "
                      "model's config.model.bio_decoding.")
    flags.mark_flag_as_required("workdir")


def main(argv):
    del argv
    import os

    from man_tf.cli.common import check_output_file, check_output_folder, user_errors
    from man_tf.tasks import task_of
    from man_tf.training import workdir as workdirs
    from man_tf.training.evaluate import evaluate
    with user_errors("man-tf-evaluate"):
        if FLAGS.output:
            check_output_file("--output", FLAGS.output)
        else:  # <workdir>/eval/<name>
            check_output_folder("--workdir", os.path.join(FLAGS.workdir, "eval"))
        task = task_of(workdirs.load_config(FLAGS.workdir))
        scores, output = evaluate(FLAGS.workdir, FLAGS.split, FLAGS.input, FLAGS.language,
                                  FLAGS.checkpoint, FLAGS.output, FLAGS.bio_decoding)
    print(f"{task.metric_name} {scores.primary:.2f}; predictions in "
          f"{output}{task.predictions_suffix}, scores in {output}.json")


def run():
    run_command("man-tf-evaluate", __doc__, define_flags, main)


if __name__ == "__main__":
    run()
