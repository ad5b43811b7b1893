"""CoNLL-2002/2003 NER, 3 source languages -> 1 target (Chen et al. 2019, Table 2).

    man-tf-train --config=configs/conll_ner.py --config.target=de --workdir=workdirs/de
    man-tf-train --config=configs/conll_ner.py:words ...   # the paper's word-vector input
    man-tf-train --config=configs/conll_ner.py:fine_tuned ...  # the encoder fine-tuned

``configs/base.py`` holds the settings both tasks share; this file sets
NER's data and sizes (the authors' scripts/train_conll_ner_3to1.sh). Data
paths are relative to the project root (``../shared/data/conll`` holds the
real files); override ``--config.data.root``. With ``:words``, give aligned
``.vec`` files per language with ``--config.data.embeddings.de=/path/wiki.de.vec``
etc. (none: learned word vectors).
"""

import os

import ml_collections

from man_tf.config_files import load_config_file

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(inputs="encoder"):
    """``inputs``: "encoder" (default), "fine_tuned" or "words" (see configs/base.py)."""
    config = load_config_file(os.path.join(HERE, f"base.py:{inputs}"))
    config.task = "tagging"
    config.target = "de"

    data = config.data
    data.root = "../shared/data/conll"
    data.languages = ml_collections.ConfigDict({
        lang: {"train": f"{{root}}/{name}.train", "unlabeled": "",
               "dev": f"{{root}}/{name}.testa", "test": f"{{root}}/{name}.testb"}
        for lang, name in (("en", "eng"), ("de", "deu"), ("es", "esp"), ("nl", "ned"))})
    data.embeddings = ml_collections.ConfigDict({lang: "" for lang in data.languages})
    # The es and nl train files hold a few run-on "sentences" (up to 1,238
    # tokens) that pad a whole batch: max_length=128 + long_sentences=split
    # caps memory (README, "Training on real CoNLL data").
    data.buckets = (8, 16, 24, 32, 48, 64)
    if config.model.encoder_trainable:  # inputs "fine_tuned"
        # The encoder's activations are kept for the backward pass (pieces²
        # per layer): cut the run-on sentences above (README, "Fine-tuning
        # the encoder", says what they cost).
        data.max_length = 128
        data.long_sentences = "split"

    model = config.model
    model.use_char_cnn = True
    model.shared_hidden = 200
    model.private_hidden = 200
    model.expert_hidden = 200
    model.discriminator_hidden = 200
    # The authors' log-probability mixture won over the paper's probability
    # mixture on mean target dev F1 (benchmarks/results/conll_3to1.md,
    # variant prob_mixture).
    model.predictor_mixture = "log_probabilities"
    # The tagger's output: "crf" (a linear-chain CRF on C's mixed scores) or
    # "softmax" (a tag per token). bio_decoding: decode the best BIO-valid
    # tag sequence (Viterbi; no I-X after O or another type); False: argmax
    # per token (softmax) or unconstrained Viterbi (crf). BIO decoding won
    # over argmax on every target's dev F1 and the CRF over the softmax on
    # mean target dev F1, by a hair (benchmarks/results/conll_errors.md,
    # conll_3to1.md variant crf).
    model.output_layer = "crf"
    model.bio_decoding = True

    train = config.train
    # At the 1,000-3,000 iterations a CPU affords, 2e-3 learns faster than
    # the authors' 1e-3, and a step size decayed linearly to 0 steadies the
    # end of a short run; both chosen on mean target dev F1
    # (benchmarks/results/conll_3to1.md, variants lr_1e-3 and constant_lr).
    train.learning_rate = 2e-3
    train.lr_schedule = "linear"
    return config
