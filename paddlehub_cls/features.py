"""Multi-scale feature maps for detection and segmentation: ``load_model(..., features_only=True)``.

Modelled on timm's ``features_only``: the returned layer maps an image batch to the
list of stage feature maps and lists each one's channels and stride in
``feature_info``. It is generic: every network declares its stages in
``feature_info`` (a list of ``{"module", "num_chs", "reduction"}`` dicts naming a
sublayer), and :class:`FeatureListNet` captures those sublayers' outputs with
forward post-hooks while ``forward_features`` runs.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import paddle
from paddle import nn

from paddlehub_cls.errors import PaddleHubClsError

__all__ = ["FeatureInfo", "FeatureListNet", "resolve_out_indices"]


def resolve_out_indices(out_indices: Optional[Sequence[int]], num_stages: int) -> List[int]:
    """Normalise ``out_indices`` (None: every stage; negative counts from the end).

    Raises:
        ValueError: an index out of range, repeated, or not increasing.
    """
    if out_indices is None:
        return list(range(num_stages))
    if isinstance(out_indices, int) or not isinstance(out_indices, Sequence) or not out_indices:
        raise ValueError(f"out_indices must be a non-empty sequence of stage indices, got {out_indices!r}")
    resolved = []
    for i in out_indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -num_stages <= i < num_stages:
            raise ValueError(
                f"out_indices {list(out_indices)!r}: {i!r} is not a stage index; this network has "
                f"{num_stages} stages (0..{num_stages - 1}, or negative from the end)"
            )
        resolved.append(i % num_stages)
    if any(b <= a for a, b in zip(resolved, resolved[1:])):
        raise ValueError(
            f"out_indices must name distinct stages in increasing depth, got {list(out_indices)!r}"
        )
    return resolved


class FeatureInfo:
    """Channels, strides and module names of the selected stages (timm's ``FeatureInfo``).

    Args:
        info: the network's full ``feature_info`` list.
        out_indices: the stages kept, as returned by :func:`resolve_out_indices`.
    """

    def __init__(self, info: Sequence[Dict[str, Any]], out_indices: Sequence[int]) -> None:
        self.info = [dict(info[i], index=i) for i in out_indices]
        self.out_indices = tuple(out_indices)

    def _get(self, key: str, idx: Optional[Union[int, Sequence[int]]]) -> Any:
        if idx is None:
            return [d[key] for d in self.info]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def channels(self, idx: Optional[Union[int, Sequence[int]]] = None) -> Any:
        """Channels of each selected feature map (or of the ``idx``-th)."""
        return self._get("num_chs", idx)

    def reduction(self, idx: Optional[Union[int, Sequence[int]]] = None) -> Any:
        """Stride of each selected feature map relative to the input (or of the ``idx``-th)."""
        return self._get("reduction", idx)

    def module_name(self, idx: Optional[Union[int, Sequence[int]]] = None) -> Any:
        """Name of the sublayer whose output each feature map is."""
        return self._get("module", idx)

    def get_dicts(self) -> List[Dict[str, Any]]:
        """One ``{"module", "num_chs", "reduction", "index"}`` dict per selected stage."""
        return [dict(d) for d in self.info]

    def __len__(self) -> int:
        return len(self.info)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return dict(self.info[i])

    def __repr__(self) -> str:
        return f"FeatureInfo(channels={self.channels()}, reduction={self.reduction()})"


class FeatureListNet(nn.Layer):
    """Wraps a network so that calling it returns the list of its stage feature maps.

    The wrapped network is ``self.model`` (so state_dict keys gain a ``model.``
    prefix); its classifier is not run. Every parameter stays trainable, as in a
    backbone of a detector.

    Args:
        model: a paddlehub_cls network with a non-empty ``feature_info``.
        out_indices: stages to return (default all), indices into ``model.feature_info``.

    Attributes:
        feature_info: :class:`FeatureInfo` of the returned maps.
        pretrained_cfg, load_report: those of the wrapped network.

    Raises:
        ValueError: bad ``out_indices``.
        PaddleHubClsError: the network declares no stages or names a missing sublayer.
    """

    def __init__(self, model: nn.Layer, out_indices: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        info = list(getattr(model, "feature_info", None) or [])
        name = type(model).__name__
        if not info:
            raise PaddleHubClsError(
                f"{name} declares no feature_info stages, so it has no features_only mode"
            )
        indices = resolve_out_indices(out_indices, len(info))
        self.model = model
        self.feature_info = FeatureInfo(info, indices)
        sublayers = dict(model.named_sublayers())
        self._captured: Dict[int, paddle.Tensor] = {}
        self._hooks = []
        for slot, stage in enumerate(self.feature_info.get_dicts()):
            layer = sublayers.get(stage["module"])
            if layer is None:
                raise PaddleHubClsError(
                    f"{name}.feature_info names sublayer {stage['module']!r}, which does not exist; "
                    f"this is a bug in paddlehub_cls"
                )
            self._hooks.append(layer.register_forward_post_hook(self._make_hook(slot)))
        self.pretrained_cfg = getattr(model, "pretrained_cfg", None)
        self.load_report = getattr(model, "load_report", None)

    def _make_hook(self, slot: int) -> Any:
        def hook(layer: nn.Layer, inputs: Any, output: paddle.Tensor) -> None:
            self._captured[slot] = output

        return hook

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        self._captured = {}
        try:
            self.model.forward_features(x)
            missing = [
                self.feature_info.module_name(i)
                for i in range(len(self.feature_info))
                if i not in self._captured
            ]
            if missing:
                raise PaddleHubClsError(
                    f"{type(self.model).__name__}.forward_features did not run {missing}; "
                    f"this is a bug in paddlehub_cls"
                )
            return [self._captured[i] for i in range(len(self.feature_info))]
        finally:
            self._captured = {}  # drop references so the maps can be freed
