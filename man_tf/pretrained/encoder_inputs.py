"""The pretrained encoder as a model input: its word features for training
(computed once into the feature cache) and its graph for serving."""

import os

from man_tf.settings import ENCODERS, ConfigError, encoder_layers


ENCODER_DIMS = {name: spec["dim"] for name, spec in ENCODERS.items()}  # -> feature size


def _e5_weights_and_layers(config):
    """(weights, layers) for ``model.encoder``; one-line errors."""
    from man_tf.pretrained import e5_file

    layers = encoder_layers(config)  # checks model.encoder too
    try:
        weights = e5_file.read_e5()
    except e5_file.WeightsFileError as e:
        raise ConfigError(str(e)) from None
    return weights, layers


def serving_word_features(config):
    """The encoder's word features as a graph for serving (``None`` without
    ``model.encoder``): same layers as training, piece embeddings in Q4_0."""
    if not config.model.get("encoder", ""):
        return None
    from man_tf.pretrained.word_features import WordFeatures

    weights, layers = _e5_weights_and_layers(config)
    return WordFeatures(weights, layers, quantized_embeddings=True)


def encoder_features(config, workdir):
    """``None`` without ``model.encoder``; else ``fn(sentences, name)`` ->
    float16 ``[tokens, layers, dim]``: the frozen encoder's word features of
    the sentences' tokens (the caller cuts them as it encodes them), from the
    cache in ``data.feature_cache`` (default ``<workdir>/features``),
    computed once."""
    name = config.model.get("encoder", "")
    if not name:
        return None
    from man_tf.pretrained import e5_file, feature_cache, sentencepiece_model
    from man_tf.pretrained.word_features import WordFeatures

    weights, layers = _e5_weights_and_layers(config)
    proto = sentencepiece_model.model_proto(weights)
    directory = config.data.get("feature_cache") or os.path.join(workdir, "features")
    extractor = []  # built on the first cache miss (loading takes seconds)

    def features(sentences, label):
        tokens = [list(s.tokens) for s in sentences]
        digest = feature_cache.sentences_digest(tokens)
        keys = {layer: feature_cache.cache_key(e5_file.WEIGHTS_SHA256, proto, layer, digest)
                for layer in layers}

        def compute(missing):
            if not extractor or extractor[0].layers != tuple(missing):
                extractor[:] = [WordFeatures(weights, missing)]
            return feature_cache.extract(extractor[0], tokens, name=f"{label} encoder features")

        return feature_cache.cached_features(directory, keys, compute)

    return features
