"""Load an export the way TensorFlow Serving does, in C++, and run it.

``tensorflow_model_server`` cannot be installed on every machine; the
TensorFlow wheel ships ``libtensorflow_cc.so.2`` and its headers, so
``cc/serve_check.cc`` (built here with g++) does what the server does with a
model: ``tensorflow::LoadSavedModel`` with the ``serve`` tag, the TF Text op
libraries the graph needs loaded with ``TF_LoadLibrary`` (the server links
them in), and one signature run in the bundle's session.

    python -m man_tf.export.cc_check --model=saved_models/sample --language=de < sentences.txt

prints each signature's outputs as JSON. Tests compare them with
``man-tf-predict``'s (tests/export/test_cc_loader.py).
"""

import glob
import hashlib
import importlib.util
import json
import os
import subprocess
import sys

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cc", "serve_check.cc")


class CcCheckError(RuntimeError):
    """The C++ build or run failed; the message holds the compiler's or program's words."""


def _tensorflow_paths():
    import tensorflow as tf

    return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_lib(), tf.__version__


def build(cache_dir=None):
    """Compiles ``serve_check.cc`` against the installed TensorFlow wheel
    (once per source and TensorFlow version: the binary is kept in
    ``cache_dir``, default ``~/.cache/man_tf``); returns its path."""
    compile_flags, lib, version = _tensorflow_paths()
    with open(SOURCE, "rb") as f:
        key = hashlib.sha256(f.read() + version.encode()).hexdigest()[:16]
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "man_tf")
    binary = os.path.join(cache_dir, f"serve_check-{key}")
    if os.path.exists(binary):
        return binary
    os.makedirs(cache_dir, exist_ok=True)
    partial = f"{binary}.{os.getpid()}.tmp"
    command = ["g++", "-w", "-O1", *compile_flags, SOURCE, "-o", partial, f"-L{lib}",
               "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2",
               f"-Wl,-rpath,{lib}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CcCheckError(f"g++ failed building {SOURCE}:\n{done.stderr[-4000:]}")
    os.replace(partial, binary)
    return binary


def graph_ops(model_dir):
    """Every op type in the export's graph and its functions."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    ops = set()
    for meta_graph in saved.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return ops


def op_libraries(model_dir):
    """The TF Text op libraries (``.so`` files) that register the export's
    ops core TensorFlow lacks, found by loading them one at a time. Must run
    in a process that has not imported ``tensorflow_text`` (which loads them
    all): :func:`run` calls it in a fresh one."""
    if "tensorflow_text" in sys.modules:
        raise RuntimeError("op_libraries needs a process without tensorflow_text imported")
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry

    missing = {op for op in graph_ops(model_dir) if op_def_registry.get(op) is None}
    spec = importlib.util.find_spec("tensorflow_text")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "python", "ops")
    libraries = []
    for path in sorted(glob.glob(os.path.join(folder, "_*.so"))):
        if not missing:
            break
        tf.load_op_library(path)
        registered = {op for op in missing if op_def_registry.get(op) is not None}
        if registered:
            libraries.append(path)
            missing -= registered
    if missing:
        raise CcCheckError(f"{model_dir}: no TF Text op library registers {sorted(missing)}")
    return libraries


def parse_outputs(text):
    """``serve_check``'s stdout -> ``{key: {"dtype", "shape", "values"}}``."""
    import numpy as np

    lines, outputs, i = text.split("\n"), {}, 0
    while i < len(lines) and lines[i].startswith("OUTPUT "):
        _, key, dtype, *dims = lines[i].split(" ")
        shape = [int(d) for d in dims]
        count = int(np.prod(shape)) if shape else 1
        values = lines[i + 1:i + 1 + count]
        if dtype == "float":
            values = [float(v) for v in values]
        elif dtype in ("int32", "int64"):
            values = [int(v) for v in values]
        outputs[key] = {"dtype": dtype, "shape": shape,
                        "values": np.array(values, dtype=object if dtype == "string" else None)
                        .reshape(shape)}
        i += 1 + count
    return outputs


def run(model_dir, signature, language, lines, binary=None, libraries=None, timeout=600):
    """Runs ``signature`` of the export in ``model_dir`` on ``lines`` in C++
    (its own process); returns :func:`parse_outputs`' dict."""
    binary = binary or build()
    if libraries is None:
        found = subprocess.run([sys.executable, "-m", "man_tf.export.cc_check",
                                "--libraries", f"--model={model_dir}"],
                               capture_output=True, text=True, timeout=timeout)
        if found.returncode != 0:
            raise CcCheckError(found.stderr[-4000:])
        libraries = json.loads(found.stdout.strip().splitlines()[-1])
    done = subprocess.run([binary, model_dir, signature, *libraries],
                          input="\n".join([language, *lines]) + "\n", capture_output=True,
                          text=True, timeout=timeout,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if done.returncode != 0:
        raise CcCheckError(f"serve_check {model_dir} {signature}: {done.stderr[-4000:]}")
    return parse_outputs(done.stdout)


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="SavedModel version folder")
    parser.add_argument("--language", help="language code of the input")
    parser.add_argument("--libraries", action="store_true",
                        help="only print the TF Text op libraries the export needs (JSON)")
    args = parser.parse_args(argv)
    if args.libraries:
        print(json.dumps(op_libraries(args.model)))
        return
    lines = [line.rstrip("\n") for line in sys.stdin]
    with open(os.path.join(args.model, "assets.extra", "man_tf.json"), encoding="utf-8") as f:
        signatures = ["serving_default"] + (["tag_tokens"] if json.load(f)["task"] == "tagging"
                                            else [])
    for signature in signatures:
        outputs = run(args.model, signature, args.language, lines)
        print(json.dumps({"signature": signature,
                          **{k: v["values"].tolist() for k, v in outputs.items()}},
                         ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1:])
