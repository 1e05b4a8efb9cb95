"""Static-graph GoogLeNet with the 2019 fluid parameter names, for the fluid2019 oracle.

Written from the graph of the 2019 named-parameter ``GoogLeNet`` (PaddlePaddle/models
``PaddleCV/image_classification/models/googlenet.py``, the file that names
``conv1_weights``, ``inception_ince3a_1x1_weights``, ``out_offset``):

- every conv: no bias, no activation, padding (k-1)/2, weight ``<name>_weights``:
  ``conv1`` 7x7/2 (64), max pool 3/2, ``conv2_1x1`` (64), ``conv2_3x3`` (192), max pool 3/2;
- inception ``ince<X>``: ``inception_<X>_1x1``; ``_3x3_reduce`` -> ``_3x3``;
  ``_5x5_reduce`` -> ``_5x5``; max pool 3/1 pad 1 -> ``_3x3_proj``; concat; ReLU;
  3a 3b, pool, 4a..4e, pool, 5a 5b (max pools 3/2 without padding);
- main head: avg pool 7/7 on the 6x6 map (fluid's pool2d reduces it to the global
  mean), dropout 0.4 (``downgrade_in_infer``), fc ``out_weights``/``out_offset``;
- aux heads on 4a / 4d: avg pool 5/3, ``conv_o1``/``conv_o2`` (128), fc
  ``fc_o<N>`` 1024 with ReLU, dropout 0.7, fc ``out<N>``.

Each fc of the 2019 graph has ``act='softmax'``, i.e. a softmax op appended to the
fc output. We build the fc without it and append the same softmax op ourselves,
so the pre-softmax logits (what our network returns) can be fetched too.

``build`` returns ``{"logits": main fc output, "aux1", "aux2": aux fc outputs,
"softmax": softmax of the main fc (the 2019 graph's ``out``), "softmax1",
"softmax2"}``; "logits" is the main output.
Run by ``oracles.fluid.run_fluid_oracle`` in a subprocess with ``FLAGS_enable_pir_api=0``.
"""

from __future__ import annotations

from oracles._fluid_layers import conv, fc

# (block, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), from the 2019 ``net()``.
INCEPTIONS = (
    ("ince3a", 64, 96, 128, 16, 32, 32),
    ("ince3b", 128, 128, 192, 32, 96, 64),
    ("ince4a", 192, 96, 208, 16, 48, 64),
    ("ince4b", 160, 112, 224, 24, 64, 64),
    ("ince4c", 128, 128, 256, 24, 64, 64),
    ("ince4d", 112, 144, 288, 32, 64, 64),
    ("ince4e", 256, 160, 320, 32, 128, 128),
    ("ince5a", 256, 160, 320, 32, 128, 128),
    ("ince5b", 384, 192, 384, 48, 128, 128),
)


def inception(x, name: str, c1: int, c3r: int, c3: int, c5r: int, c5: int, proj: int):
    import paddle
    import paddle.nn.functional as F

    p = f"inception_{name}"
    b1 = conv(x, c1, 1, f"{p}_1x1")
    b2 = conv(conv(x, c3r, 1, f"{p}_3x3_reduce"), c3, 3, f"{p}_3x3")
    b3 = conv(conv(x, c5r, 1, f"{p}_5x5_reduce"), c5, 5, f"{p}_5x5")
    b4 = conv(F.max_pool2d(x, kernel_size=3, stride=1, padding=1), proj, 1, f"{p}_3x3_proj")
    return F.relu(paddle.concat([b1, b2, b3, b4], axis=1))


def aux_head(x, n: int, class_dim: int):
    import paddle.nn.functional as F

    x = conv(F.avg_pool2d(x, kernel_size=5, stride=3), 128, 1, f"conv_o{n}")
    x = fc(x, 1024, f"fc_o{n}", act="relu")
    x = F.dropout(x, p=0.7, training=True, mode="downscale_in_infer")
    return fc(x, class_dim, f"out{n}")


def build(image, class_dim: int = 1000):
    """The 2019 GoogLeNet graph on ``image``; returns its outputs (see the module docstring)."""
    import paddle.nn.functional as F

    x = F.max_pool2d(conv(image, 64, 7, "conv1", stride=2), kernel_size=3, stride=2)
    x = conv(conv(x, 64, 1, "conv2_1x1"), 192, 3, "conv2_3x3")
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    taps = {}
    for cfg in INCEPTIONS:
        x = inception(x, *cfg)
        taps[cfg[0]] = x
        if cfg[0] in ("ince3b", "ince4e"):
            x = F.max_pool2d(x, kernel_size=3, stride=2)
    # The 2019 graph's 7x7/7 pool on the 6x6 map: fluid's pool2d gives the global mean.
    x = F.avg_pool2d(x, kernel_size=7, stride=7)
    # training=True: the dropout op gets is_test=False; the for_test clone flips it
    # to inference, where downgrade_in_infer scales by 1 - p as in 2019.
    x = F.dropout(x, p=0.4, training=True, mode="downscale_in_infer")
    logits = fc(x, class_dim, "out")
    aux1 = aux_head(taps["ince4a"], 1, class_dim)
    aux2 = aux_head(taps["ince4d"], 2, class_dim)
    return {
        "logits": logits,
        "aux1": aux1,
        "aux2": aux2,
        "softmax": F.softmax(logits),
        "softmax1": F.softmax(aux1),
        "softmax2": F.softmax(aux2),
    }
