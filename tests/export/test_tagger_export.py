"""Export a small trained tagger and use it as TF Serving would."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from man_tf import tasks
from man_tf import settings
from man_tf.training import workdir as workdirs
from man_tf.export.from_workdir import export
from man_tf.export.client import predict_lines, resolve_model_dir
from man_tf.training.train import train
from man_tf.data import conll, pipeline, vocab
from man_tf.export import saved_model
from man_tf.models import inference
from man_tf.training import checkpoints
from tests.conftest import conll_file
from tests.helpers import (CLEAN_PROCESS_PREAMBLE, assert_cc_serves_like_predict,
                           load_config, valid_bio)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    config = load_config("sample_ner:words")
    config.train.steps = 60
    config.train.eval_every = 30
    workdir = str(root / "run")
    train(config, workdir)
    keras.mixed_precision.set_global_policy("float32")
    base = str(root / "saved_models" / "sample")
    path = export(workdir, base)
    keras.mixed_precision.set_global_policy("float32")
    return workdir, base, path


def in_memory_tags(workdir, sentences, language):
    """Tags from the in-memory Keras model, the way man-tf-evaluate computes them."""
    config = workdirs.load_config(workdir)
    sources, target = settings.resolve_languages(config)
    words, chars, tags = vocab.load_vocabularies(workdir)
    model = tasks.build_model(config, words.size, len(chars), tags.tags, len(sources),
                                   list(words.offsets.values()))
    model.build_all()
    checkpoints.restore_model(model, checkpoints.checkpoint_path(workdir))
    corpus = pipeline.encode(sentences, language, [*sources, target].index(language), words,
                             chars, None, config.data.max_chars)
    ids, _ = inference.predict_corpus(inference.make_predict_fn(model),
                                      pipeline.evaluation_batches(corpus, 64, labeled=False),
                                      len(corpus))
    return [[tags.tags[i] for i in row] for row in ids]


CLEAN_PROCESS = CLEAN_PROCESS_PREAMBLE + r"""
model_dir, tokens_json, texts_json, language = sys.argv[1:5]
loaded = tf.saved_model.load(model_dir)
tokens = json.loads(tokens_json)
width = max(len(t) for t in tokens)
out = loaded.signatures["tag_tokens"](
    tokens=tf.constant([t + [""] * (width - len(t)) for t in tokens]),
    lengths=tf.constant([len(t) for t in tokens], tf.int32),
    language=tf.constant([language] * len(tokens)))
raw = loaded.signatures["serving_default"](text=tf.constant(json.loads(texts_json)),
                                           language=tf.constant([language] * len(tokens)))
decode = lambda out: [[t.decode() for t in row[:n]] for row, n in
                      zip(out["tags"].numpy(), out["lengths"].numpy())]
assert not [m for m in sys.modules if m.startswith("man_tf")]
split = [[t.decode() for t in row[:n]] for row, n in
         zip(raw["tokens"].numpy(), raw["lengths"].numpy())]
print(json.dumps({"tag_tokens": decode(out), "serving_default": decode(raw), "split": split,
                  "weights_sum": float(tf.reduce_sum(out["expert_weights"]).numpy()),
                  "tokens": int(tf.reduce_sum(out["lengths"]).numpy())}))
