"""GoogLeNet / Inception v1 (Szegedy et al., 2014), the Paddle release graph.

The three weight sources (the 2019 fluid ``GoogLeNet_pretrained.tar``, PaddleClas
``model_zoo/googlenet.py`` and ``paddle.vision.models.googlenet``) share one graph,
which differs from the paper in ways that change the numbers, so we keep them:

* no batch norm and no bias in any convolution, and **no activation after the
  stem convolutions** (``conv1``, ``conv2_reduce``, ``conv2``); an inception block
  applies one ReLU to the concatenation of its four branches, none inside them;
* the classifier sees the global average of the last 1024-channel map, scaled at
  inference by ``1 - 0.4`` (dropout in ``downscale_in_infer`` mode);
* two auxiliary heads (after inception 4a and 4d): 5x5/3 average pool, 1x1 conv to
  128 channels (no activation), fc 1152 -> 1024 + ReLU, dropout 0.7
  (``downscale_in_infer``), fc 1024 -> classes. Their fc1 expects the 3x3 pooled
  map of a 224x224 input.

The 2019 graph pooled the last 6x6 map with a 7x7/7 window, which fluid reduced to
a global mean; PaddleClas keeps that pool and paddle.vision uses an adaptive one:
all three are the global mean at 224x224, which is what we use at every size.

The fluid graph ends every fc in ``softmax``; like PaddleClas and paddle.vision we
return logits. PaddleClas and paddle.vision omit the ReLU after the second
auxiliary head's fc1 (``_fc_o2``); we keep the 2019 graph's ReLU. It only changes
the second auxiliary output, never the eval logits.

Outputs: ``forward`` returns the main logits in eval mode. In training mode, with a
classifier (``num_classes > 0``) and ``aux_logits`` true, it returns
:class:`GoogLeNetOutputs` ``(logits, aux_logits1, aux_logits2)``; weight the
auxiliary losses (0.3 each in the 2019 training script). Set
``model.aux_logits = False`` to train on the main output only.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple, Union

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_num_classes
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models.layers import global_pool_flatten, make_dropout

# (name, in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), as in the paper's table 1.
INCEPTION_CFG = (
    ("inception3a", 192, 64, 96, 128, 16, 32, 32),
    ("inception3b", 256, 128, 128, 192, 32, 96, 64),
    ("inception4a", 480, 192, 96, 208, 16, 48, 64),
    ("inception4b", 512, 160, 112, 224, 24, 64, 64),
    ("inception4c", 512, 128, 128, 256, 24, 64, 64),
    ("inception4d", 512, 112, 144, 288, 32, 64, 64),
    ("inception4e", 528, 256, 160, 320, 32, 128, 128),
    ("inception5a", 832, 256, 160, 320, 32, 128, 128),
    ("inception5b", 832, 384, 192, 384, 48, 128, 128),
)
NUM_FEATURES = 1024
AUX_CHANNELS = 128
AUX_POOLED = 3  # side of the aux heads' pooled map for a 224x224 input
AUX_HIDDEN = 1024
AUX_DROPOUT = 0.7


def _uniform(fan_in: int) -> paddle.ParamAttr:
    # The 2019 graph's initialiser, U(+-sqrt(3 / fan_in)) (variance 1 / fan_in): with
    # no batch norm and no activation in the stem, He-style defaults blow up the
    # activations of a freshly initialised network (no effect on loaded weights).
    bound = (3.0 / fan_in) ** 0.5
    return paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2D:
    return nn.Conv2D(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=(kernel_size - 1) // 2,
        weight_attr=_uniform(in_channels * kernel_size * kernel_size),
        bias_attr=False,
    )


def _linear(in_features: int, out_features: int, init_fan_in: int) -> nn.Layer:
    """Linear with the 2019 initialiser (``init_fan_in`` as the 2019 code gave it); identity for 0 outputs."""
    if out_features == 0:
        return nn.Identity()
    return nn.Linear(in_features, out_features, weight_attr=_uniform(init_fan_in))


class Inception(nn.Layer):
    """Four branches concatenated, then one ReLU (no activation inside a branch).

    Keys: ``branch1``, ``branch2_reduce``, ``branch2``, ``branch3_reduce``,
    ``branch3``, ``branch4_proj`` (each ``.weight``).
    """

    def __init__(self, in_c: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, proj: int) -> None:
        super().__init__()
        self.branch1 = _conv(in_c, c1, 1)
        self.branch2_reduce = _conv(in_c, c3r, 1)
        self.branch2 = _conv(c3r, c3, 3)
        self.branch3_reduce = _conv(in_c, c5r, 1)
        self.branch3 = _conv(c5r, c5, 5)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=1, padding=1)
        self.branch4_proj = _conv(in_c, proj, 1)
        self.out_channels = c1 + c3 + c5 + proj

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = paddle.concat(
            [
                self.branch1(x),
                self.branch2(self.branch2_reduce(x)),
                self.branch3(self.branch3_reduce(x)),
                self.branch4_proj(self.pool(x)),
            ],
            axis=1,
        )
        return nn.functional.relu(y)


class AuxHead(nn.Layer):
    """Auxiliary classifier. Keys: ``conv.weight``, ``fc1.{weight,bias}``, ``fc2.{weight,bias}``."""

    def __init__(self, in_channels: int, num_classes: int, dropout_mode: str) -> None:
        super().__init__()
        self.pool = nn.AvgPool2D(kernel_size=5, stride=3)
        self.conv = _conv(in_channels, AUX_CHANNELS, 1)
        # 2048: the fan-in the 2019 code used for this initialiser, not the 1152 inputs
        self.fc1 = _linear(AUX_CHANNELS * AUX_POOLED * AUX_POOLED, AUX_HIDDEN, 2048)
        self.drop = make_dropout(AUX_DROPOUT, dropout_mode)
        self.fc2 = _linear(AUX_HIDDEN, num_classes, AUX_HIDDEN)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv(self.pool(x))
        if tuple(x.shape[2:]) != (AUX_POOLED, AUX_POOLED):
            raise ValueError(
                f"GoogLeNet's auxiliary heads need a {AUX_POOLED}x{AUX_POOLED} pooled map (a 224x224 input), "
                f"got {x.shape[2]}x{x.shape[3]}; call model.eval() or set model.aux_logits = False "
                "to use other input sizes"
            )
        # C, H, W order, as fluid's fc flattened its input
        x = nn.functional.relu(self.fc1(paddle.flatten(x, 1)))
        return self.fc2(self.drop(x))


class GoogLeNetOutputs(NamedTuple):
    """Training-mode outputs: main logits and the two auxiliary heads' logits."""

    logits: paddle.Tensor
    aux_logits1: paddle.Tensor
    aux_logits2: paddle.Tensor


