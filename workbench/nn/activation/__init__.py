"""Activation layers (``ReLU``, ``Tanh``, ``Sigmoid``, ``SoftMax``, ``GELU`` ...) and the
functions behind them (``softmax``, ``log_softmax``, ``normal_cdf``).
"""
from .activations import (ReLU, Tanh, Sigmoid, SoftMax, LogSoftMax, ReLU6, HardSigmoid, LogSigmoid,
                          SoftMin, SoftPlus, SoftSign, SoftShrink, HardShrink, TanhShrink, HardTanh,
                          ELU, LeakyReLU, PReLU, RReLU, SReLU, Threshold, BinaryThreshold, Clamp,
                          GELU, SiLU)

__all__ = ["ReLU", "Tanh", "Sigmoid", "SoftMax", "LogSoftMax", "ReLU6", "HardSigmoid", "LogSigmoid",
           "SoftMin", "SoftPlus", "SoftSign", "SoftShrink", "HardShrink", "TanhShrink", "HardTanh",
           "ELU", "LeakyReLU", "PReLU", "RReLU", "SReLU", "Threshold", "BinaryThreshold", "Clamp",
           "GELU", "SiLU"]
