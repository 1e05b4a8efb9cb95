"""DSNet tiny, small and base (Mao et al., 2021, "Dual-stream Network"),
as PaddleClas 2.6.0 ``model_zoo/dsnet.py``.

Four stages (widths 64, 128, 320, 512; heads 1, 2, 5, 8), each entered through a
non-overlapping patch conv (4x4/4, then 2x2/2), of mixing blocks, then BatchNorm, global
average pooling and a linear head. A mixing block adds a depthwise 3x3 conv of its input
(the position embedding), then, on ``conv1(bn(x))`` split into halves:

- the first half (the attention stream) is resized bilinearly to 1/8, 1/4, 1/2, 1/2 of the
  stage's grid (floor), layer-normalised, widened 3x by a linear and self-attended
  (q, k, v from that one tensor, no output projection), with a residual;
- the second half (the conv stream) gets ``x + dwconv3x3(bn(x))``;
- the two streams then cross-attend: the conv stream's queries read the attention stream's
  keys and values and vice versa (each from its own BN/LN and 3x widening), each followed by
  a linear and a residual; the attention stream is resized back bilinearly;
- the streams are concatenated (conv stream first), projected by ``conv2`` and added to the
  block input; then ``x + mlp(bn(x))`` with 1x1 convs and exact GELU.

Bilinear resizes are Paddle's default ``F.interpolate`` (``align_corners=False``, half-pixel
centres, no antialiasing), as PaddleClas, computed as two matrix products so that Paddle
Inference can run the exported program. LayerNorm epsilon 1e-5: PaddleClas passes ``eps=1e-6`` to a
``norm_layer`` its DSNet never builds. PaddleClas asserts a 224 input; ours takes any size
whose stage grids stay at least 2 (1 for the last stage's halving). ``forward_features``
returns the normalised last map; ``features_only`` gives each stage's output (the last
after the final BatchNorm) at strides 4, 8, 16, 32.

State-dict keys are PaddleClas's: ``patch_embed<s>.proj.*``, ``blocks<s>.<i>.{pos_embed,
norm1,conv1,conv2,norm_conv1,norm_sa1,conv,channel_up,cross_channel_up_conv,
cross_channel_up_sa,fuse_channel_conv,fuse_channel_sa,norm_conv2,norm_sa2,norm2,mlp.fc1,
mlp.fc2}.*``, ``norm.*``, ``head.*``.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import numpy as np
import paddle
from paddle import nn

from paddlehub_cls.models._base import ClassifierNet, check_in_chans, check_num_classes, check_rate
from paddlehub_cls.models._registry import register_model
from paddlehub_cls.models._transformer import make_linear_tn
from paddlehub_cls.models.layers import DropPath, make_act

_WIDTHS = (64, 128, 320, 512)
_HEADS = (1, 2, 5, 8)
_DOWNSAMPLE = (8, 4, 2, 2)
# name -> blocks per stage
DSNET_CONFIGS: Dict[str, Tuple[int, ...]] = {
    "tiny": (2, 2, 4, 1),
    "small": (3, 4, 8, 3),
    "base": (3, 4, 28, 3),
}


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of Paddle's 1-D bilinear resize (``align_corners=False``,
    ``align_mode=0``): output ``i`` reads source ``(i + 0.5) * n_in / n_out - 0.5``, clamped at 0,
    from its two neighbours (the last clamped to ``n_in - 1``)."""
    weights = np.zeros((n_out, n_in), dtype="float32")
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = int(src)
        hi = lo + 1 if lo < n_in - 1 else lo
        frac = src - lo
        weights[i, lo] += 1.0 - frac
        weights[i, hi] += frac
    return weights


