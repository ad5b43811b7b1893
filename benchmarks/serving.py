"""Serving latency and throughput of an exported tagger on this machine.

    python benchmarks/serving.py [--requests=300] [--inputs=encoder]

Builds the default CoNLL model (target de; vocabularies from the real
files; weights untrained: they do not change the cost), exports it with
``man-tf-export``'s code, loads the SavedModel the way TF Serving runs it (a
``tf.saved_model.load`` signature call on raw text: in-graph tokenization,
lookups, model, tag strings) and measures batch-1 latency on 20-token German
sentences (p50/p99 over ``--requests`` calls) and batch-64 throughput; then
the same for the in-memory Keras model on pre-encoded ids (no tokenization
or lookups). ``--inputs=encoder``: the model of ``configs/conll_ner.py:encoder``
(the multilingual encoder's layers and SentencePiece tokenizer in the
graph; SavedModel only). Writes benchmarks/results/serving.json and
serving.md (each input's rows kept when the other is measured).
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402


# (row, run) of the table: float32 exports, and mixed_bfloat16 ones (_bf16).
ROWS = [("saved_model", "words"), ("keras_in_memory", "words"),
        ("saved_model_encoder", "encoder"), ("saved_model_bf16", "words_bf16"),
        ("saved_model_encoder_bf16", "encoder_bf16")]


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.array(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--inputs", default="words", choices=["words", "encoder"])
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"],
                        help="the exported graph's precision (man-tf-export --precision)")
    args = parser.parse_args()
    import keras
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from man_tf import tasks
    from man_tf.pretrained import encoder_inputs
    from man_tf.data import loading
    from man_tf.tasks import task_of
    from man_tf.data import pipeline
    from man_tf.export.saved_model import export_serving
    from man_tf.export.tagger_serving import TaggerServing
    from man_tf.models import inference

    config = common.conll_config(args.inputs)
    keras.mixed_precision.set_global_policy(args.precision)
    data = loading.load_data(config, task_of(config), splits=("train", "dev"))
    words, chars, tags = loading.build_vocabularies(config, task_of(config), data)
    model = tasks.build_model(config, words.size, len(chars), tags.tags, len(data.sources),
                                   list(words.offsets.values()))
    model.build_all()
    serving = TaggerServing(model, words, chars, tags, data.languages, config.data.max_chars,
                            features=encoder_inputs.serving_word_features(
                                config, dtype=args.precision))
    sentences = [s for s in data.dev["de"] if len(s) >= 20]
    texts = [" ".join(s.tokens[:20]) for s in sentences]
    with tempfile.TemporaryDirectory() as tmp:
        path = export_serving(serving, os.path.join(tmp, "m"), {"languages": data.languages},
                              [(texts[:2], ["de", "de"])])
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
                      for f in files) / 2**20
        signature = tf.saved_model.load(path).signatures["serving_default"]
        one = [(tf.constant([t]), tf.constant(["de"])) for t in texts]
        batch = (tf.constant((texts * 64)[:64]), tf.constant(["de"] * 64))
        for i in range(10):
            signature(text=one[i][0], language=one[i][1])
        it = iter(range(10**9))
        latency = timed(lambda: signature(text=one[next(it) % len(one)][0],
                                          language=one[0][1]), args.requests)
        signature(text=batch[0], language=batch[1])
        throughput = timed(lambda: signature(text=batch[0], language=batch[1]), args.batches)

    if args.inputs == "words" and args.precision == "float32":
        corpus = pipeline.encode(sentences, "de", data.languages.index("de"), words, chars, None,
                                 config.data.max_chars, max_length=20)
        predict = inference.make_predict_fn(model)
        singles = [b for b in pipeline.evaluation_batches(corpus, 1, labeled=False)]
        sixty_four = next(iter(pipeline.evaluation_batches(corpus, 64, labeled=False)))
        strip = lambda b: {k: b[k] for k in ("words", "chars", "lengths")}
        for b in singles[:10]:
            predict(strip(b))
        it2 = iter(range(10**9))
        keras_latency = timed(
            lambda: predict(strip(singles[next(it2) % len(singles)]))["ids"].numpy(),
            args.requests)
        predict(strip(sixty_four))
        keras_throughput = timed(lambda: predict(strip(sixty_four))["ids"].numpy(),
                                 args.batches)

    def summary(latencies, batches):
        return {"latency_ms": {"p50": float(np.percentile(latencies, 50) * 1e3),
                               "p99": float(np.percentile(latencies, 99) * 1e3)},
                "throughput_sentences_per_s": float(64 / np.median(batches))}

    previous = common.load("serving.json") or {}
    data_out = {k: v for k, v in previous.items() if k in [name for name, _ in ROWS] + ["runs"]}
    suffix = "" if args.precision == "float32" else "_bf16"
    run = {"command": "python benchmarks/serving.py " + " ".join(sys.argv[1:]),
           "machine": common.machine(), "date": common.today(), "commit": common.git_commit(),
           "saved_model_mb": round(size_mb, 1)}
    if args.inputs == "words":
        data_out["saved_model" + suffix] = summary(latency, throughput)
        if not suffix:
            data_out["keras_in_memory"] = summary(keras_latency, keras_throughput)
    else:
        data_out["saved_model_encoder" + suffix] = summary(latency, throughput)
    data_out.setdefault("runs", {})[args.inputs + suffix] = run
    data_out.update({
        "command": run["command"], "machine": run["machine"], "date": run["date"],
        "commit": run["commit"],
        "model": "configs/conll_ner.py defaults (target de), untrained weights; float32 "
                 "exports unless the row ends in _bf16 (man-tf-export --precision="
                 "mixed_bfloat16)",
        "input": "German dev sentences cut to 20 tokens; batch 1 for latency, 64 for "
                 "throughput",
        "notes": "saved_model: raw text in (tokenization, lookups, model, tag strings in "
                 "the graph), loaded with tf.saved_model.load as TF Serving runs the "
                 "graph, without the server's RPC overhead; saved_model_encoder: the same "
                 "with configs/conll_ner.py:encoder (SentencePiece tokenizer + the "
                 "encoder's layers up to model.encoder_layers in the graph, piece "
                 "table in Q4_0); keras_in_memory: the Keras model's compiled forward "
                 "pass on pre-encoded ids (BiLSTMs fused, as served); _bf16: bfloat16 matmuls (float32 variables, "
                 "LayerNorm statistics and softmax), for serving hardware with native "
                 "bfloat16 (this CPU has AVX512_BF16)"})
    common.save("serving.json", data_out)
    lines = ["# Serving speed (CPU)", "", f"{data_out['model']}; {data_out['input']}.", "",
             "| path | p50 latency, batch 1 (ms) | p99 latency (ms) | sentences/s, batch 64 "
             "| SavedModel size | command, date, commit |", "|---|---|---|---|---|---|"]
    for name, inputs in ROWS:
        r, how = data_out.get(name), data_out["runs"].get(inputs, {})
        if r:
            size = f"{how['saved_model_mb']:.0f} MB" if name != "keras_in_memory" and \
                how.get("saved_model_mb") else ""
            lines.append(f"| {name} | {r['latency_ms']['p50']:.1f} | "
                         f"{r['latency_ms']['p99']:.1f} | {r['throughput_sentences_per_s']:.0f} "
                         f"| {size} | `{how.get('command', '')}`, {how.get('date', '')}, "
                         f"{how.get('commit', '')} |")
    lines += ["", f"Machine: {data_out['machine']}.", "", data_out["notes"] + "."]
    path = os.path.join(common.RESULTS, "serving.md")
    # Keep the tokenization section that benchmarks/serving_tokens.py writes.
    kept = open(path, encoding="utf-8").read().split("## Served tags vs measured tags", 1) \
        if os.path.exists(path) else []
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n" +
                ("\n## Served tags vs measured tags" + kept[1] if len(kept) == 2 else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
