"""The adversarial MAN-MoE training step, losses, checkpoints and strategies."""
