"""VGG 11/13/16/19 (Simonyan & Zisserman, 2014), without batch norm.

One graph serves the three weight sources; two arch kwargs select the variant:

* ``conv_bias``: the 2019 fluid graph (Jan 2019 code) and paddle.vision give every
  3x3 conv a bias; PaddleClas's legendary ``VGGNet`` has none.
* ``dropout_mode``: the 2019 graph and PaddleClas scale by ``1 - p`` at inference
  (``downscale_in_infer``), paddle.vision's ``nn.Dropout()`` is the identity at
  inference (``upscale_in_train``). The scaling sits between ReLUs with biases, so
  it changes the predicted class, not only the logits' scale.

The classifier input is the 7x7x512 map of a 224x224 image flattened in C, H, W
order (fc6 is 25088 x 4096). Other input sizes are brought to 7x7 with an adaptive
average pool, as ``paddle.vision.models.VGG`` does; at 224x224 it is the identity.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import make_dropout

# Number of 3x3 convs in each of the five stages.
VGG_DEPTHS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
STAGE_CHANNELS = (64, 128, 256, 512, 512)
FC_DIM = 4096
POOL_SIZE = 7  # spatial size of the map fc6 was trained on (224 / 32)


class VGGStage(nn.Layer):
    """``n`` 3x3 conv + ReLU layers, then a 2x2 max pool.

    Keys: ``convs.<j>.weight`` (and ``convs.<j>.bias`` when ``conv_bias``).
    """

    def __init__(self, in_channels: int, out_channels: int, num_convs: int, conv_bias: bool) -> None:
        super().__init__()
        convs = []
        for j in range(num_convs):
            convs.append(
                nn.Conv2D(
                    in_channels if j == 0 else out_channels,
                    out_channels,
                    kernel_size=3,
                    padding=1,
                    bias_attr=None if conv_bias else False,
                )
            )
        self.convs = nn.LayerList(convs)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2D(kernel_size=2, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for conv in self.convs:
            x = self.relu(conv(x))
        return self.pool(x)


class VGG(ClassifierNet):
    """VGG without batch norm.

    Args:
        depths: convs per stage, e.g. ``(2, 2, 3, 3, 3)`` for VGG16.
        num_classes: classifier outputs; 0 returns the 4096-d pre-logits.
        in_chans: input channels.
        conv_bias: whether the 3x3 convs have a bias.
        dropout: drop probability after fc6 and fc7.
        dropout_mode: ``"downscale_in_infer"`` (2019 fluid, PaddleClas) or
            ``"upscale_in_train"`` (paddle.vision).
    """

    classifier_attrs = ("fc",)
    first_conv = "stages.0.convs.0"

    def __init__(
        self,
        depths: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        conv_bias: bool = True,
        dropout: float = 0.5,
        dropout_mode: str = "downscale_in_infer",
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if len(depths) != len(STAGE_CHANNELS) or any(d < 1 for d in depths):
            raise ValueError(f"depths must be {len(STAGE_CHANNELS)} positive ints, got {list(depths)}")
        self.conv_bias = conv_bias
        stages: List[nn.Layer] = []
        in_c = in_chans
        for i, (depth, out_c) in enumerate(zip(depths, STAGE_CHANNELS)):
            stages.append(VGGStage(in_c, out_c, depth, conv_bias))
            self.feature_info.append({"module": f"stages.{i}", "num_chs": out_c, "reduction": 2 ** (i + 1)})
            in_c = out_c
        self.stages = nn.LayerList(stages)
        self.pool = nn.AdaptiveAvgPool2D(POOL_SIZE)
        self.fc1 = nn.Linear(in_c * POOL_SIZE * POOL_SIZE, FC_DIM)
        self.drop1 = make_dropout(dropout, dropout_mode)
        self.fc2 = nn.Linear(FC_DIM, FC_DIM)
        self.drop2 = make_dropout(dropout, dropout_mode)
        self.relu = nn.ReLU()
        self.num_features = FC_DIM
        self.fc = make_linear(FC_DIM, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = paddle.flatten(self.pool(x), 1)  # C, H, W order, as fluid's fc flattened it
        x = self.drop1(self.relu(self.fc1(x)))
        x = self.drop2(self.relu(self.fc2(x)))
        return x if pre_logits else self.fc(x)


def _vgg(depth: int, num_classes: int, in_chans: int, kwargs: Dict[str, Any]) -> VGG:
    return VGG(VGG_DEPTHS[depth], num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def vgg11(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG11 (config A). Defaults reproduce the Jan-2019 fluid graph; see the module docstring.

    ``kwargs`` go to :class:`VGG`: ``conv_bias``, ``dropout``, ``dropout_mode``.
    """
    return _vgg(11, num_classes, in_chans, kwargs)


@register_model
def vgg13(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG13 (config B). Defaults reproduce the Jan-2019 fluid graph; see the module docstring.

    ``kwargs`` go to :class:`VGG`: ``conv_bias``, ``dropout``, ``dropout_mode``.
    """
    return _vgg(13, num_classes, in_chans, kwargs)


@register_model
def vgg16(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG16 (config D). Defaults reproduce the Jan-2019 fluid graph; see the module docstring.

    ``kwargs`` go to :class:`VGG`: ``conv_bias``, ``dropout``, ``dropout_mode``.
    """
    return _vgg(16, num_classes, in_chans, kwargs)


@register_model
def vgg19(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VGG:
    """VGG19 (config E). Defaults reproduce the Jan-2019 fluid graph; see the module docstring.

    ``kwargs`` go to :class:`VGG`: ``conv_bias``, ``dropout``, ``dropout_mode``.
    """
    return _vgg(19, num_classes, in_chans, kwargs)
