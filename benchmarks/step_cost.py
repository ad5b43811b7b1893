"""One training iteration's floating-point work, by part, against this machine's matmul peak.

    python benchmarks/step_cost.py [--label=after] [--batches=50] [--steps=10]
        [--warmup=30] [--timed_steps=100] [--set=model.FIELD=VALUE ...]
    python benchmarks/step_cost.py --label=after --timing_only   # time it again

For the default CoNLL config with the encoder input (target de; what
``benchmarks/speed.py``'s "encoder input" row times), on the real data:

* **FLOPs by part**, counted per layer from the shapes of real batches of
  the training stream (the mean over ``--batches`` iterations): the
  matmuls and convolutions of the char-CNN, F_s and F_p's BiLSTMs, F_p's
  and C's experts and gates, D, each in the D update and the main update,
  forward and backward (a trained pass costs 3x its forward: the forward,
  the input gradient and the weight gradient; a pass whose input or weights
  take no gradient costs 2x), over the positions each part runs (the
  BiLSTMs' packed rows, the experts' real tokens; every padded position
  under XLA), and the same work on the real tokens alone (what no padding
  scheme can avoid). Element-wise work (activations, the CRF's
  forward algorithm, Adam's updates) is listed apart: it is not matmul work
  and the matmul peak says nothing about it. The counting functions are
  checked against the matmuls and convolutions of the traced TensorFlow
  graph on small cases (tests/test_step_cost.py).
* **Time by part**: a profiler trace of ``--steps`` iterations (after
  ``--warmup``), each TensorFlow op's self time (xprof's
  framework_op_stats, what TensorBoard's profile tab shows) summed by the
  layer its name says it belongs to.
* **The step's share of the peak**: counted FLOPs / seconds per iteration
  (``--timed_steps`` after ``--warmup``, no profiler), against ``benchmarks/results/matmul_peak.json`` (float32 and
  bfloat16, this machine).

Wall time on this shared 2-core machine moves by up to 10% between
processes minutes apart, so one timing cannot tell a 5% cut: ``--timing_only``
times a stored label's config again, in a new process (run it alternately
with the label compared), appends the timing to the label's
``seconds_per_iteration_runs`` and stores their mean as its s/iteration
(the code must be the label's: ``common.code_commit``, the last commit
that changed man_tf, configs or the benchmarks' scripts).

Writes ``benchmarks/results/step_cost.json`` (one entry per ``--label``, so
a "before" and an "after" sit side by side) and the FLOP table in
``benchmarks/results/speed.md`` (``python benchmarks/speed.py --table_only``
rewrites it from both files).
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

FEATURES = os.path.join(common.ROOT, "workdirs", "conll_3to1", "features")

# -- counting (pure functions of shapes; 2 FLOPs per multiply-add) -----------


def dense(units, fan_in, fan_out):
    """A dense layer's forward matmul on ``units`` rows."""
    return 2 * units * fan_in * fan_out


def bilstm_layer(tokens, dim, units):
    """One bidirectional LSTM layer's forward matmuls over ``tokens`` padded
    positions (the loop runs every position of the padded batch): the input
    projection and the recurrent matmul, both directions."""
    return 2 * (dense(tokens, dim, 4 * units) + dense(tokens, units, 4 * units))


