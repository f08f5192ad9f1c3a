"""Object detection: ``RoiPooling``, ``PriorBox``, ``DetectionOutputSSD``, ``Proposal`` and
non-maximum suppression.
"""
from .layers import RoiPooling, PriorBox, DetectionOutputSSD, Proposal

__all__ = ["RoiPooling", "PriorBox", "DetectionOutputSSD", "Proposal"]
