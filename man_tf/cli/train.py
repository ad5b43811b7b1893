"""man-tf-train: train MAN-MoE from a config file.

    man-tf-train --config=configs/conll_ner.py --config.target=de --workdir=workdirs/de

Rerunning the same command resumes from the workdir's latest checkpoint.
Writes to the workdir: config.json, vocab.json, checkpoints/ (latest), best/
(best target dev F1), tensorboard/, metrics.jsonl, train.log, results.json;
with ``--config.self_training.rounds=R``, a student workdir per round
(``student-1/`` ...; see man_tf/training/self_training.py).
The training itself is ``man_tf.training.train.train`` (``fit`` with
callbacks), which Python users call with callbacks of their own.
"""

import json
import logging as std_logging
import os

from absl import flags, logging
from ml_collections import config_flags

from man_tf.cli.common import run_command

FLAGS = flags.FLAGS


def define_flags():
    # Defined when the command runs, not at import, so that the library
    # functions here can be imported next to other commands' flags.
    config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, results.")
    flags.DEFINE_string("profile_steps", None,
                        "START,END: trace these steps with the TensorBoard profiler "
                        "(same as --config.train.profile_steps).")
    flags.mark_flags_as_required(["config", "workdir"])


def log_file_name(tf_config):
    """``train.log`` for the process that writes results (the chief, or
    worker 0 of a cluster without one); ``train.<type><index>.log`` else."""
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if not task:
        return "train.log"
    kind, index = task.get("type", "worker"), task.get("index", 0)
    if kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster):
        return "train.log"
    return f"train.{kind}{index}.log"


def main(argv):
    from man_tf import settings, tasks
    from man_tf.cli import common as cli_common
    from man_tf.training.train import finished_results, train

    workdir = FLAGS.workdir
    config = FLAGS.config
    with cli_common.user_errors("man-tf-train"):
        if os.path.exists(workdir) and not os.path.isdir(workdir):
            raise settings.ConfigError(f"--workdir={workdir}: is a file, expected a "
                                         f"directory (new or a previous run's)")
        cli_common.check_output_folder("--workdir", workdir)
        with config.unlocked():
            if FLAGS.profile_steps:
                config.train.profile_steps = FLAGS.profile_steps
            settings.resolve_data_root(
                config, config_flags.get_config_filename(FLAGS["config"]),
                typed=any(a.startswith("--config.data.root") for a in argv))
        tasks.task_of(config)  # a known task
        settings.check_config(config)
        done = finished_results(config, workdir)
        if done is not None:
            metric, name = tasks.task_of(config).metric, tasks.task_of(config).metric_name
            print(f"{workdir}: already trained to step {done['steps']} (dev {name} "
                  f"{done.get(f'dev_{metric}', float('nan')):.2f}, test {name} "
                  f"{done.get(f'test_{metric}', float('nan')):.2f}; {workdir}/results.json); a "
                  f"larger --config.train.steps continues it")
            return
        os.makedirs(workdir, exist_ok=True)
        name = log_file_name(json.loads(os.environ.get("TF_CONFIG", "{}")))
        handler = std_logging.FileHandler(os.path.join(workdir, name), encoding="utf-8")
        handler.setFormatter(logging.PythonFormatter())
        logging.get_absl_logger().addHandler(handler)
        if not cli_common.verbose():  # -v 1 and more keep their own level
            logging.set_verbosity(logging.INFO)
        results = train(config, workdir)
    task = tasks.task_of(config)
    metric, name = task.metric, task.metric_name
    selected = results.get("self_training", {}).get("selected")
    which = "" if selected is None else (
        "; self-training kept the teacher" if selected == "." else
        f"; self-training selected {selected}: teacher dev {name} "
        f"{results['teacher'].get(f'dev_{metric}', float('nan')):.2f}")
    print(f"{results['target']}: dev {name} {results.get(f'dev_{metric}', float('nan')):.2f}  "
          f"test {name} {results.get(f'test_{metric}', float('nan')):.2f}  "
          f"(best step {results['best_step']}{which}; results in {workdir}/results.json)")


def run():
    run_command("man-tf-train", __doc__, define_flags, main, config_flag=True)


if __name__ == "__main__":
    run()
