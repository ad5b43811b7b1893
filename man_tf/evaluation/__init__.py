"""Scoring: entity-level span F1 with conlleval semantics, accuracy, reports."""

from man_tf.evaluation.span_f1 import SpanScores, span_f1

__all__ = ["SpanScores", "span_f1"]
