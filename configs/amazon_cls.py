"""Cross-lingual sentiment on Webis-CLS-10 (Chen et al. 2019, Table 4).

    man-tf-train --config=configs/amazon_cls.py --config.domain=books \
        --config.target=de --workdir=workdirs/books-de
    man-tf-train --config=configs/amazon_cls.py:words ...   # word vectors instead

For one domain: labeled sources = en plus the two other languages of
de/fr/jp, target = the remaining one (its labels never used for training).
Model selection on 400 reviews cut from the target's train file (balanced,
seeded), as the authors did; test = the target's 2,000 test reviews.
Unlabeled text (labels never read) = the train reviews of all three domains
of every language (the original ``unlabeled.review`` files are not
available). ``configs/base.py`` holds the shared settings; the sizes here
are the authors' scripts/train_amazon_3to1.sh: hidden 128, no character
embeddings.

With ``:words`` the word vectors are learned by default, which leaves the
target's words without signal; pass cross-lingual vectors, e.g. those of
``python benchmarks/usem3_vec.py --task=amazon``: ``--config.model.word_dim=512
--config.data.shared_word_table=False --config.data.embeddings.en=...`` (one
per language). Results of both inputs: benchmarks/results/amazon_3to1.md.
"""

import os

import ml_collections

from man_tf.config_files import load_config_file

HERE = os.path.dirname(os.path.abspath(__file__))
DOMAINS = ("books", "dvd", "music")


def get_config(inputs="encoder"):
    """``inputs``: "encoder" (default) or "words" (see configs/base.py)."""
    config = load_config_file(os.path.join(HERE, f"base.py:{inputs}"))
    config.task = "classification"
    config.domain = "books"   # books | dvd | music
    config.target = "de"      # de | fr | jp
    data = config.data
    data.root = "../shared/data/webis-cls-10"
    data.languages = ml_collections.ConfigDict({
        lang: {"train": f"{{root}}/{lang}/{{domain}}/train.review", "dev": "",
               "test": f"{{root}}/{lang}/{{domain}}/test.review",
               # every domain's train reviews, comma-separated, labels unread
               "unlabeled": ",".join(f"{{root}}/{lang}/{d}/train.review" for d in DOMAINS)}
        for lang in ("en", "de", "fr", "jp")})
    data.embeddings = ml_collections.ConfigDict({lang: "" for lang in data.languages})
    data.dev_from_train = 400       # target dev reviews cut from its train file
    data.max_length = 256           # tokens per review (longer ones are truncated, counted)
    data.buckets = (32, 64, 128, 192)
    model = config.model
    # Japanese is written without spaces: its reviews reach the encoder as
    # one text (benchmarks/results/jp_encoding_probe.md).
    model.encoder_joined_languages = ("jp",)
    model.use_char_cnn = False      # --no_charemb in the authors' script
    # The probability mixture (the paper's); the log-probability mixture
    # was measured for NER only (benchmarks/results/conll_3to1.md).
    model.predictor_mixture = "probabilities"
    model.shared_hidden = 128
    model.private_hidden = 128
    model.expert_hidden = 128
    model.discriminator_hidden = 128
    train = config.train
    train.eval_every = 250
    train.checkpoint_every = 250
    return config
