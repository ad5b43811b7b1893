"""Training with the frozen multilingual encoder's word features as input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from man_tf.data import conll
from tests.helpers import CLEAN_PROCESS_PREAMBLE, ROOT, assert_cc_serves_like_predict

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def train(workdir, steps, *extra, layers="(6,7,8)", every=3):
    """The sample config with the encoder input (``extra``: more flags)."""
    return subprocess.run(
        [sys.executable, "-m", "man_tf.cli.train", "--config=configs/sample_ner.py",
         "--config.model.encoder=e5-small", f"--config.model.encoder_layers={layers}",
         f"--config.train.steps={steps}", f"--config.train.eval_every={every}",
         f"--config.train.checkpoint_every={every}", "--config.train.log_every=1",
         f"--workdir={workdir}", *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("encoder") / "run")
    done = train(workdir, 6)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def test_features_are_cached_and_the_encoder_is_not_trained(trained):
    caches = os.listdir(os.path.join(trained, "features"))
    # en/es/nl/de training text (labeled and unlabeled share one file), de dev, de test.
    # One file per layer: 6 x (6, 7, 8).
    assert len(caches) == 18 and all(name.endswith(".npy") for name in caches)
    names = tf.train.load_checkpoint(os.path.join(trained, "checkpoints")) \
        .get_variable_to_shape_map()
    model = [n for n in names if n.startswith("model/")]
    assert any("encoder_mix" in n for n in model)
    # The encoder's 12 layers and 250k-piece table are not model variables.
    assert not any("e5_encoder" in n or "word_embeddings" in n for n in model)
    mix = [n for n in model if "encoder_mix" in n and "layer_logits" in n][0]
    logits = tf.train.load_checkpoint(os.path.join(trained, "checkpoints")).get_tensor(mix)
    assert logits.shape == (3,) and np.abs(logits).max() > 0  # trained from zeros


@pytest.fixture(scope="module")
def exported(trained):
    done = subprocess.run([sys.executable, "-m", "man_tf.cli.export", f"--workdir={trained}",
                           f"--export_base={trained}/exported"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return os.path.join(trained, "exported", "1")


CLEAN_PROCESS = CLEAN_PROCESS_PREAMBLE + r"""
model_dir, tokens_json, language = sys.argv[1:4]
loaded = tf.saved_model.load(model_dir)
tokens = json.loads(tokens_json)
width = max(len(t) for t in tokens)
out = loaded.signatures["tag_tokens"](
    tokens=tf.constant([t + [""] * (width - len(t)) for t in tokens]),
    lengths=tf.constant([len(t) for t in tokens], tf.int32),
    language=tf.constant([language] * len(tokens)))
raw = loaded.signatures["serving_default"](text=tf.constant(["", "Angela Weber besuchte Berlin ."]),
                                           language=tf.constant([language] * 2))
assert not [m for m in sys.modules if m.startswith("man_tf")]
print(json.dumps({"tags": [[t.decode() for t in row[:n]] for row, n in
                           zip(out["tags"].numpy(), out["lengths"].numpy())],
                  "raw_lengths": raw["lengths"].numpy().tolist(),
                  "raw_tags": [t.decode() for t in raw["tags"].numpy()[1]]}))
