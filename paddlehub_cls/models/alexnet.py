"""AlexNet (Krizhevsky et al., 2012), the single-tower 64-192-384-256-256 form.

The graph of PaddleClas 2.6.0 ``model_zoo/alexnet.py`` (paddle.vision's ``alexnet`` repeats
it and loads the same file): five convs with biases and ReLU, an unpadded 3x3 stride-2 max pool
after the first, second and fifth; the 6x6x256 map of a 224x224 image flattened in C, H, W
order; fc6 and fc7 (4096, ReLU), each fed through dropout 0.5 in ``downscale_in_infer`` mode
(so at inference the flattened map and fc6's output are halved), and the classifier fc8.
Other input sizes are brought to 6x6 with an adaptive average pool (the identity at 224).

``pre_logits`` (and ``num_classes=0``) return fc7's ReLU output.

State-dict keys: ``stages.<s>.convs.<j>.{weight,bias}`` (stages 0-2; stage 3 is the last
pool), ``fc1.*`` (fc6), ``fc2.*`` (fc7), ``fc.*`` (fc8).
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes, make_linear
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import make_dropout

# (out channels, kernel, stride, padding) of each conv, grouped by the stage it ends
_CONVS: Tuple[Tuple[Tuple[int, int, int, int], ...], ...] = (
    ((64, 11, 4, 2),),
    ((192, 5, 1, 2),),
    ((384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)),
)
POOL_SIZE = 6  # the map fc6 was trained on (224 input)
FC_DIM = 4096


class ConvReLUStage(nn.Layer):
    """An optional unpadded 3x3 stride-2 max pool, then convs with bias, each followed by ReLU."""

    def __init__(self, in_channels: int, convs: Sequence[Tuple[int, int, int, int]], pool: bool) -> None:
        super().__init__()
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2) if pool else None
        layers = []
        for out_channels, kernel, stride, padding in convs:
            layers.append(nn.Conv2D(in_channels, out_channels, kernel, stride=stride, padding=padding))
            in_channels = out_channels
        self.convs = nn.LayerList(layers)
        self.out_channels = in_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        for conv in self.convs:
            x = nn.functional.relu(conv(x))
        return x


class AlexNet(ClassifierNet):
    """AlexNet.

    Args:
        num_classes: classifier outputs; 0 returns fc7's 4096-d output.
        in_chans: input channels.
        dropout: drop probability before fc6 and fc7 (PaddleClas: 0.5).
        dropout_mode: ``"downscale_in_infer"`` (PaddleClas: the kept activations are scaled
            by ``1 - dropout`` at inference) or ``"upscale_in_train"``.
    """

    classifier_attrs = ("fc",)
    first_conv = "stages.0.convs.0"

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
        dropout_mode: str = "downscale_in_infer",
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        channels = check_in_chans(in_chans)
        stages = []
        for s, convs in enumerate(_CONVS):
            stages.append(ConvReLUStage(channels, convs, pool=s > 0))
            channels = stages[-1].out_channels
            self.feature_info.append({"module": f"stages.{s}", "num_chs": channels, "reduction": 4 * 2**s})
        stages.append(nn.MaxPool2D(kernel_size=3, stride=2))
        self.feature_info.append({"module": "stages.3", "num_chs": channels, "reduction": 32})
        self.stages = nn.LayerList(stages)
        self.pool = nn.AdaptiveAvgPool2D(POOL_SIZE)
        self.drop1 = make_dropout(dropout, dropout_mode)
        self.fc1 = nn.Linear(channels * POOL_SIZE * POOL_SIZE, FC_DIM)
        self.drop2 = make_dropout(dropout, dropout_mode)
        self.fc2 = nn.Linear(FC_DIM, FC_DIM)
        self.num_features = FC_DIM
        self.num_classes = num_classes
        self.fc = make_linear(FC_DIM, num_classes)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = paddle.flatten(self.pool(x), 1)
        x = nn.functional.relu(self.fc1(self.drop1(x)))
        x = nn.functional.relu(self.fc2(self.drop2(x)))
        return x if pre_logits else self.fc(x)


@register_model
def alexnet(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> AlexNet:
    """AlexNet; ``kwargs`` go to :class:`AlexNet` (``dropout``, ``dropout_mode``)."""
    return AlexNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
