"""Static-graph ResNet18/34/50/101/152 with the 2019 fluid parameter names, for the fluid2019 oracle.

Written from the graph of models@dc1b032 ``fluid/PaddleCV/image_classification/models/resnet.py``
(ResNet18/34 added there; ResNet50/101/152 as in models@c1c5ed6 ``models_name/resnet.py``):

- stem ``conv1`` (7x7 stride 2, 64 channels, BN ``bn_conv1``, ReLU), 3x3 stride-2 max-pool;
- stages of 64/128/256/512 filters; block names ``res<stage+2><letter>``, except stage
  index 2 of ResNet101/152: ``res4a``, ``res4b1``, ``res4b2`` ...;
- bottleneck: ``_branch2a`` 1x1, ``_branch2b`` 3x3 carrying the stride, ``_branch2c`` 1x1
  (x4 channels, no activation); basic: ``_branch2a`` 3x3 with the stride, ``_branch2b`` 3x3;
- shortcut ``_branch1`` (1x1 conv + BN, with the stride) when channels or stride change,
  and in basic networks also for the very first block (``is_first``);
- BN of a conv named ``resXY_Z`` is ``bnXY_Z``; add, ReLU;
- global average pool and an unnamed fc (``fc_0.w_0`` / ``fc_0.b_0``).

The 2019 ``models_name`` graph ended in ``act='softmax'``; the oracle returns the fc
output before it (our networks return logits; softmax has no parameters).
Run by :func:`oracles.fluid.run_fluid_oracle` in a subprocess with ``FLAGS_enable_pir_api=0``.
"""

from __future__ import annotations

from oracles import _fluid_layers

# layers -> (bottleneck?, blocks per stage), from the 2019 ``net()``.
DEPTHS = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
    152: (True, (3, 8, 36, 3)),
}
NUM_FILTERS = (64, 128, 256, 512)


def conv_bn(x, num_filters: int, filter_size: int, name: str, stride: int = 1, act=None):
    """Conv ``<name>_weights`` + BN named by the 2019 rule (``bn_conv1``, ``resXY_Z`` -> ``bnXY_Z``)."""
    bn = "bn_" + name if name == "conv1" else "bn" + name[3:]
    return _fluid_layers.conv_bn(x, num_filters, filter_size, name, stride=stride, act=act, bn_name=bn)


def shortcut(x, ch_out: int, stride: int, is_first: bool, name: str):
    if x.shape[1] != ch_out or stride != 1 or is_first:
        return conv_bn(x, ch_out, 1, name, stride=stride)
    return x


def bottleneck(x, num_filters: int, stride: int, name: str):
    import paddle.nn.functional as F

    y = conv_bn(x, num_filters, 1, f"{name}_branch2a", act="relu")
    y = conv_bn(y, num_filters, 3, f"{name}_branch2b", stride=stride, act="relu")
    y = conv_bn(y, num_filters * 4, 1, f"{name}_branch2c")
    return F.relu(shortcut(x, num_filters * 4, stride, False, f"{name}_branch1") + y)


def basic(x, num_filters: int, stride: int, is_first: bool, name: str):
    import paddle.nn.functional as F

    y = conv_bn(x, num_filters, 3, f"{name}_branch2a", stride=stride, act="relu")
    y = conv_bn(y, num_filters, 3, f"{name}_branch2b")
    return F.relu(shortcut(x, num_filters, stride, is_first, f"{name}_branch1") + y)


def build(image, class_dim: int = 1000, layers: int = 50):
    """Append ResNet-``layers`` to the current static program; return the logits variable."""
    import paddle.nn.functional as F

    is_bottleneck, depth = DEPTHS[layers]
    x = conv_bn(image, 64, 7, "conv1", stride=2, act="relu")
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for block, n in enumerate(depth):
        for i in range(n):
            if layers in (101, 152) and block == 2:
                name = f"res{block + 2}" + ("a" if i == 0 else f"b{i}")
            else:
                name = f"res{block + 2}{chr(97 + i)}"
            stride = 2 if i == 0 and block != 0 else 1
            if is_bottleneck:
                x = bottleneck(x, NUM_FILTERS[block], stride, name)
            else:
                x = basic(x, NUM_FILTERS[block], stride, block == i == 0, name)
    x = F.adaptive_avg_pool2d(x, 1)
    return _fluid_layers.fc(x, class_dim, "fc", weight="fc_0.w_0", bias="fc_0.b_0")
