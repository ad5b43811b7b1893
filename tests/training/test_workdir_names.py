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
