"""Training from a config, as ``man-tf-train`` runs it, callable from Python
in one call or in its stages:

    from man_tf.training import train as training
    results = training.train(config, "workdirs/de", callbacks=[MyCallback()])

    experiment = training.build_experiment(config, "workdirs/de")  # data, model, restore
    training.fit(experiment, callbacks=[MyCallback()])              # keras fit + the loop's callbacks
    results = training.finish(experiment)                           # best checkpoint scored, results.json

:func:`build_experiment` loads the data, builds (or restores) vocabularies
and the model, wraps it in a compiled :class:`AdversarialModel` and restores
the latest checkpoint; :func:`fit` runs ``fit`` with the loop's callbacks
(step count and NaN stop, progress, dev evaluation and best checkpoint,
latest checkpoint, profiler) followed by the caller's; :func:`finish`
scores the best checkpoint on the target's dev and test sets. Rerunning
into the same workdir resumes exactly where the last checkpoint left off.
Writes to the workdir: workdir.json, config.json, vocab.json, checkpoints/
(latest), best/ (best target dev score), tensorboard/, metrics.jsonl,
results.json.
"""

import dataclasses
import os
import shutil

from absl import logging


@dataclasses.dataclass
class Experiment:
    """Everything a run is made of, built by :func:`build_experiment`."""

    config: object
    workdir: str
    write_dir: str        # this worker's checkpoint folder (the workdir on the chief)
    strategy: object
    chief: bool
    precision: str
    task: object          # man_tf.tasks.Task
    data: object          # man_tf.data.loading.Data
    words: object
    chars: object
    labels: object
    model: object         # the ManMoeModel
    trainer: object       # the compiled AdversarialModel wrapping it
    state: object         # checkpoints.TrainingState
    main_rate: object     # the main step size (a schedule)
    stream: object        # the training tf.data stream
    eval_sets: dict       # language -> (examples, encoded corpus): dev evaluation
    final_sets: dict      # "dev"/"test" -> (examples, encoded corpus): the target's
    coverage: dict        # language -> .vec coverage of its vocabulary
    restored: object      # the checkpoint resumed from (None: a new run)
    predict_fn: object = None  # the compiled forward pass, made on first use

    @property
    def start(self):
        return int(self.state.step.numpy())


