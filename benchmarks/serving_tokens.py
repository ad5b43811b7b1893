"""Are served tags what was measured? Entity F1 of the serving graph on raw text.

    python benchmarks/serving_tokens.py --workdir=workdirs/conll_3to1/man_moe-de

A model is trained and scored on CoNLL tokens; a served request brings raw
text that the graph must cut into tokens itself. For the workdir's target
test sentences (its best checkpoint, float32 or --precision; an encoder workdir
with the encoder in the graph), this scores the serving
functions three ways: ``tag_tokens`` on the gold tokens (the pre-tokenized
F1, equal to man-tf-evaluate's), and ``serving_default`` on raw text made
from the tokens by joining them with spaces, and by typing them as a person
would (``man_tf.export.raw_text.detokenize``: "Berlin, (AP) U.S."), with the
graph's CoNLL-style tokenizer and, for comparison, TF Text's
``UnicodeScriptTokenizer`` (the graph's tokenizer before). Predicted tags are
carried back to the gold tokens by character offsets (a gold token starting
inside a predicted token continues that token's entity as ``I-``), then
scored with conlleval semantics. Writes results/serving_tokens.json and a
section of results/serving.md.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

# How people type around punctuation: the raw text serving tokenization is
# measured against.
_NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "}", "'s", "'S", "n't", "%", "...",
                    "'re", "'ve", "'ll", "'d", "'m", "»", "“"}
_NO_SPACE_AFTER = {"(", "[", "{", "«", "„"}


def detokenize(tokens):
    """Tokens -> the text a person would type (no space before ``, . ) 's``
    and the like, none after ``(``, double quotes hugging what they quote):
    the raw text against which serving tokenization is measured."""
    out, quote_open, glue_next = [], False, True
    for token in tokens:
        if token == '"':
            quote_open = not quote_open
            if quote_open:  # opening: space before, none after
                out.append(("" if glue_next else " ") + token)
                glue_next = True
            else:
                out.append(token)
                glue_next = False
            continue
        glue = glue_next or token in _NO_SPACE_BEFORE
        out.append(("" if glue else " ") + token)
        glue_next = token in _NO_SPACE_AFTER
    return "".join(out).strip()


def offsets(text, tokens):
    """Start/end character of each token in ``text``, matching the tokens'
    non-space characters to the text's in order (a tokenizer may join
    characters across a space, as UnicodeScriptTokenizer does with ": ' '")."""
    positions = [i for i, c in enumerate(text) if not c.isspace()]
    spans, k = [], 0
    for token in tokens:
        n = sum(1 for c in token if not c.isspace())
        if n == 0 or k + n > len(positions):
            spans.append((len(text), len(text)))
            continue
        spans.append((positions[k], positions[k + n - 1] + 1))
        k += n
    return spans


def project(text, gold_tokens, predicted_tokens, predicted_tags):
    """Predicted tags carried onto the gold tokens by character offsets."""
    gold_spans = offsets(text, gold_tokens)
    predicted_spans = offsets(text, predicted_tokens)
    out, j = [], 0
    for start, _ in gold_spans:
        while j < len(predicted_spans) and predicted_spans[j][1] <= start:
            j += 1
        if j == len(predicted_spans) or predicted_spans[j][0] > start:
            out.append("O")
            continue
        tag = predicted_tags[j]
        if predicted_spans[j][0] < start and tag != "O":
            tag = "I-" + tag[2:]  # inside a predicted token that spans gold tokens
        out.append(tag)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.path.join(common.ROOT, "workdirs", "conll_3to1",
                                                          "man_moe-de"))
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"],
                        help="the serving graph's precision (man-tf-export --precision)")
    parser.add_argument("--tokenizers", default="conll,unicode_script",
                        help="raw-text tokenizers to score (conll first: it also scores "
                             "tag_tokens)")
    args = parser.parse_args()
    import tensorflow as tf

    from man_tf.data import loading
    from man_tf.tasks import task_of
    from man_tf.training import workdir as workdirs
    from man_tf.evaluation import tagging
    from man_tf.export.tagger_serving import TaggerServing

    from man_tf.pretrained import encoder_inputs

    trained = workdirs.load_trained(args.workdir, "best", precision=args.precision)
    config, target = trained.config, trained.target
    # An encoder workdir: the encoder runs in the graph, as served.
    features = encoder_inputs.serving_word_features(config, dtype=args.precision)
    sentences = loading.load_data(config, task_of(config), splits=("test",)).test[target]
    gold = [list(s.tokens) for s in sentences]
    texts = {"spaces": [" ".join(g) for g in gold], "typed": [detokenize(g) for g in gold]}

    def run(function, batches):
        tokens, tags = [], []
        for batch in batches:
            out = function(*batch)
            for row in range(len(out["lengths"])):
                n = int(out["lengths"][row])
                tokens.append([t.decode("utf-8") for t in out["tokens"][row, :n].numpy()])
                tags.append([t.decode("utf-8") for t in out["tags"][row, :n].numpy()])
        return tokens, tags

    def chunks(items):
        return [items[i:i + args.batch_size] for i in range(0, len(items), args.batch_size)]

    results = {"workdir": args.workdir, "target": target, "sentences": len(sentences),
               "checkpoint": trained.checkpoint, "precision": args.precision}
    measured = os.path.join(args.workdir, "results.json")
    if os.path.exists(measured):  # what man-tf-train measured (cached encoder features)
        with open(measured, encoding="utf-8") as f:
            results["measured_test_f1"] = json.load(f).get("test_f1")
    for tokenizer in args.tokenizers.split(","):
        serving = TaggerServing(trained.model, trained.words, trained.chars, trained.tags,
                                trained.languages, config.data.max_chars, tokenizer=tokenizer,
                                features=features)
        tag_text = tf.function(serving.tag_text)
        if tokenizer == "conll":
            tag_tokens = tf.function(serving.tag_tokens)
            batches = []
            for chunk in chunks(gold):
                width = max(len(g) for g in chunk)
                batches.append((tf.constant([g + [""] * (width - len(g)) for g in chunk]),
                                tf.constant([len(g) for g in chunk], tf.int32),
                                tf.constant([target] * len(chunk))))
            _, tags = run(tag_tokens, batches)
            results["pre_tokenized_f1"] = tagging.score(sentences, tags).primary
        for style, raw in texts.items():
            batches = [(tf.constant(c), tf.constant([target] * len(c))) for c in chunks(raw)]
            tokens, tags = run(tag_text, batches)
            projected = [project(t, g, p, y) for t, g, p, y in zip(raw, gold, tokens, tags)]
            same = sum(p == g for p, g in zip(tokens, gold)) / len(gold)
            results[f"{tokenizer}_{style}"] = {
                "f1": tagging.score(sentences, projected).primary,
                "sentences_split_as_gold": same}
        print(results, flush=True)

    name = os.path.basename(os.path.normpath(args.workdir)) + \
        ("" if args.precision == "float32" else f" ({args.precision})")
    with common.locked_results("serving_tokens.json", dict) as out:
        out.update({"machine": common.machine(), "date": common.today(),
                    "commit": common.git_commit(),
                    "protocol": "entity F1 (conlleval) on the gold test tokens; predicted tags "
                                "carried over by character offsets"})
        out.setdefault("runs", {})[name] = {
            "command": "python benchmarks/serving_tokens.py " + " ".join(sys.argv[1:]),
            **results}
        runs = dict(out["runs"])
    lines = ["## Served tags vs measured tags: raw-text tokenization", "",
             f"`python benchmarks/serving_tokens.py --workdir=WORKDIR` ({common.today()}): "
             f"each workdir's best checkpoint (float32 unless the row says mixed_bfloat16; an "
             f"encoder workdir with the encoder in the graph) on its target's test sentences; "
             f"entity F1 (conlleval) on the gold tokens, predicted tags carried over by "
             f"character offsets. Raw text is made from the gold tokens joined with spaces, or "
             f"typed as a person would (`Berlin, (AP) U.S.`).", "",
             "| model (workdir) | target | man-tf-train's test F1 | pre-tokenized (`tag_tokens`) "
             "| raw, spaces: CoNLL-style | raw, typed: CoNLL-style | raw, spaces: UnicodeScript "
             "| raw, typed: UnicodeScript |",
             "|---|---|---|---|---|---|---|---|"]
    for run_name, r in runs.items():
        cells = [f"{r[k]['f1']:.2f} ({100 * r[k]['sentences_split_as_gold']:.0f}% cut as gold)"
                 if k in r else "not run"
                 for k in ("conll_spaces", "conll_typed", "unicode_script_spaces",
                           "unicode_script_typed")]
        trained_f1 = f"{r['measured_test_f1']:.2f}" if r.get("measured_test_f1") else ""
        lines.append(f"| {run_name} | {r['target']} | {trained_f1} | {r['pre_tokenized_f1']:.2f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "CoNLL-style: `man_tf/export/raw_text.py`, the tagger's serving tokenizer "
              "(core TF regex rewrites + whitespace split); UnicodeScript: TF Text's "
              "`UnicodeScriptTokenizer`, the tagger's serving tokenizer before (cuts `U.S.` "
              "into 4 tokens, `EU-Kommission` into 3). man-tf-train's test F1: what the "
              "training run reported (`results.json`; for encoder workdirs from its feature "
              "cache, whose features were computed in bfloat16 before commit 26030ff, while "
              "the graph computes them in float32 or, in the mixed_bfloat16 rows, bfloat16)."]
    section = "\n".join(lines) + "\n"
    path = os.path.join(common.RESULTS, "serving.md")
    existing = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    existing = existing.split("## Served tags vs measured tags")[0].rstrip("\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write((existing + "\n\n" if existing else "") + section)
    print(section)


if __name__ == "__main__":
    main()
