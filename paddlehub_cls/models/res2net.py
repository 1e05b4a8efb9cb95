"""Res2Net-50 26w_4s / 14w_8s and Res2Net-50/101/200-vd 26w_4s (Gao et al., 2019).

A ResNet (:mod:`paddlehub_cls.models.resnet`: same stem, max-pool, stage layout and
projection shortcuts) whose bottleneck splits the output of its first 1x1 conv into
``scales`` groups of ``width`` channels along the channel axis. The first ``scales - 1``
groups each go through a 3x3 conv-BN-ReLU; the last is passed on. Stage ``s`` uses
``width * scales * 2**s`` channels between the 1x1 convs, and outputs 256, 512, 1024, 2048
channels as ResNet-50 does.

As PaddleClas 2.6.0 ``model_zoo/res2net.py`` and ``res2net_vd.py`` compute it, the stride of
the block decides the rule, not its position in the stage:

* stride 1 (every block of the first stage, including the projected first one, and the
  later blocks of the other stages): group ``i > 0`` is convolved after adding the output
  of group ``i - 1`` (the hierarchical residual), and the last group is passed on as is;
* stride 2 (the first block of stages 2-4): each group is convolved on its own with
  stride 2, and the last group is average-pooled (3x3, stride 2, padding 1, padding not
  counted) to the same size.

The vd variants take the deep 3x3 stem and the average-pool projection shortcut of ResNet-vd.

State-dict keys: those of :class:`~paddlehub_cls.models.resnet.ResNet`, with
``stages.<s>.<b>.convs.<i>.{conv,bn}.*`` in place of ``conv2``.
"""

from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct
from paddlehub_cls.models.resnet import RESNET_CONFIGS, VD_STEM, ResNet, make_shortcut

_OUT_WIDTHS = (256, 512, 1024, 2048)


class Res2NetBottleneck(nn.Layer):
    """1x1 reduce, hierarchical split 3x3 convs, 1x1 expand, plus the shortcut.

    Args:
        in_chs: input channels.
        width: channels between the 1x1 convs (``scales`` groups of ``width // scales``).
        out_chs: output channels.
        stride: stride of the split 3x3 convs, of the pool of the last group, and of the projection.
        project: use a projection shortcut instead of the identity.
        avg_down: a strided projection average-pools, then convolves at stride 1 (vd).
        scales: number of groups the channels are split into.
    """

    #: the name the layouts know this block by (``ResNet.block_type``)
    block_type = "res2net"

    def __init__(
        self,
        in_chs: int,
        width: int,
        out_chs: int,
        stride: int,
        project: bool,
        avg_down: bool = False,
        scales: int = 4,
    ) -> None:
        super().__init__()
        if isinstance(scales, bool) or not isinstance(scales, int) or scales < 2 or width % scales:
            raise ValueError(f"scales must be an int >= 2 that divides the block width {width}, got {scales!r}")
        self.scales = scales
        self.stride = stride
        split = width // scales
        self.conv1 = ConvBNAct(in_chs, width, 1)
        self.convs = nn.LayerList([ConvBNAct(split, split, 3, stride=stride) for _ in range(scales - 1)])
        self.pool = nn.AvgPool2D(kernel_size=3, stride=stride, padding=1) if stride != 1 else None
        self.conv3 = ConvBNAct(width, out_chs, 1, act=None)
        self.shortcut = make_shortcut(in_chs, out_chs, stride, project, avg_down)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        groups = paddle.split(self.conv1(x), self.scales, axis=1)
        outs = []
        for i, conv in enumerate(self.convs):
            outs.append(conv(groups[i] if i == 0 or self.pool is not None else groups[i] + outs[-1]))
        outs.append(groups[-1] if self.pool is None else self.pool(groups[-1]))
        out = self.conv3(paddle.concat(outs, axis=1))
        short = x if self.shortcut is None else self.shortcut(x)
        return nn.functional.relu(out + short)


def res2net(
    depth: int,
    width: int,
    scales: int,
    vd: bool = False,
    num_classes: int = 1000,
    in_chans: int = 3,
    **kwargs: Any,
) -> ResNet:
    """A Res2Net of ``depth`` (50, 101, 152, 200) with ``scales`` groups of ``width`` channels in stage 1.

    ``vd`` adds the deep stem and average-pool projection shortcuts. ``kwargs`` go to
    :class:`~paddlehub_cls.models.resnet.ResNet`.
    """
    if depth not in RESNET_CONFIGS or RESNET_CONFIGS[depth][0] != "bottleneck":
        raise ValueError(f"Res2Net depth must be one of 50, 101, 152, 200, got {depth!r}")
    if vd:
        kwargs = {"stem_widths": VD_STEM, "avg_down": True, **kwargs}
    return ResNet(
        RESNET_CONFIGS[depth][1],
        block=Res2NetBottleneck,
        widths=[width * scales * 2**s for s in range(4)],
        out_widths=_OUT_WIDTHS,
        block_kwargs={"scales": scales},
        num_classes=num_classes,
        in_chans=in_chans,
        **kwargs,
    )


@register_model
def res2net50_26w_4s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Res2Net-50, 4 groups of 26 channels in stage 1 (7x7 stem)."""
    return res2net(50, 26, 4, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def res2net50_14w_8s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Res2Net-50, 8 groups of 14 channels in stage 1 (7x7 stem)."""
    return res2net(50, 14, 8, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def res2net50_vd_26w_4s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Res2Net-50-vd 26w_4s: deep stem and average-pool projections."""
    return res2net(50, 26, 4, vd=True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def res2net101_vd_26w_4s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Res2Net-101-vd 26w_4s: deep stem and average-pool projections."""
    return res2net(101, 26, 4, vd=True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def res2net200_vd_26w_4s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Res2Net-200-vd 26w_4s (bottlenecks 3-12-48-3): deep stem and average-pool projections."""
    return res2net(200, 26, 4, vd=True, num_classes=num_classes, in_chans=in_chans, **kwargs)