def bilstm(tokens, dim, hidden, layers):
    """A :class:`BiLSTMEncoder`'s forward matmuls (``hidden``: both directions)."""
    total = 0
    for _ in range(layers):
        total += bilstm_layer(tokens, dim, hidden // 2)
        dim = hidden
    return total


def conv_pooling(rows, time, dim, filters, kernel_sizes):
    """A :class:`MaskedConvPooling`'s forward convolutions: ``rows``
    sequences of ``time`` positions (padded to the widest kernel)."""
    time = max(time, max(kernel_sizes))
    return sum(rows * (time - k + 1) * 2 * k * dim * filters for k in kernel_sizes)


def moe(units, input_dim, hidden_units, output_dim, experts):
    """A :class:`MixtureOfExperts`' forward matmuls: (gate, experts)."""
    sizes = [input_dim, *hidden_units, output_dim]
    experts_flops = dense(units, input_dim, experts * sizes[1])
    for fan_in, fan_out in zip(sizes[1:-1], sizes[2:]):
        experts_flops += experts * dense(units, fan_in, fan_out)
    return dense(units, input_dim, experts), experts_flops


def char_cnn(word_widths, model):
    """The char-CNN's forward matmuls: ``word_widths`` = the (number of
    distinct words, characters convolved) of each length group."""
    conv = sum(conv_pooling(n, width, model.char_embedding_dim, model.char_filters,
                            model.char_kernel_sizes) for n, width in word_widths)
    words = sum(n for n, _ in word_widths)
    projection = dense(words, model.char_filters * len(model.char_kernel_sizes),
                       model.char_output_dim)
    return conv, projection


def discriminator(rows, time, model, dim, num_languages):
    """D's (the CNN's) forward matmuls: (convolutions, dense layers)."""
    conv = conv_pooling(rows, time, dim, model.discriminator_filters,
                        model.discriminator_kernel_sizes)
    width = model.discriminator_filters * len(model.discriminator_kernel_sizes)
    layers = dense(rows, width, model.discriminator_hidden)
    for _ in range(model.discriminator_layers):
        layers += dense(rows, model.discriminator_hidden, model.discriminator_hidden)
    return conv, layers + dense(rows, model.discriminator_hidden, num_languages)


def iteration_flops(shapes, model, input_dim, num_sources, num_tags, num_languages):
    """Matmul/convolution FLOPs of one iteration, by part, from one
    iteration's ``shapes`` (see :func:`batch_shapes`); forward x backward
    multipliers as the module docstring says."""
    parts = collections.OrderedDict()

    def add(name, flops):
        parts[name] = parts.get(name, 0) + flops

    d_rows, d_time = shapes["d_rows"], shapes["d_time"]
    u_rows, u_time = shapes["unlabeled_rows"], shapes["unlabeled_time"]
    lstm = shapes["lstm_tokens"]  # the positions each BiLSTM's loop runs
    own = d_rows > 0  # a D update on a batch of its own (discriminator_batch="own")
    if model.use_char_cnn:
        if own:
            conv, projection = char_cnn(shapes["d_char_groups"], model)
            add("char-CNN", conv + projection)                 # D update: forward
        conv, projection = char_cnn(shapes["main_char_groups"], model)
        add("char-CNN", 2 * conv + 3 * projection)             # frozen characters: no input grad
    if own:
        add("F_s BiLSTM", bilstm(lstm["d"], input_dim, model.shared_hidden,
                                 model.lstm_layers))           # D update: forward
    add("F_s BiLSTM", 3 * bilstm(lstm["main"], input_dim, model.shared_hidden,
                                 model.lstm_layers))
    tokens = shapes["head_tokens"]
    if model.use_private:
        add("F_p BiLSTM", 3 * bilstm(lstm["labeled"], input_dim, model.private_hidden,
                                     model.lstm_layers))
        gate, experts = moe(tokens, model.private_hidden,
                            (model.expert_hidden,) * (model.private_moe_layers - 1),
                            model.private_hidden, num_sources)
        add("F_p experts", 3 * experts)
        add("gates (F_p, C)", 2 * gate)                         # the gate reads a stop-gradient
    features = model.shared_hidden + (model.private_hidden if model.use_private else 0)
    gate, experts = moe(tokens, features,
                        (model.predictor_hidden or features,) * model.predictor_layers,
                        num_tags, num_sources if model.use_predictor_moe else 1)
    add("C experts", 3 * experts)
    add("gates (F_p, C)", 2 * gate)
    # D update: convolutions over stop-gradient features (weight gradient only),
    # dense layers trained. Main update: D's weights untouched, input gradient
    # only; with D trained there ("main"), weight gradients too.
    if own:
        conv, layers = discriminator(d_rows, d_time, model, model.shared_hidden, num_languages)
        add("D", 2 * conv + 3 * layers)
    conv, layers = discriminator(u_rows, u_time, model, model.shared_hidden, num_languages)
    add("D", (2 * conv + 2 * layers) if own else (3 * conv + 3 * layers))
    return parts


def elementwise_estimate(shapes, model, params):
    """A rough count of the element-wise work, for scale only: LSTM gates
    (~10 FLOPs per gate value, forward and backward), and Adam (~12 FLOPs
    per parameter)."""
    lstm = shapes["lstm_tokens"]
    main_tokens = lstm["d"] + 3 * lstm["main"]
    private_tokens = 3 * lstm["labeled"]
    gates = 10 * model.lstm_layers * 4 * (main_tokens * model.shared_hidden
                                          + private_tokens * model.private_hidden)
    return {"LSTM gates (estimate)": gates, "Adam updates (estimate)": 12 * params}


# -- the same count read from a traced graph (the check) ----------------------

MATMULS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
CONVOLUTIONS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def _dims(tensor):
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined():
        raise ValueError(f"{tensor.name}: shape {shape} is not static; trace the "
                         f"function with fully defined input shapes")
    return shape.as_list()


def op_flops(op):
    """FLOPs of one matmul or convolution op from its static shapes
    (TensorFlow's own flops registry ignores BatchMatMul's adjoint flags)."""
    if op.type in MATMULS:
        a, b = _dims(op.inputs[0]), _dims(op.inputs[1])
        if op.type == "MatMul":
            ta, tb = op.get_attr("transpose_a"), op.get_attr("transpose_b")
        else:
            ta, tb = op.get_attr("adj_x"), op.get_attr("adj_y")
        m, k = (a[-1], a[-2]) if ta else (a[-2], a[-1])
        n = b[-2] if tb else b[-1]
        batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
        return 2 * int(np.prod(batch, dtype=np.int64)) * m * k * n
    if op.type in CONVOLUTIONS:
        # All three cost 2 x (output positions x filters) x (window x input channels).
        if op.type == "Conv2D":
            out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
        elif op.type == "Conv2DBackpropInput":
            out, kernel = _dims(op.inputs[2]), _dims(op.inputs[1])
        else:
            out, kernel = _dims(op.inputs[2]), _dims(op.outputs[0])
        return 2 * int(np.prod(out, dtype=np.int64)) * kernel[0] * kernel[1] * kernel[2]
    return 0


def live_ops(graph):
    """The ops of ``graph`` that run: those its outputs or its stateful ops
    (variable updates) depend on. A gradient tape traces both gradients of
    a matmul or convolution even where one is never used (D's weights in
    the main update, a stop-gradient input); TensorFlow prunes those before
    running the graph, and so does this count."""
    live, stack = set(), [t.op for t in graph.outputs] + [
        op for op in graph.get_operations() if op._is_stateful]
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op in live]


