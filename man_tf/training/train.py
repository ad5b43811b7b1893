"""Training from a config, as ``man-tf-train`` runs it, callable from Python.

    from man_tf.training.train import train
    results = train(config, "workdirs/de", callbacks=[MyCallback()])

Loads the data, builds (or restores) vocabularies and the model, wraps it in
an :class:`AdversarialModel`, and runs ``fit`` with the loop's callbacks
(step count and NaN stop, progress, dev evaluation and best checkpoint,
latest checkpoint, profiler) followed by the caller's. Rerunning into the
same workdir resumes exactly where the last checkpoint left off. Writes to
the workdir: config.json, vocab.json, checkpoints/ (latest), best/ (best
target dev score), tensorboard/, metrics.jsonl, results.json.
"""

import os
import shutil

from absl import logging


def train(config, workdir, callbacks=()):
    """Trains (or resumes) and returns the results dict written to results.json.

    ``callbacks``: more ``keras.callbacks.Callback`` objects for ``fit``; they
    run after the loop's own, see ``model.state.step`` (the global step) via
    their ``model`` (an :class:`AdversarialModel`), and may stop training
    (``model.stop_training = True``): the best checkpoint so far is then
    evaluated as at a normal end.
    """
    # TensorFlow is imported here, so that logical CPU devices can be
    # configured (by config) before its runtime starts.
    import tensorflow as tf

    from man_tf import settings, tasks
    from man_tf.data import loading, pipeline, vocab
    from man_tf.data.textio import atomic_write_json
    from man_tf.models import building, inference
    from man_tf.pretrained import encoder_inputs
    from man_tf.training import callbacks as loop, checkpoints, strategy as strategies
    from man_tf.training import workdir as workdirs
    from man_tf.training.adversarial import AdversarialModel, distribute_stream
    from man_tf.training.optimizers import LazyAdam, applied_step_size, step_size

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
        words, chars, tags = vocab.load_vocabularies(workdir,
                                                     tasks.task_of(config).label_vocabulary)
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
    task = tasks.task_of(config)
    metric = task.metric  # the selection metric: entity F1 / accuracy
    eval_max_length = task.eval_max_length(config)

    def encoded(sentences, lang):
        return loading.encode_split(config, sentences, lang, data.languages.index(lang), words,
                                    chars, tags, eval_max_length, features)

    eval_languages = [data.target] + (data.sources if config.train.eval_source_dev else [])
    eval_sets = {lang: (data.dev[lang], encoded(data.dev[lang], lang))
                 for lang in eval_languages if lang in data.dev}
    # The final evaluation's sets too: a tag the sources never show stops the
    # run here, before anything is written.
    final_sets = {split: (store[data.target], encoded(store[data.target], data.target))
                  for split, store in (("dev", data.dev), ("test", data.test))
                  if data.target in store}
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
        man_moe = tasks.build_model(config, words.size, len(chars), len(tags),
                                    len(data.sources), list(words.offsets.values()))
        model = AdversarialModel(man_moe, len(data.languages), config.train.lambd,
                                 config.train.discriminator_steps, config.train.gate_loss_weight,
                                 config.train.predictor_gate_loss_weight)
        coverage = building.load_pretrained_embeddings(config, man_moe, words, pretrained)
        schedule = config.train.lr_schedule
        main_rate = step_size(config.train.learning_rate, schedule, config.train.steps)
        model.compile(optimizer=LazyAdam(main_rate, name="main_adam"),
                      d_optimizer=tf.keras.optimizers.Adam(config.train.d_learning_rate,
                                                           name="discriminator_adam"),
                      jit_compile=config.train.jit_compile,
                      encoder_optimizer=tf.keras.optimizers.Adam(
                          step_size(config.train.encoder_learning_rate, schedule,
                                    config.train.steps), name="encoder_adam"))
        # Every worker takes part in each save (a collective); only the
        # chief's copy is kept. All restore the chief's latest checkpoint.
        state = checkpoints.TrainingState(write_dir, man_moe, model.optimizer,
                                          model.d_optimizer, config.train.keep_checkpoints,
                                          model.encoder_optimizer)
        restored = state.restore_latest(latest)
    start = int(state.step.numpy())
    model.state = state  # callbacks read the global step as model.state.step
    # On one replica the data iterator's position (shuffle buffers of row
    # ids, buckets) is checkpointed too (TrainingCheckpoint), so a resumed
    # run sees the batches an uninterrupted run would have. TF cannot
    # checkpoint a multi-replica strategy's per-replica iterator: there a
    # resumed run draws fresh batches, seeded by the step.
    stream = pipeline.training_stream(
        [labeled[lang] for lang in data.sources], [unlabeled[lang] for lang in data.languages],
        config.train.batch_size, config.seed + (start if replicas > 1 else 0),
        config.train.discriminator_steps, model.adversarial, tuple(config.data.buckets))
    # Written only now that data, vocabularies and model are known good, so a
    # run stopped by bad input leaves nothing for the corrected rerun to reuse.
    if chief:
        if not resuming:
            vocab.save_vocabularies(workdir, words, chars, tags)
        workdirs.save_config(workdir, config)
    logging.info("%s at step %d; %d parameters; %d replica(s); per-language batch %d, "
                 "global batch %d sentences per stream", "resumed" if restored else "starting",
                 start, man_moe.count_params(), replicas, config.train.batch_size,
                 config.train.batch_size * len(data.sources))

    predict_fn = inference.make_predict_fn(man_moe)

    def evaluate(sets):
        results = {}
        for lang, (sentences, corpus) in sets.items():
            batches = pipeline.evaluation_batches(corpus, config.train.eval_batch_size)
            predictions = inference.predict_corpus(predict_fn, batches, len(corpus))
            results[lang] = (task.score(sentences, predictions.ids, tags), predictions)
        return results

    # Summaries and history from the chief only (no-op writers elsewhere).
    def writer(name):
        return tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", name)) \
            if chief else tf.summary.create_noop_writer()

    history = loop.MetricsHistory(os.path.join(workdir, "metrics.jsonl") if chief else None)
    total = config.train.steps
    dev = loop.DevEvaluation(state, total, config.train.eval_every if eval_sets else 0,
                             lambda: evaluate(eval_sets), data.target, data.sources, metric,
                             writer("dev"), history)
    steps = [
        loop.StepCounter(state, workdir),
        loop.ProgressLog(state, total, config.train.log_every, writer("train"), history,
                         {"learning_rate": lambda: applied_step_size(main_rate, model.optimizer)},
                         lambda: dev.last_score, metric),
        dev,
        loop.TrainingCheckpoint(state, total, config.train.checkpoint_every, restored),
    ]
    profile = loop.profile_range(config.train.profile_steps)
    if profile:
        steps.append(loop.Profiler(state, *profile, os.path.join(workdir, "tensorboard")))
    if start < total:
        model.fit(distribute_stream(strategy, stream), epochs=1, steps_per_epoch=total - start,
                  callbacks=[*steps, *callbacks], verbose=0, shuffle=False)

    best_path = checkpoints.checkpoint_path(write_dir, "best") or state.latest.latest_checkpoint
    checkpoints.restore_model(man_moe, best_path)
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
