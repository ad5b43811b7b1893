"""One prepared GPU check (issue 30): everything a short GPU loan should
measure, in one command that leaves JSON + markdown behind.

    python benchmarks/gpu_check.py --out=benchmarks/results/gpu_check

On a GPU (at most ~8 minutes): the tests that compare against cuDNN; 200
training iterations of ``configs/conll_ner.py`` (encoder input, target de)
under ``mirrored`` with ``mixed_bfloat16``, its features extracted on the
GPU first (that time reported), s/iteration; the same with the fine-tuned
encoder; a profiler trace of 10 steps and its top GPU kernels by time (read
from the trace with xprof, as TensorBoard's profile tab shows them);
serving latency and throughput of the encoder export. Without a GPU it runs
what a CPU can (the tests, the sample config's training, trace, top ops and
serving) and names every GPU part it skipped, so CI proves the command
runs. The JSON: ``{"command", "date", "machine", "gpu" (name or null),
"parts": {name: {"status": "ran" | "skipped" | "failed", "reason" (skipped,
failed), "seconds", ...the part's numbers}}}``.
"""

import json
import os
import statistics
import subprocess
import sys
import time
import traceback

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ROOT = common.ROOT
FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Folder for gpu_check.json and gpu_check.md.")
flags.DEFINE_integer("steps", 200, "Training iterations on a GPU.")
flags.DEFINE_integer("fine_tuned_steps", 50, "Iterations with the fine-tuned encoder (GPU).")
flags.DEFINE_integer("cpu_steps", 30, "Training iterations of the sample config without a GPU.")
flags.DEFINE_string("parts", "tests,train,fine_tuned,profile,serving", "Parts to run.")
flags.mark_flag_as_required("out")

GPU_ONLY = {"fine_tuned": "the fine-tuned encoder is sized for a GPU (2 CPU cores: "
                          "benchmarks/results/speed.md)"}


def gpu_name():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{len(gpus)} x {details.get('device_name', 'GPU')}"


def run(command, timeout=900):
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ...: exit {done.returncode}: "
                           f"{done.stderr.strip()[-1500:]}")
    return done


def train_flags(on_gpu, workdir, steps):
    if on_gpu:
        return ["--config=configs/conll_ner.py", "--config.target=de",
                "--config.train.strategy=mirrored", "--config.train.precision=mixed_bfloat16",
                f"--config.train.steps={steps}", f"--config.train.eval_every={steps}",
                f"--config.train.checkpoint_every={steps}", "--config.train.log_every=10",
                f"--config.data.feature_cache={os.path.join(FLAGS.out, 'features')}",
                f"--workdir={workdir}"]
    return ["--config=configs/sample_ner.py", f"--config.train.steps={steps}",
            f"--config.train.eval_every={steps}", f"--config.train.checkpoint_every={steps}",
            "--config.train.log_every=5", f"--workdir={workdir}"]


def seconds_per_iteration(workdir):
    """Median s/iteration over the logged intervals after the first (which
    holds tracing)."""
    rates = []
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("kind") == "train" and row.get("steps_per_second"):
                rates.append(row["steps_per_second"])
    rates = rates[1:] or rates
    return round(1.0 / statistics.median(rates), 4) if rates else None


def part_tests(on_gpu):
    """The tests that hold the BiLSTM's Keras/cuDNN kernels to the loop (on a
    GPU against cuDNN, else Keras' generic loop)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/layers/test_bilstm.py"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0:
        raise RuntimeError(f"pytest: {summary}\n{done.stdout[-2000:]}")
    return {"summary": summary, "against": "cuDNN" if on_gpu else "Keras' generic loop (CPU)"}


def part_train(on_gpu):
    workdir = os.path.join(FLAGS.out, "train")
    steps = FLAGS.steps if on_gpu else FLAGS.cpu_steps
    start = time.time()
    run([sys.executable, "-m", "man_tf.cli.train", *train_flags(on_gpu, workdir, 1)])
    first = time.time() - start  # feature extraction, building, one step
    start = time.time()
    profile = f"--profile_steps={steps // 2},{steps // 2 + 10}"
    run([sys.executable, "-m", "man_tf.cli.train", *train_flags(on_gpu, workdir, steps), profile])
    with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    return {"config": "conll_ner.py (encoder, de), mirrored, mixed_bfloat16" if on_gpu
            else "sample_ner.py (no GPU)", "steps": steps,
            "features_and_first_step_s": round(first, 1),
            "steps_s": round(time.time() - start, 1),
            "s_per_iteration": seconds_per_iteration(workdir),
            "precision": results.get("precision"), "replicas": results.get("replicas"),
            "dev_f1": results.get("dev_f1")}


def part_fine_tuned(on_gpu):
    workdir = os.path.join(FLAGS.out, "fine_tuned")
    flags_ = train_flags(on_gpu, workdir, FLAGS.fine_tuned_steps) + [
        "--config.model.encoder_trainable=True", "--config.model.encoder_remat=True"]
    start = time.time()
    run([sys.executable, "-m", "man_tf.cli.train", *flags_])
    return {"steps": FLAGS.fine_tuned_steps, "seconds_total": round(time.time() - start, 1),
            "s_per_iteration": seconds_per_iteration(workdir)}


def _table(data):
    """Google DataTable JSON (xprof's tool output) -> list of row dicts."""
    columns = [c["id"] for c in data["cols"]]
    return [{k: (cell or {}).get("v") for k, cell in zip(columns, row["c"])}
            for row in data.get("rows", [])]


def part_profile(on_gpu):
    """Top GPU kernels (GPU) or top TF ops of the step (CPU; tf.data's
    iterator events left out) by time in the training part's trace."""
    from xprof.convert import raw_to_tool_data

    traces = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(os.path.join(FLAGS.out, "train", "tensorboard"))
        for name in names if name.endswith(".xplane.pb"))
    if not traces:
        raise RuntimeError("no .xplane.pb trace under the training part's tensorboard/")
    if on_gpu:
        data, _ = raw_to_tool_data.xspace_to_tool_data([traces[-1]], "kernel_stats", {})
        rows = _table(json.loads(data))
        rows.sort(key=lambda r: -(r.get("total_duration_us") or 0))
        top = [{"kernel": r.get("kernel_name"), "op": r.get("op_name"),
                "total_us": r.get("total_duration_us"), "occurrences": r.get("occurrences"),
                "tensor_core": r.get("is_kernel_using_tensor_core")} for r in rows[:10]]
        return {"trace": traces[-1], "top_gpu_kernels": top}
    data, _ = raw_to_tool_data.xspace_to_tool_data([traces[-1]], "framework_op_stats", {})
    tables = json.loads(data)
    # The training step's ops: not idle time, not tf.data's iterator events
    # (the input pipeline runs beside the step, on its own threads).
    rows = [r for r in _table(tables[0] if isinstance(tables, list) else tables)
            if r.get("type") not in ("IDLE", "Dataset")]
    rows.sort(key=lambda r: -(r.get("total_self_time") or 0))
    top = [{"op": r.get("operation"), "type": r.get("type"),
            "self_us": r.get("total_self_time"), "occurrences": r.get("occurrences")}
           for r in rows[:10]]
    return {"trace": traces[-1], "top_ops": top}


