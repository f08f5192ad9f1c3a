"""A small SSD (Single Shot MultiBox Detector, Liu et al. 2016) for small images, in the shape of
BigDL's SSD models: a convolutional trunk, two feature maps with prior boxes and location /
confidence heads, and ``DetectionOutputSSD`` for inference."""
from __future__ import annotations

import math

from ..nn import (DetectionOutputSSD, InferReshape, Input, JoinTable, Model, PriorBox, ReLU,
                  SpatialBatchNormalization, SpatialConvolution, SpatialMaxPooling, Transpose)

__all__ = ["TinySSD"]


def _flat(node, name):
    """``(N, A*k, H, W)`` -> ``(N, H*W*A*k)`` in PriorBox's order: cell by cell, then prior."""
    moved = Transpose([(2, 3), (3, 4)]).set_name(f"{name}_perm")(node)
    return InferReshape([-1], batch_mode=True).set_name(f"{name}_flat")(moved)


def TinySSD(class_num, resolution=48, n_channels=1, width=16, nms_thresh=0.45, nms_topk=100,
            keep_top_k=50, conf_thresh=0.05):
    """An SSD detector small enough to train on a laptop CPU in seconds.

    A trunk of three 3x3 convolutions (``width``, ``2 width``, ``2 width`` channels), each
    followed by batch normalization, ReLU and 2x2 max pooling, gives feature maps at strides 4
    and 8.  Each map has four priors per cell (a square of side ``min``, one of side
    ``sqrt(min * max)``, and the two 2:1 rectangles) with ``min, max`` = ``resolution / 6,
    0.3 resolution`` on the first map and ``resolution / 3, 0.6 resolution`` on the second,
    variances ``(0.1, 0.1, 0.2, 0.2)``, and two 3x3 convolution heads: 4 offsets and
    ``class_num`` scores per prior.  The score heads start out saying "background" with
    probability 0.99 (RetinaNet's prior), which spares the first hundred iterations.

    The priors come from pooling the image to each map's size, not from the trunk, so the
    training backward never reaches ``PriorBox`` (which has no gradient) and the trunk's
    gradient is that of the heads alone.

    In training mode the model returns the table ``[loc (N, P*4), conf (N, P*class_num),
    priors (1, 2, P*4)]`` that ``MultiBoxLoss`` takes; in evaluation mode (``model.evaluate()``)
    ``DetectionOutputSSD`` decodes it into detections ``(N, 1 + D*6)`` of rows ``(label,
    score, x1, y1, x2, y2)`` in coordinates normalized to [0, 1].

    Args:
        class_num: classes, the background (class 0) included (>= 2).
        resolution: image side in pixels, a multiple of 8 (>= 16).
        n_channels: image channels (1 for grey).
        width: channels of the first convolution (> 0).
        nms_thresh, nms_topk, keep_top_k, conf_thresh: ``DetectionOutputSSD``'s suppression
            overlap, candidates per class, detections kept per image and minimum score.

    Input shape: ``(N, n_channels, resolution, resolution)``.
    Output shape: see above; ``P = 4 * ((resolution / 4)^2 + (resolution / 8)^2)``.
    """
    for arg, value, low in (("class_num", class_num, 2), ("resolution", resolution, 16),
                            ("n_channels", n_channels, 1), ("width", width, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"TinySSD: {arg} must be an int >= {low}, got {value!r}")
    if resolution % 8:
        raise ValueError(f"TinySSD: resolution must be a multiple of 8, got {resolution}")
    image = Input("image")
    x = image
    maps = []
    for k, (cin, cout) in enumerate([(n_channels, width), (width, 2 * width),
                                     (2 * width, 2 * width)], 1):
        x = SpatialConvolution(cin, cout, 3, 3, 1, 1, 1, 1).set_name(f"conv{k}")(x)
        x = SpatialBatchNormalization(cout).set_name(f"bn{k}")(x)
        x = ReLU().set_name(f"relu{k}")(x)
        x = SpatialMaxPooling(2, 2, 2, 2).set_name(f"pool{k}")(x)
        if k >= 2:
            maps.append((x, 2 ** k, cout))
    sizes = [(resolution / 6, 0.3 * resolution), (resolution / 3, 0.6 * resolution)]
    locs, confs, priors = [], [], []
    for m, ((feature, stride, channels), (lo, hi)) in enumerate(zip(maps, sizes), 1):
        prior_box = PriorBox([lo], [hi], aspect_ratios=[2], is_flip=True, is_clip=False,
                             variances=[0.1, 0.1, 0.2, 0.2], img_size=resolution,
                             step=float(stride)).set_name(f"priors{m}")
        a = prior_box.num_priors
        loc = SpatialConvolution(channels, a * 4, 3, 3, 1, 1, 1, 1).set_name(f"loc{m}")
        conf = SpatialConvolution(channels, a * class_num, 3, 3, 1, 1, 1, 1)
        # start from "background, 99%": nearly every prior is background, and learning that
        # from an even start costs the first hundred iterations
        conf.bias.reshape(a, class_num)[:, 0] += math.log(0.99 * (class_num - 1) / 0.01)
        locs.append(_flat(loc(feature), f"loc{m}"))
        confs.append(_flat(conf.set_name(f"conf{m}")(feature), f"conf{m}"))
        grid = SpatialMaxPooling(stride, stride, stride, stride).set_name(f"grid{m}")(image)
        priors.append(prior_box(grid))
    heads = [JoinTable(2).set_name("loc")(locs), JoinTable(2).set_name("conf")(confs),
             JoinTable(3).set_name("priors")(priors)]
    detect = DetectionOutputSSD(class_num, share_location=True, bg_label=0,
                                nms_thresh=nms_thresh, nms_topk=nms_topk, keep_top_k=keep_top_k,
                                conf_thresh=conf_thresh).set_name("detection_output")
    return Model(image, detect(heads))
