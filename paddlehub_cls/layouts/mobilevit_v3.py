"""MobileViTV3 name map: PaddleClas 2.6.0 ``model_zoo/mobilevit_v3.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.mobilevit_v3`. PaddleClas: ``conv_1`` (stem),
``layer_<s+1>.<i>`` (our ``stages.<s>.<i>``), ``conv_1x1_exp`` (our ``head_conv``, v1 style
only) and ``classifier.fc``. The v2-style blocks are named as in MobileViTV2 (``conv_proj``
reads the concatenation); a v1-style block has ``local_rep.conv_3x3`` (our ``local``),
``local_rep.conv_1x1`` (``conv_in``), ``global_rep.<i>.pre_norm_mha.{0,1.qkv_proj,1.out_proj}``
and ``global_rep.<i>.pre_norm_ffn.{0,1,4}`` (our ``blocks.<i>.{norm1,attn.qkv,attn.proj}`` and
``{norm2,mlp.fc1,mlp.fc2}``), ``global_rep.<depth>`` (``norm``), ``conv_proj`` (``proj``) and
``fusion``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts._mobilevit import MixerNames, convbn, layer_stages, linear, mixer

FAMILY = "mobilevit_v3"


#: a v1-style block (``MobileViTV3Block``)
TRANSFORMER_MIX = MixerNames(
    local="local_rep.conv_3x3",
    conv_in="local_rep.conv_1x1.conv",
    layer="global_rep.{i}",
    tensors={
        "norm1": "pre_norm_mha.0",
        "attn.qkv": "pre_norm_mha.1.qkv_proj",
        "attn.proj": "pre_norm_mha.1.out_proj",
        "norm2": "pre_norm_ffn.0",
        "mlp.fc1": "pre_norm_ffn.1",
        "mlp.fc2": "pre_norm_ffn.4",
    },
    norm="global_rep.{depth}",
    proj="conv_proj",
    fusion="fusion",
)


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``conv_1``, ``layer_1..5``, ``conv_1x1_exp``, ``classifier.fc``."""
    out = convbn("stem", "conv_1")
    out.update(layer_stages(model, lambda o, t, b: mixer(o, t, b, TRANSFORMER_MIX)))
    if model.head_conv is not None:
        out.update(convbn("head_conv", "conv_1x1_exp"))
    out.update(linear("fc", "classifier.fc"))
    return out
