"""Where a CoNLL tagger's F1 goes, and what its decoding changes.

    python benchmarks/conll_errors.py --name=issue-27_encoder \
        --workdirs=de=workdirs/conll/man_moe-de-encoder,es=...,nl=...

For each trained workdir (a 3->1 transfer cell, or an in-language run), on
the target's **dev** split (testa; test only for the decoding table):

* decoding: entity F1 with argmax per token (for a CRF: unconstrained
  Viterbi) and with BIO-valid Viterbi (``man-tf-evaluate --bio_decoding``),
  and how many sentences argmax leaves BIO-invalid. The checkpoint is the
  workdir's best, chosen during training under its own decoding;
* errors (BIO-valid decoding): per-type precision/recall/F1; every gold and
  predicted entity classed as correct, wrong type (same span), wrong span
  (overlapping, same type), wrong span and type, missed (no overlapping
  prediction) or false (no overlapping gold entity); the confusion of types
  on same-span entities; the most frequent missed and false entity strings.

Results: ``results/conll_errors.json`` (under ``--name``) and
``results/conll_errors.md``.
"""

import argparse
import collections
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

TYPES = ("PER", "LOC", "ORG", "MISC")


def chunks(tags):
    """conlleval's chunks of one BIO sentence: ``[(type, start, end)]``
    (end exclusive); a stray ``I-X`` opens a chunk, as conlleval reads it."""
    found, current = [], None
    for i, tag in enumerate([*tags, "O"]):
        prefix, kind = (tag.split("-", 1) + [""])[:2] if tag != "O" else ("O", "")
        continues = current is not None and prefix == "I" and kind == current[0]
        if current is not None and not continues:
            found.append((current[0], current[1], i))
            current = None
        if prefix in ("B", "I") and current is None:
            current = (kind, i)
    return found


def read_predictions(path):
    """An evaluation's ``.conll`` file -> sentences of ``(word, gold, predicted)``."""
    sentences = [[]]
    for line in open(path, encoding="utf-8"):
        if line.strip():
            sentences[-1].append(tuple(line.split()[-3:]))
        elif sentences[-1]:
            sentences.append([])
    return [s for s in sentences if s]


def analyse(sentences, top=12):
    classes = collections.Counter()
    confusion = collections.Counter()
    missed, false, retyped = collections.Counter(), collections.Counter(), collections.Counter()
    by_type = {t: collections.Counter() for t in TYPES}
    for sentence in sentences:
        words = [w for w, _, _ in sentence]
        gold = chunks([g for _, g, _ in sentence])
        pred = chunks([p for _, _, p in sentence])
        text = lambda c: " ".join(words[c[1]:c[2]])
        overlaps = lambda a, b: a[1] < b[2] and b[1] < a[2]
        for g in gold:
            by_type[g[0]]["gold"] += 1
            same_span = [p for p in pred if p[1:] == g[1:]]
            if same_span:
                p = same_span[0]
                confusion[f"{g[0]}->{p[0]}"] += 1
                classes["correct" if p[0] == g[0] else "wrong_type"] += 1
                if p[0] != g[0]:
                    retyped[f"{text(g)} ({g[0]}->{p[0]})"] += 1
                continue
            near = [p for p in pred if overlaps(p, g)]
            if not near:
                classes["missed"] += 1
                missed[f"{text(g)} ({g[0]})"] += 1
            elif any(p[0] == g[0] for p in near):
                classes["wrong_span"] += 1
            else:
                classes["wrong_span_and_type"] += 1
        for p in pred:
            by_type[p[0]]["predicted"] += 1
            if p in gold:
                by_type[p[0]]["correct"] += 1
            if not any(overlaps(p, g) for g in gold):
                classes["false"] += 1
                false[f"{text(p)} ({p[0]})"] += 1
    per_type = {}
    for t, c in by_type.items():
        precision = 100 * c["correct"] / c["predicted"] if c["predicted"] else 0.0
        recall = 100 * c["correct"] / c["gold"] if c["gold"] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_type[t] = {"gold": c["gold"], "predicted": c["predicted"], "correct": c["correct"],
                       "precision": precision, "recall": recall, "f1": f1}
    return {"per_type": per_type, "gold_entities": sum(c["gold"] for c in by_type.values()),
            "classes": dict(classes), "confusion": dict(confusion),
            "top_missed": missed.most_common(top), "top_false": false.most_common(top),
            "top_wrong_type": retyped.most_common(top)}


