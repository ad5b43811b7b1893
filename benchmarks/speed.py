"""Training and evaluation throughput of the default CoNLL config on this machine.

    python benchmarks/speed.py [--steps=30] [--warmup=5]

Times one training iteration (k=1 D update + one main update over one
labeled batch per source and one unlabeled batch per language) for the
default layer sizes, target de, in several variants (precision, char-CNN,
XLA), and evaluation (forward pass) sentences/s on deu.testa. Writes
benchmarks/results/speed.json and speed.md.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

FEATURES = os.path.join(common.ROOT, "workdirs", "conll_3to1", "features")
VARIANTS = {
    "default (auto precision: mixed_bfloat16 here)": {},
    "float32": {"train.precision": "float32"},
    "no char-CNN (bf16)": {"model.use_char_cnn": False},
    # configs/conll_ner.py:encoder; features read from the cache that
    # benchmarks/conll_3to1.py --section=encoder fills (extracted first if absent).
    "encoder input (e5-small layer 7 + char-CNN, bf16)": {
        "model.encoder": "e5-small", "model.use_words": False, "data.feature_cache": FEATURES},
    # configs/conll_ner.py:encoder with model.encoder_trainable: the encoder's
    # layers 1-7 run (forward and backward) in every step.
    "encoder fine-tuned (e5-small layers 1-7 trained + char-CNN, bf16)": {
        "model.encoder": "e5-small", "model.use_words": False, "model.encoder_trainable": True},
}


def measure(overrides, steps, warmup, config_code="common.conll_config('words')"):
    """Runs in a fresh process so each variant gets its own TF runtime.

    ``config_code`` is a Python expression giving the config (default: the
    CoNLL config, target de); evaluation runs on the target's dev split.
    """
    code = f"""
import json, time, sys
sys.path.insert(0, {common.ROOT!r})
from benchmarks import common
config = {config_code}
for key, value in json.loads({json.dumps(json.dumps(overrides))}).items():
    section, field = key.split(".")
    config[section][field] = value
import tensorflow as tf
from man_tf import tasks
from man_tf.data import loading
from man_tf.data import pipeline
from man_tf.models import inference
from man_tf.training import strategy as strategies
from man_tf.training.adversarial import distribute_stream
strategies.configure_cpu_devices(config.train.num_cpu_devices)
strategy = strategies.make_strategy(config.train.strategy)
setup = common.training_setup(config, strategy)
precision, data, features = setup.precision, setup.data, setup.features
words, chars, tags = setup.words, setup.chars, setup.tags
model, trainer, stream = setup.model, setup.trainer, setup.stream
step = trainer.make_train_function()  # what fit runs per step, on an iterator
it = iter(strategy.experimental_distribute_dataset(distribute_stream(strategy, stream)))
token_stream = iter(stream)
for _ in range({warmup}):
    step(it)
    next(token_stream)
# The same stream, undistributed, counts the source tokens of the timed steps.
tokens = sum(int(tf.reduce_sum(next(token_stream)["labeled"]["lengths"])) for _ in range({steps}))
start = time.perf_counter()
for _ in range({steps}):
    logs = step(it)
float(logs["task_loss"])
elapsed = time.perf_counter() - start
max_length = (config.data.max_length or None) if config.get("task") == "classification" else None
corpus = loading.encode_split(config, tasks.task_of(config), data.dev[data.target], data.target,
                                 data.languages.index(data.target), words, chars, tags, max_length,
                                 features)
predict = inference.make_predict_fn(model)
inference.predict_corpus(predict, pipeline.evaluation_batches(corpus, 128), len(corpus))
start = time.perf_counter()
inference.predict_corpus(predict, pipeline.evaluation_batches(corpus, 128), len(corpus))
eval_elapsed = time.perf_counter() - start
print("RESULT " + json.dumps({{"precision": precision, "seconds_per_iteration": elapsed / {steps},
    "iterations_per_s": {steps} / elapsed, "source_tokens_per_s": tokens / elapsed,
    "eval_sentences_per_s": len(corpus) / eval_elapsed, "parameters": model.count_params(),
    "replicas": strategy.num_replicas_in_sync}}))
"""
    return common.run_measurement(code)


def measure_extraction(sentences=3000):
    """Encoder feature extraction (layer 7, no cache) on deu.testa, fresh process."""
    code = f"""
