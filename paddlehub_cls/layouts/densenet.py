"""DenseNet name map: PaddleClas 2.6.0 ``model_zoo/densenet.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.densenet`. PaddleClas names its blocks by the 2019
fluid scheme, counting from 2: block ``s`` is ``db_conv_<s+2>`` holding layers
``conv<s+2>_<j+1>`` (each ``bn_ac_func1`` = bottleneck, ``bn_ac_func2`` = 3x3 conv,
``_batch_norm`` then ``_conv``), the transition before our stage ``s`` is
``tr_conv<s+1>_blk.conv_ac_func``, the stem ``conv1_func`` (``_conv``, ``_batch_norm``), the
final norm ``batch_norm`` and the classifier ``out``. paddle.vision's ``densenet`` has the
same names and loads the same files.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import OUR_BN, Source, dygraph_convbn, register_layout

FAMILY = "densenet"


def _bn_conv(ours: str, theirs: str) -> Dict[str, Source]:
    out: Dict[str, Source] = {f"{ours}.conv.weight": f"{theirs}._conv.weight"}
    for p in OUR_BN:
        out[f"{ours}.norm.{p}"] = f"{theirs}._batch_norm.{p}"
    return out


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``conv1_func``, ``db_conv_<n>.conv<n>_<j>.bn_ac_func{1,2}``,
    ``tr_conv<n>_blk``, ``batch_norm``, ``out``."""
    out: Dict[str, Source] = dygraph_convbn("stem", "conv1_func._conv", "conv1_func._batch_norm")
    for s, stage in enumerate(model.stages):
        n = s + 2
        if stage.transition is not None:
            out.update(_bn_conv(f"stages.{s}.transition", f"tr_conv{n - 1}_blk.conv_ac_func"))
        for j in range(len(stage.layers)):
            theirs = f"db_conv_{n}.conv{n}_{j + 1}"
            out.update(_bn_conv(f"stages.{s}.layers.{j}.bottleneck", f"{theirs}.bn_ac_func1"))
            out.update(_bn_conv(f"stages.{s}.layers.{j}.conv", f"{theirs}.bn_ac_func2"))
    for p in OUR_BN:
        out[f"norm.bn.{p}"] = f"batch_norm.{p}"
    out["fc.weight"], out["fc.bias"] = "out.weight", "out.bias"
    return out
