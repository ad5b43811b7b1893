"""Writing a serving SavedModel as a new integer version under an export base.

``<export_base>/<version>/`` is what TensorFlow Serving watches: versions
are never overwritten; a new one is written to a hidden temporary directory
and renamed into place only when complete, so a crash leaves no half model
(leftover temporary directories are removed by the next export).
"""

import json
import os
import shutil

import keras
import tensorflow as tf

WARMUP_FILE = "tf_serving_warmup_requests"
METADATA_FILE = "man_tf.json"
_TMP_PREFIX = ".tmp-"


def next_version(export_base):
    versions = [int(name) for name in os.listdir(export_base) if name.isdigit()] \
        if os.path.isdir(export_base) else []
    return max(versions, default=0) + 1


def _warmup_records(examples):
    """PredictionLog records replayed by TF Serving before it serves a version."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    for texts, languages in examples:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(signature_name="serving_default"))
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string))
        request.inputs["language"].CopyFrom(tf.make_tensor_proto(languages, dtype=tf.string))
        log = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request))
        yield log.SerializeToString()


def export_serving(serving, export_base, metadata, warmup_examples):
    """Writes ``serving`` (a ``TaggerServing`` or ``ClassifierServing``: its
    ``endpoints()`` become the signatures) as the next version; returns its path."""
    os.makedirs(export_base, exist_ok=True)
    for name in os.listdir(export_base):
        if name.startswith(_TMP_PREFIX):
            shutil.rmtree(os.path.join(export_base, name), ignore_errors=True)
    version = next_version(export_base)
    tmp = os.path.join(export_base, f"{_TMP_PREFIX}{version}-{os.getpid()}")
    final = os.path.join(export_base, str(version))
    try:
        archive = keras.export.ExportArchive()
        # The model is not tracked as a layer: the endpoints' variables are
        # saved anyway, and a tracked layer's Keras variables would be saved
        # a second time (twice the size on disk).
        for resource in serving.resources():
            archive.track(resource)
        for name, function, signature in serving.endpoints():
            archive.add_endpoint(name, function, input_signature=signature)
        archive.write_out(tmp, verbose=False)
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
            for record in _warmup_records(warmup_examples):
                writer.write(record)
        with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(metadata, f, ensure_ascii=False, indent=1)
        if os.path.exists(final):  # another export took this number meanwhile
            raise FileExistsError(f"{final} appeared during export; nothing was overwritten")
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
