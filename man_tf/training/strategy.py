"""Distribution strategy and numeric precision, chosen by config."""

import os

import keras
import tensorflow as tf
from absl import logging


def configure_threads(train):
    """TensorFlow's thread pools from the config's ``train`` section: threads
    one op may use (``intra_op_threads``) and ops run at once
    (``inter_op_threads``); 0 keeps TensorFlow's choice. Must run before
    TensorFlow initialises its runtime (a ``RuntimeError`` after)."""
    if train.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(train.intra_op_threads)
    if train.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(train.inter_op_threads)


def configure_cpu_devices(count):
    """Splits the CPU into ``count`` logical devices (to test multi-replica code
    without GPUs). Must run before TensorFlow initialises its runtime."""
    if count and count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def make_strategy(name="default"):
    """``default``: one device. ``mirrored``: every local GPU, or every logical
    CPU device when there is no GPU. ``multi_worker``:
    ``MultiWorkerMirroredStrategy`` over the hosts in ``TF_CONFIG`` (every
    local GPU of each, or its CPU)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy 'multi_worker' reads the cluster from the TF_CONFIG "
                             "environment variable, which is not set (see the README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}: expected 'default', 'mirrored' or "
                     f"'multi_worker'")


def is_chief(strategy):
    """True on the worker that writes checkpoints, summaries and results."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                    "chief" not in resolver.cluster_spec().as_dict())


def worker_dir(workdir, strategy):
    """Where this worker writes: the workdir on the chief; a temporary folder
    for the others (their checkpoint writes are part of the collective save,
    then thrown away), as TF's multi-worker guide does."""
    if is_chief(strategy):
        return workdir
    return os.path.join(workdir, f".worker{strategy.cluster_resolver.task_id}")


def _cpu_has_bf16():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def set_precision(policy="auto"):
    """Sets Keras' global dtype policy; ``auto`` picks ``mixed_bfloat16`` where
    the hardware computes bf16 natively (CPUs with AVX512-BF16/AMX, GPUs of
    compute capability 8+) and ``float32`` elsewhere. Returns the policy name."""
    if policy == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            major = (details.get("compute_capability") or (0, 0))[0]
            policy = "mixed_bfloat16" if major >= 8 else "float32"
        else:
            policy = "mixed_bfloat16" if _cpu_has_bf16() else "float32"
    keras.mixed_precision.set_global_policy(policy)
    logging.info("dtype policy: %s (pid %d)", policy, os.getpid())
    return policy
