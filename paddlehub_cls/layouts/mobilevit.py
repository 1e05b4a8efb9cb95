"""MobileViT v1 name map: PaddleClas 2.6.0 ``model_zoo/mobilevit.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.mobilevit`. PaddleClas numbers its layers flat:
``conv3x3`` (stem), ``mv2_block_1`` (stage 1), ``mv2_block_2..4`` (stage 2), then
``mv2_block_5..7`` each followed by ``mvit_block_1..3`` (stages 3-5), ``conv1x1`` and
``linear``. A MobileViT block: ``conv1`` (our ``local``), ``conv2`` (``conv_in``),
``transformer.layers.<i>.{attn_norm,attn.qkv,attn.proj,mlp_norm,mlp.fc1,mlp.fc2}``
(our ``blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``), ``transformer.norm``,
``conv3`` (``proj``), ``conv4`` (``fusion``). Its ConvBnAct calls the batch norm ``norm``.
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout
from paddlehub_cls.layouts._mobilevit import MixerNames, convbn, linear, mixer, mv2

FAMILY = "mobilevit"

# our (stage, index) -> PaddleClas's inverted residual
_MV2 = {(0, 0): 1, (1, 0): 2, (1, 1): 3, (1, 2): 4, (2, 0): 5, (3, 0): 6, (4, 0): 7}


#: PaddleClas's ``MobileViTBlock``
TRANSFORMER_MIX = MixerNames(
    local="conv1",
    conv_in="conv2",
    layer="transformer.layers.{i}",
    tensors={
        "norm1": "attn_norm",
        "attn.qkv": "attn.qkv",
        "attn.proj": "attn.proj",
        "norm2": "mlp_norm",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    },
    norm="transformer.norm",
    proj="conv3",
    fusion="conv4",
)


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``conv3x3``, ``mv2_block_<n>``, ``mvit_block_<n>``, ``conv1x1``, ``linear``."""
    out = convbn("stem", "conv3x3")
    for s, stage in enumerate(model.stages):
        for i, layer in enumerate(stage):
            if (s, i) in _MV2:
                out.update(mv2(f"stages.{s}.{i}", f"mv2_block_{_MV2[(s, i)]}", layer, v1=True))
            else:
                out.update(mixer(f"stages.{s}.{i}", f"mvit_block_{s - 1}", layer, TRANSFORMER_MIX))
    out.update(convbn("head_conv", "conv1x1"))
    out.update(linear("fc", "linear"))
    return out
