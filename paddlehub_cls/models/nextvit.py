"""Next-ViT small, base and large (Li et al., 2022), as PaddleClas 2.6.0 ``model_zoo/nextvit.py``.

A stem of four 3x3 conv-BN-ReLU (strides 2, 1, 1, 2; channels 64, 32, 64, 64), then four
stages of Next Convolution Blocks (NCB) and Next Transformer Blocks (NTB), the first
block of stages 2-4 downsampling by a 2x2 average pool (ceil mode) and a 1x1 conv-BN, a
final BatchNorm, global average pooling and a linear head. Every BatchNorm has epsilon
1e-5 and every activation is ReLU.

- NCB: ``x + mhca(x)`` with a grouped 3x3 conv (32 channels a group), BN, ReLU and a
  1x1 projection; then ``x + mlp(bn(x))`` with 1x1 convs (hidden ``3 * C`` rounded to a
  multiple of 32).
- NTB: efficient multi-head self-attention (head width 32) on the first 3/4 of the
  channels (rounded to a multiple of 32), whose keys and values come from tokens
  average-pooled over runs of ``sr**2`` consecutive tokens of the flattened grid (then
  BatchNorm1D), not over 2-D windows, as PaddleClas (and the original) do; a 1x1
  conv-BN projects the result to the remaining channels, which get an MHCA; the two are
  concatenated and go through ``x + mlp(bn(x))`` (hidden ``2 * C``).

PaddleClas's 224 and 384 builders are the same network; so are ours.
``forward_features`` returns the last map after the final BatchNorm; ``features_only``
gives the output of each stage's last block (the last stage after the final norm).

State-dict keys follow PaddleClas's (``features.<i>.{patch_embed,mhca,norm,mlp,norm1,
e_mhsa,projection,norm2}.*``, ``norm.*``), except the stem's conv-BN (``stem.<i>.bn``,
PaddleClas ``stem.<i>.norm``) and the classifier (``fc``, PaddleClas ``proj_head.0``).
"""

from __future__ import annotations

from typing import Any, List, Sequence

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes, check_rate
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import make_linear_tn, trunc_normal_attr
from paddlehub_cls.models.layers import ConvBNAct, DropPath, make_divisible

_EPS = 1e-5
_HEAD_DIM = 32
_MIX_RATIO = 0.75
_SR_RATIOS = (8, 4, 2, 1)
_STEM = (64, 32, 64)
# name -> blocks per stage
NEXTVIT_CONFIGS = {"small": (3, 4, 10, 3), "base": (3, 4, 20, 3), "large": (3, 4, 30, 3)}


def _conv1x1(c_in: int, c_out: int, bias: bool = False, groups: int = 1, kernel: int = 1) -> nn.Conv2D:
    # PaddleClas initialises every conv with a truncated normal (std 0.02) and zero bias.
    bias_attr = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)) if bias else False
    return nn.Conv2D(
        c_in,
        c_out,
        kernel,
        padding=kernel // 2,
        groups=groups,
        weight_attr=trunc_normal_attr(),
        bias_attr=bias_attr,
    )


def _bn(channels: int) -> nn.BatchNorm2D:
    return nn.BatchNorm2D(channels, epsilon=_EPS)


