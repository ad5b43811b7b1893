"""The pretrained encoder as a model input: its word features for training
(computed once into the feature cache) and its graph for serving."""

import dataclasses
import os

from man_tf.pretrained.weights import read_weights
from man_tf.settings import ENCODERS, ConfigError, encoder_layers


# The encoder computes cached features in this dtype, whatever the training
# precision; it is part of the cache key.
FEATURES_DTYPE = "float32"
ENCODER_DIMS = {name: spec["dim"] for name, spec in ENCODERS.items()}  # -> feature size


@dataclasses.dataclass(frozen=True)
class EncoderSettings:
    """The ``config.model`` fields of the encoder input (see ``configs/``
    for what each means): which encoder (``""``: none), which of its layers,
    whose weights (``""``: the bundled file), fine-tuned or frozen."""

    encoder: str
    encoder_layers: tuple
    encoder_weights: str
    encoder_trainable: bool
    encoder_remat: bool
    encoder_joined_languages: tuple

    @classmethod
    def of(cls, config):
        return cls(**{f.name: config.model[f.name] for f in dataclasses.fields(cls)})


def _e5_weights_and_layers(config):
    """(weights, layers) for ``model.encoder``; one-line errors."""
    layers = encoder_layers(config)  # checks model.encoder too
    preset = config.model.encoder_weights
    weights = read_weights(preset)
    if max(layers) > weights.layers:
        raise ConfigError(f"model.encoder_layers={layers}: the encoder weights "
                          f"({preset or 'bundled'}) have {weights.layers} layers")
    return weights, layers


def serving_word_features(config, dtype="float32"):
    """The encoder's word features as a graph for serving (``None`` without
    ``model.encoder``): same layers as training, piece embeddings in Q4_0 as
    in the bundled file (float32 from a keras-hub preset); ``dtype`` the
    encoder's dtype policy ("mixed_bfloat16": bfloat16 matmuls). ``None``
    too for a fine-tuned encoder: the model's own layer computes them."""
    if not config.model.encoder or is_trainable(config):
        return None
    from man_tf.pretrained.word_features import WordFeatures

    weights, layers = _e5_weights_and_layers(config)
    features = WordFeatures(weights, layers, quantized_embeddings=weights.quantized_embeddings,
                            dtype=dtype, joined_languages=joined_languages(config))
    features.weights_description = weights.description()  # strings, for the metadata
    return features


def joined_languages(config):
    """``model.encoder_joined_languages`` as a tuple (languages whose
    sentences the encoder reads as one text)."""
    return tuple(EncoderSettings.of(config).encoder_joined_languages)


def is_trainable(config):
    """Whether the config fine-tunes its encoder (``model.encoder_trainable``)."""
    settings = EncoderSettings.of(config)
    return bool(settings.encoder) and bool(settings.encoder_trainable)


def trainable_word_features(config):
    """The fine-tuned encoder as a model layer (``model.encoder_trainable``),
    initialised from ``model.encoder``'s weights."""
    from man_tf.pretrained.word_features import TrainableWordFeatures
    from man_tf.settings import resolve_languages

    weights, layers = _e5_weights_and_layers(config)
    sources, target = resolve_languages(config)  # language ids: sources, then the target
    return TrainableWordFeatures(weights, layers, name="word_features",
                                 remat=bool(config.model.encoder_remat),
                                 joined=[lang in joined_languages(config)
                                         for lang in [*sources, target]],
                                 preset=config.model.encoder_weights)


def encoder_features(config, workdir):
    """``None`` without ``model.encoder`` or with a fine-tuned one (the
    model computes its features from the tokens); else ``fn(sentences,
    language, label)`` -> float16 ``[tokens, layers, dim]``: the frozen
    encoder's word features of the sentences' tokens (the caller cuts them
    as it encodes them; sentences of ``model.encoder_joined_languages`` read
    as one text), from the cache in ``data.feature_cache`` (default
    ``<workdir>/features``), computed once."""
    if not config.model.encoder or is_trainable(config):
        return None
    from man_tf.pretrained import feature_cache, sentencepiece_model
    from man_tf.pretrained.word_features import WordFeatures

    weights, layers = _e5_weights_and_layers(config)
    identity = weights.identity
    proto = sentencepiece_model.model_proto(weights)
    directory = config.data.feature_cache or os.path.join(workdir, "features")
    extractor = []  # built on the first cache miss (loading takes seconds)

    def features(sentences, language, label=None):
        tokens = [list(s.tokens) for s in sentences]
        digest = feature_cache.sentences_digest(tokens)
        joined = language in joined_languages(config)
        keys = {layer: feature_cache.cache_key(identity, proto, layer, digest, FEATURES_DTYPE,
                                               joined)
                for layer in layers}

        def compute(missing):
            # float32 whatever the training precision (the serving graph's
            # default): features are computed once, and bfloat16 would move
            # them (benchmarks/results/serving.md).
            if not extractor or extractor[0].layers != tuple(missing):
                extractor[:] = [WordFeatures(weights, missing, dtype=FEATURES_DTYPE)]
            return feature_cache.extract(extractor[0], tokens, joined=joined,
                                         name=f"{label or language} encoder features"
                                              + (" (as one text)" if joined else ""))

        return feature_cache.cached_features(directory, keys, compute)

    return features
