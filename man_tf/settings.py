"""Checks and resolution of an experiment config that every command shares:
which languages are sources and target, where the data lies, which
settings cannot work (one line each, before any file is read or written).

Languages are ordered sources first (in config order), then the target, so a
source's language id is also its expert index in every mixture of experts.
"""

import os

# Pretrained encoders a model can read (model.encoder): feature size and layers.
ENCODERS = {"e5-small": {"dim": 384, "layers": 12}}


class ConfigError(ValueError):
    """A configuration that cannot work; the message says what to change."""


def resolve_languages(config):
    """-> (sources, target); validates the choice against ``data.languages``."""
    available = list(config.data.languages.keys())
    target = config.target
    if target not in available:
        raise ConfigError(f"target {target!r} has no data: config.data.languages has "
                          f"{available}; set --config.target to one of them")
    sources = list(config.sources) or [lang for lang in available if lang != target]
    if target in sources:
        raise ConfigError(f"target {target!r} is also listed as a source; its labels "
                          f"must never be used: remove it from --config.sources")
    missing = [lang for lang in sources if lang not in available]
    if missing:
        joined = [lang for lang in missing if "," in lang]
        hint = (f"; give a tuple, one code per item: --config.sources='(\"" +
                '", "'.join(joined[0].split(",")) + '")\'' if joined else "")
        raise ConfigError(f"sources {missing} have no data in config.data.languages "
                          f"({available}){hint}")
    if not sources:
        raise ConfigError("no source languages: MAN-MoE needs at least one labeled source")
    return sources, target


def resolve_data_root(config, config_file, typed=False):
    """Makes ``data.root`` absolute, one documented way: a relative root
    written in a config file is relative to that file's project (the folder
    holding its ``configs/`` folder: ``configs/conll_ner.py``'s
    ``../shared/data/conll`` is next to the project, whatever the current
    directory); a relative root typed on the command line
    (``--config.data.root=...``, ``typed``) is relative to the current
    directory, like every other path typed there."""
    root = config.data.get("root")
    if not root or os.path.isabs(root):
        return
    if typed or not config_file:
        config.data.root = os.path.abspath(root)
        return
    config_dir = os.path.dirname(os.path.abspath(config_file.split(":", 1)[0]))
    project = os.path.dirname(config_dir) if os.path.basename(config_dir) == "configs" \
        else config_dir
    config.data.root = os.path.normpath(os.path.join(project, root))


# train.lr_schedule: how the step sizes move over the run (optimizers.step_size).
LR_SCHEDULES = ("constant", "linear", "cosine")

# Every field with a closed set of values (the task's own: man_tf.tasks;
# model.encoder: encoder_layers below), checked before anything is read or
# written. A field a config does not have is not checked.
CHOICES = {
    "data.long_sentences": ("truncate", "split", "error"),
    "model.discriminator": ("cnn", "mlp"),
    "model.predictor_mixture": ("log_probabilities", "probabilities"),
    "model.output_layer": ("softmax", "crf"),
    "model.lstm_implementation": ("auto", "loop", "keras"),
    "model.char_convolution": ("matmul", "conv"),
    "train.lr_schedule": LR_SCHEDULES,
    "train.discriminator_batch": ("own", "main"),
    "train.precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    "train.strategy": ("default", "mirrored", "multi_worker"),
}

# Counts and sizes: the least value each can take.
COUNTS = {
    **{f"train.{name}": 1 for name in ("steps", "batch_size", "log_every", "eval_every",
                                       "checkpoint_every", "keep_checkpoints",
                                       "eval_batch_size")},
    **{f"model.{name}": 1 for name in ("word_dim", "char_embedding_dim", "char_filters",
                                       "char_output_dim", "shared_hidden", "private_hidden",
                                       "lstm_layers", "expert_hidden", "private_moe_layers",
                                       "predictor_layers", "discriminator_filters",
                                       "discriminator_hidden", "discriminator_layers")},
    "model.predictor_hidden": 0,
    "data.max_length": 0, "data.max_chars": 1, "data.min_count": 1,
    "data.embeddings_max_words": 1, "data.dev_from_train": 0, "data.dev_seed": -1,
    "train.discriminator_steps": 0, "train.num_cpu_devices": 0,
    "train.intra_op_threads": 0, "train.inter_op_threads": 0,
    "self_training.rounds": 0, "self_training.steps": 0,
}


