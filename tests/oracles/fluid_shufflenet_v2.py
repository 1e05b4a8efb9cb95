"""Static-graph ShuffleNetV2 x1.0 with the 2019 fluid parameter names, for the fluid2019 oracle.

Written from the graph of models@dc1b032 ``fluid/PaddleCV/image_classification/models/shufflenet_v2.py``
and its later ReLU / swish split (``shufflenet_v2.py``, ``shufflenet_v2_swish.py``:
same names, the activation of ``conv_bn_layer(if_act=True)`` is the only difference):

- ``conv_bn(name)``: conv ``<name>_weights`` (no bias) + batch_norm ``<name>_bn_scale``,
  ``_bn_offset``, ``_bn_mean``, ``_bn_variance``, with the activation when ``if_act``;
- ``stage1_conv`` 3x3/2 (24) + act, max pool 3/2 pad 1;
- stages 2..4 of 4, 8, 4 units with 116, 232, 464 channels, unit ``<stage>_<i>`` (i from 1):
  unit 1 (stride 2): branch 1 ``stage_<s>_<i>_conv4`` 3x3/2 depthwise (no act),
  ``_conv5`` 1x1 + act; branch 2 ``_conv1`` 1x1 + act, ``_conv2`` 3x3/2 depthwise
  (no act), ``_conv3`` 1x1 + act; concat [branch 1, branch 2];
  other units: split channels in halves [x1, x2], branch 2 on x2, concat [x1, branch 2];
  every unit ends with channel_shuffle(2): reshape [N, 2, C/2, H, W], transpose
  (0, 2, 1, 3, 4), reshape [N, C, H, W];
- ``conv5`` 1x1 (1024) + act, avg pool 7/1 (the global mean of the 7x7 map at 224x224),
  fc ``fc6_weights`` / ``fc6_offset`` (no activation: logits).

``build(image, class_dim, act="relu" | "swish")`` returns the logits.
Run by ``oracles.fluid.run_fluid_oracle`` in a subprocess with ``FLAGS_enable_pir_api=0``.
"""

from __future__ import annotations

from oracles._fluid_layers import conv_bn, fc

STAGE_REPEATS = (4, 8, 4)
STAGE_OUT = (24, 116, 232, 464, 1024)


def channel_shuffle(x, groups: int):
    import paddle

    _, c, h, w = x.shape
    x = paddle.reshape(x, [-1, groups, c // groups, h, w])
    x = paddle.transpose(x, [0, 2, 1, 3, 4])
    return paddle.reshape(x, [-1, c, h, w])


def unit(x, num_filters: int, stride: int, name: str, act: str):
    import paddle

    half = num_filters // 2
    p = f"stage_{name}"
    if stride == 1:
        x1, x2 = paddle.split(x, num_or_sections=[x.shape[1] // 2, x.shape[1] // 2], axis=1)
        y = conv_bn(x2, half, 1, f"{p}_conv1", act=act)
        y = conv_bn(y, half, 3, f"{p}_conv2", groups=half)
        y = conv_bn(y, half, 1, f"{p}_conv3", act=act)
        out = paddle.concat([x1, y], axis=1)
    else:
        inp = x.shape[1]
        b1 = conv_bn(x, inp, 3, f"{p}_conv4", stride=stride, groups=inp)
        b1 = conv_bn(b1, half, 1, f"{p}_conv5", act=act)
        b2 = conv_bn(x, half, 1, f"{p}_conv1", act=act)
        b2 = conv_bn(b2, half, 3, f"{p}_conv2", stride=stride, groups=half)
        b2 = conv_bn(b2, half, 1, f"{p}_conv3", act=act)
        out = paddle.concat([b1, b2], axis=1)
    return channel_shuffle(out, 2)


def build(image, class_dim: int = 1000, act: str = "relu"):
    """The 2019 ShuffleNetV2 x1.0 graph (``act`` ``"relu"`` or ``"swish"``); returns the logits."""
    import paddle.nn.functional as F

    if act not in ("relu", "swish"):
        raise ValueError(f"act must be 'relu' or 'swish', got {act!r}")
    x = conv_bn(image, STAGE_OUT[0], 3, "stage1_conv", stride=2, act=act)
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for s, repeats in enumerate(STAGE_REPEATS):
        for i in range(repeats):
            x = unit(x, STAGE_OUT[s + 1], 2 if i == 0 else 1, f"{s + 2}_{i + 1}", act)
    x = conv_bn(x, STAGE_OUT[-1], 1, "conv5", act=act)
    x = F.avg_pool2d(x, kernel_size=7, stride=1, padding=0)
    return fc(x, class_dim, "fc6")