def graph_flops(graph, by_name=None):
    """Matmul and convolution FLOPs of the ops of a traced graph that run
    (:func:`live_ops`), loop bodies times their trip counts (While ops with
    a static ``maximum_iterations``, as ``tf.scan`` over a static length
    makes them), branches of ``If``/``Case`` counted whole. ``by_name``: a
    dict to add each op's FLOPs into."""
    total = 0
    for op in live_ops(graph):
        flops = op_flops(op)
        if flops and by_name is not None:
            by_name[op.name] = by_name.get(op.name, 0) + flops
        total += flops
        times = 1
        if op.type in ("While", "StatelessWhile"):
            times = tf_static_value(op.inputs[1])
            if times is None:
                raise ValueError(f"{op.name}: no static trip count")
        for attr in ("body", "then_branch", "else_branch", "f"):
            try:
                function = op.get_attr(attr)
            except ValueError:
                continue
            inner = graph._get_function(function.name)  # the FuncGraph traced here
            if inner is not None and hasattr(inner, "graph"):
                inner_by_name = {} if by_name is not None else None
                total += int(times) * graph_flops(inner.graph, inner_by_name)
                for name, value in (inner_by_name or {}).items():
                    by_name[name] = by_name.get(name, 0) + int(times) * value
    return total


def tf_static_value(tensor):
    import tensorflow as tf

    value = tf.get_static_value(tensor)
    return None if value is None else int(value)


# -- shapes of real batches --------------------------------------------------


def char_groups(chars, lengths, kernel_sizes):
    """(distinct words, characters convolved) per length group, as
    :class:`CharCNN` groups and cuts them."""
    from man_tf.layers.char_cnn import LENGTH_GROUPS

    mask = np.arange(chars.shape[1])[None, :] < lengths[:, None]
    words = np.unique(chars[mask], axis=0)
    word_lengths = (words > 0).sum(axis=1)
    group = np.zeros_like(word_lengths)
    for bound in LENGTH_GROUPS:
        group += word_lengths > bound
    widest, width = max(kernel_sizes), chars.shape[2]
    out = []
    for g in range(len(LENGTH_GROUPS) + 1):
        chosen = word_lengths[group == g]
        if len(chosen):
            out.append((int(len(chosen)), int(min(max(chosen.max(), widest), width))))
    return out


def _pad_chars(a, b):
    """Two batches' chars stacked as the model stacks them (padded to both)."""
    time, width = max(a.shape[1], b.shape[1]), max(a.shape[2], b.shape[2])
    pad = lambda c: np.pad(c, [(0, 0), (0, time - c.shape[1]), (0, width - c.shape[2])])
    return np.concatenate([pad(a), pad(b)])


