"""benchmarks/common.seeds_table: means over seeds and the paired differences
the results' markdown quotes (MAN-MoE minus the baseline; a self-training run
minus its own teacher; a labeled variant minus its plain one)."""

from benchmarks import common


def _runs(values, teacher=None):
    """{cell: [{"seed", "dev_f1", "test_f1"(, "teacher")}]} from {cell: [test, ...]}."""
    out = {}
    for cell, tests in values.items():
        out[cell] = []
        for seed, test in enumerate(tests, start=1):
            row = {"seed": seed, "dev_f1": test + 10, "test_f1": test}
            if teacher is not None:
                row["teacher"] = {"dev_f1": test + 10 - teacher, "test_f1": test - teacher}
            out[cell].append(row)
    return out


def _table(lines, title):
    start = next(i for i, line in enumerate(lines) if title in line)
    return next(line for line in lines[start:] if line.startswith("| difference"))


def test_paired_differences_by_seed():
    seeds = {"steps": 10, "defaults": "d", "command": "c", "runs": {
        "man_moe": _runs({"de": [60, 62], "es": [50, 54]}),
        "concat_bilstm": _runs({"de": [61, 60], "es": [50, 50]}),
        "man_moe (self_training)": _runs({"de": [65, 66], "es": [55]}, teacher=1.5),
        "man_moe (wide)": _runs({"de": [64]}),
    }}
    lines = common.seeds_table(seeds, ["de", "es"])
    assert "| man_moe | 61.00 ± 1.41 [71.00] (n=2) | 52.00 ± 2.83 [62.00] (n=2) | " \
           "56.50 ± 2.12 (n=2) |" in lines
    # seed 1: de -1, es 0; seed 2: de +2, es +4 -> cells -0.5±2.12, +2±2.83; mean of (-0.5, 3)
    assert _table(lines, "man_moe minus concat_bilstm") == (
        "| difference | +0.50 ± 2.12 [+0.50] (n=2) | +2.00 ± 2.83 [+2.00] (n=2) | "
        "+1.25 ± 2.47 [+1.25] (n=2) |")
    # against its own teacher, not against the plain man_moe runs; es has seed 1 only
    assert _table(lines, "man_moe (self_training) minus its teacher") == (
        "| difference | +1.50 ± 0.00 [+1.50] (n=2) | +1.50 [+1.50] (n=1) | "
        "+1.50 [+1.50] (n=1) |")
    assert _table(lines, "man_moe (wide) minus man_moe") == (
        "| difference | +4.00 [+4.00] (n=1) | — | — |")
    assert not any("self_training) minus man_moe " in line for line in lines)
    # one run has no spread to show: no "± 0.00" beside it
    assert "| man_moe (wide) | 64.00 [74.00] (n=1) | — | — |" in lines
