"""Diverse Branch Block (Ding et al., 2021), the k x k conv-BN of PaddleClas's ``ResNet18_dbb``.

At training time a DBB sums four branches of the same input, each ending in a batch norm:

* ``origin``: the k x k conv-BN it replaces;
* ``conv_1x1``: a 1x1 conv-BN with the same stride;
* ``avg``: a 1x1 conv, a BN whose output is padded by k // 2 with the value the BN gives a zero
  input, a k x k average pool (no padding) with the stride, and a BN;
* ``kxk``: an identity-initialised 1x1 conv (its kernel is ``weight + I``), a BN padded the same
  way, a k x k conv without padding with the stride, and a BN;

then the activation. Padding *after* the BN with the BN's value at zero is what makes the
branches foldable: every branch is then a linear function of the input with the same k x k
footprint, and :meth:`DiverseBranchBlock.reparameterize` folds the four into one k x k conv with
a bias (the deploy-time network), as PaddleClas's ``ppcls/arch/backbone/base/dbb`` does with its
``re_parameterize``. The pad values use the BN's running statistics, as PaddleClas computes them.

State-dict keys (unfused): ``origin.{conv,bn}.*``, ``conv_1x1.{conv,bn}.*``,
``avg.{conv.weight,bn.*,out_bn.*}``, ``kxk.{id_conv,bn,conv,out_bn}.*``; fused: ``fused.{weight,bias}``.
Only groups=1 is implemented (ResNet18_dbb is the only published DBB network).
"""

from __future__ import annotations

from typing import Optional, Tuple

import paddle
from paddle import nn

from paddlehub_cls.models.layers import ConvBNAct, conv_weight_attr, make_act


def _zero_input_value(bn: nn.BatchNorm2D) -> paddle.Tensor:
    """What ``bn`` outputs, per channel, for a zero input (eval statistics)."""
    return bn.bias - bn.weight * bn._mean / paddle.sqrt(bn._variance + bn._epsilon)


def _pad_with_bn_zero(y: paddle.Tensor, bn: nn.BatchNorm2D, pad: int) -> paddle.Tensor:
    """Pad the BN output ``y`` by ``pad`` on each side with the BN's zero-input value per channel."""
    if pad == 0:
        return y
    # Concatenated borders: paddle2onnx exported the equivalent F.pad(y - v, ...) + v wrongly
    # (ONNX Runtime logits off by ~1e4 times their scale on ResNet18_dbb).
    # The borders are slices of y times 0, so that an exported program keeps a dynamic batch
    # (zeros_like and expand to y.shape either warn in PIR programs or fix the batch).
    value = _zero_input_value(bn).reshape([1, -1, 1, 1])
    rows = y[:, :, :pad, :] * 0.0 + value
    y = paddle.concat([rows, y, rows], axis=2)
    cols = y[:, :, :, :pad] * 0.0 + value
    return paddle.concat([cols, y, cols], axis=3)


def _fold_bn(kernel: paddle.Tensor, bn: nn.BatchNorm2D) -> Tuple[paddle.Tensor, paddle.Tensor]:
    """``bn(conv(x, kernel))`` as one conv: (kernel, bias)."""
    scale = bn.weight / paddle.sqrt(bn._variance + bn._epsilon)
    return kernel * scale.reshape([-1, 1, 1, 1]), bn.bias - bn._mean * scale


def _chain_1x1_kxk(
    k1: paddle.Tensor, b1: paddle.Tensor, k2: paddle.Tensor, b2: paddle.Tensor
) -> Tuple[paddle.Tensor, paddle.Tensor]:
    """A 1x1 conv (k1, b1) followed by a k x k conv (k2, b2) as one k x k conv.

    Exact because the 1x1 output is padded with b1 (its value at a zero input), so every
    output pixel sees ``k1 x + b1`` under the whole k x k window.
    """
    kernel = paddle.einsum("omhw,mi->oihw", k2, k1[:, :, 0, 0])
    return kernel, b2 + (k2.sum(axis=[2, 3]) * b1.reshape([1, -1])).sum(axis=1)