def packed_positions(lengths):
    """Rows x capacity of :class:`RowPacking`'s packing of ``lengths``
    (first-fit, longest first, capacity the longest length)."""
    capacity = max(int(np.max(lengths, initial=0)), 1)
    loads = []
    for length in sorted(map(int, lengths), reverse=True):
        for i, load in enumerate(loads):
            if load + length <= capacity:
                loads[i] += length
                break
        else:
            loads.append(length)
    return max(len(loads), 1) * capacity


def batch_shapes(element, kernel_sizes, packed=True, real_units=True):
    """One training-stream element -> the shapes :func:`iteration_flops`
    reads. ``packed``: the BiLSTMs run on packed rows (the default;
    False under XLA); ``real_units``: the head's experts run on real tokens
    only (likewise)."""
    labeled, unlabeled = element["labeled"], element["unlabeled"]
    # No D batch of its own (discriminator_batch="main"): an empty one.
    d = element["discriminator"][0] if element["discriminator"] else {
        "lengths": np.zeros([0], np.int32), "words": np.zeros([0, 0], np.int32),
        "chars": np.zeros([0, 0, 0], np.int32)}
    np_ = lambda t: np.asarray(t)
    l_len, u_len, d_len = (np_(x["lengths"]) for x in (labeled, unlabeled, d))
    l_rows, l_time = labeled["words"].shape
    main_time = max(l_time, unlabeled["words"].shape[1])
    if packed:
        lstm = {"d": packed_positions(d_len) if len(d_len) else 0,
                "labeled": packed_positions(l_len),
                "main": packed_positions(np.concatenate([l_len, u_len]))}
    else:
        # F_p and the head run on the labeled rows of the stacked batch.
        lstm = {"d": int(np.prod(d["words"].shape)), "labeled": int(l_rows * main_time),
                "main": int((l_rows + unlabeled["words"].shape[0]) * main_time)}
    return {
        "lstm_tokens": lstm,
        "head_tokens": int(l_len.sum()) if real_units else int(l_rows * main_time),
        "d_rows": int(d["words"].shape[0]), "d_time": int(d["words"].shape[1]),
        "labeled_rows": int(labeled["words"].shape[0]),
        "labeled_time": int(labeled["words"].shape[1]),
        "unlabeled_rows": int(unlabeled["words"].shape[0]),
        "unlabeled_time": int(unlabeled["words"].shape[1]),
        "main_time": int(max(labeled["words"].shape[1], unlabeled["words"].shape[1])),
        "real_tokens": {"d": int(d_len.sum()), "labeled": int(l_len.sum()),
                        "unlabeled": int(u_len.sum())},
        "d_char_groups": char_groups(np_(d["chars"]), d_len, kernel_sizes) if len(d_len) else [],
        "main_char_groups": char_groups(_pad_chars(np_(labeled["chars"]), np_(unlabeled["chars"])),
                                        np.concatenate([l_len, u_len]), kernel_sizes),
    }


# -- the run -----------------------------------------------------------------

# Which part an op belongs to, from the layer names in its op name (first match).
PART_OF_NAME = (("char_cnn", "char-CNN"), ("shared_encoder", "F_s BiLSTM"),
                ("private_encoder", "F_p BiLSTM"), ("expert_gate", "gates (F_p, C)"),
                ("private_experts", "F_p experts"), ("predictor", "C experts"),
                ("language_discriminator", "D"), ("adam", "optimizer updates"),
                ("Adam", "optimizer updates"), ("Iterator", "input pipeline"),
                ("crf", "CRF"), ("encoder_mix", "encoder mix"))


def part_of(op_name):
    for key, part in PART_OF_NAME:
        if key in op_name:
            return part
    return "other"


def build(overrides=()):
    """(config, trainer, training stream, data) for the CoNLL encoder config
    (target de), features from the benchmarks' cache (extracted if absent)."""
    import ast

    config = common.conll_config("encoder")
    config.data.feature_cache = FEATURES
    for item in overrides:
        key, value = item.split("=", 1)
        section, field = key.split(".")
        config[section][field] = ast.literal_eval(value)
    setup = common.training_setup(config)
    return config, setup.trainer, setup.stream, setup.data, setup.tags


# The CoNLL runs of the code after the cuts (benchmarks/conll_3to1.py
# --section=encoder --label=...), by seed, against the "seeds" section's
# MAN-MoE runs of the code before them.
QUALITY_RUNS = {"step_cuts": 1, "step_cuts_seed2": 2}


