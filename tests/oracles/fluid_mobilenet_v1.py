"""Static-graph MobileNetV1 with the 2019 fluid parameter names, for the fluid2019 oracle.

Written from the graph of models@c1c5ed6 ``fluid/PaddleCV/image_classification/
models_name/mobilenet.py`` (scale 1.0): ``conv1`` (3x3 stride 2, 32 channels), thirteen
depthwise-separable blocks ``conv2_1`` .. ``conv6`` (``<blk>_dw``: 3x3 depthwise conv,
``<blk>_sep``: 1x1 conv; each conv without bias, then batch norm ``<conv>_bn_*`` with
ReLU), global average pooling and ``fc7`` (no activation).

Run by :func:`oracles.fluid.run_fluid_oracle` in a subprocess with ``FLAGS_enable_pir_api=0``.
"""

from __future__ import annotations

from oracles._fluid_layers import conv_bn, fc

# (name, output channels, stride) of the depthwise-separable blocks.
BLOCKS = (
    ("conv2_1", 64, 1),
    ("conv2_2", 128, 2),
    ("conv3_1", 128, 1),
    ("conv3_2", 256, 2),
    ("conv4_1", 256, 1),
    ("conv4_2", 512, 2),
    ("conv5_1", 512, 1),
    ("conv5_2", 512, 1),
    ("conv5_3", 512, 1),
    ("conv5_4", 512, 1),
    ("conv5_5", 512, 1),
    ("conv5_6", 1024, 2),
    ("conv6", 1024, 1),
)


def build(image, class_dim: int = 1000):
    """Append MobileNetV1 x1.0 to the current static program; return the logits variable."""
    import paddle.nn.functional as F

    x = conv_bn(image, 32, 3, "conv1", stride=2, act="relu")
    channels = 32
    for name, out_c, stride in BLOCKS:
        x = conv_bn(x, channels, 3, f"{name}_dw", stride=stride, groups=channels, act="relu")
        x = conv_bn(x, out_c, 1, f"{name}_sep", act="relu")
        channels = out_c
    x = F.adaptive_avg_pool2d(x, 1)
    return fc(x, class_dim, "fc7")
