"""Test setup: quiet TF logs, 2 logical CPU devices, the shared real-data folder.

Logical devices must be configured before TensorFlow's runtime starts, so it
happens here, once, at import time.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
CONLL = os.path.join(SHARED_DATA, "conll")


def conll_file(name):
    """Path of a real CoNLL file; skips (saying why) only where the shared data
    folder is absent, so a machine with the data always runs these tests."""
    path = os.path.join(CONLL, name)
    if not os.path.isdir(CONLL):
        pytest.skip(f"real data not found at {CONLL} (../shared/data next to the project)")
    return path


@pytest.fixture
def write(tmp_path):
    """``write(name, text_or_bytes)`` -> path of a new file in a temporary dir."""

    def _write(name, content):
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    return _write


@pytest.fixture(autouse=True)
def float32_policy():
    """Commands set Keras' global dtype policy (bf16 on this CPU); every test
    starts and ends with the default."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def serve_check(tmp_path_factory):
    """The C++ loader (man_tf/export/cc/serve_check.cc), built once per test
    session with g++ against the installed TensorFlow wheel."""
    from man_tf.export import cc_check

    return cc_check.build(str(tmp_path_factory.mktemp("serve_check")))


# The files with the longest runs (pytest --durations, 2026-12-05), started
# first: with one process per core (pytest-xdist --dist loadfile, the README's
# command) the short files then fill the gaps instead of one long file
# running alone at the end.
SLOW_FILES_FIRST = ("tests/cli/test_encoder_input.py", "tests/cli/test_failures.py",
                    "tests/cli/test_encoder_fine_tuning.py", "tests/test_gpu_check.py",
                    "tests/cli/test_train_evaluate.py", "tests/cli/test_workdir_and_vectors.py",
                    "tests/cli/test_robustness.py", "tests/training/test_distributed_training.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = os.path.relpath(str(item.path), ROOT)
        return SLOW_FILES_FIRST.index(path) if path in SLOW_FILES_FIRST else len(SLOW_FILES_FIRST)

    items.sort(key=rank)  # stable: each file's own order is kept
