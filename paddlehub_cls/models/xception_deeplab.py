"""Xception 41 and 65 in DeepLab's form (Chen et al., 2018), the graph of PaddleClas 2.6.0
``model_zoo/xception_deeplab.py``.

A different network from PaddleClas's ``xception.py`` (our ``xception`` family):

* every batch norm has epsilon 1e-3 (momentum 0.99 in training);
* a separable conv is the 3x3 depthwise conv-BN, then the 1x1 pointwise conv-BN;
* a block has three separable convs, the last one strided; in the entry, middle and first
  exit blocks each is preceded by ReLU and has no activation of its own, and the block's
  input (not its ReLU) is added through a 1x1 conv-BN shortcut (entry, exit) or as is
  (middle);
* the last exit block (1024 -> 1536, 1536, 2048) has no shortcut, uses depthwise convs
  of dilation 2 at stride 1 (PaddleClas's output stride 32 is reached), and applies ReLU
  after every batch norm of its separable convs;
* the head applies dropout 0.5 in ``downscale_in_infer`` mode to the last map (so the
  classifier sees half the pooled features at inference), then the global average.

Entry flow: three blocks (64 -> 128, 256, 728, each stride 2); middle flow: 8 (41) or
16 (65) blocks of 728 channels.

State-dict keys: ``stem.{0,1}.{conv,bn}.*``, ``blocks.<i>.convs.<j>.{dw,pw}.{conv,bn}.*``,
``blocks.<i>.shortcut.{conv,bn}.*`` (entry blocks and the first exit block), ``fc.*``;
``blocks`` holds the entry, middle and the two exit blocks in order.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import ConvBNAct, DepthwiseSeparable, global_pool_flatten, make_dropout

# depth -> middle-flow blocks (the entry and exit flows are the same for both)
MIDDLE_DEPTHS = {41: 8, 65: 16}
ENTRY_WIDTHS = (128, 256, 728)
EXIT_WIDTHS = ((728, 1024, 1024), (1536, 1536, 2048))
NUM_FEATURES = EXIT_WIDTHS[-1][-1]
# TensorFlow DeepLab's batch norm settings, which PaddleClas's port keeps.
BN = {"bn_epsilon": 1e-3, "bn_momentum": 0.99}


class XceptionDeeplabBlock(nn.Layer):
    """Three separable convs (the last one at ``stride``) and an optional shortcut.

    Args:
        c_in: input channels.
        widths: output channels of the three separable convs.
        stride: stride of the last separable conv and of the shortcut conv.
        shortcut: ``"conv"`` (1x1 conv-BN), ``"identity"`` or None (no residual).
        act_inside: ReLU after every BN of the separable convs instead of before each of
            them (the last exit block).
        dilation: dilation of the depthwise convs.
    """

    def __init__(
        self,
        c_in: int,
        widths: Sequence[int],
        stride: int,
        shortcut: Optional[str],
        act_inside: bool = False,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        if shortcut not in ("conv", "identity", None):
            raise ValueError(f"shortcut must be 'conv', 'identity' or None, got {shortcut!r}")
        self.act_inside = act_inside
        self.has_residual = shortcut is not None
        self.convs = nn.LayerList()
        c = c_in
        for j, width in enumerate(widths):
            self.convs.append(
                DepthwiseSeparable(
                    c,
                    width,
                    stride if j == len(widths) - 1 else 1,
                    act="relu" if act_inside else None,
                    dilation=dilation,
                    **BN,
                )
            )
            c = width
        self.shortcut = ConvBNAct(c_in, c, 1, stride=stride, act=None, **BN) if shortcut == "conv" else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = x
        for conv in self.convs:
            y = conv(y if self.act_inside else nn.functional.relu(y))
        if not self.has_residual:
            return y
        return y + (x if self.shortcut is None else self.shortcut(x))


class XceptionDeeplab(ClassifierNet):
    """DeepLab's Xception as PaddleClas builds it for ImageNet.

    Args:
        depth: 41 or 65 (8 or 16 middle-flow blocks).
        num_classes: classifier outputs; 0 returns the pooled 2048 features.
        in_chans: input channels.
        dropout: dropout probability on the last map (PaddleClas: 0.5).
        dropout_mode: ``"downscale_in_infer"`` (PaddleClas: the classifier sees
            ``1 - dropout`` times the pooled features at inference) or ``"upscale_in_train"``.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.0.conv"

    def __init__(
        self,
        depth: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
        dropout_mode: str = "downscale_in_infer",
    ) -> None:
        super().__init__()
        if depth not in MIDDLE_DEPTHS:
            raise ValueError(f"depth must be one of {sorted(MIDDLE_DEPTHS)}, got {depth!r}")
        check_num_classes(num_classes)
        self.depth = depth
        self.stem = nn.Sequential(ConvBNAct(in_chans, 32, 3, stride=2, **BN), ConvBNAct(32, 64, 3, **BN))
        blocks: List[nn.Layer] = []
        info = [{"module": "stem", "num_chs": 64, "reduction": 2}]
        c = 64
        for i, width in enumerate(ENTRY_WIDTHS):
            blocks.append(XceptionDeeplabBlock(c, (width,) * 3, 2, "conv"))
            c = width
            if i < len(ENTRY_WIDTHS) - 1:
                info.append({"module": f"blocks.{i}", "num_chs": c, "reduction": 4 * 2**i})
        blocks += [XceptionDeeplabBlock(c, (c,) * 3, 1, "identity") for _ in range(MIDDLE_DEPTHS[depth])]
        info.append({"module": f"blocks.{len(blocks) - 1}", "num_chs": c, "reduction": 16})
        blocks.append(XceptionDeeplabBlock(c, EXIT_WIDTHS[0], 2, "conv"))
        blocks.append(
            XceptionDeeplabBlock(EXIT_WIDTHS[0][-1], EXIT_WIDTHS[1], 1, None, act_inside=True, dilation=2)
        )
        info.append({"module": f"blocks.{len(blocks) - 1}", "num_chs": NUM_FEATURES, "reduction": 32})
        self.blocks = nn.Sequential(*blocks)
        self.feature_info = info
        self.drop = make_dropout(dropout, dropout_mode)
        self.num_features = NUM_FEATURES
        self.num_classes = num_classes
        self.fc = make_linear(NUM_FEATURES, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.blocks(self.stem(x))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        # PaddleClas drops out the map before pooling; the inference-time scale belongs to
        # the classifier's input, so pre-logits are the plain mean.
        if pre_logits or self.num_classes == 0:
            return global_pool_flatten(x)
        return self.fc(global_pool_flatten(self.drop(x)))


@register_model
def xception41_deeplab(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> XceptionDeeplab:
    """Xception41_deeplab: 8 middle-flow blocks."""
    return XceptionDeeplab(41, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def xception65_deeplab(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> XceptionDeeplab:
    """Xception65_deeplab: 16 middle-flow blocks."""
    return XceptionDeeplab(65, num_classes=num_classes, in_chans=in_chans, **kwargs)
