"""Score a trained workdir's best (or latest) checkpoint on a split or a file.

``man-tf-evaluate`` is the command around :func:`evaluate`.
"""

import os


def evaluate(workdir, split="test", input_path=None, language=None, which="best", output=None,
             bio_decoding=None):
    """Scores the target's (or ``language``'s) ``split``, or the labeled file
    ``input_path`` (CoNLL for a tagger; ``.review`` XML or ``label<TAB>text``
    for a classifier); prints the task's report and writes
    ``<output>.conll`` / ``.tsv`` (gold, predicted, ...) and ``<output>.json``.
    ``bio_decoding`` overrides a tagger's decoding (see ``load_trained``).
    Returns ``(scores, output prefix)``."""
    from man_tf import settings, tasks
    from man_tf.data import loading, pipeline
    from man_tf.data.textio import atomic_write_json, atomic_write_text
    from man_tf.models import inference
    from man_tf.pretrained import encoder_inputs
    from man_tf.training import workdir as workdirs

    trained = workdirs.load_trained(workdir, which, bio_decoding=bio_decoding)
    config, labels, languages = trained.config, trained.tags, trained.languages
    task = tasks.task_of(config)
    language = language or trained.target
    if language not in languages:
        raise settings.ConfigError(f"language {language!r} was not trained; the model knows "
                                   f"{languages}")
    if input_path is None:
        examples = task.split_examples(config, language, split, labels)
        input_path, name = settings.data_path(config, language, split), f"{language}.{split}"
    else:
        examples = task.read_labeled(config, input_path, labels)
        name = f"{language}.{os.path.basename(input_path)}"
    corpus = loading.encode_split(config, task, examples, language, languages.index(language),
                                  trained.words, trained.chars, labels,
                                  task.eval_max_length(config),
                                  encoder_inputs.encoder_features(config, workdir))
    predictions = inference.predict_corpus(
        inference.make_predict_fn(trained.model),
        pipeline.evaluation_batches(corpus, config.train.eval_batch_size), len(corpus))
    scores = task.score(examples, predictions.ids, labels)
    output = output or os.path.join(workdir, "eval", name)
    atomic_write_text(output + task.predictions_suffix,
                      task.predictions_text(examples, predictions.ids, labels))
    atomic_write_json(output + ".json", {
        "input": input_path, "language": language, "checkpoint": trained.checkpoint,
        **scores.to_dict(),
        "expert_weights": inference.expert_weights(trained.sources, predictions.gates)})
    print(task.report(scores))
    return scores, output