def _field(config, dotted):
    node = config
    for key in dotted.split("."):
        if key not in node:
            return _MISSING
        node = node[key]
    return node


_MISSING = object()


def check_config(config):
    """Settings no run can work with, as one line each (before any file is
    read or written)."""
    train = config.train
    for name, least in COUNTS.items():
        value = _field(config, name)
        if value is _MISSING:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            expected = "of at least 1" if least == 1 else f">= {least}"
            raise ConfigError(f"{name}={value}: expected a whole number {expected}")
    for name, allowed in CHOICES.items():
        value = _field(config, name)
        if value is not _MISSING and value not in allowed:
            raise ConfigError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    for name in ("learning_rate", "d_learning_rate", "encoder_learning_rate"):
        if not train[name] > 0:
            raise ConfigError(f"train.{name}={train[name]}: expected a positive number")
    self_training = config.self_training
    if self_training.rounds and not self_training.weight > 0:
        raise ConfigError(f"self_training.weight={self_training.weight}: expected a positive "
                          f"number (with self_training.rounds={self_training.rounds})")
    if train.lambd < 0:
        raise ConfigError(f"train.lambd={train.lambd}: expected a number >= 0")
    if train.get("discriminator_batch") == "main":
        if train.discriminator_steps > 1:
            raise ConfigError(f"train.discriminator_batch='main' with train.discriminator_steps="
                              f"{train.discriminator_steps}: D's one update per iteration "
                              f"shares the main update's batch; use 'own' for k > 1")
        if train.precision == "mixed_float16":
            raise ConfigError("train.discriminator_batch='main' with train.precision="
                              "mixed_float16: D's gradient would carry the main loss scale; "
                              "use 'own', or mixed_bfloat16 or float32")
    if not config.model.use_words and any(config.data.embeddings.values()):
        raise ConfigError("data.embeddings given with model.use_words=False: the .vec files "
                          "would be unused; drop them or set --config.model.use_words=True")
    if config.model.encoder:
        encoder_layers(config)
        if config.model.encoder_trainable and \
                config.train.precision == "mixed_float16":
            raise ConfigError("model.encoder_trainable=True with train.precision=mixed_float16: "
                              "a fine-tuned encoder has its own optimizer, which float16 loss "
                              "scaling does not cover; use mixed_bfloat16 or float32")
    elif config.model.encoder_trainable:
        raise ConfigError("model.encoder_trainable=True without model.encoder: there is no "
                          "encoder to fine-tune; set --config.model.encoder=e5-small")
    joined = config.model.encoder_joined_languages
    codes = isinstance(joined, (tuple, list)) and all(
        isinstance(lang, str) and lang and not set(", ") & set(lang) for lang in joined)
    if not codes:
        raise ConfigError(f"model.encoder_joined_languages={joined!r}: expected a tuple "
                          f"of language codes, e.g. '(\"jp\", \"zh\")'")
    if config.model.encoder_remat and not (
            config.model.encoder and config.model.encoder_trainable):
        raise ConfigError("model.encoder_remat=True without a fine-tuned encoder: only "
                          "model.encoder_trainable=True keeps the encoder's activations for "
                          "the backward pass; drop encoder_remat or set encoder_trainable")
    for name in ("dropout", "word_dropout", "mlp_dropout", "expert_dropout",
                 "discriminator_dropout", "unk_replacement"):
        value = config.model[name]
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"model.{name}={value}: expected a rate in [0, 1)")


def encoder_layers(config):
    """``model.encoder_layers`` as a tuple, after checking ``model.encoder``
    and that each layer exists in it, once."""
    encoder = config.model.encoder
    if encoder not in ENCODERS:
        raise ConfigError(f"model.encoder={encoder!r}: expected '' or one of {sorted(ENCODERS)}")
    layers = tuple(int(layer) for layer in config.model.encoder_layers)
    top = ENCODERS[encoder]["layers"]
    if not layers or min(layers) < 0 or max(layers) > top or len(set(layers)) < len(layers):
        raise ConfigError(f"model.encoder_layers={layers}: expected layers in [0, {top}] "
                          f"(0: the piece embeddings), each once")
    return layers


def data_path(config, lang, split):
    """The configured file(s) of a language's split with ``{root}`` and
    ``{domain}`` filled in (comma-separated for several), or None."""
    spec = config.data.languages[lang]
    if split not in spec or not spec[split]:
        return None
    return spec[split].format(root=config.data.root, domain=config.domain)
