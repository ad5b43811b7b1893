"""Per-language .vec files, and what a rerun into an existing workdir does."""

import json
import os
import subprocess
import sys
import zlib

import numpy as np

from man_tf.data import conll
from tests.helpers import ROOT, SAMPLE

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
LANGS = ("en", "de", "es", "nl")
DIM = 50  # the sample config's word_dim


def vector(lang, word):
    """A distinct, reproducible vector per (language, word)."""
    return np.random.RandomState(zlib.crc32(f"{lang}:{word}".encode())).uniform(
        -1, 1, DIM).astype(np.float32).round(4)


def sample_words(lang):
    files = [f for f in os.listdir(SAMPLE) if f.startswith(lang + ".")]
    return sorted({w.lower() for f in files for s in conll.read_conll(os.path.join(SAMPLE, f))
                   for w in s.tokens})


def write_vec(directory, lang, dim=DIM):
    path = os.path.join(directory, f"wiki.multi.{lang}.vec")
    words = sample_words(lang)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {dim}\n")
        for w in words:
            f.write(w + " " + " ".join(f"{x:.4f}" for x in vector(lang, w)[:dim]) + "\n")
    return path


def train(workdir, *flags, steps=2):
    return subprocess.run(
        [sys.executable, "-m", "man_tf.cli.train", "--config=configs/sample_ner.py:words",
         f"--config.train.steps={steps}", "--config.train.eval_every=2",
         "--config.train.checkpoint_every=2", "--config.train.precision=float32",
         f"--workdir={workdir}", *flags],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


def test_readme_vec_command_gives_each_language_its_own_vectors(tmp_path):
    vec_dir = str(tmp_path)
    workdir = str(tmp_path / "w")
    # A first try with wrong-dimension files stops before writing anything...
    bad = [f"--config.data.embeddings.{lang}={write_vec(vec_dir, lang, dim=DIM - 1)}"
           for lang in LANGS]
    done = train(workdir, *bad)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"header says dimension {DIM - 1}, expected {DIM}" in done.stderr
    for name in ("config.json", "vocab.json", "checkpoints"):
        assert not os.path.exists(os.path.join(workdir, name)), name
    # ... so the corrected rerun (the README's command as written) starts cleanly.
    flags = [f"--config.data.embeddings.{lang}={write_vec(vec_dir, lang)}" for lang in LANGS]
    done = train(workdir, *flags)
    assert done.returncode == 0, done.stderr[-3000:]

    from man_tf.training import workdir as workdirs
    trained = workdirs.load_trained(workdir, "latest")
    words = trained.words
    assert sorted(words.blocks) == sorted(LANGS)  # one table per language, not shared
    table = trained.model.backbone.word_embedding.embeddings.numpy()
    shared_spelling = 0
    for lang in LANGS:
        for word in sample_words(lang):
            row = words.ids(lang, [word])[0]
            assert row != words.unk_id(lang), f"{lang} {word!r} lost its vector"
            np.testing.assert_allclose(table[row], vector(lang, word), atol=1e-6)
        shared_spelling += "madrid" in sample_words(lang)
    assert shared_spelling >= 2  # the same spelling holds different vectors per language
    results = json.load(open(os.path.join(workdir, "results.json"), encoding="utf-8"))
    assert results["embedding_coverage"] == {lang: 1.0 for lang in LANGS}


def test_german_dev_test_words_with_vectors_join_the_vocabulary(tmp_path):
    from man_tf.data import loading
    from man_tf.tasks import task_of
    from man_tf.config_files import load_config_file

    config = load_config_file("sample_ner:words")
    config.data.embeddings.de = write_vec(str(tmp_path), "de")
    data = loading.load_data(config, task_of(config))
    pretrained = loading.read_pretrained_vectors(config, data)
    words, _, _ = loading.build_vocabularies(config, task_of(config), data, pretrained)
    train_words = {w.lower() for s in data.unlabeled["de"] for w in s.tokens}
    test_only = [w.lower() for s in data.test["de"] for w in s.tokens
                 if w.lower() not in train_words]
    assert test_only
    assert all(words.ids("de", [w])[0] != words.unk_id("de") for w in test_only)
    # Languages without vectors keep training-text words only.
    en_train = {w.lower() for lang in ("en",) for s in data.labeled[lang] + data.unlabeled[lang]
                for w in s.tokens}
    assert set(words.blocks["en"].tokens[2:]) == en_train


def test_shared_table_with_per_language_vec_files_is_refused(tmp_path):
    flags = [f"--config.data.embeddings.{lang}={write_vec(str(tmp_path), lang)}"
             for lang in ("en", "de")]
    done = train(str(tmp_path / "w"), "--config.data.shared_word_table=True", *flags)
    assert done.returncode == 2
    assert ("man-tf-train: error: data.shared_word_table=True with per-language .vec files "
            "(de, en)") in done.stderr
    assert "--config.data.shared_word_table=False" in done.stderr


def test_rerun_with_changed_settings_stops_and_names_the_fields(tmp_path):
    workdir = str(tmp_path / "w")
    assert train(workdir).returncode == 0
    config_before = open(os.path.join(workdir, "config.json"), encoding="utf-8").read()
    done = train(workdir, "--config.model.shared_hidden=32",
                 "--config.data.languages.de.train=" + os.path.join(SAMPLE, "nl.train.conll"))
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"man-tf-train: error: {workdir}/config.json: this workdir was "
                           f"trained with other settings")
    assert "data.languages.de.train" in line and "model.shared_hidden: 64 -> 32" in line
    assert open(os.path.join(workdir, "config.json"), encoding="utf-8").read() == config_before
    # A longer budget is not a different setting: the rerun resumes.
    done = train(workdir, steps=4)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed at step 2" in open(os.path.join(workdir, "train.log")).read()
