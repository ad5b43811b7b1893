"""Running a trained model over evaluation batches (no training code involved)."""

import numpy as np
import tensorflow as tf


def make_predict_fn(model):
    """A compiled forward pass: batch -> ids ``[batch, time]``, C's gate weights
    ``[batch, time, experts]`` (tagging) and the mask."""

    @tf.function(reduce_retracing=True)
    def predict(batch):
        outputs = model(batch, training=False)
        return {"ids": tf.argmax(outputs["log_probs"], axis=-1, output_type=tf.int32),
                "probs": tf.exp(outputs["log_probs"]),
                "gate": tf.nn.softmax(outputs["gate_logits"], axis=-1),
                "mask": outputs["mask"]}

    return predict


def predict_corpus(predict_fn, batches, size):
    """Runs ``predict_fn`` over ``evaluation_batches``; returns, in corpus
    order, a list of predicted id arrays and a list of ``[length, experts]``
    gate-weight arrays."""
    ids, gates = [None] * size, [None] * size
    for batch in batches:
        out = predict_fn({k: batch[k] for k in ("words", "chars", "lengths")})
        out_ids, out_gate = out["ids"].numpy(), out["gate"].numpy()
        for row, (index, length) in enumerate(zip(batch["index"].numpy(),
                                                  batch["lengths"].numpy())):
            ids[index] = out_ids[row, :length]
            gates[index] = out_gate[row, :length]
    return ids, gates


def mean_gate(gates):
    """Average expert weights over every token of a corpus: ``[experts]``."""
    return np.concatenate(gates, axis=0).mean(axis=0)
