"""A tiny 2019-style static network for testing :mod:`oracles.fluid` itself.

Two conv+BN blocks named like the 2019 releases (``conv1_weights`` +
``bn_conv1_*`` as in ResNet; ``conv2_weights`` + ``conv2_bn_*`` as in
MobileNet), a 2x2 max-pool, global average pool, dropout 0.5 with
``downscale_in_infer`` (the 2019 fluid default) and a classifier that is either
named (``fc8_weights`` / ``fc8_offset``) or unnamed (``fc_0.w_0`` / ``fc_0.b_0``,
like the ResNet releases). Built under FLAGS_enable_pir_api=0 by the fluid worker.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.static import nn as snn

from oracles._fluid_layers import conv_bn


def build(image, class_dim: int = 1000, named_fc: bool = True, width: int = 8):
    """``image`` -> logits, with 2019 parameter names."""
    x = conv_bn(image, width, 3, "conv1", stride=2, act="relu", bn_name="bn_conv1")
    x = F.max_pool2d(x, kernel_size=2, stride=2)
    x = conv_bn(x, 2 * width, 3, "conv2", act="relu")
    x = F.adaptive_avg_pool2d(x, 1)
    x = F.dropout(x, p=0.5, mode="downscale_in_infer")
    if named_fc:
        return snn.fc(
            x,
            size=class_dim,
            weight_attr=ParamAttr(name="fc8_weights"),
            bias_attr=ParamAttr(name="fc8_offset"),
        )
    return snn.fc(x, size=class_dim)


def build_two_heads(image, class_dim: int = 1000):
    """Like :func:`build` but returns ``[main, aux]`` (GoogLeNet-style) for the list-output path."""
    x = conv_bn(image, 8, 3, "conv1", stride=2, act="relu", bn_name="bn_conv1")
    pooled = paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    main = snn.fc(
        pooled,
        size=class_dim,
        weight_attr=ParamAttr(name="out_weights"),
        bias_attr=ParamAttr(name="out_offset"),
    )
    aux = snn.fc(
        pooled,
        size=class_dim,
        weight_attr=ParamAttr(name="out1_weights"),
        bias_attr=ParamAttr(name="out1_offset"),
    )
    return [main, aux]
