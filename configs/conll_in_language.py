"""In-language check: train on one language's labeled train file, select on
its own dev split, score on its own test split (the upper bound a user
compares cross-lingual transfer against; any tagger should do well here).

    man-tf-train --config=configs/conll_in_language.py:en --workdir=workdirs/in_en
    man-tf-train --config=configs/conll_in_language.py:en,words ...   # word-vector input

The language (``en`` by default; ``de``, ``es``, ``nl``) is the one labeled
source; the "target" ``<lang>_self`` is the same language's files under a
second name (train text read without labels, dev, test), because MAN-MoE
needs a target distinct from its sources. Everything else is
``configs/conll_ner.py``'s setting for the input after the comma
(``encoder``, the default, or ``words``).
"""

import os

from man_tf.config_files import in_language_config

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg="en"):
    config = in_language_config(os.path.join(HERE, "conll_ner.py"), arg)
    if config.data.lowercase_chars is None and config.sources == ("de",):
        config.data.lowercase_chars = True  # what a de target gets by default
    return config
