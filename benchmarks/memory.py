"""Peak memory of CoNLL training: typical batches vs the longest sentences.

    python benchmarks/memory.py [--steps=20]

The es and nl CoNLL train files hold a few run-on "sentences" (missing
sentence breaks; up to 1,238 tokens in esp.train, 859 in ned.train). A
bucketed batch that draws one is padded to its length, and its backward
pass through the BiLSTMs holds activations for every time step. This
measures, each case in a fresh process (default config, target de, so es
and nl are sources and unlabeled languages):

- ``typical``: ``--steps`` iterations of the ordinary training stream;
- ``worst``: one iteration whose labeled and unlabeled batches are each
  language's 16 longest train sentences, as the data comes (no limit);
- ``worst_split_128``: the same after ``data.max_length=128,
  long_sentences=split`` (every token kept, in pieces of <= 128);
- ``fine_tuned_worst_split_128``: ``worst_split_128`` with the encoder input
  fine-tuned (``configs/conll_ner.py:encoder``, ``model.encoder_trainable``),
  whose layers keep their activations for the backward pass;
- ``fine_tuned_worst_split_128_remat``: the same with
  ``model.encoder_remat`` (each encoder layer recomputed in the backward
  pass instead).

``--cases`` runs some of them (the others' rows are kept from the last run).

Reports peak RSS (``ru_maxrss``) and seconds per iteration; writes
benchmarks/results/memory.json and memory.md.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

SPLIT_128 = {"max_length": 128, "long_sentences": "split"}
FINE_TUNED = {"encoder_trainable": True}
# name: (batches, data overrides, config inputs, model overrides)
CASES = {
    "typical": ("stream", {}, "words", {}),
    "worst": ("longest", {}, "words", {}),
    "worst_split_128": ("longest", SPLIT_128, "words", {}),
    "fine_tuned_worst_split_128": ("longest", SPLIT_128, "encoder", FINE_TUNED),
    "fine_tuned_worst_split_128_remat": ("longest", SPLIT_128, "encoder",
                                         {**FINE_TUNED, "encoder_remat": True}),
}


def measure(kind, data_overrides, steps, inputs="words", model_overrides=None):
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {common.ROOT!r})
import numpy as np
import tensorflow as tf
from benchmarks import common
from man_tf import tasks
from man_tf.data import loading
from man_tf.data import pipeline
from man_tf.training import strategy as strategies
from man_tf.training.adversarial import AdversarialModel
config = common.conll_config({inputs!r})
for key, value in {data_overrides!r}.items():
    config.data[key] = value
for key, value in {model_overrides or {}!r}.items():
    config.model[key] = value
strategy = strategies.make_strategy("default")
precision = strategies.set_precision(config.train.precision)
data = loading.load_data(config, tasks.task_of(config))
words, chars, tags = loading.build_vocabularies(config, tasks.task_of(config), data)
labeled, unlabeled = loading.encode_data(config, tasks.task_of(config), data, words, chars, tags)
with strategy.scope():
    model = tasks.build_model(config, words.size, len(chars), tags.tags, len(data.sources),
                                   list(words.offsets.values()))
    trainer = AdversarialModel(model, len(data.languages))
    trainer.compile()
step = trainer.make_train_function()  # what fit runs per step, on an iterator
lab = [labeled[l] for l in data.sources]
unl = [unlabeled[l] for l in data.languages]

def longest(corpora, labeled_rows):
    table = pipeline.SentenceTable(corpora, labeled_rows)
    rows = np.concatenate([offset + np.argsort(-c.lengths, kind="stable")[:16]
                           for offset, c in zip(table.offsets, corpora)]).astype(np.int32)
    return table.batch(tf.constant(rows))

if {kind!r} == "stream":
    stream = pipeline.training_stream(lab, unl, 16, 1, buckets=tuple(config.data.buckets))
    batches = iter(stream)
    timed = {steps}
else:
    u = longest(unl, False)
    warm = {{"labeled": longest(lab, True), "discriminator": (u,), "unlabeled": u}}
    batches = iter(tf.data.Dataset.from_tensors(warm).repeat())
    timed = 1
step(batches)  # the first call traces; in "longest" the timed one is the same batch
start = time.perf_counter()
for _ in range(timed):
    logs = step(batches)
float(logs["task_loss"])
elapsed = (time.perf_counter() - start) / timed
longest_tokens = max(int(np.max(c.lengths)) for c in lab + unl)
print("RESULT " + json.dumps({{
    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    "seconds_per_iteration": elapsed, "iterations_timed": timed,
    "longest_training_sentence": longest_tokens, "precision": precision}}))
"""
    return common.run_measurement(code)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--note", default="", help="conditions of the run, for the table")
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated case names; the others' rows are kept")
    args = parser.parse_args()
    names = [name for name in args.cases.split(",") if name]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"--cases: unknown {unknown}; expected some of {sorted(CASES)}")
    path = os.path.join(common.RESULTS, "memory.json")
    old = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
    # Rows not rerun are kept as they are (each holds its own command, machine, date).
    results = {name: r for name, r in old.get("cases", {}).items()
               if name in CASES and name not in names}
    command = "python benchmarks/memory.py " + " ".join(sys.argv[1:])
    for name in names:
        kind, data_overrides, inputs, model_overrides = CASES[name]
        results[name] = {"data_overrides": data_overrides, "inputs": inputs,
                         "model_overrides": model_overrides, "command": command,
                         "machine": common.machine(), "date": common.today(),
                         "commit": common.git_commit(), "note": args.note,
                         **measure(kind, data_overrides, args.steps, inputs, model_overrides)}
        print(name, json.dumps(results[name]), flush=True)
    results = {name: results[name] for name in CASES if name in results}
    data = {"config": "configs/conll_ner.py (encoder cases: configs/conll_ner.py:encoder, "
                      "layer 7), target de (sources en, es, nl), batch 16 per language",
            "cases": results}
    common.save("memory.json", data)
    lines = ["# Peak memory of CoNLL training (target de, default layer sizes)", "",
             "Each case in a fresh process; peak RSS = ru_maxrss. " + data["config"] + ".", "",
             "| case | longest training sentence (tokens) | peak RSS (GB) | s/iteration | "
             "command, machine, date (commit) |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['longest_training_sentence']} | {r['peak_rss_gb']:.2f} | "
                     f"{r['seconds_per_iteration']:.2f} | `{r['command'].strip()}`, "
                     f"{r['machine']}, {r['date']} ({r['commit']}) |")
    lines += ["", "typical: mean over the first iterations of the ordinary stream; worst: one "
              "iteration on each language's 16 longest train sentences (what a bucketed batch "
              "holding a run-on sentence approaches). The 1,238-token 'sentence' of esp.train "
              "is a run of missing sentence breaks. fine_tuned: the same iteration with the "
              "encoder input (configs/conll_ner.py:encoder, layers 1-7) fine-tuned; _remat: "
              "with model.encoder_remat=True (each encoder layer recomputed in the backward "
              "pass)."]
    notes = sorted({f"{name}: {r['note']}" for name, r in results.items() if r.get("note")})
    lines += [""] + notes if notes else []
    with open(os.path.join(common.RESULTS, "memory.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