def quality_lines():
    encoder = common.load("conll_3to1.json").get("encoder", {})
    before = encoder.get("seeds", {}).get("runs", {}).get("man_moe", {})
    variants = encoder.get("embedding_variants", {})
    after = {}
    for label, seed in QUALITY_RUNS.items():
        for target, run in variants.get(label, {}).get("man_moe", {}).items():
            after.setdefault(target, []).append((seed, run))
    if not (before and after):
        return []
    lines = ["", "Quality after the cuts (CoNLL 3->1, encoder input, MAN-MoE, 1,000 iterations, "
             "issue-28 defaults; `python benchmarks/conll_3to1.py --section=encoder --steps=1000 "
             "--variants=man_moe --label=step_cuts` and `--label=step_cuts_seed2 "
             "--extra=--config.seed=2`; the code before: the \"seeds\" section of "
             "benchmarks/results/conll_3to1.md). Packing and the hand-written backward give the "
             "same values (tests), but dropout draws its masks on the packed rows, so a run "
             "after is another random draw, not a replay. The seed-1 runs ran commit "
             "ebc5495 (before the hand-written backward), the seed-2 runs ad1a3a9:", "",
             "| target | before: test F1 by seed 1, 2, 3 (dev) | mean ± sd | after: test F1 by "
             "seed (dev) | after minus before, same seed (test / dev) |", "|---|---|---|---|---|"]
    diffs = []
    for target in sorted(after):
        runs = {r["seed"]: r for r in before.get(target, [])}
        if not runs:
            continue
        tests = [r["test_f1"] for r in runs.values()]
        mean, sd = common.mean_sd(tests)
        pairs = []
        for seed, run in sorted(after[target], key=lambda x: x[0]):
            if seed in runs:
                d_test = run["test_f1"] - runs[seed]["test_f1"]
                d_dev = run["dev_f1"] - runs[seed]["dev_f1"]
                diffs.append((d_test, d_dev))
                pairs.append(f"seed {seed}: {d_test:+.2f} / {d_dev:+.2f}")
        lines.append(
            f"| {target} | " + ", ".join(f"{runs[s]['test_f1']:.2f} ({runs[s]['dev_f1']:.2f})"
                                         for s in sorted(runs))
            + f" | {mean:.2f} ± {sd:.2f} | "
            + ", ".join(f"{run['test_f1']:.2f} ({run['dev_f1']:.2f})"
                        for _, run in sorted(after[target], key=lambda x: x[0]))
            + " | " + "; ".join(pairs) + " |")
    if diffs:
        lines += ["", f"Mean difference over {len(diffs)} target x seed pairs: test "
                  f"{sum(d for d, _ in diffs) / len(diffs):+.2f}, dev "
                  f"{sum(d for _, d in diffs) / len(diffs):+.2f} F1 (the before runs' own "
                  "spread over seeds: sd up to 1.08 test)."]
    return lines


def seconds_text(run):
    """A run's s/iteration: one timing, or the mean ± sd of several (n)."""
    timings = run.get("seconds_per_iteration_runs") or [run["seconds_per_iteration"]]
    if len(timings) == 1:
        return f"{timings[0]:.3f}"
    mean, sd = common.mean_sd(timings)
    return f"{mean:.3f} ± {sd:.3f} ({len(timings)})"


