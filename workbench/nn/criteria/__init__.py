"""Criteria (losses), split by kind: the shared argument checks and ``WeightedCriterion``
(``base``), classification, regression, embedding/ranking, distribution, composite and
detection (``MultiBoxLoss``) criteria.  The ``Criterion`` base class is in ``criterion.py``.
"""
from .classification import (CategoricalCrossEntropy, MultiLabelSoftMarginCriterion,
                             MultiMarginCriterion, MultiLabelMarginCriterion, SoftMarginCriterion,
                             MarginCriterion, ClassSimplexCriterion, SoftmaxWithCriterion,
                             ClassNLLCriterion, CrossEntropyCriterion, BCECriterion)
from .regression import (AbsCriterion, SmoothL1Criterion, SmoothL1CriterionWithWeights,
                         MeanAbsolutePercentageCriterion, MeanSquaredLogarithmicCriterion,
                         PoissonCriterion, L1Cost, MSECriterion)
from .embedding import (CosineEmbeddingCriterion, CosineDistanceCriterion, CosineProximityCriterion,
                        HingeEmbeddingCriterion, L1HingeEmbeddingCriterion, MarginRankingCriterion,
                        DotProductCriterion)
from .distribution import (DistKLDivCriterion, KullbackLeiblerDivergenceCriterion, KLDCriterion,
                           GaussianCriterion, DiceCoefficientCriterion, PGCriterion)
from .detection import MultiBoxLoss, MultiBoxLossParam
from .composite import (MultiCriterion, ParallelCriterion, TimeDistributedCriterion,
                        TimeDistributedMaskCriterion, TransformerCriterion)

__all__ = ["CategoricalCrossEntropy", "MultiLabelSoftMarginCriterion", "MultiMarginCriterion",
           "MultiLabelMarginCriterion", "SoftMarginCriterion", "MarginCriterion",
           "ClassSimplexCriterion", "SoftmaxWithCriterion", "ClassNLLCriterion",
           "CrossEntropyCriterion", "BCECriterion", "AbsCriterion", "SmoothL1Criterion",
           "SmoothL1CriterionWithWeights", "MeanAbsolutePercentageCriterion",
           "MeanSquaredLogarithmicCriterion", "PoissonCriterion", "L1Cost", "MSECriterion",
           "CosineEmbeddingCriterion", "CosineDistanceCriterion", "CosineProximityCriterion",
           "HingeEmbeddingCriterion", "L1HingeEmbeddingCriterion", "MarginRankingCriterion",
           "DotProductCriterion", "DistKLDivCriterion", "KullbackLeiblerDivergenceCriterion",
           "KLDCriterion", "GaussianCriterion", "DiceCoefficientCriterion", "PGCriterion",
           "MultiCriterion", "ParallelCriterion", "TimeDistributedCriterion",
           "TimeDistributedMaskCriterion", "TransformerCriterion",
           "MultiBoxLoss", "MultiBoxLossParam"]
