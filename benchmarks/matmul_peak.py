"""This machine's measured matmul peak in float32 and bfloat16 (issue 30):
the ceiling a training step's floating-point rate is compared with.

    python benchmarks/matmul_peak.py      # -> results/matmul_peak.{json,md}

Square matmuls of growing size in one ``tf.function`` (TensorFlow's CPU
kernels, oneDNN, all cores TensorFlow uses), timed over repeats after a
warm-up; the peak is the best size's GFLOP/s (2·n³ per product). Run it
alone: another process on the cores lowers it.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SIZES = (256, 512, 1024, 2048, 3072)


def measure(dtype, n, seconds=2.0):
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal([n, n], seed=[1, 2]), dtype)
    b = tf.cast(tf.random.stateless_normal([n, n], seed=[3, 4]), dtype)

    @tf.function
    def ten_products(a, b):
        out = a
        for _ in range(10):
            out = tf.matmul(out, b) * tf.cast(1e-2, dtype)  # scaled: values stay finite
        return out

    ten_products(a, b).numpy()  # warm-up (tracing, oneDNN primitive creation)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ten_products(a, b).numpy()
        runs += 1
    elapsed = time.perf_counter() - start
    return 2 * n ** 3 * 10 * runs / elapsed / 1e9


def main():
    import tensorflow as tf

    results = {"command": "python benchmarks/matmul_peak.py", "date": common.today(),
               "machine": common.machine(), "commit": common.git_commit(),
               "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                           "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
               "gflops": {}}
    for dtype in ("float32", "bfloat16"):
        results["gflops"][dtype] = {str(n): round(measure(tf.as_dtype(dtype), n), 1)
                                    for n in SIZES}
        print(dtype, results["gflops"][dtype], flush=True)
    results["peak_gflops"] = {d: max(v.values()) for d, v in results["gflops"].items()}
    # Other machines' peaks stay (step_cost.json's runs were set against them).
    previous = common.load("matmul_peak.json")
    results["earlier"] = [e for e in [{k: v for k, v in previous.items() if k != "earlier"}]
                          + previous.get("earlier", [])
                          if e.get("machine") and e["machine"] != results["machine"]]
    common.save("matmul_peak.json", results)
    lines = [f"# Matmul peak ({results['date']}, {results['machine']}, commit "
             f"{results['commit']})", "", f"`{results['command']}`: square matmuls, 10 "
             f"products per call, best of sizes; GFLOP/s (2·n³ per product).", "",
             "| dtype | " + " | ".join(f"n={n}" for n in SIZES) + " | peak |",
             "|---|" + "---|" * (len(SIZES) + 1)]
    for dtype, by_size in results["gflops"].items():
        lines.append(f"| {dtype} | " + " | ".join(str(by_size[str(n)]) for n in SIZES) +
                     f" | **{results['peak_gflops'][dtype]}** |")
    if results["earlier"]:
        lines += ["", "Measured earlier on other machines (peaks; the runs of "
                  "step_cost.md measured there are set against them):", "",
                  "| machine | date, commit | float32 | bfloat16 |", "|---|---|---|---|"]
        lines += [f"| {e['machine']} | {e['date']}, {e['commit']} | "
                  f"{e['peak_gflops'].get('float32')} | {e['peak_gflops'].get('bfloat16')} |"
                  for e in results["earlier"]]
    with open(os.path.join(common.RESULTS, "matmul_peak.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
