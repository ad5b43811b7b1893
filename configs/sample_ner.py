"""The embedded sample: a few dozen sentences per language shipped in the package.

    man-tf-train --config=configs/sample_ner.py --workdir=workdirs/sample
    man-tf-train --config=configs/sample_ner.py:words --workdir=workdirs/sample_words

Sources en, es, nl (labeled); target de (its training text is read without
labels; dev and test are scored). Small model and budget, so it runs in about
a minute on a laptop CPU; the point is to exercise the whole pipeline, not to
reach a useful F1.
"""

import os

import ml_collections

import man_tf.data
from man_tf.config_files import load_config_file

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(os.path.dirname(man_tf.data.__file__), "sample")


def get_config(inputs="encoder"):
    """``inputs``: "encoder" (the pretrained multilingual encoder's word
    features + character CNN, as ``configs/conll_ner.py``) or "words"
    (learned word vectors + character CNN)."""
    config = load_config_file(os.path.join(HERE, f"conll_ner.py:{inputs}"))
    config.target = "de"
    config.data.root = SAMPLE
    config.data.languages = ml_collections.ConfigDict({
        "en": {"train": "{root}/en.train.conll", "unlabeled": "", "dev": "", "test": ""},
        "es": {"train": "{root}/es.train.conll", "unlabeled": "", "dev": "", "test": ""},
        "nl": {"train": "{root}/nl.train.conll", "unlabeled": "", "dev": "", "test": ""},
        "de": {"train": "{root}/de.train.conll", "unlabeled": "", "dev": "{root}/de.dev.conll",
               "test": "{root}/de.test.conll"},
    })
    config.data.buckets = (8, 12)
    config.model.word_dim = 50
    config.model.char_embedding_dim = 32
    config.model.char_filters = 32
    config.model.char_output_dim = 32
    config.model.shared_hidden = 64
    config.model.private_hidden = 64
    config.model.expert_hidden = 64
    config.model.discriminator_filters = 32
    config.model.discriminator_hidden = 64
    config.train.steps = 400
    config.train.batch_size = 8
    config.train.log_every = 25
    config.train.eval_every = 100
    config.train.checkpoint_every = 100
    # 400 small steps over 32 sentences per language: with the step size
    # decayed to 0 (NER's default) this demo stops short of learning the
    # sample, found by running README command 1 from a fresh clone.
    config.train.lr_schedule = "constant"
    return config
