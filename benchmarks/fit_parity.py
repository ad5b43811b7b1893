"""Same numbers before and after a change of the training loop or the model:
one CoNLL and one Webis-CLS-10 cell at a short budget, trained by two checkouts.

    git worktree add /tmp/before <commit before>; git worktree add /tmp/after <commit after>
    python benchmarks/fit_parity.py --run --code=/tmp/before --out=/tmp/cmp_before
    python benchmarks/fit_parity.py --run --code=/tmp/after --out=/tmp/cmp_after
    python benchmarks/fit_parity.py --before=/tmp/cmp_before --after=/tmp/cmp_after \
        --before_commit=dd722e8 --after_commit=... --change=fit

Compares results.json (dev/test score, best step) and every model variable
of the final checkpoints; each ``--change`` is its own section of
benchmarks/results/fit_parity.{json,md} (the others are kept).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

CELLS = {
    "conll_de": ["--config=configs/conll_ner.py:words", "--config.target=de"],
    "webis_books_de": ["--config=configs/amazon_cls.py:words", "--config.domain=books",
                       "--config.target=de"],
}
STEPS, EVAL_EVERY = 300, 100
# What each compared change was: (title, before, after).
CHANGES = {
    "fit": ("The training loop under `fit`: same numbers as the hand-written loop",
            "hand-written loop, `AdversarialTrainer`",
            "`AdversarialModel.train_step` run by `fit`, the loop as callbacks"),
    "composed": ("The model composed: same numbers as the model before",
                 "one model class per task on a shared base class",
                 "`ManMoeModel` = `Backbone` + `MoeHead` + `LanguageAdversary`"),
}


def run(code, out):
    os.makedirs(out, exist_ok=True)
    for cell, flags in CELLS.items():
        if os.path.exists(os.path.join(out, cell, "results.json")):
            continue
        subprocess.run([sys.executable, "-m", "man_tf.cli.train", *flags,
                        f"--config.train.steps={STEPS}", f"--config.train.eval_every={EVAL_EVERY}",
                        f"--workdir={os.path.join(out, cell)}"], cwd=code, check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def compare(before, after):
    import numpy as np
    import tensorflow as tf

    cells = {}
    for cell in CELLS:
        results = []
        for root in (before, after):
            with open(os.path.join(root, cell, "results.json"), encoding="utf-8") as f:
                results.append(json.load(f))
        metric = "acc" if "dev_acc" in results[0] else "f1"
        paths = [tf.train.latest_checkpoint(os.path.join(root, cell, "checkpoints"))
                 for root in (before, after)]
        readers = [tf.train.load_checkpoint(p) for p in paths]
        names = [n for n, _ in tf.train.list_variables(paths[0]) if n.startswith("model/")]
        differences = [float(np.max(np.abs(readers[0].get_tensor(n).astype(np.float64)
                                           - readers[1].get_tensor(n).astype(np.float64))))
                       for n in names]
        cells[cell] = {
            "metric": metric,
            "before": {k: results[0][k] for k in (f"dev_{metric}", f"test_{metric}", "best_step")},
            "after": {k: results[1][k] for k in (f"dev_{metric}", f"test_{metric}", "best_step")},
            "model_variables": len(names),
            "max_abs_weight_difference": max(differences),
            "identical_variables": sum(d == 0 for d in differences),
            "precision": results[1]["precision"],
        }
    return cells


def table(data, change):
    title, before, after = CHANGES[change]
    lines = [f"## {title}", "",
             f"Machine: {data['machine']}. Date: {data['date']}.", "",
             f"Each cell trained {STEPS} iterations (dev every {EVAL_EVERY}), default config "
             f"otherwise, by commit {data['before_commit']} ({before}) and by commit "
             f"{data['after_commit']} ({after}): in each checkout `python -m "
             f"man_tf.cli.train <cell flags> --config.train.steps={STEPS} "
             f"--config.train.eval_every={EVAL_EVERY} --workdir=...` (what `--run` does), "
             f"cells: " + "; ".join(f"{c}: `{' '.join(f)}`" for c, f in CELLS.items()) + ". "
             f"Compared by `{data['command']}`.", "",
             "| cell | precision | before dev | before test | before best step | after dev | "
             "after test | after best step | model variables identical | max abs weight "
             "difference |", "|---|---|---|---|---|---|---|---|---|---|"]
    for cell, r in data["cells"].items():
        m = r["metric"]
        lines.append(f"| {cell} | {r['precision']} | {r['before'][f'dev_{m}']:.2f} | "
                     f"{r['before'][f'test_{m}']:.2f} | {r['before']['best_step']} | "
                     f"{r['after'][f'dev_{m}']:.2f} | {r['after'][f'test_{m}']:.2f} | "
                     f"{r['after']['best_step']} | {r['identical_variables']} of "
                     f"{r['model_variables']} | {r['max_abs_weight_difference']:.3g} |")
    return "\n".join(lines) + "\n"


def document(comparisons):
    return "\n".join(["# Same numbers before and after a change", ""]
                     + [table(data, change) for change, data in comparisons.items()])


def load(path):
    """The comparisons so far (a file written before ``--change`` held one: ``fit``)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data["comparisons"] if "comparisons" in data else {"fit": data}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="train the cells with --code")
    parser.add_argument("--code", help="a checkout to train with")
    parser.add_argument("--out", help="where --run writes the workdirs")
    parser.add_argument("--before")
    parser.add_argument("--after")
    parser.add_argument("--before_commit", default="")
    parser.add_argument("--after_commit", default="")
    parser.add_argument("--change", choices=sorted(CHANGES), default="fit",
                        help="which change the comparison checks (its section)")
    args = parser.parse_args()
    if args.run:
        run(args.code, args.out)
        return
    path = os.path.join(common.RESULTS, "fit_parity.json")
    comparisons = load(path)
    comparisons[args.change] = {
        "machine": common.machine(), "date": datetime.date.today().isoformat(),
        "before_commit": args.before_commit, "after_commit": args.after_commit,
        "command": "python benchmarks/fit_parity.py " + " ".join(sys.argv[1:]),
        "cells": compare(args.before, args.after)}
    os.makedirs(common.RESULTS, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"comparisons": comparisons}, f, indent=1)
    with open(os.path.join(common.RESULTS, "fit_parity.md"), "w", encoding="utf-8") as f:
        f.write(document(comparisons))
    print(document(comparisons))


if __name__ == "__main__":
    main()
