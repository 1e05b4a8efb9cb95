"""Dual Path Networks DPN68, 92, 98, 107 and 131 (Chen et al., 2017), the graph of
PaddleClas 2.6.0 ``model_zoo/dpn.py``.

A stem conv-BN-ReLU (3x3 with 10 channels for DPN68, else 7x7) at stride 2 and a 3x3/2
max pool (padding 1), then four stages of dual path blocks and a final BN-ReLU, global
average and classifier (no dropout). A block works on the concatenation of a residual path
(``width`` channels) and a densely connected path. Its convs are pre-activated (batch norm,
ReLU, then the conv): 1x1 to ``R``, 3x3 grouped (``groups``) to ``R`` at the stage's
stride, 1x1 to ``width + inc``; the first ``width`` outputs are added to the residual path,
the last ``inc`` appended to the dense path. The first block of a stage (stride 1 in stage 1,
2 after) first projects its input with a pre-activated 1x1 conv (at that stride) into a new
residual path and a dense path of ``2 * inc`` channels. ``R = k_r * width // r``.

We pass the two paths between blocks as one tensor (residual channels first), exactly the
concatenation PaddleClas's blocks compute on entry; the feature maps are therefore
``width + dense`` channels wide, as the final batch norm sees them.

State-dict keys: ``stem.{conv,bn}.*``, ``blocks.<i>.{proj,conv_a,conv_b,conv_c}.{bn,conv}.*``
(``proj`` in the first block of each stage), ``head_norm.0.*`` (final BN), ``fc.*``.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, conv_weight_attr, global_pool_flatten


class DPNConfig(NamedTuple):
    k_r: int
    groups: int
    depths: Tuple[int, int, int, int]
    incs: Tuple[int, int, int, int]
    widths: Tuple[int, int, int, int]
    r: int
    stem_channels: int
    stem_kernel: int


DPN_CONFIGS: Dict[int, DPNConfig] = {
    68: DPNConfig(128, 32, (3, 4, 12, 3), (16, 32, 32, 64), (64, 128, 256, 512), 64, 10, 3),
    92: DPNConfig(96, 32, (3, 4, 20, 3), (16, 32, 24, 128), (256, 512, 1024, 2048), 256, 64, 7),
    98: DPNConfig(160, 40, (3, 6, 20, 3), (16, 32, 32, 128), (256, 512, 1024, 2048), 256, 96, 7),
    107: DPNConfig(200, 50, (4, 8, 20, 3), (20, 64, 64, 128), (256, 512, 1024, 2048), 256, 128, 7),
    131: DPNConfig(160, 40, (4, 8, 28, 3), (16, 32, 32, 128), (256, 512, 1024, 2048), 256, 128, 7),
}


class BNActConv(nn.Layer):
    """Pre-activated conv: batch norm, ReLU, conv without bias. Keys: ``bn.*``, ``conv.weight``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2D(c_in)
        self.conv = nn.Conv2D(
            c_in,
            c_out,
            kernel,
            stride=stride,
            padding=(kernel - 1) // 2,
            groups=groups,
            weight_attr=conv_weight_attr(c_out, kernel, groups),
            bias_attr=False,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv(nn.functional.relu(self.bn(x)))


class DualPathBlock(nn.Layer):
    """One dual path block on ``[residual | dense]`` channels; returns the new concatenation.

    Args:
        c_in: input channels (both paths).
        width: residual path channels after the block.
        inc: channels the block appends to the dense path.
        r: bottleneck channels (``R``).
        groups: groups of the 3x3 conv.
        stride: stride of the 3x3 conv and of the projection.
        project: start new paths with a 1x1 projection (first block of a stage); else the
            input's first ``width`` channels are the residual path.
    """

    def __init__(
        self, c_in: int, width: int, inc: int, r: int, groups: int, stride: int, project: bool
    ) -> None:
        super().__init__()
        self.width = width
        self.inc = inc
        self.proj = BNActConv(c_in, width + 2 * inc, 1, stride=stride) if project else None
        self.conv_a = BNActConv(c_in, r, 1)
        self.conv_b = BNActConv(r, r, 3, stride=stride, groups=groups)
        self.conv_c = BNActConv(r, width + inc, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        paths = self.proj(x) if self.proj is not None else x
        residual, dense = paths[:, : self.width], paths[:, self.width :]
        y = self.conv_c(self.conv_b(self.conv_a(x)))
        return paddle.concat([residual + y[:, : self.width], dense, y[:, self.width :]], axis=1)


class DPN(ClassifierNet):
    """A dual path network.

    Args:
        depth: 68, 92, 98, 107 or 131.
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.conv"

    def __init__(self, depth: int, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        if depth not in DPN_CONFIGS:
            raise ValueError(f"depth must be one of {sorted(DPN_CONFIGS)}, got {depth!r}")
        check_num_classes(num_classes)
        cfg = DPN_CONFIGS[depth]
        self.depth = depth
        self.stem = ConvBNAct(in_chans, cfg.stem_channels, cfg.stem_kernel, stride=2)
        self.pool = nn.MaxPool2D(3, stride=2, padding=1)
        info = [{"module": "stem", "num_chs": cfg.stem_channels, "reduction": 2}]
        blocks: List[nn.Layer] = []
        c = cfg.stem_channels
        for s, (n, inc, width) in enumerate(zip(cfg.depths, cfg.incs, cfg.widths)):
            r = cfg.k_r * width // cfg.r
            for b in range(n):
                first = b == 0
                stride = 2 if first and s > 0 else 1
                blocks.append(DualPathBlock(c, width, inc, r, cfg.groups, stride, project=first))
                c = width + (2 * inc if first else c - width) + inc
            if s < 3:
                info.append({"module": f"blocks.{len(blocks) - 1}", "num_chs": c, "reduction": 4 * 2**s})
        self.blocks = nn.Sequential(*blocks)
        self.head_norm = nn.Sequential(nn.BatchNorm2D(c), nn.ReLU())
        info.append({"module": "head_norm", "num_chs": c, "reduction": 32})
        self.feature_info = info
        self.num_features = c
        self.num_classes = num_classes
        self.fc = make_linear(c, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head_norm(self.blocks(self.pool(self.stem(x))))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(x)


def _dpn(depth: int, num_classes: int, in_chans: int, kwargs: Any) -> DPN:
    return DPN(depth, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def dpn68(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DPN:
    """DPN68: 3x3 stem of 10 channels, blocks 3-4-12-3, 32 groups."""
    return _dpn(68, num_classes, in_chans, kwargs)


@register_model
def dpn92(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DPN:
    """DPN92: 7x7 stem of 64 channels, blocks 3-4-20-3, 32 groups."""
    return _dpn(92, num_classes, in_chans, kwargs)


@register_model
def dpn98(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DPN:
    """DPN98: 7x7 stem of 96 channels, blocks 3-6-20-3, 40 groups."""
    return _dpn(98, num_classes, in_chans, kwargs)


@register_model
def dpn107(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DPN:
    """DPN107: 7x7 stem of 128 channels, blocks 4-8-20-3, 50 groups."""
    return _dpn(107, num_classes, in_chans, kwargs)


@register_model
def dpn131(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DPN:
    """DPN131: 7x7 stem of 128 channels, blocks 4-8-28-3, 40 groups."""
    return _dpn(131, num_classes, in_chans, kwargs)
