"""A workdir records its format; one written by an older man_tf is refused
in one line, and a run's own workdir resumes."""

import json

import pytest

from man_tf.training import workdir as workdirs
from tests.helpers import load_config


def test_an_older_workdir_is_refused_in_one_line(tmp_path):
    config = load_config("sample_ner")
    # What every workdir looked like before the format file: config.json alone.
    with open(tmp_path / "config.json", "w", encoding="utf-8") as f:
        json.dump(json.loads(config.to_json()), f)
    message = (rf"written by an older man_tf \(workdir format 1, this version reads "
               rf"{workdirs.WORKDIR_FORMAT}\): retrain with a new --workdir")
    with pytest.raises(workdirs.WorkdirMismatch, match=message):
        workdirs.check_resumable(str(tmp_path), config, has_checkpoint=True)
    with pytest.raises(workdirs.WorkdirMismatch, match=message):
        workdirs.load_config(str(tmp_path))
    # Format 2 (before the tagger's output_layer / bio_decoding) too.
    with open(tmp_path / "workdir.json", "w", encoding="utf-8") as f:
        json.dump({"format": 2}, f)
    with pytest.raises(workdirs.WorkdirMismatch, match="workdir format 2, this version reads 3"):
        workdirs.load_config(str(tmp_path))
    # Without a checkpoint there is nothing to resume: the run starts afresh.
    workdirs.check_resumable(str(tmp_path), config, has_checkpoint=False)


def test_a_current_workdir_resumes_and_a_changed_setting_is_named(tmp_path):
    config = load_config("sample_ner")
    workdirs.save_config(str(tmp_path), config)
    workdirs.check_resumable(str(tmp_path), config, has_checkpoint=True)  # no mismatch
    assert workdirs.load_config(str(tmp_path)).to_dict() == \
        json.loads(config.to_json())
    config.model.use_predictor_moe = False
    with pytest.raises(workdirs.WorkdirMismatch, match="model.use_predictor_moe"):
        workdirs.check_resumable(str(tmp_path), config, has_checkpoint=True)


def test_a_field_added_later_reads_as_its_old_value_in_an_older_workdir(tmp_path):
    """train.discriminator_batch came after workdirs of format 3 were written:
    one without it was trained as "own" and resumes so; "main" is refused."""
    from man_tf import settings

    config = load_config("sample_ner")
    stored = json.loads(config.to_json())
    del stored["train"]["discriminator_batch"]
    workdirs.save_config(str(tmp_path), config)
    with open(tmp_path / "config.json", "w", encoding="utf-8") as f:
        json.dump(stored, f)
    assert config.train.discriminator_batch == "own"
    workdirs.check_resumable(str(tmp_path), config, has_checkpoint=True)
    config.train.discriminator_batch = "main"
    with pytest.raises(workdirs.WorkdirMismatch,
                       match="train.discriminator_batch: 'own' -> 'main'"):
        workdirs.check_resumable(str(tmp_path), config, has_checkpoint=True)
    # Its settings are checked up front, each in one line.
    settings.check_config(config)
    config.train.discriminator_steps = 2
    with pytest.raises(settings.ConfigError, match="discriminator_steps=2: D's one update"):
        settings.check_config(config)
    config.train.discriminator_steps, config.train.precision = 1, "mixed_float16"
    with pytest.raises(settings.ConfigError, match="precision=mixed_float16"):
        settings.check_config(config)
    config.train.discriminator_batch = "shared"
    with pytest.raises(settings.ConfigError, match="expected one of own, main"):
        settings.check_config(config)