def part_serving(on_gpu):
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer ops)

    base = os.path.join(FLAGS.out, "exported")
    run([sys.executable, "-m", "man_tf.cli.export", f"--workdir={FLAGS.out}/train",
         f"--export_base={base}"])
    loaded = tf.saved_model.load(os.path.join(base, "1"))
    serve = loaded.signatures["serving_default"]
    sentence = "Angela Weber besuchte am Montag Berlin und sprach dort mit der Presse ."

    def timed(batch, repeats):
        text = tf.constant([sentence] * batch)
        language = tf.constant(["de"] * batch)
        serve(text=text, language=language)  # warm
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            serve(text=text, language=language)["tags"].numpy()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    one, many = timed(1, 30), timed(64, 10)
    return {"device": "GPU" if on_gpu else "CPU", "batch1_ms": round(one * 1000, 2),
            "batch64_sentences_per_s": round(64 / many, 1), "sentence_tokens": 13}


PARTS = {"tests": part_tests, "train": part_train, "fine_tuned": part_fine_tuned,
         "profile": part_profile, "serving": part_serving}


def main(argv):
    del argv
    os.makedirs(FLAGS.out, exist_ok=True)
    gpu = gpu_name()
    report = {"command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:]),
              "date": common.today(), "machine": common.machine(), "gpu": gpu, "parts": {}}
    for name in FLAGS.parts.split(","):
        if name not in PARTS:
            raise SystemExit(f"--parts: unknown part {name!r}; expected {', '.join(PARTS)}")
        if gpu is None and name in GPU_ONLY:
            report["parts"][name] = {"status": "skipped", "reason": f"no GPU: {GPU_ONLY[name]}"}
            continue
        start = time.time()
        try:
            entry = {"status": "ran", **PARTS[name](gpu is not None)}
        except Exception as e:  # noqa: BLE001  -- one part failing must not lose the others
            entry = {"status": "failed", "reason": f"{type(e).__name__}: {e}",
                     "traceback": traceback.format_exc()[-3000:]}
        entry["seconds"] = round(time.time() - start, 1)
        report["parts"][name] = entry
        print(name, entry["status"], flush=True)
        write(report)
    if gpu is None:
        report["skipped_on_cpu"] = ["train on conll_ner.py under mirrored (the sample ran "
                                    "instead)", "top GPU kernels (top TF ops instead)",
                                    "serving on the GPU (on the CPU instead)",
                                    *[n for n in GPU_ONLY if n in FLAGS.parts.split(",")]]
    write(report)


def write(report):
    with open(os.path.join(FLAGS.out, "gpu_check.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    lines = [f"# GPU check ({report['date']}; {report['gpu'] or 'no GPU'}; {report['machine']})",
             "", f"`{report['command']}`", "", "| part | status | seconds | numbers |",
             "|---|---|---|---|"]
    for name, entry in report["parts"].items():
        numbers = {k: v for k, v in entry.items()
                   if k not in ("status", "seconds", "traceback", "top_gpu_kernels", "top_ops",
                                "trace")}
        lines.append(f"| {name} | {entry['status']} | {entry.get('seconds', '')} | "
                     f"{json.dumps(numbers, ensure_ascii=False)} |")
    for name, entry in report["parts"].items():
        top = entry.get("top_gpu_kernels") or entry.get("top_ops")
        if top:
            lines += ["", f"Top {'GPU kernels' if 'top_gpu_kernels' in entry else 'TF ops'} "
                          f"by time ({name}):", "", "| " + " | ".join(top[0]) + " |",
                      "|" + "---|" * len(top[0])]
            lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in top]
    if report.get("skipped_on_cpu"):
        lines += ["", "Skipped without a GPU: " + "; ".join(report["skipped_on_cpu"]) + "."]
    with open(os.path.join(FLAGS.out, "gpu_check.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    app.run(main)
