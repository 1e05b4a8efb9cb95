"""Static-graph VGG with the 2019 fluid parameter names, for the fluid2019 fidelity oracle.

Written from the graph of models@c1c5ed6 ``fluid/PaddleCV/image_classification/
models_name/vgg.py``: five stages of 3x3 conv (padding 1, ReLU) named
``conv{s}_{j}_weights`` / ``conv{s}_{j}_offset`` followed by a 2x2 max pool, then
``fc6`` (ReLU), dropout 0.5, ``fc7`` (ReLU), dropout 0.5, ``fc8``. The 2019 ``dropout``
defaulted to ``downgrade_in_infer`` (multiply by 1 - p at inference); the oracle runs
the ``for_test`` clone, as the 2019 ``eval.py`` did.

Differences from the 2019 file, on purpose:
- ``fc8`` returns logits: the 2019 layer applied softmax, which only rescales them
  monotonically; comparing logits is the stronger test.
- ``conv_bias=False`` reproduces the code after 2019-09-05 (models@d6c6511), where the
  convs lost their bias, so the archive has no ``convX_Y_offset`` files.

Run by :func:`oracles.fluid.run_fluid_oracle` in a subprocess with
``FLAGS_enable_pir_api=0``; names are global, which is fine in an oracle process.
"""

from __future__ import annotations

DEPTHS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)


def build(image, class_dim: int = 1000, depth: int = 16, conv_bias: bool = True):
    """Append VGG``depth`` to the current static program; return the logits variable."""
    import paddle
    from paddle import ParamAttr
    import paddle.nn.functional as F

    x = image
    for s, (n, channels) in enumerate(zip(DEPTHS[depth], CHANNELS), start=1):
        for j in range(1, n + 1):
            x = paddle.static.nn.conv2d(
                x,
                num_filters=channels,
                filter_size=3,
                stride=1,
                padding=1,
                act="relu",
                param_attr=ParamAttr(name=f"conv{s}_{j}_weights"),
                bias_attr=ParamAttr(name=f"conv{s}_{j}_offset") if conv_bias else False,
            )
        x = F.max_pool2d(x, kernel_size=2, stride=2)
    for name, size, act in (("fc6", 4096, "relu"), ("fc7", 4096, "relu")):
        x = paddle.static.nn.fc(
            x,
            size=size,
            activation=act,
            weight_attr=ParamAttr(name=f"{name}_weights"),
            bias_attr=ParamAttr(name=f"{name}_offset"),
        )
        x = F.dropout(x, p=0.5, training=True, mode="downscale_in_infer")
    return paddle.static.nn.fc(
        x,
        size=class_dim,
        weight_attr=ParamAttr(name="fc8_weights"),
        bias_attr=ParamAttr(name="fc8_offset"),
    )