def markdown(stored):
    """The FLOP table of ``step_cost.json`` (runs side by side) as markdown lines."""
    runs = stored.get("runs", {})
    if not runs:
        return []
    labels = list(runs)
    first = runs[labels[0]]
    parts = list(dict.fromkeys(p for r in runs.values() for p in r["matmul_gflop_per_iteration"]))
    op_parts = list(dict.fromkeys(p for r in runs.values() for p in r["op_seconds_per_iteration"]))
    lines = ["", "## One training iteration against this machine's matmul peak", "",
             "`python benchmarks/step_cost.py --label=LABEL` (CoNLL, encoder input, target de, "
             "the default config and precision); each column is one run alone on the "
             "machine its row of the second table names (machines differ: compare runs of "
             "one machine, and each run's share of its own machine's peak). FLOPs: the matmuls and convolutions "
             f"counted per layer from the shapes of {first['batches_counted']} real iterations "
             "(forward and backward; the count equals the traced training step's on small "
             "cases, tests/test_step_cost.py). Seconds: each op's self time in a profiler "
             f"trace of {first['steps_profiled']} iterations, summed by the layer its name "
             "names (both cores' ops add up, so a column's sum exceeds the wall time). "
             "s/iteration: the wall time of 100 iterations after 30 warm-up, no profiler "
             "(mean ± sd (n) where the run was timed again in n processes: "
             "`--timing_only`).", "",
             "| part | " + " | ".join(f"GFLOP ({l})" for l in labels) + " | "
             + " | ".join(f"op s ({l})" for l in labels) + " |",
             "|---|" + "---|" * (2 * len(labels))]
    for part in dict.fromkeys(parts + op_parts):
        lines.append(f"| {part} | " + " | ".join(
            f"{r['matmul_gflop_per_iteration'][part]:.2f}"
            if part in r["matmul_gflop_per_iteration"] else "-" for r in runs.values())
            + " | " + " | ".join(f"{r['op_seconds_per_iteration'].get(part, 0):.3f}"
                                 for r in runs.values()) + " |")
    lines.append("| **total** | " + " | ".join(f"**{r['matmul_gflop_total']:.1f}**"
                                               for r in runs.values())
                 + " | " + " | ".join(f"**{r['op_seconds_total']:.3f}**" for r in runs.values())
                 + " |")
    lines += ["", "| run | commit, date | machine | s/iteration | matmul GFLOP/s run | share of "
              "float32 peak | share of bfloat16 peak | GFLOP/s on real tokens (share of bf16 "
              "peak) | BiLSTM loop positions (D, F_p, F_s) | real tokens (D, labeled, "
              "unlabeled) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in runs.items():
        bf16 = run_peak(r, "bfloat16")
        loop = r["tokens_per_iteration"].get("bilstm_loop") or {}
        padded, real = r["tokens_per_iteration"]["padded"], r["tokens_per_iteration"]["real"]
        positions = loop or padded
        lines.append(
            f"| {label} | {r['commit']}, {r['date']} | {r['machine']} | {seconds_text(r)} | "
            f"{r['gflops_achieved']:.0f} | {100 * r['share_of_peak'].get('float32', 0):.0f}% | "
            f"{100 * r['share_of_peak'].get('bfloat16', 0):.0f}% | "
            + (f"{r['useful_gflops_achieved']:.0f} ({100 * r['useful_gflops_achieved'] / bf16:.0f}%)"
               if "useful_gflops_achieved" in r and bf16 else "-") + " | "
            f"{positions['d']:.0f}, {positions['labeled']:.0f}, {positions['main']:.0f} | "
            f"{real['d']:.0f}, {real['labeled']:.0f}, {real['unlabeled']:.0f} |")
    for label, r in runs.items():
        if r.get("changes"):
            lines += ["", f"`{label}`: {r['changes']}"]
    for machine in dict.fromkeys(r["machine"] for r in runs.values()):
        of_machine = {l: r for l, r in runs.items() if r["machine"] == machine}
        best_label = min(of_machine, key=lambda l: of_machine[l]["seconds_per_iteration"])
        best = of_machine[best_label]
        bf16 = run_peak(best, "bfloat16")
        if not bf16:
            continue
        met = best["seconds_per_iteration"] <= 0.35 or best["useful_gflops_achieved"] >= bf16 / 2
        lines += ["", f"Goal (issue 30) on {machine}: <= 0.35 s/iteration, or >= 50% of the "
                  f"bfloat16 peak ({bf16:.1f} GFLOP/s there): {'met' if met else 'not met'} "
                  f"(fastest run, `{best_label}`: {best['seconds_per_iteration']:.3f} s, "
                  f"{100 * best['useful_gflops_achieved'] / bf16:.0f}% on real tokens)."]
    lines += ["", "Why, and what is left: BUILD_NOTES.md, \"One iteration against the "
              "machine's peak\"."]
    lines += quality_lines()
    peaks = {}
    for r in runs.values():
        peaks.setdefault(r["machine"], (run_peak(r, "float32"), run_peak(r, "bfloat16")))
    if peaks:
        lines += ["", "Peaks: " + "; ".join(
            f"{f32:.1f} GFLOP/s float32, {bf16:.1f} bfloat16 on {machine}"
            for machine, (f32, bf16) in peaks.items() if f32 and bf16)
            + " (benchmarks/results/matmul_peak.md, the largest square matmul "
                  "measured on each machine). Element-wise work is not in the count; for "
                  "scale, the LSTM gates are about "
                  f"{list(first['elementwise_gflop_estimate'].values())[0]:.2f} GFLOP and "
                  "Adam's updates about "
                  f"{list(first['elementwise_gflop_estimate'].values())[1]:.2f} GFLOP per "
                  "iteration."]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--timed_steps", type=int, default=100,
                        help="iterations timed without the profiler (s/iteration)")
    parser.add_argument("--label", default="current")
    parser.add_argument("--timing_only", action="store_true",
                        help="only time --label's config again (same commit) and add the "
                             "timing to its runs; s/iteration becomes their mean")
    parser.add_argument("--set", action="append", default=[],
                        help="config override FIELD=VALUE (Python literal), e.g. "
                             "model.lstm_implementation='loop'")
    args = parser.parse_args()

    import tensorflow as tf

    # Read before minutes of work: measured on this machine?
    peaks = None if args.timing_only else stored_peaks()["peak_gflops"]
    config, trainer, stream, data, tags = build(args.set)
    step = trainer.make_train_function()
    iterator = iter(stream)
    if args.timing_only:
        add_timing(args, timed_seconds(step, iterator, args.warmup, args.timed_steps))
        return
    model = trainer.man_moe
    precision = config.train.precision if config.train.precision != "auto" else \
        tf.keras.mixed_precision.global_policy().name
    m = config.model
    input_dim = model.backbone.input_dim
    params = sum(int(np.prod(v.shape)) for v in trainer.main_variables + trainer.d_variables)
    per_batch = []
    static = bool(config.train.jit_compile)  # no packing, every position
    for element in stream.take(args.batches):
        shapes = batch_shapes(element, m.char_kernel_sizes, packed=not static,
                              real_units=not static)
        per_batch.append((shapes, iteration_flops(shapes, m, input_dim, len(data.sources),
                                                  len(tags.tags), len(data.languages))))
    flops = collections.OrderedDict()
    for _, parts in per_batch:
        for name, value in parts.items():
            flops[name] = flops.get(name, 0) + value / len(per_batch)
    # The same work on the real tokens alone: what any padding scheme must do.
    useful = 0.0
    for shapes, _ in per_batch:
        real_tokens = shapes["real_tokens"]
        only_real = dict(shapes, head_tokens=real_tokens["labeled"], lstm_tokens={
            "d": real_tokens["d"], "labeled": real_tokens["labeled"],
            "main": real_tokens["labeled"] + real_tokens["unlabeled"]})
        useful += sum(iteration_flops(only_real, m, input_dim, len(data.sources),
                                      len(tags.tags), len(data.languages)).values())
    useful /= len(per_batch)
    mean_shape = {key: float(np.mean([s[key] for s, _ in per_batch]))
                  for key in ("d_time", "labeled_time", "unlabeled_time", "main_time")}
    real = {key: float(np.mean([s["real_tokens"][key] for s, _ in per_batch]))
            for key in ("d", "labeled", "unlabeled")}
    rows = per_batch[0][0]
    padded = {"d": rows["d_rows"] * mean_shape["d_time"],
              "labeled": rows["labeled_rows"] * mean_shape["labeled_time"],
              "main": (rows["labeled_rows"] + rows["unlabeled_rows"]) * mean_shape["main_time"]}
    loop = {key: float(np.mean([s["lstm_tokens"][key] for s, _ in per_batch]))
            for key in ("d", "labeled", "main")}
    elementwise = collections.defaultdict(float)
    for shapes, _ in per_batch:
        for name, value in elementwise_estimate(shapes, m, params).items():
            elementwise[name] += value / len(per_batch)

    # The profile below goes on with the same iterator: a new one would
    # fill its shuffle and prefetch buffers inside the profiled steps.
    seconds = timed_seconds(step, iterator, args.warmup, args.timed_steps)

    from xprof.convert import raw_to_tool_data

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.steps):
            logs = step(iterator)
        float(logs["total_loss"])
        tf.profiler.experimental.stop()
        traces = [os.path.join(folder, name) for folder, _, names in os.walk(logdir)
                  for name in names if name.endswith(".xplane.pb")]
        tool, _ = raw_to_tool_data.xspace_to_tool_data(traces, "framework_op_stats", {})
    tables = json.loads(tool)
    table = tables[0] if isinstance(tables, list) else tables
    columns = [c["id"] for c in table["cols"]]
    op_rows = [{k: (cell or {}).get("v") for k, cell in zip(columns, row["c"])}
               for row in table.get("rows", [])]
    seconds_by_part = collections.defaultdict(float)
    seconds_by_type = collections.defaultdict(float)
    top_ops = []
    for r in op_rows:
        if r.get("type") == "IDLE":
            continue
        self_s = (r.get("total_self_time") or 0) / 1e6 / args.steps
        seconds_by_part[part_of(r.get("operation") or "")] += self_s
        seconds_by_type[r.get("type") or "?"] += self_s
        top_ops.append((self_s, r.get("operation"), r.get("type")))
    top_ops.sort(reverse=True)

    total = sum(flops.values())
    result = {
        "label": args.label, "overrides": args.set, "precision": precision,
        "seconds_per_iteration": seconds, "seconds_per_iteration_runs": [seconds],
        "matmul_gflop_per_iteration": {k: v / 1e9 for k, v in flops.items()},
        "matmul_gflop_total": total / 1e9,
        "elementwise_gflop_estimate": {k: v / 1e9 for k, v in elementwise.items()},
        "op_seconds_per_iteration": dict(seconds_by_part),
        "op_seconds_total": sum(seconds_by_part.values()),
        "op_seconds_by_type": dict(sorted(seconds_by_type.items(), key=lambda kv: -kv[1])[:15]),
        "top_ops": [{"op": op, "type": kind, "s_per_iteration": s}
                    for s, op, kind in top_ops[:15]],
        "gflops_achieved": total / 1e9 / seconds,
        "matmul_gflop_real_tokens": useful / 1e9,
        "useful_gflops_achieved": useful / 1e9 / seconds,
        "share_of_peak": {k: total / 1e9 / seconds / v for k, v in peaks.items()},
        "tokens_per_iteration": {"real": real, "padded": padded, "bilstm_loop": loop},
        "mean_time_steps": mean_shape, "parameters": params,
        "batches_counted": args.batches, "steps_profiled": args.steps,
        "command": "python benchmarks/step_cost.py " + " ".join(sys.argv[1:]),
        "date": common.today(), "commit": common.git_commit(), "code_commit": common.code_commit(),
        "machine": common.machine(),
    }
    print(json.dumps(result, indent=1))
    stored = common.load("step_cost.json") or {"runs": {}}
    stored["runs"][args.label] = result
    save(stored)