def _runtime(config):
    """Strategy, seeds and precision, before other TensorFlow work."""
    import tensorflow as tf

    from man_tf.training import strategy as strategies

    strategies.configure_threads(config.train)
    logging.info("TensorFlow thread pools: intra-op %d, inter-op %d (0: TensorFlow's choice)",
                 tf.config.threading.get_intra_op_parallelism_threads(),
                 tf.config.threading.get_inter_op_parallelism_threads())
    strategies.configure_cpu_devices(config.train.num_cpu_devices)
    # Created first: MultiWorkerMirroredStrategy must exist before other TF work.
    strategy = strategies.make_strategy(config.train.strategy)
    tf.keras.utils.set_random_seed(config.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    precision = strategies.set_precision(config.train.precision)
    return strategy, precision


def _vocabularies(config, workdir, data, pretrained, resuming, task):
    from man_tf.data import loading, vocab
    from man_tf.training import workdir as workdirs

    if resuming:
        logging.info("vocabularies from %s", os.path.join(workdir, workdirs.VOCAB_FILE))
        words, chars, labels = vocab.load_vocabularies(workdir, task.label_vocabulary)
    else:
        words, chars, labels = loading.build_vocabularies(config, task, data, pretrained)
    for lang in data.languages:
        logging.info("%s: %d labeled, %d unlabeled, %d dev, %d test sentences; %d words",
                     lang, len(data.labeled.get(lang, [])), len(data.unlabeled[lang]),
                     len(data.dev.get(lang, [])), len(data.test.get(lang, [])),
                     len(words.blocks[words.block(lang)]))
    logging.info("labels: %s; characters: %d; word rows: %d", labels.tags, len(chars),
                 words.size)
    return words, chars, labels


def _evaluation_sets(config, data, task, vocabularies, features):
    """(dev sets evaluated during training, the target's final dev/test sets).
    Encoded now: a label the sources never show stops the run here, before
    anything is written."""
    from man_tf.data import loading

    words, chars, labels = vocabularies
    max_length = task.eval_max_length(config)

    def encoded(sentences, lang):
        return sentences, loading.encode_split(config, task, sentences, lang,
                                               data.languages.index(lang), words, chars,
                                               labels, max_length, features)

    eval_languages = [data.target] + (data.sources if config.train.eval_source_dev else [])
    eval_sets = {lang: encoded(data.dev[lang], lang) for lang in eval_languages
                 if lang in data.dev}
    final_sets = {split: encoded(store[data.target], data.target)
                  for split, store in (("dev", data.dev), ("test", data.test))
                  if data.target in store}
    if data.target not in eval_sets:
        logging.warning("target %s has no dev file: the last checkpoint is kept as 'best'",
                        data.target)
    return eval_sets, final_sets


def _check_batches_split(config, data, replicas):
    from man_tf.settings import ConfigError

    for stream, languages in (("labeled", data.sources), ("unlabeled", data.languages)):
        rows = config.train.batch_size * len(languages)
        if rows % replicas:
            raise ConfigError(
                f"{stream} batches have {rows} rows (batch_size {config.train.batch_size} x "
                f"{len(languages)} languages), which {replicas} replicas cannot share evenly; "
                f"choose --config.train.batch_size so that it divides")


def compiled_trainer(config, model, num_languages, self_training_weight=0.0):
    """The model wrapped for ``fit`` and compiled with the run's optimizers;
    -> (trainer, the main step size)."""
    import tensorflow as tf

    from man_tf.training.adversarial import AdversarialModel
    from man_tf.training.optimizers import LazyAdam, step_size

    train = config.train
    trainer = AdversarialModel(model, num_languages, train.lambd, train.discriminator_steps,
                               train.gate_loss_weight, train.predictor_gate_loss_weight,
                               self_training_weight,
                               train.get("discriminator_batch", "own"))
    main_rate = step_size(train.learning_rate, train.lr_schedule, train.steps)
    trainer.compile(
        optimizer=LazyAdam(main_rate, name="main_adam"),
        d_optimizer=tf.keras.optimizers.Adam(train.d_learning_rate, name="discriminator_adam"),
        jit_compile=train.jit_compile,
        encoder_optimizer=tf.keras.optimizers.Adam(
            step_size(train.encoder_learning_rate, train.lr_schedule, train.steps),
            name="encoder_adam"))
    return trainer, main_rate


def build_experiment(config, workdir, teacher=None):
    """Data, vocabularies, model and compiled trainer, restored from the
    workdir's latest checkpoint if it has one (-> :class:`Experiment`).
    ``teacher``: a trained workdir whose model labels the target's text
    (a self-training student's run; its vocabularies are the teacher's).
    ``config.json`` and ``vocab.json`` are written only once all of this has
    worked, so a run stopped by bad input leaves nothing for the corrected
    rerun to reuse."""
    # TensorFlow is imported here, so that logical CPU devices can be
    # configured (by config) before its runtime starts.
    import tensorflow as tf

    from man_tf import settings, tasks
    from man_tf.data import loading, pipeline, vocab
    from man_tf.models import building
    from man_tf.pretrained import encoder_inputs
    from man_tf.training import checkpoints, strategy as strategies
    from man_tf.training import workdir as workdirs

    task = tasks.task_of(config)
    settings.check_config(config)
    strategy, precision = _runtime(config)
    replicas = strategy.num_replicas_in_sync
    os.makedirs(workdir, exist_ok=True)
    data = loading.load_data(config, task)
    # Read before anything is written: a wrong file or dimension stops here.
    pretrained = loading.read_pretrained_vectors(config, data)
    latest = checkpoints.resumable_checkpoint(workdir)
    workdirs.check_resumable(workdir, config, latest is not None)
    resuming = latest is not None and os.path.exists(os.path.join(workdir, workdirs.VOCAB_FILE))
    words, chars, labels = _vocabularies(config, teacher or workdir, data, pretrained,
                                         resuming or teacher is not None, task)
    features = encoder_inputs.encoder_features(config, workdir)
    labeled, unlabeled = loading.encode_data(config, task, data, words, chars, labels,
                                             features)
    eval_sets, final_sets = _evaluation_sets(config, data, task, (words, chars, labels),
                                             features)
    _check_batches_split(config, data, replicas)
    taught = None
    if teacher is not None:
        from man_tf.training import self_training
        taught = self_training.taught_corpus(teacher, unlabeled[data.target], task, workdir,
                                             config.train.eval_batch_size)
    # Seeded again here: computing encoder features (a cache miss) builds
    # layers that draw from the global RNG, which must not change the model.
    tf.keras.utils.set_random_seed(config.seed)
    write_dir = strategies.worker_dir(workdir, strategy)
    with strategy.scope():
        model = tasks.build_model(config, words.size, len(chars), labels.tags,
                                  len(data.sources), list(words.offsets.values()))
        model.build()  # its variables; the trainer makes its one dummy call
        # Before the optimizers are built: frozen vectors stay out of them.
        coverage = building.load_pretrained_embeddings(config, model, words, pretrained)
        trainer, main_rate = compiled_trainer(
            config, model, len(data.languages),
            config.self_training.weight if teacher is not None else 0.0)
        # Every worker takes part in each save (a collective); only the
        # chief's copy is kept. All restore the chief's latest checkpoint.
        state = checkpoints.TrainingState(write_dir, model, trainer.optimizer,
                                          trainer.d_optimizer, config.train.keep_checkpoints,
                                          trainer.encoder_optimizer)
        restored = state.restore_latest(latest)
    start = int(state.step.numpy())
    trainer.state = state  # callbacks read the global step as model.state.step
    # On one replica the data iterator's position (shuffle buffers of row
    # ids, buckets) is checkpointed too (TrainingCheckpoint), so a resumed
    # run sees the batches an uninterrupted run would have. TF cannot
    # checkpoint a multi-replica strategy's per-replica iterator: there a
    # resumed run draws fresh batches, seeded by the step.
    stream = pipeline.training_stream(
        [labeled[lang] for lang in data.sources], [unlabeled[lang] for lang in data.languages],
        config.train.batch_size, config.seed + (start if replicas > 1 else 0),
        trainer.own_discriminator_batches, trainer.adversary_pass, tuple(config.data.buckets),
        taught)
    chief = strategies.is_chief(strategy)
    if chief:
        if not resuming:
            vocab.save_vocabularies(workdir, words, chars, labels)
        workdirs.save_config(workdir, config)
    logging.info("%s at step %d; %d parameters; %d replica(s); per-language batch %d, "
                 "global batch %d sentences per stream", "resumed" if restored else "starting",
                 start, model.count_params(), replicas, config.train.batch_size,
                 config.train.batch_size * len(data.sources))
    return Experiment(config, workdir, write_dir, strategy, chief, precision, task, data, words,
                      chars, labels, model, trainer, state, main_rate, stream, eval_sets,
                      final_sets, coverage, restored)


def evaluate(experiment, sets):
    """``{language or split: (scores, predictions)}`` of the model as it
    stands on ``sets`` (``experiment.eval_sets`` or ``.final_sets``)."""
    from man_tf.data import pipeline
    from man_tf.models import inference

    if experiment.predict_fn is None:
        experiment.predict_fn = inference.make_predict_fn(experiment.model)
    results = {}
    for name, (examples, corpus) in sets.items():
        batches = pipeline.evaluation_batches(corpus, experiment.config.train.eval_batch_size)
        predictions = inference.predict_corpus(experiment.predict_fn, batches, len(corpus))
        results[name] = (experiment.task.score(examples, predictions.ids, experiment.labels),
                         predictions)
    return results


def loop_callbacks(experiment):
    """The training loop's own callbacks: step count and NaN stop, progress
    log, dev evaluation (best checkpoint), latest checkpoint, profiler."""
    import tensorflow as tf

    from man_tf.training import callbacks as loop
    from man_tf.training.optimizers import applied_step_size

    e, train = experiment, experiment.config.train

    # Summaries and history from the chief only (no-op writers elsewhere).
    def writer(name):
        return tf.summary.create_file_writer(os.path.join(e.workdir, "tensorboard", name)) \
            if e.chief else tf.summary.create_noop_writer()

    history = loop.MetricsHistory(os.path.join(e.workdir, "metrics.jsonl") if e.chief else None,
                                  e.start)
    metric = e.task.metric  # the selection metric: entity F1 / accuracy
    dev = loop.DevEvaluation(e.state, train.steps, train.eval_every if e.eval_sets else 0,
                             lambda: evaluate(e, e.eval_sets), e.data.target, e.data.sources,
                             metric, writer("dev"), history)
    steps = [
        loop.StepCounter(e.state, e.workdir),
        loop.ProgressLog(e.state, train.steps, train.log_every, writer("train"), history,
                         {"learning_rate": lambda: applied_step_size(e.main_rate,
                                                                     e.trainer.optimizer)},
                         lambda: dev.last_score, metric),
        dev,
        loop.TrainingCheckpoint(e.state, train.steps, train.checkpoint_every, e.restored),
    ]
    profile = loop.profile_range(train.profile_steps)
    if profile:
        steps.append(loop.Profiler(e.state, *profile, os.path.join(e.workdir, "tensorboard")))
    return steps


def fit(experiment, callbacks=()):
    """Trains up to ``train.steps`` with the loop's callbacks, then
    ``callbacks`` (more ``keras.callbacks.Callback`` objects; they see the
    global step as ``model.state.step`` and may stop training with
    ``model.stop_training = True``)."""
    from man_tf.training.adversarial import distribute_stream

    total = experiment.config.train.steps
    if experiment.start < total:
        experiment.trainer.fit(distribute_stream(experiment.strategy, experiment.stream),
                               epochs=1, steps_per_epoch=total - experiment.start,
                               callbacks=[*loop_callbacks(experiment), *callbacks], verbose=0,
                               shuffle=False)


def finish(experiment, write=True):
    """Restores the best checkpoint (the last one without a target dev set),
    scores it on the target's dev and test sets, writes results.json (on
    the chief; unless ``write`` is False) and returns the results dict."""
    from man_tf.data.textio import atomic_write_json
    from man_tf.models import inference
    from man_tf.training import checkpoints

    e, config = experiment, experiment.config
    best_path = checkpoints.checkpoint_path(e.write_dir, "best") or e.state.latest.latest_checkpoint
    checkpoints.readable(best_path, f"move {os.path.dirname(best_path)} away and rerun this "
                                    f"command to score the latest checkpoint instead")
    checkpoints.restore_model(e.model, best_path)
    metric, sources = e.task.metric, e.data.sources
    results = {"task": e.task.name, "metric": metric, "metric_name": e.task.metric_name,
               "target": e.data.target, "sources": sources,
               "steps": int(config.train.steps),
               "best_step": int(e.state.best_step.numpy()), "checkpoint": best_path,
               "precision": e.precision, "replicas": e.strategy.num_replicas_in_sync,
               "embeddings": {k: v for k, v in config.data.embeddings.items() if v}
               or "learned (no .vec files)",
               "embedding_coverage": e.coverage}
    for split, (scores, predictions) in evaluate(e, e.final_sets).items():
        results[f"{split}_{metric}"] = scores.primary
        results[f"{split}_scores"] = scores.to_dict()
        # Which sources the target borrows from: C's and F_p's average gates.
        results[f"{split}_expert_weights"] = inference.expert_weights(sources, predictions.gates)
        if predictions.private_gates is not None:
            results[f"{split}_private_expert_weights"] = inference.expert_weights(
                sources, predictions.private_gates)
    if e.chief and write:
        atomic_write_json(os.path.join(e.workdir, "results.json"), results)
    elif not e.chief and e.write_dir != e.workdir:
        shutil.rmtree(e.write_dir, ignore_errors=True)
    logging.info("done: best step %d, %s dev %s %.2f, test %s %.2f", results["best_step"],
                 e.data.target, metric, results.get(f"dev_{metric}", float("nan")), metric,
                 results.get(f"test_{metric}", float("nan")))
    return results


def self_train(config, workdir, teacher_results, callbacks=()):
    """Self-training's rounds after the first run (whose results are
    ``teacher_results``; :mod:`man_tf.training.self_training`); returns
    the workdir's results with the selection."""
    from man_tf.training import self_training

    metric = teacher_results["metric"]
    dev = f"dev_{metric}"
    best_dir, best = ".", teacher_results
    rounds = []
    for round_ in range(1, config.self_training.rounds + 1):
        teacher = os.path.join(workdir, best_dir)
        folder = self_training.student_dir(workdir, round_)
        logging.info("self-training round %d of %d: teacher %s (target dev %s %.2f)", round_,
                     config.self_training.rounds, teacher, metric, best.get(dev, float("nan")))
        experiment = build_experiment(self_training.student_config(config, workdir, round_),
                                      folder, teacher=teacher)
        fit(experiment, callbacks)
        results = finish(experiment)
        rounds.append({"round": round_, "workdir": os.path.basename(folder),
                       "teacher": best_dir, "best_step": results["best_step"],
                       **{k: results[k] for k in (dev, f"test_{metric}") if k in results}})
        if results.get(dev, -1.0) > best.get(dev, -1.0):
            best_dir, best = os.path.basename(folder), results
    selected = {k: best[k] for k in best
                if k.startswith(("dev_", "test_")) or k in ("best_step", "checkpoint")}
    teacher = {k: teacher_results[k] for k in (dev, f"test_{metric}", "best_step")
               if k in teacher_results}
    return {**teacher_results, **selected,
            "teacher": teacher,
            "self_training": {"rounds": rounds, "selected": best_dir,
                              "weight": config.self_training.weight}}


def finished_results(config, workdir):
    """The stored results if ``workdir`` already holds a finished run of
    ``config`` (its ``train.steps`` and self-training rounds); ``None`` if
    there is training left to do. A finished workdir trained with other
    settings is refused as on resume (:class:`WorkdirMismatch`)."""
    import json

    from man_tf.training import workdir as workdirs

    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    rounds = len(results.get("self_training", {}).get("rounds", []))
    if results.get("steps") != config.train.steps or rounds != config.self_training.rounds:
        return None
    # A run a callback stopped early has results.json too; it is finished
    # only once its latest checkpoint is the last step's.
    from man_tf.training import checkpoints

    latest = checkpoints.checkpoint_path(workdir, "latest") or ""
    if not latest.endswith(f"-{config.train.steps}"):
        return None
    workdirs.check_resumable(workdir, config, True)
    return results


def train(config, workdir, callbacks=()):
    """Trains (or resumes) and returns the results dict written to
    results.json: :func:`build_experiment`, :func:`fit` (``callbacks`` run
    after the loop's own; a callback that stops training still gets the
    best checkpoint so far scored), :func:`finish`; then, with
    ``self_training.rounds``, the self-training rounds
    (:mod:`man_tf.training.self_training`). A workdir that already holds
    this run's results (:func:`finished_results`) is not trained again."""
    done = finished_results(config, workdir)
    if done is not None:
        logging.info("%s: already trained to step %d; results.json kept", workdir,
                     done["steps"])
        return done
    experiment = build_experiment(config, workdir)
    fit(experiment, callbacks)
    # With self-training, results.json is written once the rounds are done:
    # its presence says the whole run is.
    results = finish(experiment, write=not config.self_training.rounds)
    if config.self_training.rounds:
        from man_tf.data.textio import atomic_write_json
        results = self_train(config, workdir, results, callbacks)
        if experiment.chief:
            atomic_write_json(os.path.join(workdir, "results.json"), results)
    return results
