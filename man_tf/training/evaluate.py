"""Score a trained workdir's best (or latest) checkpoint on a split or a file.

``man-tf-evaluate`` is the command around :func:`evaluate`.
"""

import os


def evaluate(workdir, split="test", input_path=None, language=None, which="best", output=None):
    """Returns ``(SpanScores, output prefix)``."""
    from man_tf.pretrained import encoder_inputs
    from man_tf.data import loading
    from man_tf import settings
    from man_tf.training import workdir as workdirs
    from man_tf.data import conll, pipeline
    from man_tf.data.textio import atomic_write_json, atomic_write_text
    from man_tf.evaluation import tagging
    from man_tf.evaluation.span_f1 import format_report
    from man_tf.models import inference

    trained = workdirs.load_trained(workdir, which)
    config, tags = trained.config, trained.tags
    if config.get("task", "tagging") == "classification":
        return _evaluate_classifier(trained, split, input_path, language, output)
    languages = trained.languages
    language = language or trained.target
    if language not in languages:
        raise settings.ConfigError(f"language {language!r} was not trained; the model knows "
                                     f"{languages}")
    if input_path is None:
        input_path = settings.data_path(config, language, split)
        if input_path is None:
            raise settings.ConfigError(f"{language} has no {split!r} file in the config; "
                                         f"pass --input")
        name = f"{language}.{split}"
    else:
        name = f"{language}.{os.path.basename(input_path)}"
    sentences = conll.read_conll(input_path, encoding=config.data.encoding)
    unknown = sorted({t for s in sentences for t in s.tags} - set(tags.tags))
    if unknown:
        raise settings.ConfigError(f"{input_path}: tags {unknown} were never seen in "
                                     f"training (trained tags: {tags.tags})")
    model, words, chars, path = trained.model, trained.words, trained.chars, trained.checkpoint
    corpus = loading.encode_split(config, sentences, language, languages.index(language),
                                     words, chars, tags,
                                     features=encoder_inputs.encoder_features(config, workdir))
    ids, gates = inference.predict_corpus(
        inference.make_predict_fn(model),
        pipeline.evaluation_batches(corpus, config.train.eval_batch_size), len(corpus))
    predicted = tagging.decode(ids, tags)
    scores = tagging.score(sentences, predicted)
    output = output or os.path.join(workdir, "eval", name)
    atomic_write_text(output + ".conll", "".join(tagging.conll_lines(sentences, predicted)))
    atomic_write_json(output + ".json", {
        "input": input_path, "language": language, "checkpoint": path, **scores.to_dict(),
        "expert_weights": inference.expert_weights(trained.sources, gates)})
    print(format_report(scores))
    return scores, output


def _evaluate_classifier(trained, split, input_path, language, output):
    """Accuracy of a classifier on the target's dev/test split or on a file
    (``.review`` XML or ``label<TAB>text``); writes ``<output>.tsv`` (gold,
    predicted, source) and ``<output>.json``."""
    from man_tf.pretrained import encoder_inputs
    from man_tf.data import loading
    from man_tf import settings
    from man_tf.data import pipeline
    from man_tf.data.textio import atomic_write_json, atomic_write_text
    from man_tf.evaluation import classification
    from man_tf.models import inference

    config, classes = trained.config, trained.tags
    language = language or trained.target
    if language not in trained.languages:
        raise settings.ConfigError(f"language {language!r} was not trained; the model knows "
                                     f"{trained.languages}")
    if input_path is None:
        data = loading.load_data(config, splits=(split,))
        store = data.dev if split == "dev" else data.test
        if language not in store:
            raise settings.ConfigError(f"{language} has no {split!r} data in the config; "
                                         f"pass --input")
        documents, name = store[language], f"{language}.{split}"
    else:
        documents = loading.read_labeled_documents(config, input_path)
        name = f"{language}.{os.path.basename(input_path)}"
    corpus = loading.encode_split(config, documents, language,
                                     trained.languages.index(language), trained.words,
                                     trained.chars, classes, config.data.max_length or None,
                                     encoder_inputs.encoder_features(config, trained_dir(trained)))
    predictions = inference.predict_corpus(
        inference.make_predict_fn(trained.model),
        pipeline.evaluation_batches(corpus, config.train.eval_batch_size), len(corpus))
    scores = classification.score(documents, predictions.ids)
    output = output or os.path.join(trained_dir(trained), "eval", name)
    atomic_write_text(output + ".tsv", "".join(
        f"{classes.tags[d.label]}\t{classes.tags[int(p)]}\t{d.source}\n"
        for d, p in zip(documents, predictions.ids)))
    atomic_write_json(output + ".json", {
        "language": language, "checkpoint": trained.checkpoint, **scores.to_dict(),
        "expert_weights": inference.expert_weights(trained.sources, predictions.gates)})
    print(f"accuracy: {scores.accuracy:.2f}% ({scores.correct} of {scores.total})")
    return scores, output


def trained_dir(trained):
    """The workdir a checkpoint came from (``<workdir>/best/ckpt-N``)."""
    return os.path.dirname(os.path.dirname(trained.checkpoint))
