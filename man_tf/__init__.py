"""man_tf: MAN-MoE multi-source cross-lingual model transfer in TensorFlow/Keras 3.

Chen, Hassan Awadallah, Hassan, Wang, Cardie. "Multi-Source Cross-Lingual Model
Transfer: Learning What to Share". ACL 2019 (arXiv 1810.03552).
"""

__version__ = "0.1.0"
