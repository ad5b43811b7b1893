"""Fine-tuning the pretrained encoder with the model (``model.encoder_trainable``):
its layers train at their own step size, checkpoints hold them (and their
optimizer), a resumed run ends as an uninterrupted one, and the export
serves what evaluation measured."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from man_tf.settings import ConfigError, check_config
from tests.cli import test_encoder_input as encoder_input
from tests.cli.test_encoder_input import ENV, OPS_PROCESS
from tests.helpers import ROOT, matmuls

LEARNING_RATE = 3e-5  # the default train.encoder_learning_rate
STEPS = 4


def train(workdir, steps):
    return encoder_input.train(workdir, steps, "--config.model.encoder_trainable=True",
                               layers="(2,3)", every=2)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("fine_tuned") / "run")
    done = train(workdir, STEPS)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def test_encoder_layers_train_at_their_own_step_size_and_are_checkpointed(tuned):
    from man_tf.pretrained import e5_file
    from man_tf.pretrained.bert import e5_encoder

    reader = tf.train.load_checkpoint(os.path.join(tuned, "checkpoints"))
    names = reader.get_variable_to_shape_map()
    model = {n for n in names if n.startswith("model/")}
    encoder = sorted(n for n in model if "e5_encoder" in n)
    # Layers 1-3 (the top asked for is 3) + embeddings' position/type/LayerNorm.
    assert any("layer2" in n for n in encoder) and not any("layer3/" in n for n in encoder)
    # The frozen Q4_0 piece table is the bundled file's: not in checkpoints.
    assert not any("word_embedding_nibbles" in n or "word_embedding_scales" in n for n in names)
    assert any(n.startswith("encoder_optimizer/") for n in names)
    # No features were cached: the model computed them in the step.
    assert not os.path.exists(os.path.join(tuned, "features"))

    pretrained = e5_encoder(e5_file.read_e5(), num_layers=3)
    start = {v.path.split("/", 1)[1]: v.numpy() for v in pretrained.weights}
    moved = {}
    for name in encoder:
        # "model/e5_encoder.Slayer0.Sintermediate.Skernel/.ATTRIBUTES/..."
        key = name[len("model/"):].split("/.ATTRIBUTES")[0].replace(".S", "/")
        key = key.split("e5_encoder/", 1)[1]
        matches = [k for k in start if k == key]
        assert matches, (name, sorted(start)[:5])
        moved[key] = np.abs(reader.get_tensor(name) - start[key]).max()
    kernels = [k for k in moved if k.endswith("kernel")]
    assert len(kernels) == 3 * 4  # query_key_value, attention_output, intermediate, output
    assert all(moved[k] > 0 for k in kernels), moved
    # Adam moves a weight by about its step size per step: the encoder's
    # 3e-5, not the main optimizer's 2e-3.
    assert max(moved.values()) < STEPS * LEARNING_RATE * 3, sorted(moved.items(), key=lambda kv: -kv[1])[:3]


def test_resumed_fine_tuning_ends_like_an_uninterrupted_run(tuned, tmp_path):
    workdir = str(tmp_path / "resumed")
    assert train(workdir, 2).returncode == 0
    done = train(workdir, STEPS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed at step 2" in done.stderr
    straight = json.load(open(os.path.join(tuned, "results.json"), encoding="utf-8"))
    resumed = json.load(open(os.path.join(workdir, "results.json"), encoding="utf-8"))
    for r in (straight, resumed):
        r.pop("checkpoint")
    assert resumed == straight


def test_fine_tuned_export_serves_the_evaluated_tags_with_its_own_layers(tuned):
    done = subprocess.run([sys.executable, "-m", "man_tf.cli.export", f"--workdir={tuned}",
                           f"--export_base={tuned}/exported"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    exported = os.path.join(tuned, "exported", "1")
    _, expected, served = encoder_input.evaluated_and_served(tuned, exported)
    assert served["tags"] == expected
    assert served["raw_lengths"] == [0, 5] and len(served["raw_tags"]) >= 5
    meta = json.load(open(os.path.join(exported, "assets.extra", "man_tf.json"),
                          encoding="utf-8"))
    assert meta["encoder"]["fine_tuned"] is True and meta["encoder"]["layers"] == [2, 3]
    # The fine-tuned layers are the checkpoint's: the export holds them once.
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(exported)
               for f in files)
    assert 54 * 2**20 < size < 90 * 2**20, size
    done = subprocess.run([sys.executable, "-c", OPS_PROCESS, exported], capture_output=True,
                          text=True, env=ENV, cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    unknown, text_ops, _ = [eval(line) for line in done.stdout.strip().splitlines()[-3:]]
    assert unknown == [] and all(op.startswith("Sentencepiece") for op in text_ops)


def test_fine_tuning_settings_are_checked():
    from man_tf.config_files import load_config_file

    config = load_config_file(os.path.join(ROOT, "configs", "sample_ner.py") + ":words")
    config.model.encoder_trainable = True
    with pytest.raises(ConfigError, match="without model.encoder"):
        check_config(config)
    config = load_config_file(os.path.join(ROOT, "configs", "sample_ner.py") + ":encoder")
    config.model.encoder_trainable = True
    config.train.precision = "mixed_float16"
    with pytest.raises(ConfigError, match="mixed_float16"):
        check_config(config)
    config.train.precision = "auto"
    config.train.encoder_learning_rate = 0.0
    with pytest.raises(ConfigError, match="encoder_learning_rate"):
        check_config(config)
    config.train.encoder_learning_rate = 3e-5
    check_config(config)  # a fine-tuned encoder may recompute its layers
    config.model.encoder_remat = True
    check_config(config)
    config.model.encoder_trainable = False
    with pytest.raises(ConfigError, match="encoder_remat=True without a fine-tuned encoder"):
        check_config(config)


def _training_step_matmuls(remat):
    """MatMuls in the traced training step (nested function graphs included)
    of the sample config with a fine-tuned 2-layer encoder, and its task loss."""
    from man_tf import tasks
    from man_tf.config_files import load_config_file
    from man_tf.data import loading, pipeline
    from man_tf.tasks import task_of
    from man_tf.training.adversarial import AdversarialModel

    config = load_config_file(os.path.join(ROOT, "configs", "sample_ner.py"))
    config.data.root = os.path.join(ROOT, config.data.root)
    config.model.encoder, config.model.encoder_layers = "e5-small", (2,)
    config.model.encoder_trainable, config.model.encoder_remat = True, remat
    check_config(config)
    tf.keras.utils.set_random_seed(1)
    data = loading.load_data(config, task_of(config))
    words, chars, tags = loading.build_vocabularies(config, task_of(config), data)
    labeled, unlabeled = loading.encode_data(config, task_of(config), data, words, chars, tags)
    model = tasks.build_model(config, words.size, len(chars), tags.tags, len(data.sources),
                              list(words.offsets.values()))
    trainer = AdversarialModel(model, len(data.languages))
    trainer.compile()
    stream = pipeline.training_stream([labeled[l] for l in data.sources],
                                      [unlabeled[l] for l in data.languages], 4, 1)
    step = tf.function(trainer.train_step)
    batch = next(iter(stream))
    logs = step(batch)
    return matmuls(step, batch), float(logs["task_loss"])


def test_remat_recomputes_the_encoder_in_the_training_step():
    """``model.encoder_remat`` must reach the encoder through the model's own
    step (which calls the backbone's methods, not ``Layer.__call__``): the
    step then runs each encoder layer's matmuls again in the backward pass
    (2 layers x 6) and computes the same loss."""
    plain, plain_loss = _training_step_matmuls(False)
    recomputed, loss = _training_step_matmuls(True)
    assert recomputed - plain == 2 * 6, (plain, recomputed)
    assert loss == pytest.approx(plain_loss, rel=1e-5)
