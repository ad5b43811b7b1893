"""Damaged files, unwritable outputs, unchecked settings, misleading
messages, misaligned output, resume debris and log noise (issue 29): each
is one line on stderr with exit status 2 (or the fallback's result), and
nothing already written changes. docs/bad_inputs.md lists them."""

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT

# What a user's shell has: no TF_CPP_MIN_LOG_LEVEL of ours.
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
SMALL = ["--config=configs/sample_ner.py", "--config.train.steps=40",
         "--config.train.checkpoint_every=20", "--config.train.eval_every=20",
         "--config.train.log_every=20"]
# The lines man_tf's own modules log, in absl's format.
OWN_LINE = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ (\w+)\.py:\d+\] ")
OWN_MODULES = {os.path.splitext(os.path.basename(p))[0]
               for p in glob.glob(os.path.join(ROOT, "man_tf", "**", "*.py"), recursive=True)}


def command(name, *args):
    return subprocess.run([sys.executable, "-m", f"man_tf.cli.{name}", *args], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=600)


def error_line(done, name):
    """The one stderr line of a failed command (exit status 2)."""
    lines = [line for line in done.stderr.splitlines() if not OWN_LINE.match(line)]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith(f"man-tf-{name}: error: ")
    return lines[0][len(f"man-tf-{name}: error: "):]


