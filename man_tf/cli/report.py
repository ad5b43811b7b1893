"""man-tf-report: what-to-share plots and summary for a training workdir.

    man-tf-report --workdir=workdirs/de     # -> workdirs/de/report/*.png, report.md
"""

import sys

from absl import flags

from man_tf.cli.common import run_command

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("workdir", None, "A finished man-tf-train workdir.")
    flags.DEFINE_string("output_dir", None, "Where to write (default: <workdir>/report).")
    flags.mark_flag_as_required("workdir")


def main(argv):
    del argv
    import os

    from man_tf.cli.common import check_output_folder
    from man_tf.evaluation.report import write_report
    from man_tf.settings import ConfigError
    try:
        check_output_folder("--output_dir" if FLAGS.output_dir else "--workdir",
                            FLAGS.output_dir or os.path.join(FLAGS.workdir, "report"))
        paths = write_report(FLAGS.workdir, FLAGS.output_dir)
    except (ConfigError, FileNotFoundError) as e:
        print(f"man-tf-report: error: {e}", file=sys.stderr)
        sys.exit(2)
    print("\n".join(paths))


def run():
    run_command("man-tf-report", __doc__, define_flags, main)


if __name__ == "__main__":
    run()
