"""Older workdirs' config.json, written before the task-neutral names."""

import json

import pytest

from man_tf.training import workdir as workdirs
from tests.helpers import load_config


def old_style(config):
    """``config`` as a workdir of the earlier names stored it."""
    stored = json.loads(config.to_json())
    stored["model"]["use_tag_moe"] = stored["model"].pop("use_predictor_moe")
    stored["model"]["tagger_layers"] = stored["model"].pop("predictor_layers")
    stored["train"]["tag_gate_loss_weight"] = stored["train"].pop("predictor_gate_loss_weight")
    return stored


def test_an_old_workdir_resumes_and_loads_under_the_new_names(tmp_path):
    config = load_config("sample_ner")
    config.model.use_predictor_moe = False
    with open(tmp_path / "config.json", "w", encoding="utf-8") as f:
        json.dump(old_style(config), f)
    workdirs.check_resumable(str(tmp_path), config, has_checkpoint=True)  # no mismatch
    loaded = workdirs.load_config(str(tmp_path))
    assert loaded.model.use_predictor_moe is False
    assert loaded.model.predictor_layers == config.model.predictor_layers
    assert "use_tag_moe" not in loaded.model
    # A real difference under an old name is still one.
    config.model.use_predictor_moe = True
    with pytest.raises(workdirs.WorkdirMismatch, match="model.use_predictor_moe"):
        workdirs.check_resumable(str(tmp_path), config, has_checkpoint=True)
