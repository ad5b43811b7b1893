"""benchmarks/gpu_check.py runs without a GPU: the CPU-possible parts run,
every GPU part is named as skipped, and the JSON has its documented shape."""

import json
import os
import subprocess
import sys

import tensorflow as tf

from tests.helpers import ROOT


def test_gpu_check_runs_on_cpu_and_names_what_it_skipped(tmp_path):
    out = tmp_path / "gpu_check"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", f"--out={out}",
                           "--cpu_steps=12"], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert set(report) >= {"command", "date", "machine", "gpu", "parts"}
    assert list(report["parts"]) == ["tests", "train", "fine_tuned", "profile", "serving"]
    failed = {k: v.get("reason") for k, v in report["parts"].items() if v["status"] == "failed"}
    assert not failed, failed
    if tf.config.list_physical_devices("GPU"):
        return  # a GPU machine runs every part
    assert report["gpu"] is None
    assert report["parts"]["fine_tuned"]["status"] == "skipped"
    assert report["parts"]["fine_tuned"]["reason"].startswith("no GPU")
    assert len(report["skipped_on_cpu"]) == 4
    train = report["parts"]["train"]
    assert train["status"] == "ran" and train["steps"] == 12 and train["s_per_iteration"] > 0
    top = report["parts"]["profile"]["top_ops"]
    assert top and all(row["self_us"] > 0 for row in top)
    assert any("MatMul" in row["type"] for row in top)  # the BiLSTMs' matmuls are in the trace
    serving = report["parts"]["serving"]
    assert serving["batch1_ms"] > 0 and serving["batch64_sentences_per_s"] > 0
    assert "Skipped without a GPU" in (out / "gpu_check.md").read_text()
    assert os.path.exists(out / "exported" / "1" / "saved_model.pb")