"""


def test_clean_process_matches_the_in_memory_model(exported):
    workdir, _, path = exported
    # Real CoNLL sentences (German dev), tagged as German; these tokens contain
    # no characters that the raw-text tokenizer would split further.
    sentences = [s for s in conll.read_conll(conll_file("deu.testa"), labeled=False)[:300]
                 if all(t.isalpha() or t.isdigit() or len(t) == 1 for t in s.tokens)][:16]
    assert len(sentences) >= 5
    expected = in_memory_tags(workdir, sentences, "de")
    tokens = [list(s.tokens) for s in sentences]
    texts = [" ".join(s.tokens) for s in sentences]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", CLEAN_PROCESS, path, json.dumps(tokens),
                           json.dumps(texts), "de"], capture_output=True, text=True, env=env,
                          cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tag_tokens"] == expected
    # The default decoding: no I-X after O or another type, served or evaluated.
    assert all(map(valid_bio, expected + result["serving_default"]))
    # The default output is a CRF, whose transition scores trained: the
    # served graph decodes with them (else it could not equal the above).
    assert workdirs.load_config(workdir).model.output_layer == "crf"
    transitions = workdirs.load_trained(workdir, precision="float32").model.head.transitions
    assert float(tf.reduce_max(tf.abs(transitions))) > 0
    # Raw text: where the in-graph tokenizer splits as CoNLL did, the tags match.
    same_split = [i for i, split in enumerate(result["split"]) if split == tokens[i]]
    assert len(same_split) >= 10
    assert [result["serving_default"][i] for i in same_split] == \
        [expected[i] for i in same_split]
    # Expert weights: each real token's gate sums to 1, padding contributes 0.
    assert result["weights_sum"] == pytest.approx(result["tokens"], rel=1e-4)


def test_saved_model_cli_lists_the_documented_signatures(exported):
    _, _, path = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True,
                           timeout=120).stdout
    for signature in ("serving_default", "tag_tokens"):
        assert f"signature_def['{signature}']" in shown
    default = shown.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    assert "inputs['text'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in default
    assert "inputs['language'] tensor_info:\n        dtype: DT_STRING" in default
    for output, dtype in (("tokens", "DT_STRING"), ("tags", "DT_STRING"),
                          ("tag_scores", "DT_FLOAT"), ("lengths", "DT_INT32"),
                          ("expert_weights", "DT_FLOAT")):
        assert f"outputs['{output}'] tensor_info:\n        dtype: {dtype}" in default
    assert "shape: (-1, -1, 3)" in default  # three source experts
    tokens = shown.split("signature_def['tag_tokens']")[1]
    assert "inputs['tokens'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1, -1)" \
        in tokens
    assert "inputs['lengths'] tensor_info:\n        dtype: DT_INT32" in tokens


def test_predict_request_matches_the_signature(exported):
    from tensorflow_serving.apis import predict_pb2

    _, _, path = exported
    # The gRPC request the README shows.
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sample"
    request.model_spec.signature_name = "serving_default"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["Angela Weber besuchte Berlin ."]))
    request.inputs["language"].CopyFrom(tf.make_tensor_proto(["de"]))
    signature = tf.saved_model.load(path).signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    assert set(request.inputs) == set(specs)
    for name, proto in request.inputs.items():
        assert tf.dtypes.as_dtype(proto.dtype) == specs[name].dtype
        assert len(proto.tensor_shape.dim) == len(specs[name].shape)
    # The README's REST body, run through the same signature.
    body = json.loads('{"signature_name": "serving_default", "inputs": '
                      '{"text": ["Angela Weber besuchte Berlin ."], "language": ["de"]}}')
    out = signature(**{k: tf.constant(v) for k, v in body["inputs"].items()})
    assert int(out["lengths"][0]) == 5
    metadata = json.load(open(os.path.join(path, "assets.extra", "man_tf.json")))
    assert metadata["expert_languages"] == ["en", "es", "nl"]
    assert os.path.getsize(os.path.join(path, "assets.extra", "tf_serving_warmup_requests")) > 0


def test_edge_inputs(exported):
    _, _, path = exported
    signature = tf.saved_model.load(path).signatures["serving_default"]
    long_text = " ".join(["Berlin"] * 1000)
    texts = ["", "   \t ", long_text, "Москва и 東京 — Владимир Путин ."]
    out = signature(text=tf.constant(texts), language=tf.constant(["de"] * 4))
    lengths = out["lengths"].numpy()
    assert list(lengths[:2]) == [0, 0] and lengths[2] == 1000 and lengths[3] >= 6
    assert out["tags"].shape == (4, 1000)
    assert (out["tags"].numpy()[0] == b"").all()
    assert set(out["tags"].numpy()[2]) <= {t.encode() for t in
                                          json.load(open(os.path.join(
                                              path, "assets.extra", "man_tf.json")))["tags"]}
    empty = signature(text=tf.constant([""]), language=tf.constant(["de"]))
    assert int(empty["lengths"][0]) == 0
    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown language code"):
        signature(text=tf.constant(["Hallo"]), language=tf.constant(["xx"]))


def test_predict_command_helpers(exported):
    _, base, path = exported
    assert resolve_model_dir(base) == path
    results = list(predict_lines(path, ["Angela Weber besuchte Berlin .", ""], "de"))
    assert results[0]["tokens"] == ["Angela", "Weber", "besuchte", "Berlin", "."]
    assert len(results[0]["tags"]) == 5 and results[1]["tokens"] == []
    assert sum(results[0]["expert_weights"].values()) == pytest.approx(1.0, abs=1e-3)
    tokenized = list(predict_lines(path, ["Angela Weber besuchte Berlin ."], "de",
                                   tokenized=True))
    assert tokenized[0]["tags"] == results[0]["tags"]


def test_predict_command_output_and_quiet_start(exported, tmp_path):
    _, base, _ = exported
    text = tmp_path / "in.txt"
    text.write_text("Angela Weber besuchte Berlin .\n\nDie Bahn fährt .\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "man_tf.cli.predict", f"--model={base}",
                           "--language=de", f"--input={text}"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    # One block per input line: the empty line's block is empty (a blank line).
    lines = done.stdout.split("\n")
    assert lines[5:7] == ["", ""] and len(lines) == 5 + 2 + 4 + 2
    assert [row.split()[0] for row in lines[7:11]] == ["Die", "Bahn", "fährt", "."]
    # TensorFlow's start-up and oneDNN notices are not shown (README: what remains).
    for notice in ("cuInit", "oneDNN", "absl::InitializeLog", "cpu_feature_guard"):
        assert notice not in done.stderr, done.stderr


def test_versions_and_interrupted_export(exported, monkeypatch):
    workdir, base, path = exported
    assert os.path.basename(path) == "1"
    second = export(workdir, base)
    assert os.path.basename(second) == "2"
    before = sorted(os.listdir(base))

    def crash(self, filepath, options=None, verbose=True):
        os.makedirs(os.path.join(filepath, "variables"))
        open(os.path.join(filepath, "saved_model.pb"), "wb").write(b"half")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", crash)
    with pytest.raises(KeyboardInterrupt):
        export(workdir, base)
    assert sorted(os.listdir(base)) == before  # no version 3, no temporary folder
    assert saved_model.next_version(base) == 3
    assert np.array_equal(open(os.path.join(path, "saved_model.pb"), "rb").read()[:4],
                          open(os.path.join(path, "saved_model.pb"), "rb").read()[:4])


def test_bfloat16_export_tags_like_the_float32_one(exported, tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    workdir, _, _ = exported
    try:
        path = export(workdir, str(tmp_path / "bf16"), precision="mixed_bfloat16")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    meta = json.load(open(os.path.join(path, "assets.extra", "man_tf.json"), encoding="utf-8"))
    assert meta["precision"] == "mixed_bfloat16"
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    functions = saved.meta_graphs[0].graph_def.library.function
    matmul_types = {node.attr["T"].type for function in functions
                    for node in function.node_def if node.op in ("MatMul", "BatchMatMulV2")}
    assert tf.bfloat16.as_datatype_enum in matmul_types
    sentences = conll.read_conll(conll_file("deu.testa"), labeled=False)[:64]
    expected = in_memory_tags(workdir, sentences, "de")
    tokens = [list(s.tokens) for s in sentences]
    width = max(len(t) for t in tokens)
    out = tf.saved_model.load(path).signatures["tag_tokens"](
        tokens=tf.constant([t + [""] * (width - len(t)) for t in tokens]),
        lengths=tf.constant([len(t) for t in tokens], tf.int32),
        language=tf.constant(["de"] * len(tokens)))
    got = [[t.decode() for t in row[:len(s)]] for row, s in zip(out["tags"].numpy(), tokens)]
    agree = np.mean([a == b for g, e in zip(got, expected) for a, b in zip(g, e)])
    assert agree >= 0.95, agree
    with pytest.raises(ValueError, match="precision"):
        export(workdir, str(tmp_path / "bad"), precision="float16")


def test_cc_loader_serves_what_predict_serves(exported, serve_check):
    """Loaded in C++ as tensorflow_model_server loads it (LoadSavedModel, tag
    serve, TF Text's op libraries): both signatures answer as man-tf-predict."""
    _, _, path = exported
    lines = ["Angela Weber besuchte Berlin und Paris .", "", "Die Europäische Union tagt ."]
    assert_cc_serves_like_predict(serve_check, path, "de", lines)