def tree_digest(path):
    """Every file under ``path`` with its bytes' SHA-256: what "nothing changed" checks."""
    digest = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                digest[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return digest


def unwritable_folder(tmp_path):
    """A folder this process cannot write in: a read-only one, or, for root
    (who writes anywhere the permissions say no), sysfs."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return str(folder)
    (folder / "probe").unlink()
    return "/sys"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 40-step sample run (checkpoints at 20 and 40), its export, and
    what the commands printed."""
    root = tmp_path_factory.mktemp("failures")
    workdir, export_base = str(root / "run"), str(root / "exported")
    train = command("train", *SMALL, f"--workdir={workdir}")
    assert train.returncode == 0, train.stderr[-3000:]
    export = command("export", f"--workdir={workdir}", f"--export_base={export_base}")
    assert export.returncode == 0, export.stderr[-3000:]
    return {"workdir": workdir, "export": os.path.join(export_base, "1"), "train": train,
            "export_run": export, "root": root}


def copy_of(trained, tmp_path, name="copy"):
    target = str(tmp_path / name)
    shutil.copytree(trained["workdir"], target)
    return target


# -- 1. damaged files ------------------------------------------------------

def test_resume_falls_back_to_the_newest_checkpoint_that_reads(trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    damaged = os.path.join(workdir, "checkpoints", "ckpt-40.data-00000-of-00001")
    os.truncate(damaged, 1000)
    done = command("train", *SMALL, "--config.train.steps=60", f"--workdir={workdir}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (f"{damaged}: damaged checkpoint (Read less bytes than requested), left in place; "
            f"resuming from {os.path.join(workdir, 'checkpoints', 'ckpt-20')}") in done.stderr
    assert "resumed at step 20" in done.stderr
    with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
        assert json.load(f)["steps"] == 60


def test_no_checkpoint_that_reads_is_one_line_and_nothing_changes(trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    for path in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*.data-*")):
        os.truncate(path, 1000)
    os.remove(os.path.join(workdir, "results.json"))  # not finished: it must resume
    before = tree_digest(workdir)
    done = command("train", *SMALL, f"--workdir={workdir}")
    newest = os.path.join(workdir, "checkpoints", "ckpt-40.data-00000-of-00001")
    assert error_line(done, "train") == (
        f"{newest}: damaged checkpoint (Read less bytes than requested) and no older "
        f"checkpoint in {os.path.join(workdir, 'checkpoints')} reads; move {workdir} away and "
        f"train anew")
    after = tree_digest(workdir)
    after.pop("train.log")  # the error line is logged there too
    before.pop("train.log")
    assert after == before


@pytest.mark.parametrize("damage", ["truncated", "no index"])
def test_damaged_best_checkpoint_names_the_file_and_the_way_out(trained, tmp_path, damage):
    workdir = copy_of(trained, tmp_path)
    best = glob.glob(os.path.join(workdir, "best", "ckpt-*.index"))[0][:-len(".index")]
    if damage == "truncated":
        bad, reason = best + ".data-00000-of-00001", "Read less bytes than requested"
        os.truncate(bad, 1000)
    else:
        bad, reason = best + ".index", "no such file"
        os.remove(bad)
    before = tree_digest(workdir)
    way_out = ("use --checkpoint=latest (the latest checkpoint), or train again into a new "
               "--workdir")
    done = command("evaluate", f"--workdir={workdir}")
    assert error_line(done, "evaluate") == f"{bad}: damaged checkpoint ({reason}); {way_out}"
    export_base = tmp_path / "exports"
    done = command("export", f"--workdir={workdir}", f"--export_base={export_base}")
    assert error_line(done, "export") == f"{bad}: damaged checkpoint ({reason}); {way_out}"
    assert not export_base.exists() or not os.listdir(export_base)
    assert tree_digest(workdir) == before
    # The way out works.
    done = command("evaluate", f"--workdir={workdir}", "--checkpoint=latest",
                   f"--output={tmp_path / 'scored'}")
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("damage,file,reason", [
    ("empty graph", "saved_model.pb", None),
    ("truncated graph", "saved_model.pb", "damaged SavedModel (Wire format was corrupt.)"),
    ("truncated variables", "variables/variables.data-00000-of-00001",
     "damaged SavedModel variables (Read less bytes than requested)"),
    ("no variables index", "variables/variables.index",
     "damaged SavedModel variables (no such file)"),
])
def test_damaged_savedmodel_is_one_line_naming_the_file(trained, tmp_path, damage, file,
                                                        reason):
    model = str(tmp_path / "1")
    shutil.copytree(trained["export"], model)
    path = os.path.join(model, file)
    if damage == "empty graph":
        open(path, "wb").close()
    elif damage == "no variables index":
        os.remove(path)
    else:
        os.truncate(path, 3000 if file == "saved_model.pb" else 1000)
    sentence = tmp_path / "in.txt"
    sentence.write_text("Angela Weber besuchte Berlin .\n", encoding="utf-8")
    done = command("predict", f"--model={model}", "--language=de", f"--input={sentence}")
    again = "export it again (man-tf-export) or give another version"
    expected = (f"{path}: empty file, not a SavedModel graph; {again}" if reason is None
                else f"{path}: {reason}; {again}")
    assert error_line(done, "predict") == expected


# -- 2. unwritable or wrong outputs ----------------------------------------

def test_unwritable_outputs_are_one_line_before_any_work(trained, tmp_path):
    locked = unwritable_folder(tmp_path)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    workdir = trained["workdir"]
    before = tree_digest(workdir)
    cases = [
        ("train", [*SMALL, f"--workdir={locked}/run"],
         f"--workdir={locked}/run: cannot write in {locked} (Permission denied)"),
        ("train", [*SMALL, f"--workdir={a_file}/run"],
         f"--workdir={a_file}/run: {a_file} is a file, expected a folder"),
        ("export", [f"--workdir={workdir}", f"--export_base={locked}/models"],
         f"--export_base={locked}/models: cannot write in {locked} (Permission denied)"),
        ("export", [f"--workdir={workdir}", f"--export_base={a_file}"],
         f"--export_base={a_file}: is a file, expected a folder"),
        ("evaluate", [f"--workdir={workdir}", f"--output={locked}/scores"],
         f"--output={locked}/scores: cannot write in {locked} (Permission denied)"),
        ("evaluate", [f"--workdir={workdir}", f"--output={tmp_path}"],
         f"--output={tmp_path}: is a folder, expected a file name"),
        ("report", [f"--workdir={workdir}", f"--output_dir={locked}/report"],
         f"--output_dir={locked}/report: cannot write in {locked} (Permission denied)"),
        ("report", [f"--workdir={workdir}", f"--output_dir={a_file}"],
         f"--output_dir={a_file}: is a file, expected a folder"),
    ]
    for name, args, message in cases:
        assert error_line(command(name, *args), name) == message, (name, args)
    assert tree_digest(workdir) == before
    assert a_file.read_text() == "x"


# -- 3. settings checked up front ------------------------------------------

@pytest.mark.parametrize("flags,message", [
    (["--config.train.precision=fp8"],
     "train.precision='fp8': expected one of auto, float32, mixed_bfloat16, mixed_float16"),
    (["--config.train.strategy=tpu"],
     "train.strategy='tpu': expected one of default, mirrored, multi_worker"),
    (["--config.data.long_sentences=drop"],
     "data.long_sentences='drop': expected one of truncate, split, error"),
    (["--config.model.discriminator=rnn"], "model.discriminator='rnn': expected one of cnn, mlp"),
    (["--config.model.output_layer=hmm"], "model.output_layer='hmm': expected one of softmax, crf"),
    (["--config.model.lstm_layers=0"], "model.lstm_layers=0: expected a whole number of at least 1"),
    (["--config.data.max_length=-1"], "data.max_length=-1: expected a whole number >= 0"),
    (["--config.sources=en,es"],
     "sources ['en,es'] have no data in config.data.languages (['de', 'en', 'es', 'nl']); give "
     "a tuple, one code per item: --config.sources='(\"en\", \"es\")'"),
    (["--config.model.encoder_weights=/no/such/e5.bin"],
     "/no/such/e5.bin: no such file or folder (model.encoder_weights: a keras-hub preset name, "
     "a kaggle:// or hf:// handle, or a local preset folder)"),
])
def test_settings_are_checked_before_anything_is_written(tmp_path, flags, message):
    workdir = tmp_path / "run"
    done = command("train", "--config=configs/sample_ner.py", f"--workdir={workdir}", *flags)
    assert error_line(done, "train") == message
    assert not (workdir / "checkpoints").exists() and not (workdir / "config.json").exists()


def test_config_file_errors_name_the_file_and_the_reason(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config():\n    return {'a': 1 / 0}\n", encoding="utf-8")
    cases = [
        (["--config=configs/no_such.py"], "--config=configs/no_such.py: no such file"),
        (["--config=configs/conll_ner.py:bogus"],
         "--config=configs/conll_ner.py:bogus: configs/conll_ner.py:26: ValueError: "
         "inputs='bogus': expected one of encoder, fine_tuned, words (e.g. "
         "--config=configs/conll_ner.py:words)"),
        ([f"--config={broken}"],
         f"--config={broken}: {broken}:2: ZeroDivisionError: division by zero"),
        (["--config.train.steps=5"],
         "--config.FIELD overrides given without --config=FILE (e.g. "
         "--config=configs/conll_ner.py)"),
    ]
    for flags, message in cases:
        done = command("train", *flags, f"--workdir={tmp_path / 'run'}")
        assert error_line(done, "train") == message
    assert not (tmp_path / "run").exists()


def test_predict_batch_size_is_checked(trained, tmp_path):
    done = command("predict", f"--model={trained['export']}", "--language=de",
                   "--batch_size=0")
    assert error_line(done, "predict") == \
        "flag --batch_size=0: 0 is not a positive integer (see man-tf-predict --help)"


# -- 4. messages that point the right way ----------------------------------

@pytest.mark.parametrize("kind", ["utf-16", "binary"])
def test_a_file_that_is_not_text_says_so(tmp_path, kind):
    bad = tmp_path / "de.test.conll"
    if kind == "utf-16":
        bad.write_bytes("Angela B-PER\nbesuchte O\n".encode("utf-16"))
        message = (f"{bad}:1: byte offset 3: not UTF-8 or latin-1 text; the file looks UTF-16 "
                   f"(it starts with a byte-order mark): convert it to UTF-8, e.g. iconv -f "
                   f"utf-16 -t utf-8")
    else:
        bad.write_bytes(b"Angela B-PER\n" + bytes(range(256)))
        message = (f"{bad}:2: byte offset 13: not UTF-8 or latin-1 text; the file looks "
                   f"binary: give a CoNLL or plain-text file")
    done = command("train", "--config=configs/sample_ner.py", f"--workdir={tmp_path / 'run'}",
                   f"--config.data.languages.de.test={bad}")
    assert error_line(done, "train") == message
    assert not (tmp_path / "run" / "checkpoints").exists()


# -- 5. output aligned with input ------------------------------------------

def test_conll_output_has_one_block_per_input_line(trained, tmp_path):
    lines = ["Angela Weber besuchte Berlin .", "", "   ", "Paris ."]
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = command("predict", f"--model={trained['export']}", "--language=de",
                   f"--input={path}")
    assert done.returncode == 0, done.stderr[-3000:]
    blocks, rows = [], []
    assert done.stdout.endswith("\n\n")
    for line in done.stdout.split("\n")[:-1]:  # a blank line ends each block
        if line:
            rows.append(line)
        else:
            blocks.append(rows)
            rows = []
    assert len(blocks) == len(lines)
    assert [len(b) for b in blocks] == [5, 0, 0, 2]
    assert [row.split()[0] for row in blocks[3]] == ["Paris", "."]


# -- 6. resume leaves no debris; a finished workdir is one line --------------

def test_resume_removes_partial_saves(trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    partial = os.path.join(workdir, "checkpoints", "ckpt-60_temp")
    os.makedirs(partial)
    with open(os.path.join(partial, "part-00000-of-00001.data-00000-of-00001"), "wb") as f:
        f.write(b"\0" * 100)  # a save killed midway leaves this behind
    done = command("train", *SMALL, "--config.train.steps=60", f"--workdir={workdir}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not glob.glob(os.path.join(workdir, "*", "*_temp"))


def test_a_finished_workdir_is_one_line(trained):
    before = tree_digest(trained["workdir"])
    done = command("train", *SMALL, f"--workdir={trained['workdir']}")
    assert done.returncode == 0
    with open(os.path.join(trained["workdir"], "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    assert done.stdout.splitlines() == [
        f"{trained['workdir']}: already trained to step 40 (dev F1 {results['dev_f1']:.2f}, "
        f"test F1 {results['test_f1']:.2f}; {trained['workdir']}/results.json); a larger "
        f"--config.train.steps continues it"]
    assert done.stderr == ""
    assert tree_digest(trained["workdir"]) == before


# -- 7. quiet by default ----------------------------------------------------

def test_training_and_export_print_only_their_own_lines(trained):
    for done in (trained["train"], trained["export_run"]):
        for line in done.stderr.splitlines():
            own = OWN_LINE.match(line)
            assert own and own.group(1) in OWN_MODULES, line
    assert "step 40/40" in trained["train"].stderr
    assert trained["export_run"].stdout.splitlines() == [f"exported {trained['export']}"]


def test_verbosity_shows_tensorflows_lines(trained, tmp_path):
    done = command("export", f"--workdir={trained['workdir']}",
                   f"--export_base={tmp_path / 'exported'}", "--verbosity=1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(not OWN_LINE.match(line) or OWN_LINE.match(line).group(1) not in OWN_MODULES
               for line in done.stderr.splitlines()), done.stderr