def resize_bilinear(x: paddle.Tensor, size: Tuple[int, int]) -> paddle.Tensor:
    """``F.interpolate(x, size, mode="bilinear")`` as two matrix products.

    Paddle Inference's oneDNN executor cannot run the exported ``bilinear_interp`` op
    ("ConvertPirAttribute2RuntimeAttribute not support ArrayAttribute<DoubleAttribute>",
    paddlepaddle 3.3.1); the separable form exports as matmuls.
    """
    # Each product multiplies the last axis by a 2-D matrix, as a linear layer does.
    cols = paddle.to_tensor(bilinear_matrix(x.shape[3], size[1]).T)
    rows = paddle.to_tensor(bilinear_matrix(x.shape[2], size[0]).T)
    x = paddle.matmul(x, cols).transpose([0, 1, 3, 2])
    return paddle.matmul(x, rows).transpose([0, 1, 3, 2])


def _attend(q: paddle.Tensor, k: paddle.Tensor, v: paddle.Tensor, scale: float) -> paddle.Tensor:
    """``softmax(q k^T * scale) v`` over ``(N, heads, L, d)``, heads merged to ``(N, L, heads * d)``."""
    # k transposed explicitly, as PaddleClas (matmul's transpose_y kernel rounds differently).
    attn = nn.functional.softmax(paddle.matmul(q, k.transpose([0, 1, 3, 2])) * scale, axis=-1)
    # flatten, not reshape: Paddle Inference's oneDNN passes fuse matmul -> transpose -> reshape
    # into the matmul and then the residual add into it too, adding the residual in the
    # un-transposed layout (logits off by ~100%, paddlepaddle 3.3.1); flatten is not fused.
    return paddle.matmul(attn, v).transpose([0, 2, 1, 3]).flatten(2)