class _AvgBranch(nn.Layer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.pad = kernel_size // 2
        self.conv = nn.Conv2D(
            in_channels, out_channels, 1, weight_attr=conv_weight_attr(out_channels, 1), bias_attr=False
        )
        self.bn = nn.BatchNorm2D(out_channels)
        self.pool = nn.AvgPool2D(kernel_size, stride=stride, padding=0)
        self.out_bn = nn.BatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.out_bn(self.pool(_pad_with_bn_zero(self.bn(self.conv(x)), self.bn, self.pad)))


class _KxKBranch(nn.Layer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.pad = kernel_size // 2
        # Starts at zero: the branch starts as identity -> BN -> k x k conv.
        self.id_conv = self.create_parameter(
            [in_channels, in_channels, 1, 1], default_initializer=nn.initializer.Constant(0.0)
        )
        self.bn = nn.BatchNorm2D(in_channels)
        self.conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=0,
            weight_attr=conv_weight_attr(out_channels, kernel_size),
            bias_attr=False,
        )
        self.out_bn = nn.BatchNorm2D(out_channels)

    def id_kernel(self) -> paddle.Tensor:
        """The 1x1 kernel actually applied: the learned weight plus the identity."""
        channels = self.id_conv.shape[0]
        return self.id_conv + paddle.eye(channels, dtype=self.id_conv.dtype).reshape([channels, channels, 1, 1])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        # conv(x, weight + I) computed as conv(x, weight) + x: no identity tensor in exported graphs.
        y = self.bn(nn.functional.conv2d(x, self.id_conv) + x)
        return self.out_bn(self.conv(_pad_with_bn_zero(y, self.bn, self.pad)))


class DiverseBranchBlock(nn.Layer):
    """A drop-in for :class:`~paddlehub_cls.models.layers.ConvBNAct` (k odd, groups 1) with four branches.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size of the main branch (3 in ResNet18_dbb).
        stride: stride of every branch.
        act: activation after the sum, or None.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, act: Optional[str] = "relu"
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"a DiverseBranchBlock needs an odd kernel size, got {kernel_size!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.origin = ConvBNAct(in_channels, out_channels, kernel_size, stride=stride, act=None)
        self.conv_1x1 = ConvBNAct(in_channels, out_channels, 1, stride=stride, act=None)
        self.avg = _AvgBranch(in_channels, out_channels, kernel_size, stride)
        self.kxk = _KxKBranch(in_channels, out_channels, kernel_size, stride)
        self.fused: Optional[nn.Conv2D] = None
        self.act = make_act(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))
        return self.act(self.origin(x) + self.conv_1x1(x) + self.avg(x) + self.kxk(x))

    @paddle.no_grad()
    def equivalent_kernel_bias(self) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """The k x k kernel and bias of one conv that computes the sum of the four branches (eval mode)."""
        k, pad = self.kernel_size, self.kernel_size // 2
        k_origin, b_origin = _fold_bn(self.origin.conv.weight, self.origin.bn)
        k_1x1, b_1x1 = _fold_bn(self.conv_1x1.conv.weight, self.conv_1x1.bn)
        k_1x1 = nn.functional.pad(k_1x1, [pad, pad, pad, pad])
        k_first, b_first = _fold_bn(self.kxk.id_kernel(), self.kxk.bn)
        k_kxk, b_kxk = _chain_1x1_kxk(k_first, b_first, *_fold_bn(self.kxk.conv.weight, self.kxk.out_bn))
        # The average pool is a k x k conv that averages each channel over the window.
        eye = paddle.eye(self.out_channels, dtype=k_origin.dtype).reshape([self.out_channels, self.out_channels, 1, 1])
        k_pool = eye.expand([self.out_channels, self.out_channels, k, k]) / (k * k)
        k_avg_first, b_avg_first = _fold_bn(self.avg.conv.weight, self.avg.bn)
        k_avg, b_avg = _chain_1x1_kxk(k_avg_first, b_avg_first, *_fold_bn(k_pool, self.avg.out_bn))
        return k_origin + k_1x1 + k_kxk + k_avg, b_origin + b_1x1 + b_kxk + b_avg

    def reparameterize(self) -> None:
        """Fold the four branches into one k x k conv with a bias (deploy time; eval statistics).

        The branch layers are removed, so the state_dict becomes ``fused.{weight,bias}`` and no
        longer takes the training-time files; do it after loading the weights.
        """
        if self.fused is not None:
            return
        kernel, bias = self.equivalent_kernel_bias()
        fused = nn.Conv2D(
            self.in_channels, self.out_channels, self.kernel_size, stride=self.stride, padding=self.kernel_size // 2
        )
        fused.weight.set_value(kernel)
        fused.bias.set_value(bias)
        for name in ("origin", "conv_1x1", "avg", "kxk"):
            delattr(self, name)
        self.fused = fused


def reparameterize(model: nn.Layer) -> nn.Layer:
    """Fold every :class:`DiverseBranchBlock` of ``model`` into one conv (in place); returns ``model``."""
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, DiverseBranchBlock):
            layer.reparameterize()
    return model
