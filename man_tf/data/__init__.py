"""Readers, vocabularies and tf.data pipelines (files -> tensors)."""

from man_tf.data.errors import DataError

__all__ = ["DataError"]