class GoogLeNet(ClassifierNet):
    """GoogLeNet as released by Paddle (see the module docstring).

    Args:
        num_classes: classifier outputs (main and auxiliary heads); 0 returns the
            1024-d pooled features.
        in_chans: input channels.
        dropout: drop probability before the main classifier.
        dropout_mode: ``"downscale_in_infer"`` (every Paddle release of these
            weights) or ``"upscale_in_train"``; also used by the auxiliary heads.

    Attributes:
        aux_logits: in training mode with a classifier, return
            :class:`GoogLeNetOutputs` instead of the main logits.
    """

    classifier_attrs = ("fc", "aux1.fc2", "aux2.fc2")
    first_conv = "conv1"

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.4,
        dropout_mode: str = "downscale_in_infer",
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        self.dropout_mode = dropout_mode
        self.aux_logits = True
        self.conv1 = _conv(in_chans, 64, 7, stride=2)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2)
        self.conv2_reduce = _conv(64, 64, 1)
        self.conv2 = _conv(64, 192, 3)
        for name, *cfg in INCEPTION_CFG:
            setattr(self, name, Inception(*cfg))
        self.aux1 = AuxHead(self.inception4a.out_channels, num_classes, dropout_mode)
        self.aux2 = AuxHead(self.inception4d.out_channels, num_classes, dropout_mode)
        self.drop = make_dropout(dropout, dropout_mode)
        self.num_features = NUM_FEATURES
        self.fc = _linear(NUM_FEATURES, num_classes, NUM_FEATURES)
        self.num_classes = num_classes
        self.feature_info = [
            {"module": "conv1", "num_chs": 64, "reduction": 2},
            {"module": "conv2", "num_chs": 192, "reduction": 4},
            {"module": "inception3b", "num_chs": 480, "reduction": 8},
            {"module": "inception4e", "num_chs": 832, "reduction": 16},
            {"module": "inception5b", "num_chs": NUM_FEATURES, "reduction": 32},
        ]

    def _trunk(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """Last feature map and the inputs of the two auxiliary heads."""
        x = self.pool(self.conv1(x))
        x = self.pool(self.conv2(self.conv2_reduce(x)))
        x = self.pool(self.inception3b(self.inception3a(x)))
        x = aux1_in = self.inception4a(x)
        x = aux2_in = self.inception4d(self.inception4c(self.inception4b(x)))
        x = self.pool(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        return x, aux1_in, aux2_in

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._trunk(x)[0]

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        if pre_logits:
            return x
        return self.fc(self.drop(x))

    def forward_with_aux(self, x: paddle.Tensor) -> GoogLeNetOutputs:
        """Main and auxiliary logits in the current mode (dropout as in train/eval).

        Raises:
            ValueError: if the network has no classifier (``num_classes == 0``), or
                the input is not 224x224-like (the auxiliary fc1 needs a 3x3 map).
        """
        if self.num_classes == 0:
            raise ValueError("GoogLeNet has no classifier (num_classes=0), so it has no auxiliary logits")
        feats, aux1_in, aux2_in = self._trunk(x)
        return GoogLeNetOutputs(self.forward_head(feats), self.aux1(aux1_in), self.aux2(aux2_in))

    def forward(self, x: paddle.Tensor) -> Union[paddle.Tensor, GoogLeNetOutputs]:
        if self.training and self.aux_logits and self.num_classes > 0:
            return self.forward_with_aux(x)
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the main and both auxiliary classifiers with fresh ``num_classes``-way ones."""
        check_num_classes(num_classes)
        self.fc = _linear(self.num_features, num_classes, NUM_FEATURES)
        self.aux1.fc2 = _linear(AUX_HIDDEN, num_classes, AUX_HIDDEN)
        self.aux2.fc2 = _linear(AUX_HIDDEN, num_classes, AUX_HIDDEN)
        self.num_classes = num_classes


@register_model
def googlenet(
    num_classes: int = 1000,
    in_chans: int = 3,
    *,
    dropout: float = 0.4,
    dropout_mode: str = "downscale_in_infer",
) -> GoogLeNet:
    """GoogLeNet with auxiliary heads; defaults match all three Paddle weight sources."""
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, dropout=dropout, dropout_mode=dropout_mode)
