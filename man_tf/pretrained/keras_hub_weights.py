"""Encoder weights from a keras-hub BERT preset instead of the bundled file.

    --config.model.encoder_weights=multilingual_e5_small        # keras-hub preset name
    --config.model.encoder_weights=kaggle://keras/multilingual-e5/keras/multilingual_e5_small/1
    --config.model.encoder_weights=/path/to/preset_dir          # local, offline

keras-hub lists multilingual-e5-small as a ``BertBackbone`` preset (a user
with internet access downloads it once into keras-hub's cache; a local
preset directory, as ``backbone.save_to_preset`` writes, works offline).
man_tf copies the preset's float32 weights into its own encoder layers
(``man_tf/pretrained/bert.py``, exact GELU as the original model; keras-hub's
``BertBackbone`` itself computes the tanh approximation) and keeps the
bundled file's tokenizer, which is the preset's vocabulary: the piece table
sizes must agree (250,037 rows), or the preset is refused. Served models then hold the
float32 piece table (384 MB instead of the bundled file's 4-bit 54 MB).
"""

import hashlib
import os

import numpy as np

from man_tf.pretrained.e5_file import E5Weights, WeightsFileError


class PresetWeights(E5Weights):
    """``E5Weights`` whose tensors come from a keras-hub ``BertBackbone``
    (the tokenizer fields are the bundled file's), all in float32."""

    quantized_embeddings = False

    def __init__(self, preset, tokenizer_weights, tensors, shape):
        fields = {f: getattr(tokenizer_weights, f)
                  for f in ("pieces", "scores", "bos_id", "eos_id", "pad_id", "unk_id",
                            "normalizer")}
        super().__init__(path=preset, directory={}, **shape, **fields)
        self._tensors = tensors
        digest = hashlib.sha256()
        for name in sorted(tensors):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(tensors[name], np.float32).tobytes())
        self._identity = digest.hexdigest()

    @property
    def identity(self):
        """The feature cache's weights key: a digest of the tensors."""
        return self._identity

    def description(self):
        return {"weights": f"keras-hub preset {self.path}", "weights_sha256": self.identity,
                "piece_embeddings": "float32"}

    def tensor(self, name, shape=None):
        if name not in self._tensors:
            raise WeightsFileError(self.path, f"no tensor {name!r}")
        values = self._tensors[name]
        return values.reshape(shape) if shape is not None else values

    def raw_q4_0(self, name):
        raise WeightsFileError(self.path, "a keras-hub preset holds float32 weights, not Q4_0")


def backbone_tensors(backbone):
    """A keras-hub ``BertBackbone`` -> (``{man_tf tensor name: float32 array}``
    in the bundled file's layout (dense weights ``[out, in]``), shape fields)."""
    def value(variable):
        return np.asarray(variable.numpy(), np.float32)

    hidden, heads = backbone.hidden_dim, backbone.num_heads
    tensors = {
        "emb.word": value(backbone.token_embedding.embeddings),
        "emb.pos": value(backbone.position_embedding.position_embeddings),
        "emb.type": value(backbone.segment_embedding.embeddings),
        "emb.ln.w": value(backbone.embeddings_layer_norm.gamma),
        "emb.ln.b": value(backbone.embeddings_layer_norm.beta),
    }
    for i, layer in enumerate(backbone.transformer_layers):
        p = f"l{i}."
        attention = layer._self_attention_layer
        for short, dense in (("q", attention._query_dense), ("k", attention._key_dense),
                             ("v", attention._value_dense)):
            # EinsumDense kernel [hidden, heads, size] -> [out = heads*size, in = hidden]
            tensors[p + short + ".w"] = value(dense.kernel).reshape(hidden, hidden).T
            tensors[p + short + ".b"] = value(dense.bias).reshape(hidden)
        # output kernel [heads, size, hidden] -> [out = hidden, in = heads*size]
        tensors[p + "ao.w"] = value(attention._output_dense.kernel).reshape(hidden, hidden).T
        tensors[p + "ao.b"] = value(attention._output_dense.bias)
        tensors[p + "aln.w"] = value(layer._self_attention_layer_norm.gamma)
        tensors[p + "aln.b"] = value(layer._self_attention_layer_norm.beta)
        tensors[p + "fi.w"] = value(layer._feedforward_intermediate_dense.kernel).T
        tensors[p + "fi.b"] = value(layer._feedforward_intermediate_dense.bias)
        tensors[p + "fo.w"] = value(layer._feedforward_output_dense.kernel).T
        tensors[p + "fo.b"] = value(layer._feedforward_output_dense.bias)
        tensors[p + "oln.w"] = value(layer._feedforward_layer_norm.gamma)
        tensors[p + "oln.b"] = value(layer._feedforward_layer_norm.beta)
    shape = dict(hidden=int(hidden), layers=len(backbone.transformer_layers), heads=int(heads),
                 intermediate=int(backbone.intermediate_dim),
                 vocab_size=int(backbone.vocabulary_size),
                 max_positions=int(backbone.max_sequence_length),
                 type_vocab_size=int(backbone.num_segments),
                 layer_norm_eps=float(backbone.embeddings_layer_norm.epsilon))
    return {k: np.ascontiguousarray(v) for k, v in tensors.items()}, shape


def read_preset(preset, tokenizer_weights):
    """``preset`` (keras-hub name, handle or local directory) -> PresetWeights;
    a one-line ``WeightsFileError`` if keras-hub is missing, the preset cannot
    be loaded, is not a BERT, or its vocabulary is not the tokenizer's."""
    looks_local = "://" not in preset and (
        os.sep in preset or preset.startswith(".") or os.path.splitext(preset)[1])
    if looks_local and not os.path.exists(preset):
        raise WeightsFileError(preset, "no such file or folder (model.encoder_weights: a "
                                       "keras-hub preset name, a kaggle:// or hf:// handle, "
                                       "or a local preset folder)")
    try:
        import keras_hub
    except ImportError:
        raise WeightsFileError(preset, "model.encoder_weights names a keras-hub preset, and "
                               "keras-hub is not installed: pip install keras-hub") from None
    try:
        backbone = keras_hub.models.BertBackbone.from_preset(preset)
    except Exception as e:  # keras-hub raises many kinds (missing files, network, format)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsFileError(preset, f"could not load as a keras-hub BertBackbone "
                               f"preset ({first})") from None
    tensors, shape = backbone_tensors(backbone)
    if shape["vocab_size"] != tokenizer_weights.vocab_size:
        raise WeightsFileError(preset, f"{shape['vocab_size']} piece embeddings, but "
                               f"multilingual-e5's tokenizer needs {tokenizer_weights.vocab_size}: "
                               f"not a multilingual-e5 preset")
    if shape["hidden"] != tokenizer_weights.hidden:
        raise WeightsFileError(preset, f"hidden size {shape['hidden']}, expected "
                               f"{tokenizer_weights.hidden} (multilingual-e5-small)")
    return PresetWeights(preset, tokenizer_weights, tensors, shape)
