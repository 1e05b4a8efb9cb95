"""Blocks shared by MobileViT v1, v2 and v3 (``mobilevit.py``, ``mobilevit_v2.py``, ``mobilevit_v3.py``).

All three are a SiLU conv stem, five stages of MobileNetV2 inverted residuals (SiLU, linear
projection) of which the last three end in a MobileViT block, and a pooled linear head
(v1 and the v1-style v3 widen the last map with a 1x1 conv-BN-SiLU first). A MobileViT
block mixes pixels locally with convolutions, cuts the map into ``patch x patch`` tiles
and runs a transformer across the tiles for each of the ``patch * patch`` pixel
positions, then folds the result back:

* :class:`TransformerMixBlock`: the v1 block and the v1-style v3 block: multi-head
  self-attention over ``(N * P, tiles, C)`` tokens (:class:`~paddlehub_cls.models._transformer.Block`
  with a SiLU MLP), a layer norm, and a fusion conv over the concatenation of a map from
  before the transformer with its output.
* :class:`LinearMixBlock`: the v2 block and the v2-style v3 block: separable linear
  attention (one score per tile, softmax over the tiles) on the ``(N, C, P, tiles)`` map,
  with ``GroupNorm(1, C)`` norms (:class:`GroupNorm1`: one mean and variance over the whole
  ``C x P x tiles`` sample, not per token).

Maps whose sides do not divide by the patch are resized bilinearly to the next multiple and
back (v1 resizes back with nearest-neighbour, v3 bilinearly), as PaddleClas does for its v1
and v1-style v3 blocks; PaddleClas's v2 block has no such resize and fails on those maps, so
ours resizes them like the v3 blocks (identical wherever PaddleClas runs).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes, make_linear
from paddlehub_cls.models._transformer import Block
from paddlehub_cls.models.layers import ConvBNAct, conv_weight_attr, global_pool_flatten, make_divisible
from paddlehub_cls.models.mobilenet_v2 import InvertedResidual

ACT = "swish"  # SiLU: x * sigmoid(x)


def mv2_blocks(
    in_channels: int, out_channels: int, count: int, stride: int, expansion: float, round_hidden: bool
) -> List[nn.Layer]:
    """``count`` SiLU inverted residuals, the first with ``stride``.

    ``round_hidden``: the expanded width is ``make_divisible(round(in * expansion), 8)`` (v2, v3)
    rather than ``round(in * expansion)`` (v1).
    """
    blocks = []
    for i in range(count):
        hidden = int(round(in_channels * expansion))
        if round_hidden:
            hidden = make_divisible(hidden, 8)
        blocks.append(
            InvertedResidual(
                in_channels,
                out_channels,
                stride if i == 0 else 1,
                expansion,
                with_expand=expansion != 1,
                act=ACT,
                hidden=hidden,
            )
        )
        in_channels = out_channels
    return blocks


def _conv1x1(in_channels: int, out_channels: int, bias: bool = False) -> nn.Conv2D:
    return nn.Conv2D(
        in_channels,
        out_channels,
        1,
        weight_attr=conv_weight_attr(out_channels, 1),
        bias_attr=None if bias else False,
    )


def to_patches(x: paddle.Tensor, patch: int) -> paddle.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, patch * patch, tiles)``: pixel position within the tile
    (row-major), then tile (row-major); what ``F.unfold`` with kernel = stride = ``patch`` gives.

    Only 4-d reshapes and transposes, as PaddleClas's v1: Paddle Inference's CPU passes reject
    the 6-d form of the same permutation when they build the predictor.
    """
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    y = x.reshape([-1, patch, w // patch, patch]).transpose([0, 2, 1, 3])
    return y.reshape([-1, c, (h // patch) * (w // patch), patch * patch]).transpose([0, 1, 3, 2])


def from_patches(p: paddle.Tensor, size: Tuple[int, int], patch: int) -> paddle.Tensor:
    """The inverse of :func:`to_patches` for a map of ``size = (H, W)``."""
    c, (h, w) = p.shape[1], size
    y = p.transpose([0, 1, 3, 2]).reshape([-1, w // patch, patch, patch]).transpose([0, 2, 1, 3])
    return y.reshape([-1, c, h, w])


class _PatchMixer(nn.Layer):
    """Resize to whole tiles, cut into patches, ``mix`` them, fold back and resize back."""

    def __init__(self, patch: int, resize_back: str) -> None:
        super().__init__()
        self.patch = patch
        self.resize_back = resize_back

    def mix(self, patches: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError

    def global_rep(self, x: paddle.Tensor) -> paddle.Tensor:
        h, w = x.shape[2], x.shape[3]
        p = self.patch
        size = (-(-h // p) * p, -(-w // p) * p)
        if size != (h, w):
            x = nn.functional.interpolate(x, size=list(size), mode="bilinear", align_corners=False)
        x = from_patches(self.mix(to_patches(x, p)), size, p)
        if size != (h, w):
            x = nn.functional.interpolate(x, size=[h, w], mode=self.resize_back, align_corners=False)
        return x


class TransformerMixBlock(_PatchMixer):
    """The MobileViT block of v1 (``style="v1"``) and of the v1-style v3 (``style="v3"``).

    ``local``: 3x3 conv-BN-SiLU (v3: depthwise), then ``conv_in`` 1x1 to ``width`` (no norm);
    ``blocks``: pre-norm transformer layers (qkv bias, MLP ratio 2, SiLU) over the tokens of each
    pixel position, then ``norm`` (epsilon 1e-6 in v1, 1e-5 in v3); ``proj`` 1x1 conv-BN-SiLU back
    to ``dim``; ``fusion``: v1 a 3x3 conv-BN-SiLU of ``concat(input, proj)``, v3 a 1x1 conv-BN-SiLU of
    ``concat(conv_in output, proj)`` added to the input.
    """

    def __init__(self, dim: int, width: int, depth: int, num_heads: int = 4, patch: int = 2, style: str = "v1") -> None:
        if style not in ("v1", "v3"):
            raise ValueError(f"style must be 'v1' or 'v3', got {style!r}")
        super().__init__(patch, "bilinear" if style == "v3" else "nearest")
        self.style = style
        v3 = style == "v3"
        self.local = ConvBNAct(dim, dim, 3, groups=dim if v3 else 1, act=ACT)
        self.conv_in = _conv1x1(dim, width)
        self.blocks = nn.Sequential(
            *[Block(width, num_heads, mlp_ratio=2.0, qkv_bias=True, act=ACT) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(width, epsilon=1e-5 if v3 else 1e-6)
        self.proj = ConvBNAct(width, dim, 1, act=ACT)
        self.fusion = ConvBNAct(width + dim if v3 else 2 * dim, dim, 1 if v3 else 3, act=ACT)

    def mix(self, patches: paddle.Tensor) -> paddle.Tensor:
        c, pixels, tiles = patches.shape[1], patches.shape[2], patches.shape[3]
        tokens = patches.transpose([0, 2, 3, 1]).reshape([-1, tiles, c])
        tokens = self.norm(self.blocks(tokens))
        return tokens.reshape([-1, pixels, tiles, c]).transpose([0, 3, 1, 2])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        local = self.conv_in(self.local(x))
        y = self.proj(self.global_rep(local))
        if self.style == "v3":
            return x + self.fusion(paddle.concat([local, y], axis=1))
        return self.fusion(paddle.concat([x, y], axis=1))


class GroupNorm1(nn.Layer):
    """``nn.GroupNorm(1, C)``: one mean and (biased) variance over each sample's whole ``C x H x W``,
    then a per-channel scale and shift (keys ``weight``, ``bias``), epsilon 1e-5.

    Computed as a ``layer_norm`` of the flattened sample: paddle2onnx converts ``group_norm`` with
    one group wrongly (ONNX Runtime logits off by ~100 %).
    """

    def __init__(self, channels: int, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.weight = self.create_parameter([channels], default_initializer=nn.initializer.Constant(1.0))
        self.bias = self.create_parameter([channels], default_initializer=nn.initializer.Constant(0.0))
        self.epsilon = epsilon

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        c, h, w = x.shape[1], x.shape[2], x.shape[3]
        y = nn.functional.layer_norm(x.reshape([-1, c * h * w]), [c * h * w], epsilon=self.epsilon)
        return y.reshape([-1, c, h, w]) * self.weight.reshape([1, c, 1, 1]) + self.bias.reshape([1, c, 1, 1])


class LinearAttention(nn.Layer):
    """Separable self-attention on ``(N, C, P, tiles)``: a 1x1 conv gives one score, keys and
    values per token; softmax of the scores over the tiles weights the keys into one context
    vector per pixel position, which scales ``relu(values)``; a 1x1 output conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.qkv = _conv1x1(dim, 1 + 2 * dim, bias=True)
        self.proj = _conv1x1(dim, dim, bias=True)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        q, k, v = paddle.split(self.qkv(x), [1, self.dim, self.dim], axis=1)
        context = (k * nn.functional.softmax(q, axis=-1)).sum(axis=-1, keepdim=True)
        return self.proj(nn.functional.relu(v) * context)


class LinearAttnLayer(nn.Layer):
    """``x + attn(norm1(x))``, then ``x + fc2(silu(fc1(norm2(x))))``; 1x1 convs, GroupNorm(1) norms."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = GroupNorm1(dim)
        self.attn = LinearAttention(dim)
        self.norm2 = GroupNorm1(dim)
        self.fc1 = _conv1x1(dim, hidden, bias=True)
        self.act = nn.Swish()
        self.fc2 = _conv1x1(hidden, dim, bias=True)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class LinearMixBlock(_PatchMixer):
    """The MobileViT block of v2 (``style="v2"``) and of the v2-style v3 (``style="v3"``).

    ``local``: depthwise 3x3 conv-BN-SiLU, ``conv_in`` 1x1 to ``width`` (no norm); ``blocks``:
    :class:`LinearAttnLayer` with an MLP of ``2 * width // 16 * 16``, then ``norm`` (GroupNorm(1));
    ``proj``: 1x1 conv-BN without activation back to ``dim`` (v3: of ``concat(mixed, conv_in
    output)``, added to the input).
    """

    def __init__(self, dim: int, width: int, depth: int, patch: int = 2, style: str = "v2") -> None:
        if style not in ("v2", "v3"):
            raise ValueError(f"style must be 'v2' or 'v3', got {style!r}")
        super().__init__(patch, "bilinear")
        self.style = style
        self.local = ConvBNAct(dim, dim, 3, groups=dim, act=ACT)
        self.conv_in = _conv1x1(dim, width)
        hidden = 2 * width // 16 * 16
        self.blocks = nn.Sequential(*[LinearAttnLayer(width, hidden) for _ in range(depth)])
        self.norm = GroupNorm1(width)
        self.proj = ConvBNAct(2 * width if style == "v3" else width, dim, 1, act=None)

    def mix(self, patches: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.blocks(patches))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        local = self.conv_in(self.local(x))
        y = self.global_rep(local)
        if self.style == "v3":
            return x + self.proj(paddle.concat([y, local], axis=1))
        return self.proj(y)


class MobileViTNet(ClassifierNet):
    """Stem, five stages, optional 1x1 widening conv, global average pool, dropout, ``fc``.

    Args:
        stem_width: channels of the 3x3 stride-2 conv-BN-SiLU stem.
        stages: the layers of each stage (built by the family file for ``stem_width`` inputs).
        widths: output channels of each stage.
        head_width: channels of the 1x1 conv-BN-SiLU after the last stage; 0 for none.
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
        drop_rate: dropout before the classifier (upscale-in-train: the identity at inference).
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.conv"

    def __init__(
        self,
        stem_width: int,
        stages: Sequence[Sequence[nn.Layer]],
        widths: Sequence[int],
        head_width: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        check_in_chans(in_chans)
        self.stem = ConvBNAct(in_chans, stem_width, 3, stride=2, act=ACT)
        self.stages = nn.LayerList([nn.Sequential(*layers) for layers in stages])
        for s, width in enumerate(widths):
            self.feature_info.append({"module": f"stages.{s}", "num_chs": width, "reduction": 2 ** (s + 1)})
        self.head_conv = ConvBNAct(widths[-1], head_width, 1, act=ACT) if head_width else None
        self.num_features = head_width or widths[-1]
        self.drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self.fc = make_linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x if self.head_conv is None else self.head_conv(x)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = global_pool_flatten(x)
        return x if pre_logits else self.fc(self.drop(x))


def build_net(
    stem_width: int,
    specs: Sequence[Dict[str, Any]],
    head_width: int,
    make_mixer: Any,
    round_hidden: bool,
    num_classes: int,
    in_chans: int,
    drop_rate: float = 0.0,
) -> MobileViTNet:
    """A :class:`MobileViTNet` from one spec per stage.

    A spec: ``out`` channels, ``blocks`` inverted residuals, ``stride`` of the first, their
    ``expansion``, and ``mixer`` (kwargs of ``make_mixer(dim, **mixer)``, or absent).
    """
    stages, widths, c = [], [], stem_width
    for spec in specs:
        layers = mv2_blocks(c, spec["out"], spec["blocks"], spec["stride"], spec["expansion"], round_hidden)
        c = spec["out"]
        if spec.get("mixer"):
            layers.append(make_mixer(c, **spec["mixer"]))
        stages.append(layers)
        widths.append(c)
    return MobileViTNet(stem_width, stages, widths, head_width, num_classes, in_chans, drop_rate)

