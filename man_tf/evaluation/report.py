"""What-to-share report: plots and a summary from a training workdir.

Reads ``metrics.jsonl`` (written while training) and ``results.json``
(written at the end) and draws, with matplotlib (Agg, no display needed):

* ``expert_weights.png``: average gate weight per source expert, for C and
  for F_p, on the target's test (else dev) sentences: which sources the
  target borrows from (the paper's analysis);
* ``discriminator.png``: D's training accuracy over steps (near chance means
  F_s is language-invariant);
* ``dev_f1.png``: dev F1 per language over steps.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_history(path):
    """metrics.jsonl -> list of dicts; the last record per (kind, step, language)
    wins (a resumed run repeats steps) and a line cut by a crash is skipped."""
    records = {}
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[(record["kind"], record["step"], record.get("language"))] = record
    return sorted(records.values(), key=lambda r: r["step"])


def _bar(ax, weights, title):
    names = list(weights)
    ax.bar(names, [weights[n] for n in names], color="#4c72b0")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.set_ylabel("mean gate weight")
    for i, n in enumerate(names):
        ax.text(i, weights[n] + 0.02, f"{weights[n]:.2f}", ha="center")


def write_report(workdir, output_dir=None):
    """Writes the PNGs and ``report.md``; returns the list of written paths."""
    output_dir = output_dir or os.path.join(workdir, "report")
    results_path = os.path.join(workdir, "results.json")
    if not os.path.exists(results_path):
        raise FileNotFoundError(f"{results_path}: not found; the report needs a finished "
                                f"man-tf-train run")
    os.makedirs(output_dir, exist_ok=True)
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    history = read_history(os.path.join(workdir, "metrics.jsonl"))
    split = "test" if "test_expert_weights" in results else "dev"
    target, sources = results["target"], results["sources"]
    written = []

    gates = [("C (predictor)", results.get(f"{split}_expert_weights")),
             ("F_p (private features)", results.get(f"{split}_private_expert_weights"))]
    gates = [(name, w) for name, w in gates if w]
    fig, axes = plt.subplots(1, len(gates), figsize=(5 * len(gates), 4), squeeze=False)
    for ax, (name, weights) in zip(axes[0], gates):
        _bar(ax, weights, f"{name}: {target} {split} borrows from")
    fig.tight_layout()
    written.append(os.path.join(output_dir, "expert_weights.png"))
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    train = [r for r in history if r["kind"] == "train"]
    fig, ax = plt.subplots(figsize=(6, 4))
    d = [(r["step"], r["d_accuracy"]) for r in train if "d_accuracy" in r]
    if d:
        ax.plot(*zip(*d), label="D accuracy")
        ax.axhline(1 / (len(sources) + 1), color="grey", linestyle="--", label="chance")
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")
    ax.set_title("language discriminator (training batches)" if d else "no discriminator")
    ax.legend() if d else None
    fig.tight_layout()
    written.append(os.path.join(output_dir, "discriminator.png"))
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    dev = [r for r in history if r["kind"] == "dev"]
    for language in sorted({r["language"] for r in dev}):
        points = [(r["step"], r["score"]) for r in dev
                  if r["language"] == language]
        ax.plot(*zip(*points), marker="o", label=language)
    ax.set_xlabel("step")
    # results.json names the run's selection metric (its task's).
    metric, name = results["metric"], results["metric_name"]
    ax.set_ylabel(name)
    ax.set_title(f"dev {name}")
    if dev:
        ax.legend()
    fig.tight_layout()
    written.append(os.path.join(output_dir, "dev_f1.png"))
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    lines = [f"# What to share: {', '.join(sources)} -> {target}", "",
             f"Best checkpoint: step {results['best_step']} of {results['steps']}; "
             f"{target} dev {name} {results.get(f'dev_{metric}', float('nan')):.2f}, "
             f"test {name} {results.get(f'test_{metric}', float('nan')):.2f}.", "",
             f"Average expert weights on the {target} {split} sentences (every token):", "",
             "| source | " + " | ".join(name for name, _ in gates) + " |",
             "|---|" + "---|" * len(gates)]
    for source in sources:
        lines.append(f"| {source} | " + " | ".join(f"{w[source]:.3f}" for _, w in gates) + " |")
    if d:
        lines += ["", f"D accuracy: first {d[0][1]:.3f}, last {d[-1][1]:.3f} "
                  f"(chance {1 / (len(sources) + 1):.3f})."]
    lines += ["", "![expert weights](expert_weights.png)", "",
              "![discriminator](discriminator.png)", "", "![dev F1](dev_f1.png)"]
    written.append(os.path.join(output_dir, "report.md"))
    with open(written[-1], "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return written
