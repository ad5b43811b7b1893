"""The train command under tf.distribute: 2 workers (TF_CONFIG) and 2 logical
CPU devices (mirrored) each end with the weights of a one-device run on the
same global batch."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from man_tf.data.conll import read_conll
from tests.conftest import conll_file
from tests.helpers import ROOT

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


@pytest.fixture(scope="module")
def small_real_data(tmp_path_factory):
    """The first 40 sentences of each language's real CoNLL dev file."""
    root = tmp_path_factory.mktemp("conll")
    for name in ("eng", "esp", "ned", "deu"):
        sentences = read_conll(conll_file(f"{name}.testa"))[:40]
        with open(root / f"{name}.conll", "w", encoding="utf-8") as f:
            for s in sentences:
                f.writelines(f"{w} {t}\n" for w, t in zip(s.tokens, s.tags))
                f.write("\n")
    return str(root)


def command(root, workdir, *extra):
    flags = ["--config=configs/sample_ner.py:words", f"--config.data.root={root}",
             "--config.train.steps=4", "--config.train.eval_every=2",
             "--config.train.checkpoint_every=2", "--config.train.log_every=1",
             "--config.train.batch_size=4", "--config.train.precision=float32",
             "--config.train.deterministic=True", "--config.model.dropout=0.0",
             "--config.model.word_dropout=0.0", "--config.model.mlp_dropout=0.0",
             "--config.model.discriminator_dropout=0.0", "--config.model.expert_dropout=0.0",
             # Random ops draw per replica: off, like dropout, to compare weights.
             "--config.model.unk_replacement=0.0",
             # The tolerances of assert_same are for this step size: the
             # replicas sum gradients in another order, and Adam carries the
             # rounding difference into the weights in proportion to the step.
             "--config.train.learning_rate=1e-3"]
    for lang, name in (("en", "eng"), ("es", "esp"), ("nl", "ned"), ("de", "deu")):
        flags.append(f"--config.data.languages.{lang}.train={{root}}/{name}.conll")
    flags += ["--config.data.languages.de.dev={root}/deu.conll",
              "--config.data.languages.de.test={root}/deu.conll"]
    return [sys.executable, "-m", "man_tf.cli.train", *flags, *extra, f"--workdir={workdir}"]


def final_weights(workdir):
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", "ckpt-4"))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith("model/") and "rng" not in k}


@pytest.fixture(scope="module")
def one_device(small_real_data, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("single") / "run")
    subprocess.run(command(small_real_data, workdir), cwd=ROOT, env=ENV, check=True,
                   capture_output=True, timeout=300)
    return final_weights(workdir)


def assert_same(a, b):
    assert a.keys() == b.keys() and len(a) > 20
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-3, atol=1e-5, err_msg=key)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_match_one_device(small_real_data, one_device, tmp_path):
    workdir = str(tmp_path / "multi")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    processes = []
    for index in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps({"cluster": cluster,
                                              "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            command(small_real_data, workdir, "--config.train.strategy=multi_worker"),
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=300) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]
    assert os.path.exists(os.path.join(workdir, "results.json"))
    assert not os.path.exists(os.path.join(workdir, ".worker1"))  # worker 1's temp removed
    log = open(os.path.join(workdir, "train.log"), encoding="utf-8").read()
    assert "2 replica(s)" in log
    assert_same(one_device, final_weights(workdir))


def test_thread_pool_settings_take_effect_and_keep_the_weights(small_real_data, one_device,
                                                              tmp_path):
    """train.intra_op_threads / inter_op_threads reach TensorFlow's pools
    (the log reads them back from TensorFlow) and change no value."""
    workdir = str(tmp_path / "threads")
    done = subprocess.run(command(small_real_data, workdir, "--config.train.intra_op_threads=1",
                                  "--config.train.inter_op_threads=3"),
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    log = open(os.path.join(workdir, "train.log"), encoding="utf-8").read()
    assert "TensorFlow thread pools: intra-op 1, inter-op 3" in log
    assert_same(one_device, final_weights(workdir))


def test_two_logical_cpus_mirrored_match_one_device(small_real_data, one_device, tmp_path):
    workdir = str(tmp_path / "mirrored")
    done = subprocess.run(command(small_real_data, workdir, "--config.train.strategy=mirrored",
                                  "--config.train.num_cpu_devices=2"),
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 replica(s)" in open(os.path.join(workdir, "train.log"), encoding="utf-8").read()
    assert_same(one_device, final_weights(workdir))
