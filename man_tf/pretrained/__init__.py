"""Pretrained multilingual encoders (offline weights) used as MAN-MoE inputs."""
