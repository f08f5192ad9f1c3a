"""Recurrent layers: the cells (``RnnCell``, ``LSTM``, ``LSTMPeephole``, ``GRU``,
``ConvLSTMPeephole`` and ``ConvLSTMPeephole3D``), the containers that run them over time
(``Recurrent``, ``BiRecurrent``, ``RecurrentDecoder``, ``TimeDistributed``) and the glue to
the native RNN kernels (``native``).
"""
from .rnn import (Cell, RnnCell, LSTM, LSTMPeephole, GRU, MultiRNNCell, Recurrent, BiRecurrent,
                  TimeDistributed, RecurrentDecoder)
from .conv_lstm import ConvLSTMPeephole
from .conv_lstm3d import ConvLSTMPeephole3D

__all__ = ["Cell", "RnnCell", "LSTM", "LSTMPeephole", "GRU", "MultiRNNCell", "Recurrent",
           "BiRecurrent", "TimeDistributed", "RecurrentDecoder", "ConvLSTMPeephole",
           "ConvLSTMPeephole3D"]
