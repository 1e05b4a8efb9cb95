"""CvT-13, CvT-21 and CvT-W24 (Wu et al., 2021), as PaddleClas 2.6.0 ``model_zoo/cvt.py``.

Three stages, each a strided conv token embedding (7x7/4 pad 2, then 3x3/2 pad 1, with a
bias) with LayerNorm over the tokens, then transformer blocks whose queries, keys and values
come from depthwise 3x3 conv-BN projections of the token map (stride 1 for queries, 2 for
keys and values) before the usual linear projections. The last stage carries a class token,
which skips the conv projections and is prepended to q, k and v. Attention logits are scaled
by ``dim ** -0.5`` over the whole width, not the head width (PaddleClas and the original
code). The MLPs use QuickGELU (``x * sigmoid(1.702 x)``); every LayerNorm has epsilon 1e-5.
The head layer-normalises the class token and applies the classifier. There is no position
embedding, so any input size works.

PaddleClas's 224 and 384 builders are the same network (CvT-13, CvT-21); so are ours.
``forward_features`` returns the normalised tokens of the last stage ``(N, 1 + H*W, C)``,
class token first; ``features_only`` gives the first embedding's map and each stage's output
map (the last one normalised, without the class token) at strides 4, 4, 8, 16.

State-dict keys are PaddleClas's: ``stage<i>.patch_embed.{proj,norm}.*``,
``stage2.cls_token``, ``stage<i>.blocks.<j>.{norm1,norm2,mlp.fc1,mlp.fc2}.*``,
``...attn.conv_proj_{q,k,v}.{conv,bn}.*``, ``...attn.{proj_q,proj_k,proj_v,proj}.*``,
``norm.*``, ``head.*``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes, check_rate
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import Mlp, TokensToMap, create_token, make_linear_tn
from paddlehub_cls.models.layers import DropPath

# Per stage: (patch size, stride, padding) of the token embedding.
_EMBED = ((7, 4, 2), (3, 2, 1), (3, 2, 1))
# name -> (widths, heads, blocks per stage)
CVT_CONFIGS: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]] = {
    "13": ((64, 192, 384), (1, 3, 6), (1, 2, 10)),
    "21": ((64, 192, 384), (1, 3, 6), (1, 4, 16)),
    "w24": ((192, 768, 1024), (3, 12, 16), (2, 2, 20)),
}


class ConvProjection(nn.Layer):
    """Depthwise 3x3 conv (padding 1, no bias) and BatchNorm of an NCHW map, returned as tokens."""

    def __init__(self, dim: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2D(dim, dim, 3, stride=stride, padding=1, groups=dim, bias_attr=False)
        self.bn = nn.BatchNorm2D(dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.bn(self.conv(x)).flatten(2).transpose([0, 2, 1])


class ConvAttention(nn.Layer):
    """Multi-head attention over conv-projected tokens (keys and values at half resolution)."""

    def __init__(
        self, dim: int, heads: int, cls_token: bool, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim**-0.5
        self.cls_token = cls_token
        self.conv_proj_q = ConvProjection(dim, 1)
        self.conv_proj_k = ConvProjection(dim, 2)
        self.conv_proj_v = ConvProjection(dim, 2)
        self.proj_q = make_linear_tn(dim, dim)
        self.proj_k = make_linear_tn(dim, dim)
        self.proj_v = make_linear_tn(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = make_linear_tn(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: paddle.Tensor) -> paddle.Tensor:
        return x.reshape([0, x.shape[1], self.heads, x.shape[2] // self.heads]).transpose([0, 2, 1, 3])

    def forward(self, x: paddle.Tensor, grid: Tuple[int, int]) -> paddle.Tensor:
        h, w = grid
        if self.cls_token:
            cls, x = x[:, :1], x[:, 1:]
        fmap = x.transpose([0, 2, 1]).reshape([0, x.shape[2], h, w])
        q, k, v = self.conv_proj_q(fmap), self.conv_proj_k(fmap), self.conv_proj_v(fmap)
        if self.cls_token:
            q, k, v = (paddle.concat([cls, t], axis=1) for t in (q, k, v))
        q, k, v = self._heads(self.proj_q(q)), self._heads(self.proj_k(k)), self._heads(self.proj_v(v))
        # k transposed explicitly, as PaddleClas (matmul's transpose_y kernel rounds differently).
        attn = nn.functional.softmax(paddle.matmul(q, k.transpose([0, 1, 3, 2])) * self.scale, axis=-1)
        out = paddle.matmul(self.attn_drop(attn), v).transpose([0, 2, 1, 3])
        return self.proj_drop(self.proj(out.reshape([0, out.shape[1], out.shape[2] * out.shape[3]])))


class CvTBlock(nn.Layer):
    """Pre-norm block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` (QuickGELU, ratio 4)."""

    def __init__(self, dim: int, heads: int, cls_token: bool, drop_path: float, drop: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ConvAttention(dim, heads, cls_token, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim, act="quick_gelu", drop=drop)

    def forward(self, x: paddle.Tensor, grid: Tuple[int, int]) -> paddle.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), grid))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConvEmbed(nn.Layer):
    """Strided conv (with bias) and LayerNorm over the tokens; returns the NCHW map."""

    def __init__(self, c_in: int, dim: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(c_in, dim, kernel, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.proj(x)
        h, w = x.shape[2], x.shape[3]
        tokens = self.norm(x.flatten(2).transpose([0, 2, 1]))
        return tokens.transpose([0, 2, 1]).reshape([0, tokens.shape[2], h, w])


class CvTStage(nn.Layer):
    """Token embedding, optional class token, blocks; returns tokens (class token first) and the grid."""

    def __init__(
        self,
        c_in: int,
        dim: int,
        heads: int,
        depth: int,
        embed: Sequence[int],
        cls_token: bool,
        drop_paths: Sequence[float],
        drop: float,
    ) -> None:
        super().__init__()
        self.patch_embed = ConvEmbed(c_in, dim, *embed)
        self.cls_token = create_token(self, (1, 1, dim)) if cls_token else None
        self.blocks = nn.LayerList(
            [CvTBlock(dim, heads, cls_token, drop_paths[j], drop) for j in range(depth)]
        )

    def forward(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, Tuple[int, int]]:
        x = self.patch_embed(x)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose([0, 2, 1])
        if self.cls_token is not None:
            x = paddle.concat([self.cls_token.expand([x.shape[0], -1, -1]), x], axis=1)
        for block in self.blocks:
            x = block(x, grid)
        return x, grid


class CvT(ClassifierNet):
    """Convolutional vision transformer of given widths, heads and blocks per stage.

    Args:
        widths: token width per stage.
        heads: heads per stage.
        depths: blocks per stage.
        num_classes: classifier outputs; 0 returns the normalised class token.
        in_chans: input channels.
        drop_path_rate: stochastic depth of the last stage's last block, rising linearly from 0
            over that stage (training only; PaddleClas trains with 0.1, and 0.3 for W24).
        drop_rate: dropout in the MLPs and after the attention projection (training only).
    """

    classifier_attrs = ("head",)
    first_conv = "stage0.patch_embed.proj"
    #: tokens before the patch tokens in ``forward_features``: the class token
    num_prefix_tokens = 1

    def __init__(
        self,
        widths: Sequence[int],
        heads: Sequence[int],
        depths: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if not len(widths) == len(heads) == len(depths) == len(_EMBED):
            raise ValueError(f"CvT has 3 stages: got widths {widths}, heads {heads}, depths {depths}")
        check_in_chans(in_chans)
        check_rate("drop_path_rate", drop_path_rate)
        check_num_classes(num_classes)
        c_in, reduction = in_chans, 1
        self.feature_info = [
            {"module": "stage0.patch_embed", "num_chs": widths[0], "reduction": _EMBED[0][1]}
        ]
        for i, (dim, nh, depth) in enumerate(zip(widths, heads, depths)):
            last = i == len(widths) - 1
            rates = [drop_path_rate * j / max(depth - 1, 1) if last else 0.0 for j in range(depth)]
            setattr(self, f"stage{i}", CvTStage(c_in, dim, nh, depth, _EMBED[i], last, rates, drop_rate))
            reduction *= _EMBED[i][1]
            self.feature_info.append({"module": f"feature_taps.{i}", "num_chs": dim, "reduction": reduction})
            c_in = dim
        self.num_stages = len(widths)
        self.feature_taps = nn.LayerList([TokensToMap(1 if i == 2 else 0) for i in range(3)])
        self.norm = nn.LayerNorm(c_in)
        self.num_features = c_in
        self.num_classes = num_classes
        self.head = make_linear_tn(c_in, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """Normalised tokens ``(N, 1 + H*W, C)`` of the last stage; the class token is first."""
        grid: Optional[Tuple[int, int]] = None
        for i in range(self.num_stages):
            x, grid = getattr(self, f"stage{i}")(x)
            if i < self.num_stages - 1:
                x = self.feature_taps[i](x, grid)
        x = self.norm(x)
        self.feature_taps[self.num_stages - 1](x, grid)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        """The class token, then the classifier (unless ``pre_logits``)."""
        x = x[:, 0]
        return x if pre_logits else self.head(x)


def _cvt(size: str, num_classes: int, in_chans: int, kwargs: Any) -> CvT:
    widths, heads, depths = CVT_CONFIGS[size]
    return CvT(widths, heads, depths, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def cvt_13(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> CvT:
    """CvT-13: widths 64-192-384, heads 1-3-6, blocks 1-2-10 (PaddleClas's CvT_13_224 and _384)."""
    return _cvt("13", num_classes, in_chans, kwargs)


@register_model
def cvt_21(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> CvT:
    """CvT-21: widths 64-192-384, heads 1-3-6, blocks 1-4-16 (PaddleClas's CvT_21_224 and _384)."""
    return _cvt("21", num_classes, in_chans, kwargs)


@register_model
def cvt_w24(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> CvT:
    """CvT-W24: widths 192-768-1024, heads 3-12-16, blocks 2-2-20 (PaddleClas's CvT_W24_384)."""
    return _cvt("w24", num_classes, in_chans, kwargs)
