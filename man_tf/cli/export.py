"""man-tf-export: write a trained model (tagger or classifier) as a
TensorFlow Serving SavedModel.

    man-tf-export --workdir=workdirs/de --export_base=saved_models/conll_de

Writes ``<export_base>/<next version>/`` (never overwriting a version); the
signatures are in ``man_tf/export/tagger_serving.py`` (tagging) and
``man_tf/export/classifier_serving.py`` (classification), and in the
export's ``assets.extra/man_tf.json``.
"""

from absl import flags

from man_tf.cli.common import run_command

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("workdir", None, "A man-tf-train workdir.")
    flags.DEFINE_string("export_base", None, "Folder of versions, e.g. saved_models/conll_de.")
    flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to export.")
    from man_tf.export.from_workdir import PRECISIONS

    flags.DEFINE_enum("precision", "float32", list(PRECISIONS),
                      "float32 runs anywhere; mixed_bfloat16 (bfloat16 matmuls) is for "
                      "hardware with native bfloat16 (AVX512_BF16, AMX, Ampere+) and is "
                      "emulated elsewhere; speeds by batch size: "
                      "benchmarks/results/serving.md.")
    flags.mark_flags_as_required(["workdir", "export_base"])


def main(argv):
    del argv
    from man_tf.cli.common import check_output_folder, user_errors
    from man_tf.export.from_workdir import export
    with user_errors("man-tf-export"):
        check_output_folder("--export_base", FLAGS.export_base)
        path = export(FLAGS.workdir, FLAGS.export_base, FLAGS.checkpoint, FLAGS.precision)
    print(f"exported {path}")


def run():
    run_command("man-tf-export", __doc__, define_flags, main)


if __name__ == "__main__":
    run()
