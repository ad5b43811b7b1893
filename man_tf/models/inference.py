"""Running a trained model over evaluation batches (no training code involved)."""

import collections

import numpy as np
import tensorflow as tf


def make_predict_fn(model):
    """A compiled forward pass: batch -> ids ``[batch, time]`` (the head's
    decoding: BIO-valid Viterbi, a CRF's, or argmax), C's gate weights
    ``[batch, time, experts]`` (tagging) and the mask."""

    @tf.function(reduce_retracing=True)
    def predict(batch):
        outputs = model(batch, training=False)
        result = {"ids": model.head.decode(outputs),
                  "probs": tf.exp(outputs["log_probs"]),
                  "gate": tf.nn.softmax(outputs["gate_logits"], axis=-1),
                  "mask": outputs["mask"]}
        if "private_gate_logits" in outputs:
            result["private_gate"] = tf.nn.softmax(outputs["private_gate_logits"], axis=-1)
        return result

    return predict


class Predictions(collections.namedtuple("Predictions", "ids gates private_gates probs",
                                         defaults=(None,))):
    """Per sentence, in corpus order: predicted ids ``[length]`` (tagging) or
    one class id (classification), C's gate weights ``[length, experts]``
    (``[1, experts]`` for a document), F_p's (``None`` without F_p), and
    with ``keep_probs`` C's label distributions ``[length, labels]``
    (``[1, labels]``; else ``None``)."""

    def __iter__(self):  # ``ids, gates = predictions`` keeps working
        return iter((self.ids, self.gates))


def predict_corpus(predict_fn, batches, size, keep_probs=False):
    """Runs ``predict_fn`` over ``evaluation_batches``; only real tokens are kept."""
    ids, gates, private, probs = [None] * size, [None] * size, [None] * size, [None] * size
    for batch in batches:
        out = predict_fn({k: batch[k] for k in ("words", "chars", "lengths", "encoder_features",
                                                     "tokens", "language")
                          if k in batch})
        out_ids, out_gate = out["ids"].numpy(), out["gate"].numpy()
        out_private = out["private_gate"].numpy() if "private_gate" in out else None
        out_probs = out["probs"].numpy() if keep_probs else None
        per_token = out_ids.ndim == 2  # tagging; classification has one id per row
        for row, (index, length) in enumerate(zip(batch["index"].numpy(),
                                                  batch["lengths"].numpy())):
            if per_token:
                ids[index] = out_ids[row, :length]
                take = lambda a, row=row, length=length: a[row, :length]
            else:
                ids[index] = out_ids[row]
                take = lambda a, row=row: a[row:row + 1]
            gates[index] = take(out_gate)
            if out_private is not None:
                private[index] = take(out_private)
            if keep_probs:
                probs[index] = take(out_probs)
    return Predictions(ids, gates, private if any(p is not None for p in private) else None,
                       probs if keep_probs else None)


def mean_gate(gates):
    """Average expert weights over every token of a corpus: ``[experts]``."""
    return np.concatenate(gates, axis=0).mean(axis=0)


def expert_weights(sources, gates):
    """``{source: mean gate weight}`` over a corpus; ``{}`` for a model whose
    predictor has a single expert (no per-source mixture to report)."""
    mean = mean_gate(gates)
    return dict(zip(sources, map(float, mean))) if len(mean) == len(sources) else {}