def stored_peaks():
    """``results/matmul_peak.json``, if it was measured on this machine (a
    share of another machine's peak means nothing)."""
    peaks = common.load("matmul_peak.json")
    if peaks.get("machine") != common.machine():
        raise SystemExit(f"benchmarks/results/matmul_peak.json was measured on "
                         f"{peaks.get('machine')!r}, this is {common.machine()!r}: run "
                         f"python benchmarks/matmul_peak.py first (half a minute)")
    return peaks


def run_peak(run, dtype):
    """The ``dtype`` matmul peak a stored run was compared with (its machine's)."""
    share = run["share_of_peak"].get(dtype)
    return run["gflops_achieved"] / share if share else None


def timed_seconds(step, iterator, warmup, steps):
    """Wall seconds per training iteration: ``steps`` after ``warmup``, no profiler."""
    for _ in range(warmup):
        step(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        logs = step(iterator)
    float(logs["total_loss"])
    return (time.perf_counter() - start) / steps


def add_timing(args, seconds):
    """``--timing_only``: one more timing of a stored label, same commit."""
    stored = common.load("step_cost.json") or {"runs": {}}
    if args.label not in stored["runs"]:
        raise SystemExit(f"--timing_only: no stored run {args.label!r} in "
                         f"benchmarks/results/step_cost.json (run it without --timing_only)")
    run = stored["runs"][args.label]
    code = run.get("code_commit", run["commit"])
    if code != common.code_commit() or run["overrides"] != args.set:
        raise SystemExit(f"--timing_only: {args.label!r} ran the code of commit {code} with "
                         f"--set {run['overrides']}; this is {common.code_commit()} with "
                         f"{args.set}: time it under a new label")
    add_run_seconds(run, seconds)
    print(f"{args.label}: {seconds:.3f} s/iteration; mean of "
          f"{len(run['seconds_per_iteration_runs'])}: {run['seconds_per_iteration']:.3f}")
    save(stored)


def add_run_seconds(run, seconds):
    """Appends one timing to a stored run; its s/iteration and the rates
    derived from it become the timings' mean."""
    timings = run.setdefault("seconds_per_iteration_runs", [run["seconds_per_iteration"]])
    timings.append(seconds)
    mean = sum(timings) / len(timings)
    scale = run["seconds_per_iteration"] / mean
    run["seconds_per_iteration"] = mean
    for key in ("gflops_achieved", "useful_gflops_achieved"):
        run[key] *= scale
    run["share_of_peak"] = {k: v * scale for k, v in run["share_of_peak"].items()}


def save(stored):
    common.save("step_cost.json", stored)
    # speed.md holds this table under speed.py's own (speed.py imports this
    # module for it, so it is run, not imported, here).
    subprocess.run([sys.executable, os.path.join(common.ROOT, "benchmarks", "speed.py"),
                    "--table_only"], check=True)


if __name__ == "__main__":
    main()
