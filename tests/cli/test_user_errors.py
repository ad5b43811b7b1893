"""What a user sees for --help, mistakes in flags/config/input, and logs."""

import json
import os
import subprocess
import sys

import pytest

from man_tf import settings
from man_tf.cli.train import log_file_name
from tests.helpers import ROOT, load_config

ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def command(name, *args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", f"man_tf.cli.{name}", *args], cwd=cwd,
                          env=ENV, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name,flag", [("train", "--workdir"), ("evaluate", "--split"),
                                       ("export", "--export_base"), ("predict", "--language"),
                                       ("report", "--output_dir")])
def test_help_shows_the_commands_own_flags(name, flag):
    done = command(name, "--help")
    assert done.returncode == 0, done.stderr
    assert f"man-tf-{name}" in done.stdout and f"  {flag}: " in done.stdout
    assert "Try --helpfull" not in done.stdout
    if name == "train":  # and the config's fields with their defaults
        assert "  train.steps = 15000" in done.stdout
        assert "  model.shared_hidden = 200" in done.stdout
        sample = command(name, "--config=configs/sample_ner.py", "--help")
        assert "  train.steps = 400" in sample.stdout


@pytest.mark.parametrize("flags,message", [
    (["--config.train.steps=0"], "train.steps=0: expected a whole number of at least 1"),
    (["--config.train.steps=-5"], "train.steps=-5: expected a whole number of at least 1"),
    (["--config.train.batch_size=0"], "train.batch_size=0: expected a whole number of at least 1"),
    (["--config.train.intra_op_threads=-1"],
     "train.intra_op_threads=-1: expected a whole number >= 0"),
    (["--config.train.stepz=5"],
     "--config.train.stepz: no such config field; did you mean --config.train.steps?"),
    (["--config.model.dropout=1.5"], "model.dropout=1.5: expected a rate in [0, 1)"),
    (["--config.task=ner"], "task='ner': expected one of ['tagging', 'classification']"),
    (["--config.model.encoder=e5-large"],
     "model.encoder='e5-large': expected '' or one of ['e5-small']"),
    (["--config.model.encoder=e5-small", "--config.model.encoder_layers=(7,7)"],
     "model.encoder_layers=(7, 7): expected layers in [0, 12] (0: the piece embeddings), "
     "each once"),
    (["--config.train.lr_schedule=exponential"],
     "train.lr_schedule='exponential': expected one of constant, linear, cosine"),
    (["--config.model.encoder_joined_languages=jp,zh"],
     "model.encoder_joined_languages=('jp,zh',): expected a tuple of language codes, "
     "e.g. '(\"jp\", \"zh\")'"),
    (["--config.model.encoder=e5-small", "--config.model.encoder_layers=(13,)"],
     "model.encoder_layers=(13,): expected layers in [0, 12] (0: the piece embeddings), "
     "each once"),
])
def test_bad_settings_are_one_line_before_anything_is_written(tmp_path, flags, message):
    workdir = tmp_path / "w"
    done = command("train", "--config=configs/sample_ner.py", f"--workdir={workdir}", *flags)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"man-tf-train: error: {message}" +
        (" (see man-tf-train --help)" if "config field" in message else "")]
    assert not workdir.exists()


def test_workdir_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    done = command("train", "--config=configs/sample_ner.py", f"--workdir={path}")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"man-tf-train: error: --workdir={path}: is a file, "
                                   f"expected a directory (new or a previous run's)")


def test_dev_tag_never_seen_in_training_names_the_sentence(tmp_path):
    dev = tmp_path / "dev.conll"
    dev.write_text("Die O\nIAA B-EVENT\nbeginnt O\n", encoding="utf-8")
    workdir = tmp_path / "w"
    done = command("train", "--config=configs/sample_ner.py", f"--workdir={workdir}",
                   f"--config.data.languages.de.dev={dev}", "--config.train.steps=1")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "B-EVENT" in line]
    assert len(lines) == 1  # printed once (the log file has it too)
    assert lines[0].startswith(f"man-tf-train: error: {dev}:1: tag 'B-EVENT' never occurs in "
                               f"the sources' training data")
    assert lines == done.stderr.strip().splitlines()[-1:]
    assert not (workdir / "config.json").exists()
    assert "tag 'B-EVENT' never occurs" in (workdir / "train.log").read_text()


def test_predict_checks_language_and_input_before_loading(tmp_path):
    model = tmp_path / "m" / "1"
    (model / "assets.extra").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"not loaded")
    (model / "assets.extra" / "man_tf.json").write_text(
        json.dumps({"languages": ["en", "es", "nl", "de"], "expert_languages": ["en"]}))
    done = command("predict", f"--model={model}", "--language=DE", "--input=-")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"man-tf-predict: error: --language=DE: the model in "
                                   f"{model} knows en, es, nl, de (did you mean 'de'?)")
    done = command("predict", f"--model={model}", "--language=de", "--input=/no/such.txt")
    assert done.stderr.strip() == "man-tf-predict: error: --input=/no/such.txt: no such file"
    latin1 = tmp_path / "in.txt"
    latin1.write_bytes("Köln\n".encode("latin-1"))
    done = command("predict", f"--model={model}", "--language=de", f"--input={latin1}")
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"man-tf-predict: error: {latin1}:1: byte 0xf6 at "
                                          f"column 2 (byte offset 1) is not valid UTF-8")


def test_relative_data_root_resolves_one_documented_way(tmp_path):
    expected = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "conll"))
    config = load_config("conll_ner")  # load_config_file resolves as the commands do
    assert config.data.root == expected
    config.data.root = "../shared/data/conll"  # as written in the file
    with config.unlocked():
        settings.resolve_data_root(config, os.path.join(ROOT, "configs", "conll_ner.py"))
    assert config.data.root == expected
    config.data.root = "../shared/data/conll"  # as typed on a command line
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        settings.resolve_data_root(config, "configs/conll_ner.py", typed=True)
    finally:
        os.chdir(cwd)
    assert config.data.root == os.path.abspath(os.path.join(str(tmp_path),
                                                            "../shared/data/conll"))


def test_train_command_works_from_another_directory(tmp_path):
    # configs/sample_ner.py from a different current directory; the sample's
    # root is absolute, so this checks the command and the workdir paths.
    done = command("train", f"--config={ROOT}/configs/sample_ner.py:words", "--workdir=w",
                   "--config.train.steps=2", "--config.train.eval_every=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "w" / "results.json").exists()
    # No TensorFlow start-up notices on stderr (README: what remains is harmless).
    for notice in ("cuInit", "absl::InitializeLog", "cpu_feature_guard", "oneDNN custom"):
        assert notice not in done.stderr
    log = (tmp_path / "w" / "train.log").read_text()
    assert "dev f1 nan" not in log and "step 2: de dev f1" in log


@pytest.mark.parametrize("tf_config,name", [
    ({}, "train.log"),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}, "train.log"),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}},
     "train.worker1.log"),
    ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "chief", "index": 0}},
     "train.log"),
    ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "worker", "index": 0}},
     "train.worker0.log"),
])
def test_one_process_writes_train_log(tf_config, name):
    assert log_file_name(tf_config) == name
