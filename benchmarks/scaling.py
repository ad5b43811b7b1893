"""Training throughput for 1 and 2 replicas (logical CPU devices here; GPUs
where the machine has them), default CoNLL config, target de.

    python benchmarks/scaling.py [--steps=20]

Writes benchmarks/results/scaling.json and scaling.md. On one 2-core CPU,
two logical devices share the same cores: this measures the overhead of
replication (splitting the batch, all-reducing gradients), not a speed-up.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402
from benchmarks.speed import measure  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    runs = {"1 replica (default strategy)": {},
            "2 replicas (mirrored, 2 logical CPU devices)": {"train.strategy": "mirrored",
                                                            "train.num_cpu_devices": 2}}
    results = {name: {"overrides": o, **measure(o, args.steps, args.warmup)}
               for name, o in runs.items()}
    data = {"command": "python benchmarks/scaling.py " + " ".join(sys.argv[1:]),
            "machine": common.machine(), "date": common.today(), "commit": common.git_commit(),
            "device": "CPU (no GPU on this machine)", "global_batch": "16 sentences per "
            "language per stream, split evenly across replicas", "runs": results}
    common.save("scaling.json", data)
    lines = ["# Scaling: 1 vs 2 replicas", "", f"`{data['command']}` on {data['machine']}, "
             f"{data['date']} (commit {data['commit']}); {data['device']}; global batch: "
             f"{data['global_batch']}.", "",
             "| run | replicas | iterations/s | source tokens/s |", "|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['replicas']} | {r['iterations_per_s']:.2f} | "
                     f"{r['source_tokens_per_s']:.0f} |")
    lines += ["", "Both logical devices run on the same 2 cores, so 2 replicas cannot be faster "
              "here; on GPUs each replica has its own device."]
    with open(os.path.join(common.RESULTS, "scaling.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
