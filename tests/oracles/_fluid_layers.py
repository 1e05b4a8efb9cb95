"""The 2019 fluid layers the static oracle builders share, with the release's parameter names.

Each call adds the same ops with the same attributes as the 2019 code's
``conv_bn_layer`` / ``fc`` helpers; only the naming rule is passed in. Used by
``tests/oracles/fluid_<family>.py`` in the worker subprocess (legacy IR,
``FLAGS_enable_pir_api=0``); paddle is imported inside the functions so the
``oracles`` package imports without it.
"""

from __future__ import annotations

from typing import Optional


def conv(
    x,
    num_filters: int,
    filter_size: int,
    name: str,
    *,
    stride: int = 1,
    padding: Optional[int] = None,
    groups: int = 1,
    act: Optional[str] = None,
    bias: bool = False,
):
    """``conv2d`` with weight ``<name>_weights`` (and bias ``<name>_offset`` when ``bias``).

    ``padding`` defaults to ``(filter_size - 1) // 2`` (same size at stride 1).
    """
    import paddle
    from paddle import ParamAttr

    return paddle.static.nn.conv2d(
        x,
        num_filters=num_filters,
        filter_size=filter_size,
        stride=stride,
        padding=(filter_size - 1) // 2 if padding is None else padding,
        groups=groups,
        act=act,
        param_attr=ParamAttr(name=f"{name}_weights"),
        bias_attr=ParamAttr(name=f"{name}_offset") if bias else False,
    )


def batch_norm(x, name: str, act: Optional[str] = None):
    """``batch_norm`` named ``<name>_scale``, ``_offset``, ``_mean``, ``_variance`` (fluid's momentum and epsilon)."""
    import paddle
    from paddle import ParamAttr

    return paddle.static.nn.batch_norm(
        x,
        act=act,
        momentum=0.9,
        epsilon=1e-5,
        param_attr=ParamAttr(name=f"{name}_scale"),
        bias_attr=ParamAttr(name=f"{name}_offset"),
        moving_mean_name=f"{name}_mean",
        moving_variance_name=f"{name}_variance",
    )


def conv_bn(
    x,
    num_filters: int,
    filter_size: int,
    name: str,
    *,
    stride: int = 1,
    padding: Optional[int] = None,
    groups: int = 1,
    act: Optional[str] = None,
    bn_name: Optional[str] = None,
):
    """Bias-free conv ``<name>_weights``, then batch norm ``bn_name`` (default ``<name>_bn``) with ``act``."""
    x = conv(x, num_filters, filter_size, name, stride=stride, padding=padding, groups=groups)
    return batch_norm(x, bn_name or f"{name}_bn", act=act)


def fc(x, size: int, name: str, act: Optional[str] = None, *, weight: str = "", bias: str = ""):
    """fc on ``x`` flattened from dim 1 (C, H, W order), named ``<name>_weights`` / ``<name>_offset``.

    ``weight`` / ``bias`` give other names (ResNet: ``fc_0.w_0`` / ``fc_0.b_0``).
    """
    import paddle
    from paddle import ParamAttr

    return paddle.static.nn.fc(
        x,
        size=size,
        num_flatten_dims=1,
        activation=act,
        weight_attr=ParamAttr(name=weight or f"{name}_weights"),
        bias_attr=ParamAttr(name=bias or f"{name}_offset"),
    )