def _split_qkv(x: paddle.Tensor, heads: int) -> Tuple[paddle.Tensor, ...]:
    """``(N, L, 3C)`` -> q, k, v of ``(N, heads, L, C / heads)`` each."""
    length, c3 = x.shape[1], x.shape[2]
    return tuple(x.reshape([0, length, 3, heads, c3 // 3 // heads]).transpose([2, 0, 3, 1, 4]).unbind(0))


class ConvMlp(nn.Layer):
    """1x1 conv, GELU, 1x1 conv (with biases)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2D(dim, hidden, 1)
        self.act = make_act("gelu")
        self.fc2 = nn.Conv2D(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MixBlock(nn.Layer):
    """Dual-stream block: a conv stream and a downsampled self-attention stream that cross-attend."""

    def __init__(self, dim: int, heads: int, downsample: int, drop_path: float, drop: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.downsample = downsample
        self.dim_conv = dim // 2
        self.dim_sa = dim - self.dim_conv
        self.scale = (self.dim_sa // heads) ** -0.5
        self.pos_embed = nn.Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2D(dim)
        self.conv1 = nn.Conv2D(dim, dim, 1)
        self.conv2 = nn.Conv2D(dim, dim, 1)
        self.norm_conv1 = nn.BatchNorm2D(self.dim_conv)
        self.norm_sa1 = nn.LayerNorm(self.dim_sa)
        self.conv = nn.Conv2D(self.dim_conv, self.dim_conv, 3, padding=1, groups=self.dim_conv)
        self.channel_up = make_linear_tn(self.dim_sa, 3 * self.dim_sa)
        self.cross_channel_up_conv = nn.Conv2D(self.dim_conv, 3 * self.dim_conv, 1)
        self.cross_channel_up_sa = make_linear_tn(self.dim_sa, 3 * self.dim_sa)
        self.fuse_channel_conv = make_linear_tn(self.dim_conv, self.dim_conv)
        self.fuse_channel_sa = make_linear_tn(self.dim_sa, self.dim_sa)
        self.norm_conv2 = nn.BatchNorm2D(self.dim_conv)
        self.norm_sa2 = nn.LayerNorm(self.dim_sa)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2D(dim)
        self.mlp = ConvMlp(dim, 4 * dim, drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.pos_embed(x)
        h, w = x.shape[2], x.shape[3]
        residual = x
        x = self.conv1(self.norm1(x))
        sa, conv = x[:, : self.dim_sa], x[:, self.dim_sa :]
        conv = conv + self.conv(self.norm_conv1(conv))
        sa = resize_bilinear(sa, (h // self.downsample, w // self.downsample))
        hd, wd = sa.shape[2], sa.shape[3]
        sa = sa.flatten(2).transpose([0, 2, 1])
        sa = sa + _attend(*_split_qkv(self.channel_up(self.norm_sa1(sa)), self.heads), self.scale)
        conv_q, conv_k, conv_v = _split_qkv(
            self.cross_channel_up_conv(self.norm_conv2(conv)).flatten(2).transpose([0, 2, 1]), self.heads
        )
        sa_q, sa_k, sa_v = _split_qkv(self.cross_channel_up_sa(self.norm_sa2(sa)), self.heads)
        conv_out = self.fuse_channel_conv(_attend(conv_q, sa_k, sa_v, self.scale))
        conv = conv + conv_out.transpose([0, 2, 1]).reshape([0, self.dim_conv, h, w])
        sa = sa + self.fuse_channel_sa(_attend(sa_q, conv_k, conv_v, self.scale))
        sa = sa.transpose([0, 2, 1]).reshape([0, self.dim_sa, hd, wd])
        sa = resize_bilinear(sa, (h, w))
        x = residual + self.drop_path(self.conv2(paddle.concat([conv, sa], axis=1)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchConv(nn.Layer):
    """Non-overlapping ``patch`` x ``patch`` conv with stride ``patch`` (PaddleClas's ``PatchEmbed``)."""

    def __init__(self, c_in: int, c_out: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(c_in, c_out, patch, stride=patch)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.proj(x)


class DSNet(ClassifierNet):
    """Dual-stream network of given blocks per stage (widths 64-128-320-512, heads 1-2-5-8).

    Args:
        depths: blocks per stage.
        num_classes: classifier outputs; 0 returns the pooled features.
        in_chans: input channels.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 at the first
            (training only; PaddleClas's default is 0.1).
        drop_rate: dropout in the MLPs (training only).
    """

    classifier_attrs = ("head",)
    first_conv = "patch_embed1.proj"

    def __init__(
        self,
        depths: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(depths) != 4:
            raise ValueError(f"depths must give 4 stages, got {list(depths)}")
        check_in_chans(in_chans)
        check_rate("drop_path_rate", drop_path_rate)
        check_num_classes(num_classes)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        c_in = in_chans
        for s, (dim, heads, depth) in enumerate(zip(_WIDTHS, _HEADS, depths)):
            setattr(self, f"patch_embed{s + 1}", PatchConv(c_in, dim, 4 if s == 0 else 2))
            # PaddleClas gives every stage the drop rates of the first blocks (dpr[i], not dpr[start + i]).
            blocks = [MixBlock(dim, heads, _DOWNSAMPLE[s], rates[i], drop_rate) for i in range(depth)]
            setattr(self, f"blocks{s + 1}", nn.LayerList(blocks))
            module = "norm" if s == 3 else f"blocks{s + 1}.{depth - 1}"
            self.feature_info.append({"module": module, "num_chs": dim, "reduction": 4 * 2**s})
            c_in = dim
        self.norm = nn.BatchNorm2D(c_in)
        self.num_features = c_in
        self.num_classes = num_classes
        self.head = make_linear_tn(c_in, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        for s in range(1, 5):
            x = getattr(self, f"patch_embed{s}")(x)
            for block in getattr(self, f"blocks{s}"):
                x = block(x)
        return self.norm(x)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        x = x.mean([2, 3])
        return x if pre_logits else self.head(x)


def _dsnet(size: str, num_classes: int, in_chans: int, kwargs: Any) -> DSNet:
    return DSNet(DSNET_CONFIGS[size], num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def dsnet_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DSNet:
    """DSNet-T: blocks 2-2-4-1."""
    return _dsnet("tiny", num_classes, in_chans, kwargs)


@register_model
def dsnet_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DSNet:
    """DSNet-S: blocks 3-4-8-3."""
    return _dsnet("small", num_classes, in_chans, kwargs)


@register_model
def dsnet_base(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DSNet:
    """DSNet-B: blocks 3-4-28-3."""
    return _dsnet("base", num_classes, in_chans, kwargs)
