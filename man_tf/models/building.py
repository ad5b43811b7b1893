"""The task's model from a config, and pretrained word vectors into it."""

import numpy as np
from absl import logging

from man_tf.data.errors import DataError
from man_tf.pretrained.encoder_inputs import ENCODER_DIMS


# config.model fields that are model constructor arguments of the same name.
SAME_NAMES = (
    "word_dim", "use_char_cnn", "char_embedding_dim", "char_filters", "char_kernel_sizes",
    "char_output_dim", "char_embedding_trainable", "shared_hidden", "private_hidden",
    "lstm_layers", "use_private", "expert_hidden", "private_moe_layers", "use_predictor_moe",
    "predictor_layers", "dropout", "word_dropout", "mlp_dropout", "discriminator",
    "discriminator_filters", "discriminator_kernel_sizes", "discriminator_hidden",
    "discriminator_layers", "discriminator_dropout")
# ... and those added later, with the value older workdirs trained with.
LATER_FIELDS = {"unk_replacement": 0.0, "predictor_mixture": "probabilities", "use_words": True}


def model_arguments(config, num_words, num_chars, num_sources, word_block_starts=(0,)):
    """The arguments every task's model takes, from the config
    (``word_block_starts``: ``WordVocabulary.offsets`` values, where each
    block's ``<pad>``/``<unk>`` rows are). ``man_tf.tasks.build_model`` adds
    the task's own and picks the class."""
    m = config.model
    pretrained = any(config.data.embeddings.values())
    arguments = {key: m[key] for key in SAME_NAMES}
    for key in ("char_kernel_sizes", "discriminator_kernel_sizes"):
        arguments[key] = tuple(arguments[key])
    arguments.update(
        {key: m.get(key, default) for key, default in LATER_FIELDS.items()},
        num_sources=num_sources, num_words=num_words, num_chars=num_chars,
        num_languages=num_sources + 1,
        word_embeddings_trainable=not (pretrained and m.fix_embeddings),
        unique_char_words=not config.train.jit_compile, lambd=config.train.lambd,
        word_block_starts=tuple(word_block_starts),
        encoder_dim=ENCODER_DIMS.get(m.get("encoder", ""), 0),
        encoder_layers=len(m.get("encoder_layers", (0,))))
    return arguments


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
        model.backbone.word_embedding.load(np.stack(vectors), rows)
        coverage[lang] = len(rows) / max(needed, 1)
        if coverage[lang] < 0.05:
            logging.warning("%s: embeddings cover only %.1f%% of the %s vocabulary", path,
                            100 * coverage[lang], lang)
        logging.info("%s: %d of %d %s words have pretrained vectors (%.1f%%)", path, len(rows),
                     needed, lang, 100 * coverage[lang])
    return coverage
