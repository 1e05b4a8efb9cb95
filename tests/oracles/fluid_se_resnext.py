"""Static-graph SE-ResNeXt50/101_32x4d with the 2019 fluid parameter names, for the fluid2019 oracle.

Written from the graph of models@c1c5ed6 ``fluid/PaddleCV/image_classification/models_name/se_resnext.py``
(``layers`` 50 and 101 share everything but the depth; 152 is out of scope):

- stem ``conv1`` (one 7x7 stride-2 conv, 64 channels, BN ``conv1_bn``, ReLU), 3x3 stride-2 max-pool;
- stages of 128/256/512/1024 filters, cardinality 32, SE reduction 16; block ``n_i`` with
  ``n`` = stage + 2, ``i`` from 1;
- block: ``conv<n_i>_x1`` 1x1, ``_x2`` 3x3 with groups=32 carrying the stride, ``_x3`` 1x1 to
  2 x filters (no activation); each conv's BN is ``<conv>_bn``;
- squeeze-excitation on ``_x3``: global average pool, fc ``fc<n_i>_sqz`` (C -> C/16, ReLU),
  fc ``fc<n_i>_exc`` (C/16 -> C, sigmoid), channel-wise product;
- shortcut ``conv<n_i>_prj`` (1x1 conv + BN with the stride) when channels or stride change;
  add, ReLU;
- global average pool, dropout p=0.5 (``fluid.layers.dropout``'s default
  ``downgrade_in_infer``: scaled by 0.5 in the ``for_test`` program), fc ``fc6``.

The 2019 graph ended in ``act='softmax'``; the oracle returns the fc output before it.
Run by :func:`oracles.fluid.run_fluid_oracle` in a subprocess with ``FLAGS_enable_pir_api=0``.
"""

from __future__ import annotations

from oracles._fluid_layers import conv_bn, fc

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
NUM_FILTERS = (128, 256, 512, 1024)
CARDINALITY = 32
REDUCTION = 16


def squeeze_excitation(x, channels: int, name: str):
    import paddle
    import paddle.nn.functional as F

    pool = F.adaptive_avg_pool2d(x, 1)
    sqz = fc(pool, channels // REDUCTION, f"{name}_sqz", act="relu")
    exc = fc(sqz, channels, f"{name}_exc", act="sigmoid")
    # fluid's elementwise_mul(x, exc, axis=0): exc [N, C] broadcast over H, W.
    return x * paddle.unsqueeze(exc, [2, 3])


def bottleneck(x, num_filters: int, stride: int, name: str):
    import paddle.nn.functional as F

    y = conv_bn(x, num_filters, 1, f"conv{name}_x1", act="relu")
    y = conv_bn(y, num_filters, 3, f"conv{name}_x2", stride=stride, groups=CARDINALITY, act="relu")
    y = conv_bn(y, num_filters * 2, 1, f"conv{name}_x3")
    y = squeeze_excitation(y, num_filters * 2, f"fc{name}")
    if x.shape[1] != num_filters * 2 or stride != 1:
        x = conv_bn(x, num_filters * 2, 1, f"conv{name}_prj", stride=stride)
    return F.relu(x + y)


def build(image, class_dim: int = 1000, layers: int = 50):
    """Append SE-ResNeXt-``layers`` 32x4d to the current static program; return the logits variable."""
    import paddle.nn.functional as F

    x = conv_bn(image, 64, 7, "conv1", stride=2, act="relu")
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for block, n in enumerate(DEPTHS[layers]):
        for i in range(n):
            stride = 2 if i == 0 and block != 0 else 1
            x = bottleneck(x, NUM_FILTERS[block], stride, f"{block + 2}_{i + 1}")
    x = F.adaptive_avg_pool2d(x, 1)
    # training=True builds the train-time op; the harness's clone(for_test=True)
    # sets is_test, giving the 2019 inference behaviour (multiply by 1 - p).
    x = F.dropout(x, p=0.5, training=True, mode="downscale_in_infer")
    return fc(x, class_dim, "fc6")
