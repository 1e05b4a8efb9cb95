"""PaddleClas 2.6.0 builders that cannot run as shipped, with the smallest fix (oracle use only).

Imported by the PaddleClas worker (``tests/`` is on its ``sys.path``) as the module of
an oracle, like a ``ppcls`` module: ``run_paddleclas("oracles.paddleclas_fixes",
"SE_ResNeXt152_64x4d", ...)``. Everything except the fixed layers is PaddleClas's own code.

``SE_ResNeXt152_64x4d``: ``model_zoo/se_resnext.py`` gives depth 152 a deep stem ending
in 128 channels (``conv1_3``) but builds block ``bb_0_0`` for ``num_channels[0] = 64``, so
the first 1x1 conv and the projection fail at forward ("input's channels is 128 ...
filter's channels is 64"). We rebuild those two ``ConvBNLayer`` with PaddleClas's own class
for a 128-channel input; their state_dict keys and the rest of the network are unchanged.

``ResNet18_dbb``: a ``MODEL_URLS`` key without a builder of that name; PaddleClas loads the file
into ``ResNet18(layer_type="DiverseBranchBlock")``. Its ``IdentityBasedConv1x1`` keeps the identity
as a float64 tensor (``paddle.to_tensor(np.zeros(...))``, ``base/dbb/dbb_block.py``); under Paddle 3
``weight + id_tensor`` promotes to float64 and ``conv2d`` of a float32 input fails ("trying to
retrieve (float32) ... contained (float64)"). The fix casts that identity to float32 (its values,
0 and 1, are exact in both); it is not in the state_dict.
"""

from __future__ import annotations

from typing import Any

from ppcls.arch.backbone.model_zoo import se_resnext as _se_resnext


def SE_ResNeXt152_64x4d(pretrained: bool = False, **kwargs: Any):  # noqa: N802  (PaddleClas's name)
    """PaddleClas's ``SE_ResNeXt152_64x4d`` whose first block takes the stem's 128 channels."""
    if pretrained:
        raise ValueError("the oracle builds random networks only; pass pretrained=False")
    model = _se_resnext.SE_ResNeXt152_64x4d(pretrained=False, **kwargs)
    stem_out = model.conv1_3._conv._out_channels
    block = model.bb_0_0
    # Fresh ParamAttr names: the originals still exist until garbage-collected.
    block.conv0 = _se_resnext.ConvBNLayer(
        num_channels=stem_out,
        num_filters=block.conv0._conv._out_channels,
        filter_size=1,
        act="relu",
        name="fixed_conv4_1_x1",
    )
    block.short = _se_resnext.ConvBNLayer(
        num_channels=stem_out,
        num_filters=block.short._conv._out_channels,
        filter_size=1,
        stride=1,
        name="fixed_conv4_1_prj",
    )
    return model


def ResNet18_dbb(pretrained: bool = False, **kwargs: Any):  # noqa: N802  (PaddleClas's MODEL_URLS key)
    """PaddleClas's ``ResNet18(layer_type="DiverseBranchBlock")`` with its float64 identity kernels cast to float32."""
    if pretrained:
        raise ValueError("the oracle builds random networks only; pass pretrained=False")
    from ppcls.arch.backbone.legendary_models import resnet as _resnet

    model = _resnet.ResNet18(pretrained=False, layer_type="DiverseBranchBlock", **kwargs)
    for layer in model.sublayers():
        if hasattr(layer, "id_tensor"):
            layer.id_tensor = layer.id_tensor.astype("float32")
    return model