AGENCY = {"EFE", "EFECOM", "Efe"}  # Spanish datelines: "Madrid , 23 may ( EFE ) ."


def diagnostics(sentences):
    """Dev F1 under two what-ifs (diagnostics, not methods: the first reads
    gold tags): the agency name of Spanish datelines tagged as gold has it;
    predicted entities with no capital letter dropped."""
    from man_tf.evaluation.span_f1 import span_f1
    gold = [[g for _, g, _ in s] for s in sentences]
    agency = [[g if w in AGENCY else p for w, g, p in s] for s in sentences]
    lowercase_dropped = []
    for s in sentences:
        tags = [p for _, _, p in s]
        for _, start, end in chunks(tags):
            if not any(c.isupper() for w, _, _ in s[start:end] for c in w):
                tags[start:end] = ["O"] * (end - start)
        lowercase_dropped.append(tags)
    return {"agency_as_gold_f1": span_f1(gold, agency).f1,
            "agency_tokens": sum(w in AGENCY for s in sentences for w, _, _ in s),
            "lowercase_entities_dropped_f1": span_f1(gold, lowercase_dropped).f1}


def measure(workdir, scratch):
    from man_tf.evaluation.tagging import bio_valid
    from man_tf.training.evaluate import evaluate
    from man_tf.training.workdir import load_config
    config = load_config(workdir)
    out = {"workdir": workdir, "target": config.target,
           "output_layer": config.model.get("output_layer", "softmax"), "decoding": {}}
    for bio in (False, True):
        name = "bio_viterbi" if bio else ("argmax" if out["output_layer"] == "softmax"
                                          else "viterbi")
        row = {}
        for split in ("dev", "test"):
            prefix = os.path.join(scratch, f"{os.path.basename(workdir)}.{split}.{name}")
            scores, _ = evaluate(workdir, split, output=prefix, bio_decoding=bio)
            sentences = read_predictions(prefix + ".conll")
            row[f"{split}_f1"] = scores.f1
            row[f"{split}_invalid_sentences"] = sum(
                not bio_valid([p for _, _, p in s]) for s in sentences)
            if split == "dev" and bio:
                out["dev_errors"] = analyse(sentences)
                out["dev_errors"]["what_if"] = diagnostics(sentences)
        out["decoding"][name] = row
    return out


