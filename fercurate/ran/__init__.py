"""The Region Attention Network (RAN) and its ResNet-18 baseline: model, crops, losses, training, evaluation.

Import the submodules you need (they pull in torch): ``fercurate.ran.model``, ``.train``, ``.evaluate``.
"""