import json, sys, time
sys.path.insert(0, {common.ROOT!r})
from benchmarks import common
from man_tf.data.conll import read_conll
from man_tf.pretrained import e5_file, feature_cache
from man_tf.pretrained.word_features import WordFeatures
import tensorflow as tf
tokens = [list(s.tokens) for s in read_conll(common.CONLL_DATA + "/deu.testa")][:{sentences}]
features = WordFeatures(e5_file.read_e5(), (7,))
feature_cache.extract(features, tokens[:100])  # warm-up: traces the graph
pieces = int(features.pieces(tf.ragged.constant(tokens)).flat_values.shape[0])
start = time.perf_counter()
feature_cache.extract(features, tokens)
elapsed = time.perf_counter() - start
print("RESULT " + json.dumps({{"sentences": len(tokens), "words": sum(map(len, tokens)),
    "pieces": pieces, "pieces_per_s": pieces / elapsed,
    "words_per_s": sum(map(len, tokens)) / elapsed}}))
"""
    return common.run_measurement(code)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", default="",
                        help="comma-separated substrings: measure only the variants whose "
                             "name contains one (the others keep their stored rows); "
                             "'extraction' for the encoder feature extraction")
    parser.add_argument("--table_only", action="store_true",
                        help="only rewrite results/speed.md from results/speed.json")
    args = parser.parse_args()
    if args.table_only:
        stored = common.load("speed.json")
        write_table(stored, stored["steps_timed"], stored["warmup_steps"])
        return
    only = [o for o in args.only.split(",") if o]
    stored = common.load("speed.json") or {}
    results = dict(stored.get("variants", {})) if only else {}
    for row in results.values():  # rows kept from an earlier run keep its when/where
        for key in ("date", "commit", "machine", "command"):
            row.setdefault(key, stored.get(key))
    for name, overrides in VARIANTS.items():
        if only and not any(o in name for o in only):
            continue
        results[name] = {"overrides": overrides, **measure(overrides, args.steps, args.warmup),
                         "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:]),
                         "date": common.today(), "commit": common.git_commit(),
                         "machine": common.machine()}
        print(name, json.dumps(results[name]), flush=True)
    extraction = stored.get("extraction")
    if not only or "extraction" in only:
        extraction = {**measure_extraction(), "date": common.today(),
                      "commit": common.git_commit(),
                      "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:])}
        print("extraction", json.dumps(extraction), flush=True)
    data = {"command": "python benchmarks/speed.py " + " ".join(sys.argv[1:]),
            "machine": common.machine(), "date": common.today(), "commit": common.git_commit(),
            "steps_timed": args.steps, "warmup_steps": args.warmup,
            "reference": "authors' PyTorch code, same data and config on this machine: about "
                         "3.6 s/iteration (char-CNN on), 1.5 s (off); goal < 0.7 s",
            "variants": results, "extraction": extraction}
    common.save("speed.json", data)
    write_table(data, args.steps, args.warmup)


def write_table(data, steps, warmup):
    results, extraction = data["variants"], data.get("extraction")
    lines = ["# Training speed, CoNLL 3->1 (target de), default layer sizes",
             "", f"Last run: `{data['command']}` on {data['machine']}, {data['date']} (commit "
             f"{data['commit']}). Mean of {steps} iterations after {warmup} warm-up; "
             f"rows measured in other runs say when and where (machines differ: compare "
             f"rows of one machine only).",
             "", "| variant | precision | s/iteration | iterations/s | source tokens/s | "
             "eval sentences/s | measured (date, commit, machine) |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['precision']} | {r['seconds_per_iteration']:.3f} | "
                     f"{r['iterations_per_s']:.2f} | {r['source_tokens_per_s']:.0f} | "
                     f"{r['eval_sentences_per_s']:.0f} | {r.get('date', data['date'])}, "
                     f"{r.get('commit', data['commit'])}, {r.get('machine', data['machine'])} |")
    lines += ["", data["reference"] + "."]
    if extraction:
        lines += ["", "## Encoder feature extraction", "",
                  f"multilingual-e5-small up to layer 7 (float32, the tokenizer in the graph), "
                  f"{extraction['sentences']} sentences of deu.testa ({extraction['pieces']} "
                  f"pieces), batched by piece count, no cache: **{extraction['pieces_per_s']:.0f} "
                  f"pieces/s** ({extraction['words_per_s']:.0f} words/s); goal >= 5,000 pieces/s "
                  f"on 2 cores. `{extraction['command']}`, {extraction['date']} (commit "
                  f"{extraction['commit']})."]
    from benchmarks import step_cost

    lines += step_cost.markdown(common.load("step_cost.json"))
    with open(os.path.join(common.RESULTS, "speed.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