class NextPatchEmbed(nn.Layer):
    """Stride 2: 2x2 average pool (ceil mode), 1x1 conv, BN; stride 1: 1x1 conv-BN where the
    width changes; otherwise the identity (no parameters)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.pool = nn.AvgPool2D(2, stride=2, ceil_mode=True) if stride == 2 else None
        if stride == 2 or c_in != c_out:
            self.conv = _conv1x1(c_in, c_out)
            self.norm = _bn(c_out)
        else:
            self.conv = self.norm = None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        return x if self.conv is None else self.norm(self.conv(x))


class MHCA(nn.Layer):
    """Multi-head convolutional attention: grouped 3x3 conv (one group per 32 channels), BN,
    ReLU, 1x1 projection (no biases)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.group_conv3x3 = _conv1x1(channels, channels, groups=channels // _HEAD_DIM, kernel=3)
        self.norm = _bn(channels)
        self.act = nn.ReLU()
        self.projection = _conv1x1(channels, channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.projection(self.act(self.norm(self.group_conv3x3(x))))


class ConvMlp(nn.Layer):
    """1x1 conv to ``make_divisible(C * ratio, 32)``, ReLU, 1x1 conv back (with biases)."""

    def __init__(self, channels: int, ratio: float, drop: float = 0.0) -> None:
        super().__init__()
        hidden = make_divisible(channels * ratio, 32)
        self.conv1 = _conv1x1(channels, hidden, bias=True)
        self.act = nn.ReLU()
        self.conv2 = _conv1x1(hidden, channels, bias=True)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.conv2(self.drop(self.act(self.conv1(x)))))


class NCB(nn.Layer):
    """Next Convolution Block: patch embedding, ``x + mhca(x)``, ``x + mlp(bn(x))``."""

    def __init__(self, c_in: int, c_out: int, stride: int, drop_path: float, drop: float = 0.0) -> None:
        super().__init__()
        self.patch_embed = NextPatchEmbed(c_in, c_out, stride)
        self.mhca = MHCA(c_out)
        self.norm = _bn(c_out)
        self.mlp = ConvMlp(c_out, 3, drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.patch_embed(x)
        x = x + self.drop_path(self.mhca(x))
        return x + self.drop_path(self.mlp(self.norm(x)))


class EMHSA(nn.Layer):
    """Efficient multi-head self-attention over ``(N, L, C)`` tokens (head width 32).

    With ``sr > 1`` keys and values come from the tokens average-pooled over runs of
    ``sr**2`` consecutive tokens (the flattened grid, as PaddleClas), then BatchNorm1D.
    """

    def __init__(self, dim: int, sr: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = dim // _HEAD_DIM
        self.scale = _HEAD_DIM**-0.5
        self.q = make_linear_tn(dim, dim)
        self.k = make_linear_tn(dim, dim)
        self.v = make_linear_tn(dim, dim)
        self.proj = make_linear_tn(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)
        self.pool = nn.AvgPool1D(sr * sr, stride=sr * sr) if sr > 1 else None
        self.norm = nn.BatchNorm1D(dim, epsilon=_EPS) if sr > 1 else None

    def _heads(self, x: paddle.Tensor) -> paddle.Tensor:
        return x.reshape([0, x.shape[1], self.num_heads, _HEAD_DIM]).transpose([0, 2, 1, 3])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        q = self._heads(self.q(x))
        kv = x
        if self.pool is not None:
            kv = self.norm(self.pool(x.transpose([0, 2, 1]))).transpose([0, 2, 1])
        k, v = self._heads(self.k(kv)), self._heads(self.v(kv))
        attn = self.attn_drop(
            nn.functional.softmax(paddle.matmul(q, k, transpose_y=True) * self.scale, axis=-1)
        )
        out = paddle.matmul(attn, v).transpose([0, 2, 1, 3])
        return self.proj_drop(self.proj(out.reshape([0, out.shape[1], out.shape[2] * out.shape[3]])))


class NTB(nn.Layer):
    """Next Transformer Block: E-MHSA on 3/4 of the channels, MHCA on the rest, concatenated,
    then ``x + mlp(bn(x))``."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        sr: int,
        drop_path: float,
        attn_drop: float = 0.0,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.mhsa_channels = make_divisible(int(c_out * _MIX_RATIO), 32)
        self.patch_embed = NextPatchEmbed(c_in, self.mhsa_channels, stride)
        self.norm1 = _bn(self.mhsa_channels)
        self.e_mhsa = EMHSA(self.mhsa_channels, sr, attn_drop, drop)
        self.mhsa_drop_path = DropPath(drop_path * _MIX_RATIO)
        self.projection = NextPatchEmbed(self.mhsa_channels, c_out - self.mhsa_channels)
        self.mhca = MHCA(c_out - self.mhsa_channels)
        self.mhca_drop_path = DropPath(drop_path * (1 - _MIX_RATIO))
        self.norm2 = _bn(c_out)
        self.mlp = ConvMlp(c_out, 2, drop)
        self.mlp_drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.patch_embed(x)
        h, w = x.shape[2], x.shape[3]
        tokens = self.norm1(x).flatten(2).transpose([0, 2, 1])
        out = self.mhsa_drop_path(self.e_mhsa(tokens))
        x = x + out.transpose([0, 2, 1]).reshape([0, self.mhsa_channels, h, w])
        out = self.projection(x)
        out = out + self.mhca_drop_path(self.mhca(out))
        x = paddle.concat([x, out], axis=1)
        return x + self.mlp_drop_path(self.mlp(self.norm2(x)))


def _stage_plan(depths: Sequence[int]) -> List[List[tuple]]:
    """Per stage, ``(block type, output channels)`` of each block (PaddleClas's hybrid strategy)."""
    return [
        [(NCB, 96)] * depths[0],
        [(NCB, 192)] * (depths[1] - 1) + [(NTB, 256)],
        ([(NCB, 384)] * 4 + [(NTB, 512)]) * (depths[2] // 5),
        [(NCB, 768)] * (depths[3] - 1) + [(NTB, 1024)],
    ]


class NextViT(ClassifierNet):
    """Next-ViT of given blocks per stage.

    Args:
        depths: blocks per stage (stage 3 a multiple of 5: four NCB then one NTB, repeated).
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 at the
            first (training only; PaddleClas trains with 0.1 for small, 0.2 otherwise).
        drop_rate: dropout inside the MLPs and after the attention projection (training only).
        attn_drop_rate: dropout of the attention weights (training only).
    """

    classifier_attrs = ("fc",)
    first_conv = "stem.0.conv"

    def __init__(
        self,
        depths: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(depths) != 4 or depths[2] % 5:
            raise ValueError(
                f"depths must give 4 stages with a multiple of 5 blocks in the third, got {list(depths)}"
            )
        check_in_chans(in_chans)
        check_rate("drop_path_rate", drop_path_rate)
        check_num_classes(num_classes)
        s = _STEM
        self.stem = nn.Sequential(
            ConvBNAct(in_chans, s[0], 3, stride=2, padding=1),
            ConvBNAct(s[0], s[1], 3, padding=1),
            ConvBNAct(s[1], s[2], 3, padding=1),
            ConvBNAct(s[2], s[2], 3, stride=2, padding=1),
        )
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        blocks: List[nn.Layer] = []
        c_in = s[2]
        for stage, plan in enumerate(_stage_plan(depths)):
            for b, (kind, c_out) in enumerate(plan):
                stride = 2 if stage > 0 and b == 0 else 1
                rate = rates[len(blocks)]
                if kind is NCB:
                    blocks.append(NCB(c_in, c_out, stride, rate, drop_rate))
                else:
                    blocks.append(
                        NTB(c_in, c_out, stride, _SR_RATIOS[stage], rate, attn_drop_rate, drop_rate)
                    )
                c_in = c_out
            module = "norm" if stage == 3 else f"features.{len(blocks) - 1}"
            self.feature_info.append({"module": module, "num_chs": c_in, "reduction": 4 * 2**stage})
        self.features = nn.Sequential(*blocks)
        self.norm = _bn(c_in)
        self.num_features = c_in
        self.num_classes = num_classes
        self.fc = make_linear_tn(c_in, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.features(self.stem(x)))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = x.mean([2, 3])
        return x if pre_logits else self.fc(x)


def _nextvit(size: str, num_classes: int, in_chans: int, kwargs: Any) -> NextViT:
    return NextViT(NEXTVIT_CONFIGS[size], num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def nextvit_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> NextViT:
    """Next-ViT-S: blocks 3-4-10-3 (PaddleClas's NextViT_small_224 and _384)."""
    return _nextvit("small", num_classes, in_chans, kwargs)


@register_model
def nextvit_base(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> NextViT:
    """Next-ViT-B: blocks 3-4-20-3 (PaddleClas's NextViT_base_224 and _384)."""
    return _nextvit("base", num_classes, in_chans, kwargs)


@register_model
def nextvit_large(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> NextViT:
    """Next-ViT-L: blocks 3-4-30-3 (PaddleClas's NextViT_large_224 and _384)."""
    return _nextvit("large", num_classes, in_chans, kwargs)
