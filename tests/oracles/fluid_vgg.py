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

from oracles._fluid_layers import conv, fc

DEPTHS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)


def build(image, class_dim: int = 1000, depth: int = 16, conv_bias: bool = True):
    """Append VGG``depth`` to the current static program; return the logits variable."""
    import paddle.nn.functional as F

    x = image
    for s, (n, channels) in enumerate(zip(DEPTHS[depth], CHANNELS), start=1):
        for j in range(1, n + 1):
            x = conv(x, channels, 3, f"conv{s}_{j}", act="relu", bias=conv_bias)
        x = F.max_pool2d(x, kernel_size=2, stride=2)
    for name in ("fc6", "fc7"):
        x = fc(x, 4096, name, act="relu")
        x = F.dropout(x, p=0.5, training=True, mode="downscale_in_infer")
    return fc(x, class_dim, "fc8")