"""


def evaluated_and_served(workdir, exported):
    """(scores, tags, served) on the de test sentences: ``man-tf-evaluate``'s
    scores and predicted tags, and what the SavedModel serves for the same
    tokens in a fresh process with tensorflow + tensorflow_text only (the
    graph holds the SentencePiece tokenizer and the encoder's layers)."""
    from man_tf.training.evaluate import evaluate

    scores, output = evaluate(workdir, "test")
    sentences = conll.read_conll(output + ".conll")  # token, gold, predicted
    tags = [[line.split()[-1] for line in block.strip().splitlines()]
            for block in open(output + ".conll", encoding="utf-8").read().split("\n\n")
            if block.strip()]
    tokens = [list(s.tokens) for s in sentences]
    assert len(tags) == len(tokens) >= 5
    done = subprocess.run([sys.executable, "-c", CLEAN_PROCESS, exported, json.dumps(tokens),
                           "de"], capture_output=True, text=True, env=ENV, cwd="/", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return scores, tags, json.loads(done.stdout.strip().splitlines()[-1])


def test_export_holds_the_encoder_and_serves_the_evaluated_tags(trained, exported):
    results = json.load(open(os.path.join(trained, "results.json"), encoding="utf-8"))
    scores, expected, served = evaluated_and_served(trained, exported)
    assert scores.primary == pytest.approx(results["test_f1"])
    assert served["tags"] == expected
    assert served["raw_lengths"] == [0, 5] and len(served["raw_tags"]) >= 5
    # Size: the piece table in Q4_0 (54 MB) + layers 1-8 in float32 (57 MB),
    # against 384 MB for the table alone in float32.
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(exported)
               for f in files)
    assert 100 * 2**20 < size < 140 * 2**20, size
    meta = json.load(open(os.path.join(exported, "assets.extra", "man_tf.json"),
                          encoding="utf-8"))
    assert meta["encoder"]["layers"] == [6, 7, 8] and meta["encoder"]["piece_embeddings"] == "Q4_0"


OPS_PROCESS = r"""
import sys
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
saved = saved_model_pb2.SavedModel()
saved.ParseFromString(open(sys.argv[1] + "/saved_model.pb", "rb").read())
graph = saved.meta_graphs[0].graph_def
ops = {n.op for n in graph.node}
for function in graph.library.function:
    ops |= {n.op for n in function.node_def}
ops -= {f.signature.name for f in graph.library.function}  # calls of library functions
core = {op for op in ops if op_def_registry.get(op) is not None}
import tensorflow_text  # noqa: F401  (registers TF Text's kernels)
text_ops = {op for op in ops - core if op_def_registry.get(op) is not None}
print(sorted(ops - core - text_ops))
print(sorted(text_ops))
print(sorted(core))
"""


def test_serving_graph_uses_only_ops_tf_serving_links(exported):
    # The stock tensorflow_model_server links core TF's kernels and TF Text's
    # ops library; nothing Python-side (py_function, numpy_function) and no
    # keras-hub op may be in the graph.
    done = subprocess.run([sys.executable, "-c", OPS_PROCESS, exported], capture_output=True,
                          text=True, env=ENV, cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    unknown, text_ops, core = [eval(line) for line in done.stdout.strip().splitlines()[-3:]]
    assert unknown == []
    assert text_ops and all(op.startswith("Sentencepiece") for op in text_ops), text_ops
    assert not {"PyFunc", "PyFuncStateless", "EagerPyFunc"} & set(core)
    assert {"BitwiseAnd", "RightShift", "BatchMatMulV2"} <= set(core)  # Q4_0 rows, attention
    assert "BlockLSTMV2" in core  # the BiLSTMs, fused for serving


def test_cc_loader_serves_what_predict_serves(exported, serve_check):
    """The encoder export in C++, as tensorflow_model_server loads it: only
    TF Text's SentencePiece library is loaded beside core TensorFlow."""
    lines = ["Angela Weber besuchte Berlin und Paris .", "", "Die Europäische Union tagt ."]
    libraries = assert_cc_serves_like_predict(serve_check, exported, "de", lines)
    assert [os.path.basename(p) for p in libraries] == ["_sentencepiece_tokenizer.so"]


def test_resume_with_encoder_features_ends_like_an_uninterrupted_run(trained, tmp_path):
    workdir = str(tmp_path / "resumed")
    cache = os.path.join(trained, "features")  # reuse: same features, no recomputation
    assert train(workdir, 3, f"--config.data.feature_cache={cache}").returncode == 0
    done = train(workdir, 6, f"--config.data.feature_cache={cache}")
    assert done.returncode == 0, done.stderr[-3000:]
    straight = json.load(open(os.path.join(trained, "results.json"), encoding="utf-8"))
    resumed = json.load(open(os.path.join(workdir, "results.json"), encoding="utf-8"))
    for r in (straight, resumed):
        r.pop("checkpoint")
    assert resumed == straight


CLASSIFY = CLEAN_PROCESS_PREAMBLE + r"""
model_dir, texts, languages = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
out = tf.saved_model.load(model_dir).signatures["serving_default"](
    text=tf.constant(texts), language=tf.constant(languages))
assert not [m for m in sys.modules if m.startswith("man_tf")]
print(json.dumps({"labels": [x.decode() for x in out["label"].numpy()],
                  "probabilities": out["probabilities"].numpy().tolist(),
                  "expert_weights": out["expert_weights"].numpy().tolist()}))
"""


@pytest.mark.parametrize("fine_tuned", [False, True], ids=["frozen", "fine_tuned"])
def test_classifier_with_encoder_input_trains_exports_and_serves(tmp_path, fine_tuned,
                                                                serve_check):
    """The encoder input for the other task: reviews in, the encoder's features
    of their (UnicodeScript) tokens, a label out of the served graph equal to
    the in-memory model's on features from the training cache (frozen) or
    computed by the model (fine-tuned: the language ids reach its encoder)."""
    from man_tf.export.from_workdir import export
    from man_tf.training.train import train as train_in_process
    from man_tf.data import loading, pipeline
    from man_tf.tasks import task_of
    from man_tf.data.reviews import read_reviews
    from man_tf.models import inference
    from man_tf.pretrained import encoder_inputs
    from man_tf.training import workdir as workdirs
    from tests.export.test_classifier_export import small_classifier_config

    config = small_classifier_config(tmp_path, steps=8, eval_every=4)
    config.model.encoder, config.model.use_words = "e5-small", False
    config.model.encoder_layers = (2,) if fine_tuned else (6,)
    config.model.encoder_trainable = fine_tuned
    workdir = str(tmp_path / "run")
    train_in_process(config, workdir)
    path = export(workdir, str(tmp_path / "saved_models" / "cls"))

    trained = workdirs.load_trained(workdir)
    # French reviews word by word; Japanese ones (a source here) read as one
    # text (model.encoder_joined_languages): rows of one served batch.
    assert "jp" in trained.config.model.encoder_joined_languages
    documents, languages, expected, gates = [], [], [], []
    for language, count in (("fr", 12), ("jp", 8)):
        docs = read_reviews(os.path.join(config.data.root, language, "music",
                                         "test.review"))[:count]
        sentences = [conll.Sentence(t or ("",), None, d.source, d.label) for t, d in
                     zip(loading.tokenize_texts([d.text for d in docs]), docs)]
        corpus = loading.encode_split(config, task_of(config), sentences, language,
                                      trained.languages.index(language), trained.words,
                                      trained.chars, trained.tags, config.data.max_length,
                                      encoder_inputs.encoder_features(trained.config, workdir))
        if fine_tuned:
            assert corpus.features is None and corpus.tokens is not None
        else:
            assert corpus.features is not None and corpus.features.shape[1:] == (1, 384)
        predicted = inference.predict_corpus(inference.make_predict_fn(trained.model),
                                             pipeline.evaluation_batches(corpus, 16), len(corpus))
        documents += docs
        languages += [language] * count
        expected += [trained.tags.tags[int(i)] for i in predicted.ids]
        gates += [np.ravel(g) for g in predicted.gates]
    done = subprocess.run([sys.executable, "-c", CLASSIFY, path,
                           json.dumps([d.text for d in documents]), json.dumps(languages)],
                          capture_output=True, text=True, cwd="/", env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["labels"] == expected
    probabilities = np.array(served["probabilities"])
    assert probabilities.shape == (len(documents), len(trained.tags.tags))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    # C's gate, a continuous function of the features through the whole
    # network: served (features computed in the graph) = in memory (cache).
    np.testing.assert_allclose(np.array(served["expert_weights"]), np.stack(gates), atol=2e-3)
    # Reading a text whole adds one TF Text op (TF Serving links TF Text's
    # ops); the classifier cuts raw text with TF Text's UnicodeScriptTokenizer.
    done = subprocess.run([sys.executable, "-c", OPS_PROCESS, path], capture_output=True,
                          text=True, env=ENV, cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    unknown, text_ops, _ = [eval(line) for line in done.stdout.strip().splitlines()[-3:]]
    assert unknown == [] and "SentencepieceTokenizeWithOffsetsOp" in text_ops
    assert all(op.startswith("Sentencepiece") or op == "UnicodeScriptTokenizeWithOffsets"
               for op in text_ops), text_ops
    # And in C++, as tensorflow_model_server loads it.
    libraries = assert_cc_serves_like_predict(serve_check, path, "fr",
                                              [" ".join(d.text.split()) for d in documents[:4]])
    assert sorted(os.path.basename(p) for p in libraries) == [
        "_sentencepiece_tokenizer.so", "_unicode_script_tokenizer.so"]


def test_encoder_config_sections_set_the_encoder_input_and_nothing_else():
    """``configs/<file>.py`` (``:encoder``, the default) = the file's words
    config with the encoder as input, and nothing else differs."""
    from man_tf.config_files import load_config_file
    for name in ("conll_ner", "amazon_cls"):
        words, encoder, default = (load_config_file(f"configs/{name}.py{inputs}").to_dict()
                                   for inputs in (":words", ":encoder", ""))
        assert default == encoder
        assert (encoder["model"].pop("encoder"), encoder["model"].pop("use_words")) == \
            ("e5-small", False)
        assert (words["model"].pop("encoder"), words["model"].pop("use_words")) == ("", True)
        assert encoder == words
    with pytest.raises(ValueError,
                       match="inputs='bert': expected one of encoder, fine_tuned, words"):
        load_config_file("configs/amazon_cls.py:bert")


def test_fine_tuned_config_sections_train_the_encoder_and_change_nothing_else():
    """``:fine_tuned`` = ``:encoder`` with the encoder's layers trained (and
    recomputed in the backward pass); CoNLL (and the sample built on it) also
    cuts training sentences at 128 tokens, keeping every token."""
    from man_tf.config_files import load_config_file
    for name, cut in (("conll_ner", True), ("sample_ner", True), ("amazon_cls", False)):
        encoder, tuned = (load_config_file(f"configs/{name}.py:{inputs}").to_dict()
                          for inputs in ("encoder", "fine_tuned"))
        assert (tuned["model"].pop("encoder_trainable"), tuned["model"].pop("encoder_remat")) \
            == (True, True)
        assert (encoder["model"].pop("encoder_trainable"),
                encoder["model"].pop("encoder_remat")) == (False, False)
        if cut:
            assert (tuned["data"].pop("max_length"), tuned["data"].pop("long_sentences")) == \
                (128, "split")
            encoder["data"].pop("max_length"), encoder["data"].pop("long_sentences")
        assert tuned == encoder, name
