"""man-tf-train: train MAN-MoE from a config file.

    man-tf-train --config=configs/conll_ner.py --config.target=de --workdir=workdirs/de

Rerunning the same command resumes from the workdir's latest checkpoint.
Writes to the workdir: config.json, vocab.json, checkpoints/ (latest), best/
(best target dev F1), tensorboard/, train.log, results.json.
"""

import json
import logging as std_logging
import os
import shutil
import time

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


class MetricsHistory:
    """Appends one JSON line per logged step to ``metrics.jsonl`` (read by
    man-tf-report). A line cut by a crash is skipped by the reader."""

    def __init__(self, path):
        self.path = path

    def add(self, kind, step, **values):
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")


def _profile_range(spec):
    """``"START,END"`` -> (start, end) steps to trace, or None."""
    from man_tf.settings import ConfigError
    if not spec:
        return None
    try:
        start, end = (int(x) for x in str(spec).split(","))
    except ValueError:
        raise ConfigError(f"profile_steps must be 'START,END' (two step numbers), got {spec!r}") \
            from None
    if not 0 <= start < end:
        raise ConfigError(f"profile_steps: need 0 <= START < END, got {spec!r}")
    return start, end


def train(config, workdir):
    """Trains (or resumes) and returns the results dict written to results.json."""
    # TensorFlow is imported here, after flags, so logical CPU devices can be
    # configured before its runtime starts.
    import tensorflow as tf

    from man_tf import settings
    from man_tf.data import loading, pipeline, vocab
    from man_tf.data.textio import atomic_write_json
    from man_tf.evaluation import classification, tagging
    from man_tf.models import building, inference
    from man_tf.pretrained import encoder_inputs
    from man_tf.training import checkpoints, strategy as strategies, workdir as workdirs
    from man_tf.training.trainer import AdversarialTrainer

    settings.check_config(config)
    strategies.configure_cpu_devices(config.train.num_cpu_devices)
    # Created first: MultiWorkerMirroredStrategy must exist before other TF work.
    strategy = strategies.make_strategy(config.train.strategy)
    replicas = strategy.num_replicas_in_sync
    chief = strategies.is_chief(strategy)
    write_dir = strategies.worker_dir(workdir, strategy)
    tf.keras.utils.set_random_seed(config.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    precision = strategies.set_precision(config.train.precision)
    os.makedirs(workdir, exist_ok=True)

    data = loading.load_data(config)
    # Read before anything is written: a wrong file or dimension stops here.
    pretrained = loading.read_pretrained_vectors(config, data)
    latest = checkpoints.checkpoint_path(workdir, "latest")
    workdirs.check_resumable(workdir, config, latest is not None)
    vocab_file = os.path.join(workdir, workdirs.VOCAB_FILE)
    resuming = latest is not None and os.path.exists(vocab_file)
    if resuming:
        words, chars, tags = vocab.load_vocabularies(workdir)
        logging.info("resuming: vocabularies from %s", vocab_file)
    else:
        words, chars, tags = loading.build_vocabularies(config, data, pretrained)
    for lang in data.languages:
        logging.info("%s: %d labeled, %d unlabeled, %d dev, %d test sentences; %d words",
                     lang, len(data.labeled.get(lang, [])), len(data.unlabeled[lang]),
                     len(data.dev.get(lang, [])), len(data.test.get(lang, [])),
                     len(words.blocks[words.block(lang)]))
    logging.info("tags: %s; characters: %d; word rows: %d", tags.tags, len(chars), words.size)
    features = encoder_inputs.encoder_features(config, workdir)
    labeled, unlabeled = loading.encode_data(config, data, words, chars, tags, features)
    classifying = config.get("task", "tagging") == "classification"
    metric = "acc" if classifying else "f1"  # selection metric: accuracy / entity F1
    # Documents are read up to the training length (as served); sentences whole.
    eval_max_length = (config.data.max_length or None) if classifying else None
    eval_languages = [data.target] + (data.sources if config.train.eval_source_dev else [])
    eval_sets = {}
    for lang in eval_languages:
        if lang in data.dev:
            corpus = loading.encode_split(config, data.dev[lang], lang,
                                             data.languages.index(lang), words, chars, tags,
                                             eval_max_length, features)
            eval_sets[lang] = (data.dev[lang], corpus)
    # The final evaluation's sets too: a tag the sources never show stops the
    # run here, before anything is written.
    final_sets = {}
    for split, store in (("dev", data.dev), ("test", data.test)):
        if data.target in store:
            corpus = loading.encode_split(config, store[data.target], data.target,
                                             data.languages.index(data.target), words, chars,
                                             tags, eval_max_length, features)
            final_sets[split] = (store[data.target], corpus)
    if data.target not in eval_sets:
        logging.warning("target %s has no dev file: the last checkpoint is kept as 'best'",
                        data.target)


    for stream, languages in (("labeled", data.sources), ("unlabeled", data.languages)):
        rows = config.train.batch_size * len(languages)
        if rows % replicas:
            raise settings.ConfigError(
                f"{stream} batches have {rows} rows (batch_size {config.train.batch_size} x "
                f"{len(languages)} languages), which {replicas} replicas cannot share evenly; "
                f"choose --config.train.batch_size so that it divides")
    # Seeded again here: computing encoder features (a cache miss) builds
    # layers that draw from the global RNG, which must not change the model.
    tf.keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = building.build_model(config, words.size, len(chars), len(tags),
                                       len(data.sources), list(words.offsets.values()))
        model.build_all()
        coverage = building.load_pretrained_embeddings(config, model, words, pretrained)
        trainer = AdversarialTrainer(
            model, strategy, len(data.languages), config.train.learning_rate,
            config.train.d_learning_rate, config.train.lambd, config.train.discriminator_steps,
            config.train.gate_loss_weight, config.train.tag_gate_loss_weight,
            config.train.jit_compile)
        def data_iterator(seed):
            dataset = pipeline.training_stream(
                [labeled[lang] for lang in data.sources],
                [unlabeled[lang] for lang in data.languages], config.train.batch_size, seed,
                config.train.discriminator_steps, trainer.adversarial,
                tuple(config.data.buckets))
            return iter(trainer.distribute(dataset))

        # On one replica the data iterator's position (shuffle buffers of row
        # ids, buckets) is checkpointed too, so a resumed run sees the batches
        # an uninterrupted run would have. TF cannot checkpoint the per-replica
        # iterator of a multi-replica strategy: there a resumed run draws fresh
        # batches, seeded by the step, instead of replaying the first ones.
        iterator = data_iterator(config.seed) if replicas == 1 else None
        # Every worker takes part in each save (a collective); only the
        # chief's copy is kept. All restore the chief's latest checkpoint.
        state = checkpoints.TrainingState(write_dir, model, trainer.optimizer,
                                          trainer.d_optimizer, config.train.keep_checkpoints,
                                          iterator=iterator)
        restored = state.restore_latest(latest)
        if iterator is None:
            iterator = data_iterator(config.seed + int(state.step.numpy()))
        trainer.trace_for(iterator.element_spec)
    # Written only now that data, vocabularies and model are known good, so a
    # run stopped by bad input leaves nothing for the corrected rerun to reuse.
    if chief:
        if not resuming:
            vocab.save_vocabularies(workdir, words, chars, tags)
        workdirs.save_config(workdir, config)
    start = int(state.step.numpy())
    logging.info("%s at step %d; %d parameters; %d replica(s); per-language batch %d, "
                 "global batch %d sentences per stream", "resumed" if restored else "starting",
                 start, model.count_params(), replicas, config.train.batch_size,
                 config.train.batch_size * len(data.sources))

    predict_fn = inference.make_predict_fn(model)
    def evaluate(sets):
        results = {}
        for lang, (sentences, corpus) in sets.items():
            batches = pipeline.evaluation_batches(corpus, config.train.eval_batch_size)
            predictions = inference.predict_corpus(predict_fn, batches, len(corpus))
            if classifying:
                scores = classification.score(sentences, predictions.ids)
            else:
                scores = tagging.score(sentences, tagging.decode(predictions.ids, tags))
            results[lang] = (scores, predictions)
        return results

    # Summaries and history from the chief only (no-op writers elsewhere).
    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", "train")) \
        if chief else tf.summary.create_noop_writer()
    dev_writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", "dev")) \
        if chief else tf.summary.create_noop_writer()
    history = MetricsHistory(os.path.join(workdir, "metrics.jsonl") if chief else None)
    profile = _profile_range(config.train.profile_steps)
    total = config.train.steps
    last_dev = None  # shown as "-" until this process has evaluated
    # The rate (and ETA) is measured from the end of the first step, whose
    # time is mostly tracing and compiling the step.
    tick, tick_step = None, start
    step = start
    while step < total:
        if profile and step == profile[0]:
            tf.profiler.experimental.start(os.path.join(workdir, "tensorboard"))
        logs = trainer.train_step(next(iterator))
        step += 1
        if profile and step == profile[1]:
            tf.profiler.experimental.stop()
            logging.info("profiled steps %d-%d: open TensorBoard's Profile tab on %s/tensorboard",
                         profile[0], profile[1], workdir)
        # Checked every step (one scalar read): a NaN must never reach a checkpoint.
        loss = float(logs["total_loss"])
        if loss != loss or abs(loss) == float("inf"):
            values = {k: float(v) for k, v in logs.items()}
            bad = ", ".join(f"{k}={v}" for k, v in values.items() if v != v or abs(v) == float("inf"))
            raise FloatingPointError(
                f"step {step}: non-finite loss ({bad}); training stopped, the last good "
                f"checkpoint is kept in {workdir}/checkpoints (step "
                f"{int(state.step.numpy())}); lower --config.train.learning_rate or check the "
                f"input data")
        state.step.assign(step)
        if tick is None:
            tick, tick_step = time.time(), step
        if step % config.train.log_every == 0 or step == total:
            values = {k: float(v) for k, v in logs.items()}
            now = time.time()
            rate = (step - tick_step) / (now - tick) if step > tick_step else float("nan")
            tick, tick_step = now, step
            with writer.as_default(step=step):
                for k, v in values.items():
                    tf.summary.scalar(k, v)
                tf.summary.scalar("learning_rate", config.train.learning_rate)
                tf.summary.scalar("steps_per_second", rate)
            history.add("train", step, **values, steps_per_second=rate)
            if rate == rate and rate > 0:
                eta = int(round((total - step) / rate))
                eta_text = f"{eta // 3600}h{eta % 3600 // 60:02d}m" if eta >= 3600 else \
                    f"{eta // 60}m{eta % 60:02d}s"
            else:
                eta_text = "-"
            d_accuracy = values.get("d_accuracy")
            logging.info("step %d/%d  %s it/s  eta %s  task %.3f  D acc %s  dev %s %s", step,
                         total, f"{rate:.2f}" if rate == rate else "-", eta_text,
                         values["task_loss"], "-" if d_accuracy is None else f"{d_accuracy:.3f}",
                         metric, "-" if last_dev is None else f"{last_dev:.2f}")
        if eval_sets and (step % config.train.eval_every == 0 or step == total):
            results = evaluate(eval_sets)
            with dev_writer.as_default(step=step):
                for lang, (scores, predictions) in results.items():
                    tf.summary.scalar(f"{metric}/{lang}", scores.primary)
                    weights = inference.expert_weights(data.sources, predictions.gates)
                    for source, weight in weights.items():
                        tf.summary.scalar(f"expert_weight/{lang}/{source}", weight)
                    history.add("dev", step, language=lang, metric=metric, score=scores.primary,
                                expert_weights=weights)
            if data.target in results:
                last_dev = results[data.target][0].primary
                new_best = last_dev > float(state.best_score.numpy())
                if new_best:
                    state.best_score.assign(last_dev)
                    state.best_step.assign(step)
                    state.save_best()
                logging.info("step %d: %s dev %s %.2f (%s)", step, data.target, metric,
                             last_dev, "new best" if new_best else
                             f"best {float(state.best_score.numpy()):.2f} at step "
                             f"{int(state.best_step.numpy())}")
        if step % config.train.checkpoint_every == 0 or step == total:
            state.save_latest()
    writer.flush()
    dev_writer.flush()

    best_path = checkpoints.checkpoint_path(write_dir, "best") or state.latest.latest_checkpoint
    checkpoints.restore_model(model, best_path)
    results = {"target": data.target, "sources": data.sources, "steps": int(total),
               "best_step": int(state.best_step.numpy()), "checkpoint": best_path,
               "precision": precision, "replicas": replicas,
               "embeddings": {k: v for k, v in config.data.embeddings.items() if v}
               or "learned (no .vec files)",
               "embedding_coverage": coverage}
    for split, (scores, predictions) in evaluate(final_sets).items():
        results[f"{split}_{metric}"] = scores.primary
        results[f"{split}_scores"] = scores.to_dict()
        # Which sources the target borrows from: C's and F_p's average gates.
        results[f"{split}_expert_weights"] = inference.expert_weights(data.sources,
                                                                      predictions.gates)
        if predictions.private_gates is not None:
            results[f"{split}_private_expert_weights"] = inference.expert_weights(
                data.sources, predictions.private_gates)
    if chief:
        atomic_write_json(os.path.join(workdir, "results.json"), results)
    elif write_dir != workdir:
        shutil.rmtree(write_dir, ignore_errors=True)
    logging.info("done: best step %d, %s dev %s %.2f, test %s %.2f", results["best_step"],
                 data.target, metric, results.get(f"dev_{metric}", float("nan")), metric,
                 results.get(f"test_{metric}", float("nan")))
    return results


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
    from man_tf.cli import common as cli_common
    from man_tf import settings

    workdir = FLAGS.workdir
    config = FLAGS.config
    with cli_common.user_errors("man-tf-train"):
        if os.path.exists(workdir) and not os.path.isdir(workdir):
            raise settings.ConfigError(f"--workdir={workdir}: is a file, expected a "
                                         f"directory (new or a previous run's)")
        with config.unlocked():
            if FLAGS.profile_steps:
                config.train.profile_steps = FLAGS.profile_steps
            settings.resolve_data_root(
                config, config_flags.get_config_filename(FLAGS["config"]),
                typed=any(a.startswith("--config.data.root") for a in argv))
        settings.check_config(config)
        os.makedirs(workdir, exist_ok=True)
        name = log_file_name(json.loads(os.environ.get("TF_CONFIG", "{}")))
        handler = std_logging.FileHandler(os.path.join(workdir, name), encoding="utf-8")
        handler.setFormatter(logging.PythonFormatter())
        logging.get_absl_logger().addHandler(handler)
        logging.set_verbosity(logging.INFO)
        results = train(config, workdir)
    metric = "acc" if "dev_acc" in results or "test_acc" in results else "f1"
    name = {"acc": "accuracy", "f1": "F1"}[metric]
    print(f"{results['target']}: dev {name} {results.get(f'dev_{metric}', float('nan')):.2f}  "
          f"test {name} {results.get(f'test_{metric}', float('nan')):.2f}  "
          f"(best step {results['best_step']}; results in {workdir}/results.json)")


def run():
    run_command("man-tf-train", __doc__, define_flags, main, config_flag=True)


if __name__ == "__main__":
    run()
