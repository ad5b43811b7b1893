"""The task's model from a config, and pretrained word vectors into it.

Each ``config.model`` field is an argument of exactly one part's
constructor, under the same name: :class:`Backbone`, the task's head
(:class:`TokenHead` / :class:`SentenceHead`), :class:`LanguageAdversary`, or
:class:`man_tf.pretrained.encoder_inputs.EncoderSettings` (the encoder
features). :func:`route_fields` hands them out by the constructors'
signatures, so a setting is written once, in ``configs/``; the other
arguments (sizes of the data and of other parts, ``train.lambd``) are
passed here.
"""

import dataclasses
import inspect

import numpy as np
from absl import logging

from man_tf.data.errors import DataError
from man_tf.models.adversary import LanguageAdversary
from man_tf.models.backbone import Backbone
from man_tf.models.man_moe import ManMoeModel
from man_tf.pretrained.encoder_inputs import ENCODER_DIMS, EncoderSettings
from man_tf.settings import ConfigError


def constructor_arguments(part):
    """The names a part takes: a dataclass's fields, or the keyword-only
    arguments of a layer's and its man_tf base classes' constructors (a
    subclass passes its base's on as ``**kwargs``; Keras' own, such as
    ``name``, are left out)."""
    if dataclasses.is_dataclass(part):
        return [f.name for f in dataclasses.fields(part)]
    names = []
    for cls in part.__mro__:
        if cls.__module__.startswith("man_tf.") and "__init__" in vars(cls):
            names += [name for name, p in inspect.signature(cls.__init__).parameters.items()
                      if p.kind == p.KEYWORD_ONLY and name not in names]
    return names


def route_fields(model_config, head_class):
    """``{part: {argument: value}}`` for the model's parts, from
    ``config.model``; a field no part takes, or that two take, is an error."""
    parts = (Backbone, head_class, LanguageAdversary, EncoderSettings)
    routed = {part: {} for part in parts}
    for field, value in model_config.items():
        takers = [part for part in parts if field in constructor_arguments(part)]
        if len(takers) != 1:
            where = "no model part takes it" if not takers else \
                f"{len(takers)} parts take it ({', '.join(p.__name__ for p in takers)})"
            raise ConfigError(f"config.model.{field}: {where}")
        routed[takers[0]][field] = tuple(value) if isinstance(value, list) else value
    return routed


def _construct(part, arguments):
    try:
        return part(**arguments)
    except TypeError as e:  # a field missing from the config
        raise ConfigError(f"config.model: cannot build {part.__name__}: {e}") from None


def build_model(config, task, num_words, num_chars, labels, num_sources,
                word_block_starts=(0,), word_features=None):
    """The config's MAN-MoE model (not yet built) for ``task``
    (:mod:`man_tf.tasks`); ``labels``: the label names (tags or classes) in
    id order; ``word_block_starts``: ``WordVocabulary.offsets``
    values; ``word_features``: a fine-tuned encoder layer, if any."""
    routed = route_fields(config.model, task.head_class)
    encoder = _construct(EncoderSettings, routed[EncoderSettings])
    backbone = _construct(Backbone, dict(
        routed[Backbone], num_words=num_words, num_chars=num_chars,
        word_block_starts=tuple(word_block_starts),
        unique_char_words=not config.train.jit_compile,
        pack_rows=not config.train.jit_compile,
        encoder_dim=ENCODER_DIMS.get(encoder.encoder, 0),
        num_encoder_layers=len(encoder.encoder_layers), word_features=word_features,
        name="backbone"))
    head = _construct(task.head_class, dict(
        routed[task.head_class], labels=tuple(labels), num_sources=num_sources,
        real_units_only=not config.train.jit_compile,
        shared_dim=backbone.shared_hidden, private_dim=backbone.private_dim, name="head"))
    adversary = _construct(LanguageAdversary, dict(
        routed[LanguageAdversary], num_languages=num_sources + 1,
        feature_dim=backbone.shared_hidden, lambd=config.train.lambd, name="adversary"))
    return ManMoeModel(backbone, head, adversary, name="man_moe")


def load_pretrained_embeddings(config, model, words, pretrained):
    """Fills each language's word rows from its ``.vec`` vectors
    (``pretrained`` from :func:`read_pretrained_vectors`); returns
    ``{language: fraction of its vocabulary covered}``."""
    coverage = {}
    for lang, found in pretrained.items():
        path = config.data.embeddings[lang]
        block = words.block(lang)
        block_vocab, offset = words.blocks[block], words.offsets[block]
        rows, vectors = [], []
        for i, word in enumerate(block_vocab.tokens[2:], start=2):
            vector = found.lookup(word)
            if vector is not None:
                rows.append(offset + i)
                vectors.append(vector)
        needed = len(block_vocab) - 2
        if not vectors:
            raise DataError(path, None, f"no vector for any of the {needed} {lang} "
                            f"vocabulary words: is this the right language's file?")
        model.backbone.load_word_vectors(np.stack(vectors), rows)
        coverage[lang] = len(rows) / max(needed, 1)
        if coverage[lang] < 0.05:
            logging.warning("%s: embeddings cover only %.1f%% of the %s vocabulary", path,
                            100 * coverage[lang], lang)
        logging.info("%s: %d of %d %s words have pretrained vectors (%.1f%%)", path, len(rows),
                     needed, lang, 100 * coverage[lang])
    return coverage
