"""absl entry points; the only place that wires data, models, training and evaluation."""
