"""ConvNeXt name map: PaddleClas 2.6.0 ``model_zoo/convnext.py`` -> ours.

Our keys: :mod:`paddlehub_cls.models.convnext`. PaddleClas keeps the stem and the three
downsampling layers in one list, ``downsample_layers.<s>`` (``.0`` conv / ``.1`` norm
for the stem, ``.0`` norm / ``.1`` conv after it), and the blocks in ``stages.<s>.<b>``;
we keep each stage's downsampling with its blocks. Block, final norm and head
tensors keep their names (the classifier is ``head``, ours ``fc``).
"""

from __future__ import annotations

from typing import Dict

from paddlehub_cls.layouts import Source, register_layout

FAMILY = "convnext"

_BLOCK_TENSORS = (
    "gamma",
    "dwconv.weight",
    "dwconv.bias",
    "norm.weight",
    "norm.bias",
    "pwconv1.weight",
    "pwconv1.bias",
    "pwconv2.weight",
    "pwconv2.bias",
)


@register_layout(FAMILY, "paddleclas_model_zoo")
def paddleclas_model_zoo(model) -> Dict[str, Source]:
    """PaddleClas names: ``downsample_layers.<s>.{0,1}.*``, ``stages.<s>.<b>.*``, ``norm.*``, ``head.*``."""
    out: Dict[str, Source] = {}
    for p in ("weight", "bias"):
        out[f"stem.0.{p}"] = f"downsample_layers.0.0.{p}"
        out[f"stem.1.{p}"] = f"downsample_layers.0.1.{p}"
        out[f"norm.{p}"] = f"norm.{p}"
        out[f"fc.{p}"] = f"head.{p}"
    for s, stage in enumerate(model.stages):
        if s > 0:
            for p in ("weight", "bias"):
                for k in ("0", "1"):
                    out[f"stages.{s}.downsample.{k}.{p}"] = f"downsample_layers.{s}.{k}.{p}"
        for b, block in enumerate(stage.blocks):
            for t in _BLOCK_TENSORS:
                if t != "gamma" or block.gamma is not None:
                    out[f"stages.{s}.blocks.{b}.{t}"] = f"stages.{s}.{b}.{t}"
    return out
