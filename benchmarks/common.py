"""Shared helpers for benchmark scripts: machine description, result files."""

import contextlib
import datetime
import fcntl
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


CONLL_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "conll"))


def conll_config(inputs):
    """``configs/conll_ner.py:<inputs>``'s config, with the real data's absolute path."""
    from man_tf.config_files import load_config_file

    config = load_config_file(f"conll_ner:{inputs}")
    config.data.root = CONLL_DATA
    return config


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def today():
    return datetime.date.today().isoformat()


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def code_commit():
    """The last commit that changed the code (man_tf, configs, the
    benchmarks' scripts; not their results): two timings of one code agree
    on it across commits of results and docs."""
    try:
        return subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", "man_tf", "configs", "benchmarks",
             ":(exclude)benchmarks/results"], cwd=ROOT, capture_output=True, text=True,
            check=True).stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load(name):
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save(name, data):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def locked_results(name, empty):
    """Load-modify-save of ``results/<name>`` under an exclusive file lock, so
    benchmark processes running side by side merge their rows instead of
    overwriting each other's. Yields the current dict (``empty()`` if none)."""
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "." + name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = load(name) or empty()
            yield data
            save(name, data)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_measurement(code):
    """Runs ``code`` in a fresh Python process (its own TF runtime) and returns
    the JSON it prints on a line starting with ``RESULT ``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(done.stderr[-3000:])


def training_setup(config, strategy=None):
    """What ``man-tf-train`` builds before its first step, for the step
    benchmarks (speed.py, step_cost.py): ``config``'s data, vocabularies,
    encoder features (from ``config.data.feature_cache``; extracted if
    absent), model, compiled trainer (under ``strategy``'s scope when given)
    and training stream (seed 1). Sets the precision; -> a namespace."""
    import types

    from man_tf import tasks
    from man_tf.data import loading, pipeline
    from man_tf.pretrained import encoder_inputs
    from man_tf.training import strategy as strategies
    from man_tf.training.train import compiled_trainer

    strategies.configure_threads(config.train)
    precision = strategies.set_precision(config.train.precision)
    task = tasks.task_of(config)
    data = loading.load_data(config, task)
    words, chars, tags = loading.build_vocabularies(config, task, data)
    features = encoder_inputs.encoder_features(config, "/nonexistent")
    labeled, unlabeled = loading.encode_data(config, task, data, words, chars, tags, features)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = tasks.build_model(config, words.size, len(chars), tags.tags, len(data.sources),
                                  list(words.offsets.values()))
        trainer, _ = compiled_trainer(config, model, len(data.languages))
    stream = pipeline.training_stream(
        [labeled[lang] for lang in data.sources], [unlabeled[lang] for lang in data.languages],
        config.train.batch_size, 1,
        trainer.own_discriminator_batches, trainer.adversary_pass,
        buckets=tuple(config.data.buckets))
    return types.SimpleNamespace(precision=precision, task=task, data=data, words=words,
                                 chars=chars, tags=tags, features=features, model=model,
                                 trainer=trainer, stream=stream)


def run_training(config_file, flags, workdir, steps):
    """Runs ``man-tf-train`` in a fresh process unless ``workdir`` already
    holds results at this budget (an interrupted run resumes from its
    checkpoint). Returns ``(results, wall seconds or None if not run now)``."""
    import time

    results_path = os.path.join(workdir, "results.json")
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as f:
            done = json.load(f)
        rounds = [int(f.split("=", 1)[1]) for f in flags
                  if f.startswith("--config.self_training.rounds=")]
        if done.get("steps") == steps and len(
                done.get("self_training", {}).get("rounds", [])) == (rounds[-1] if rounds else 0):
            return done, None
    command = [sys.executable, "-m", "man_tf.cli.train", f"--config={config_file}",
               f"--config.train.steps={steps}", f"--workdir={workdir}", *flags]
    print("running:", " ".join(command[1:]), flush=True)
    start = time.time()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(command, cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(results_path, encoding="utf-8") as f:
        return json.load(f), time.time() - start


def mean_sd(values):
    """``(mean, sample standard deviation)``; sd is 0 for a single value."""
    import statistics
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _sd(sd, n):
    """`` ± sd`` for two or more runs; nothing for one (a single run has no spread)."""
    return f" ± {sd:.2f}" if n > 1 else ""


def seeds_table(seeds, cells, metric="f1", baseline="concat_bilstm", model="man_moe"):
    """Markdown lines for a results file's ``"seeds"`` section: each
    variant's mean ± sd over seeds per cell and over cells, and the paired
    per-seed difference ``model`` minus ``baseline`` (and each labeled
    variant ``"X (label)"`` minus its plain ``X``)."""
    runs = seeds.get("runs", {})
    dev, test = f"dev_{metric}", f"test_{metric}"
    lines = [f"Seeds ({seeds.get('steps')} iterations, defaults {seeds.get('defaults')}; "
             f"`{seeds.get('command')}`): test {metric} mean ± sd over seeds (dev in "
             f"brackets); the last column averages the cells' means, over the seeds that "
             f"ran every cell.", "",
             "| variant | " + " | ".join(cells) + " | mean |", "|---" * (len(cells) + 2) + "|"]
    for variant, by_cell in runs.items():
        row = []
        for cell in cells:
            results = by_cell.get(cell, [])
            if results:
                (m, s), (dm, _) = mean_sd(r[test] for r in results), \
                    mean_sd(r[dev] for r in results)
                row.append(f"{m:.2f}{_sd(s, len(results))} [{dm:.2f}] (n={len(results)})")
            else:
                row.append("—")
        complete = _seeds_in_every_cell(by_cell, cells)
        overall = [sum(_by_seed(by_cell, cell)[s][test] for cell in cells) / len(cells)
                   for s in complete]
        row.append(f"{mean_sd(overall)[0]:.2f}{_sd(mean_sd(overall)[1], len(overall))} "
                   f"(n={len(overall)})"
                   if overall else "—")
        lines.append(f"| {variant} | " + " | ".join(row) + " |")
    # (title, model runs, runs it is compared with, by cell)
    pairs = ([(f"{model} minus {baseline}", runs[model], runs[baseline])]
             if model in runs and baseline in runs else [])
    for name, by_cell in runs.items():
        if any("teacher" in r for results in by_cell.values() for r in results):
            # self-training: the selected model against its own teacher
            teachers = {cell: [{"seed": r["seed"], **r["teacher"]} for r in results
                               if "teacher" in r] for cell, results in by_cell.items()}
            pairs.append((f"{name} minus its teacher (the same run before self-training)",
                          by_cell, teachers))
        elif " (" in name and name.split(" (")[0] in runs:
            pairs.append((f"{name} minus {name.split(' (')[0]}", by_cell,
                          runs[name.split(" (")[0]]))
    for title, a_runs, b_runs in pairs:
        lines += ["", f"Paired by seed, {title} (test; dev in brackets):", "",
                  "| | " + " | ".join(cells) + " | mean |", "|---" * (len(cells) + 2) + "|"]
        row = []
        for cell in cells:
            a, b = _by_seed(a_runs, cell), _by_seed(b_runs, cell)
            shared = sorted(set(a) & set(b))
            if shared:
                diffs = [a[s][test] - b[s][test] for s in shared]
                dev_diffs = [a[s][dev] - b[s][dev] for s in shared]
                m, sd = mean_sd(diffs)
                row.append(f"{m:+.2f}{_sd(sd, len(shared))} [{mean_sd(dev_diffs)[0]:+.2f}] "
                           f"(n={len(shared)})")
            else:
                row.append("—")
        both = sorted(set(_seeds_in_every_cell(a_runs, cells))
                      & set(_seeds_in_every_cell(b_runs, cells)))
        overall, overall_dev = [], []
        for s in both:
            overall.append(sum(_by_seed(a_runs, c)[s][test]
                               - _by_seed(b_runs, c)[s][test] for c in cells) / len(cells))
            overall_dev.append(sum(_by_seed(a_runs, c)[s][dev]
                                   - _by_seed(b_runs, c)[s][dev] for c in cells)
                               / len(cells))
        row.append(f"{mean_sd(overall)[0]:+.2f}{_sd(mean_sd(overall)[1], len(overall))} "
                   f"[{mean_sd(overall_dev)[0]:+.2f}] (n={len(overall)})" if overall else "—")
        lines.append("| difference | " + " | ".join(row) + " |")
    return lines


def _by_seed(by_cell, cell):
    return {r["seed"]: r for r in by_cell.get(cell, [])}


def _seeds_in_every_cell(by_cell, cells):
    sets = [set(_by_seed(by_cell, cell)) for cell in cells]
    return sorted(set.intersection(*sets)) if sets else []