def table(results):
    lines = ["# Where the F1 goes: CoNLL dev (testa) errors by target, and decoding", "",
             f"Machine: {results.get('machine')}.", ""]
    for name, cells in results["runs"].items():
        run = results["commands"][name]
        lines += [f"## {name}", "", f"`{run['command']}` ({run['date']}, commit {run['commit']})",
                  "", "Decoding (entity F1; invalid: sentences whose tags are "
                  "not BIO-valid):", "",
                  "| cell | decoding | dev F1 | test F1 | invalid dev | invalid test |",
                  "|---|---|---|---|---|---|"]
        for cell, r in cells.items():
            for decoding, d in r["decoding"].items():
                lines.append(f"| {cell} | {decoding} | {d['dev_f1']:.2f} | {d['test_f1']:.2f} "
                             f"| {d['dev_invalid_sentences']} | "
                             f"{d['test_invalid_sentences']} |")
        lines += ["", "Per type on dev, BIO-valid decoding (P / R / F1; gold, predicted):", "",
                  "| cell | " + " | ".join(TYPES) + " |", "|---" * (len(TYPES) + 1) + "|"]
        for cell, r in cells.items():
            per = r["dev_errors"]["per_type"]
            lines.append(f"| {cell} | " + " | ".join(
                f"{per[t]['precision']:.1f} / {per[t]['recall']:.1f} / {per[t]['f1']:.1f} "
                f"({per[t]['gold']}, {per[t]['predicted']})" for t in TYPES) + " |")
        kinds = ("correct", "wrong_type", "wrong_span", "wrong_span_and_type", "missed")
        lines += ["", "Gold entities on dev by outcome (share of gold), and predictions "
                  "overlapping no gold entity (false):", "",
                  "| cell | " + " | ".join(kinds) + " | false |", "|---" * (len(kinds) + 2) + "|"]
        for cell, r in cells.items():
            e = r["dev_errors"]
            gold = e["gold_entities"]
            lines.append(f"| {cell} | " + " | ".join(
                f"{e['classes'].get(k, 0)} ({100 * e['classes'].get(k, 0) / gold:.1f}%)"
                for k in kinds) + f" | {e['classes'].get('false', 0)} |")
        lines += ["", "Type confusions on same-span entities (gold->predicted, count):", ""]
        for cell, r in cells.items():
            wrong = sorted(((k, v) for k, v in r["dev_errors"]["confusion"].items()
                            if k.split("->")[0] != k.split("->")[1]), key=lambda kv: -kv[1])
            lines.append(f"- {cell}: " + ", ".join(f"{k} {v}" for k, v in wrong))
        lines += ["", "What-ifs on dev (diagnostics; the first reads gold tags): F1 with the "
                  "dateline agency (EFE, EFECOM, Efe) tagged as gold; F1 with every predicted "
                  "entity that has no capital letter dropped:", "",
                  "| cell | dev F1 | agency as gold (tokens) | lowercase entities dropped |",
                  "|---|---|---|---|"]
        for cell, r in cells.items():
            w = r["dev_errors"].get("what_if")
            if w:
                lines.append(f"| {cell} | {r['decoding']['bio_viterbi']['dev_f1']:.2f} | "
                             f"{w['agency_as_gold_f1']:.2f} ({w['agency_tokens']}) | "
                             f"{w['lowercase_entities_dropped_f1']:.2f} |")
        lines += ["", "Most frequent missed / false entities on dev:", ""]
        for cell, r in cells.items():
            e = r["dev_errors"]
            lines.append(f"- {cell} missed: " + "; ".join(f"{k} x{v}" for k, v in e["top_missed"]))
            lines.append(f"- {cell} false: " + "; ".join(f"{k} x{v}" for k, v in e["top_false"]))
            lines.append(f"- {cell} wrong type: " + "; ".join(
                f"{k} x{v}" for k, v in e.get("top_wrong_type", [])))
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the runs' name in the results")
    parser.add_argument("--workdirs", required=True,
                        help="comma-separated cell=workdir pairs (e.g. de=workdirs/...)")
    parser.add_argument("--table_only", action="store_true")
    args = parser.parse_args()
    results = common.load("conll_errors.json") or {"runs": {}}
    if not args.table_only:
        cells = {}
        with tempfile.TemporaryDirectory() as scratch:
            for pair in args.workdirs.split(","):
                cell, _, workdir = pair.partition("=")
                cells[cell] = measure(workdir, scratch)
                print(cell, json.dumps(cells[cell]["decoding"]), flush=True)
        results["runs"][args.name] = cells
        results.setdefault("commands", {})[args.name] = {
            "command": "python benchmarks/conll_errors.py " + " ".join(sys.argv[1:]),
            "date": common.today(), "commit": common.git_commit()}
        results["machine"] = common.machine()
        common.save("conll_errors.json", results)
    with open(os.path.join(common.RESULTS, "conll_errors.md"), "w", encoding="utf-8") as f:
        f.write(table(results))


if __name__ == "__main__":
    main()
