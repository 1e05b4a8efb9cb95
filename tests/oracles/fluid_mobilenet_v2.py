"""Static-graph MobileNetV2 with the 2019 fluid parameter names, for the fluid2019 oracle.

Written from the graph of models@c1c5ed6 ``fluid/PaddleCV/image_classification/
models_name/mobilenet_v2.py`` (scale 1.0): ``conv1_1`` (3x3 stride 2, 32 channels,
ReLU6); groups ``conv2`` .. ``conv8`` of inverted residual units ``conv{g}_{k}``, each
with a 1x1 ``_expand`` conv (present even for expansion 1), a 3x3 depthwise ``_dwise``
conv (both ReLU6) and a 1x1 ``_linear`` conv without activation; the first unit of a
group carries the stride and never a shortcut, the others add their input; ``conv9``
(1x1 to 1280, ReLU6), global average pooling and ``fc10``. Every conv is bias-free and
followed by batch norm ``<conv>_bn_*``.

The 2019 ``fc10`` applied softmax; this oracle returns the logits before it (softmax
only rescales them monotonically; comparing logits is the stronger test).

Run by :func:`oracles.fluid.run_fluid_oracle` in a subprocess with ``FLAGS_enable_pir_api=0``.
"""

from __future__ import annotations

from oracles._fluid_layers import conv_bn, fc

# (expansion t, channels c, units n, first stride s) of groups conv2 .. conv8.
SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _relu6(x):
    import paddle.nn.functional as F

    return F.relu6(x)


def _unit(x, in_c: int, out_c: int, stride: int, t: int, name: str, shortcut: bool):
    hidden = int(round(in_c * t))
    y = _relu6(conv_bn(x, hidden, 1, f"{name}_expand"))
    y = _relu6(conv_bn(y, hidden, 3, f"{name}_dwise", stride=stride, groups=hidden))
    y = conv_bn(y, out_c, 1, f"{name}_linear")
    if shortcut:
        import paddle

        return paddle.add(x, y)
    return y


def build(image, class_dim: int = 1000):
    """Append the 2019 MobileNetV2 x1.0 to the current static program; return the logits variable."""
    import paddle.nn.functional as F

    x = _relu6(conv_bn(image, 32, 3, "conv1_1", stride=2))
    in_c = 32
    for g, (t, c, n, s) in enumerate(SETTINGS, start=2):
        x = _unit(x, in_c, c, s, t, f"conv{g}_1", shortcut=False)
        for k in range(2, n + 1):
            x = _unit(x, c, c, 1, t, f"conv{g}_{k}", shortcut=True)
        in_c = c
    x = _relu6(conv_bn(x, 1280, 1, "conv9"))
    x = F.adaptive_avg_pool2d(x, 1)
    return fc(x, class_dim, "fc10")
