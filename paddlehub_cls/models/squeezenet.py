"""SqueezeNet 1.0 and 1.1 (Iandola et al., 2016).

The graph of PaddleClas 2.6.0 ``model_zoo/squeezenet.py`` (paddle.vision's ``squeezenet1_0/1_1``
repeat it and load the same files): a stem conv with bias and ReLU (1.0: 7x7 stride 2 without
padding, 96 channels; 1.1: 3x3 stride 2 padding 1, 64 channels), then fire modules (1x1
squeeze, 1x1 and 3x3 expands concatenated, every conv with bias and ReLU) between three
unpadded 3x3 stride-2 max pools (no ceil mode, so the last map of a 224 input is 12x12 in 1.0
and 13x13 in 1.1: the network's output stride is 16).

The classifier is a 1x1 convolution on the map, not a linear layer on pooled features:
dropout 0.5 in ``downscale_in_infer`` mode (the map is halved at inference), the 1x1 conv
to ``num_classes`` channels, ReLU, and only then the global average pool. ``pre_logits``
(and ``num_classes=0``) return the pooled 512-d features; the logits are not an affine
function of them. :meth:`SqueezeNet.reset_classifier` builds a new 1x1 conv.

State-dict keys: ``stem.{weight,bias}``, ``stages.<s>.fires.<j>.{squeeze,expand1x1,expand3x3}.*``,
``fc.weight`` ``[num_classes, 512, 1, 1]``, ``fc.bias``.
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import make_dropout

# (squeeze, expand) channels of each fire module (both expands have ``expand`` channels)
_FIRES = ((16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256))
# version -> (stem channels, kernel, padding), fires per stage after each of the three pools
SQUEEZENET_CONFIGS = {
    "1_0": ((96, 7, 0), (3, 4, 1)),
    "1_1": ((64, 3, 1), (2, 2, 4)),
}
FEATURES = 512


class Fire(nn.Layer):
    """1x1 squeeze conv, then a 1x1 and a 3x3 expand conv concatenated; every conv has a bias and ReLU."""

    def __init__(self, in_channels: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2D(in_channels, squeeze, 1)
        self.expand1x1 = nn.Conv2D(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2D(squeeze, expand, 3, padding=1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = nn.functional.relu(self.squeeze(x))
        return paddle.concat(
            [nn.functional.relu(self.expand1x1(x)), nn.functional.relu(self.expand3x3(x))], axis=1
        )


class FireStage(nn.Layer):
    """An unpadded 3x3 stride-2 max pool, then fire modules."""

    def __init__(self, in_channels: int, fires: Sequence[Tuple[int, int]]) -> None:
        super().__init__()
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2)
        layers = []
        for squeeze, expand in fires:
            layers.append(Fire(in_channels, squeeze, expand))
            in_channels = 2 * expand
        self.fires = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fires(self.pool(x))


def _classifier(num_classes: int) -> nn.Layer:
    return nn.Conv2D(FEATURES, num_classes, 1) if num_classes else nn.Identity()


class SqueezeNet(ClassifierNet):
    """SqueezeNet.

    Args:
        version: ``"1_0"`` or ``"1_1"``.
        num_classes: classifier outputs; 0 returns the pooled 512-d features.
        in_chans: input channels.
        dropout: drop probability of the map before the classifier (PaddleClas: 0.5).
        dropout_mode: ``"downscale_in_infer"`` (PaddleClas) or ``"upscale_in_train"``.
    """

    classifier_attrs = ("fc",)
    first_conv = "stem"

    def __init__(
        self,
        version: str,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
        dropout_mode: str = "downscale_in_infer",
    ) -> None:
        super().__init__()
        if version not in SQUEEZENET_CONFIGS:
            raise ValueError(f"version must be one of {sorted(SQUEEZENET_CONFIGS)}, got {version!r}")
        check_num_classes(num_classes)
        check_in_chans(in_chans)
        (width, kernel, padding), per_stage = SQUEEZENET_CONFIGS[version]
        self.stem = nn.Conv2D(in_chans, width, kernel, stride=2, padding=padding)
        self.feature_info.append({"module": "stem", "num_chs": width, "reduction": 2})
        stages, start, channels = [], 0, width
        for s, count in enumerate(per_stage):
            stages.append(FireStage(channels, _FIRES[start : start + count]))
            start, channels = start + count, stages[-1].out_channels
            self.feature_info.append({"module": f"stages.{s}", "num_chs": channels, "reduction": 4 * 2**s})
        self.stages = nn.LayerList(stages)
        self.drop = make_dropout(dropout, dropout_mode)
        self.num_features = FEATURES
        self.num_classes = num_classes
        self.fc = _classifier(num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = nn.functional.relu(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        if pre_logits or self.num_classes == 0:
            return x.mean([2, 3])
        return nn.functional.relu(self.fc(self.drop(x))).mean([2, 3])

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the 1x1-conv classifier with a fresh ``num_classes``-way one (0: pooled features)."""
        check_num_classes(num_classes)
        self.fc = _classifier(num_classes)
        self.num_classes = num_classes


@register_model
def squeezenet1_0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SqueezeNet:
    """SqueezeNet 1.0: 7x7 stem of 96 channels; fires 3-4-1 after the three pools."""
    return SqueezeNet("1_0", num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def squeezenet1_1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SqueezeNet:
    """SqueezeNet 1.1: 3x3 stem of 64 channels; fires 2-2-4 after the three pools."""
    return SqueezeNet("1_1", num_classes=num_classes, in_chans=in_chans, **kwargs)
