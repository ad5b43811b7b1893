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
    from man_tf.evaluation.report import write_report
    try:
        paths = write_report(FLAGS.workdir, FLAGS.output_dir)
    except FileNotFoundError as e:
        print(f"man-tf-report: error: {e}", file=sys.stderr)
        sys.exit(2)
    print("\n".join(paths))


def run():
    run_command("man-tf-report", __doc__, define_flags, main)


if __name__ == "__main__":
    run()
