"""The interface every paddlehub_cls network exposes (ARCHITECTURE section 1)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import paddle
from paddle import nn

from paddlehub_cls.errors import PaddleHubClsError


def check_num_classes(num_classes: int, *, allow_zero: bool = True) -> int:
    """Validate a head size; ``0`` means "no classifier" where allowed."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise ValueError(f"num_classes must be an int, got {num_classes!r} ({type(num_classes).__name__})")
    low = 0 if allow_zero else 1
    if num_classes < low:
        allowed = "0 (pooled features) or a positive int" if allow_zero else "a positive int"
        raise ValueError(f"num_classes must be {allowed}, got {num_classes}")
    return num_classes


def check_in_chans(in_chans: int) -> int:
    """Validate the number of input channels (a positive int)."""
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
    return in_chans


def check_rate(name: str, value: float) -> float:
    """Validate a dropout or stochastic-depth probability ``name``: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def make_linear(in_features: int, out_features: int) -> nn.Layer:
    """Classifier layer: ``nn.Linear`` for ``out_features > 0``, identity for 0."""
    if out_features == 0:
        return nn.Identity()
    return nn.Linear(in_features, out_features)


class ClassifierNet(nn.Layer):
    """Base class of every network.

    Subclasses build their layers, set ``num_features`` (width of the pooled
    features the classifier sees) and ``num_classes``, keep the classifier as the
    attribute named by ``classifier_attrs[0]`` and implement
    :meth:`forward_features` and :meth:`forward_head`.

    Attributes:
        num_classes: outputs of the classifier; 0 when it is an identity.
        num_features: width of ``forward_head(f, pre_logits=True)``.
        pretrained_cfg: registry metadata of the weights loaded into this network.
        load_report: what ``load_model`` loaded, reset and adapted, or None.
    """

    #: attribute names of the classifier layers that ``reset_classifier`` replaces;
    #: the first is the main head, any others are auxiliary heads.
    classifier_attrs: tuple = ("fc",)
    #: attribute path of the first convolution, adapted for ``in_chans != 3``.
    first_conv: str = ""
    #: stage feature info for ``features_only``: list of dicts (module, num_chs, reduction).
    feature_info: List[Dict[str, Any]]

    def __init__(self) -> None:
        super().__init__()
        self.num_classes = 0
        self.num_features = 0
        self.pretrained_cfg: Optional[Dict[str, Any]] = None
        self.load_report: Any = None
        self.feature_info = []

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """Return the last feature map (N, C, H, W), before pooling."""
        raise NotImplementedError

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        """Pool the feature map and apply the classifier (unless ``pre_logits``)."""
        raise NotImplementedError

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Layer:
        """The main classifier layer."""
        return getattr(self, self.classifier_attrs[0])

    def classifier_keys(self) -> List[str]:
        """state_dict keys that belong to the classifier heads (main and auxiliary)."""
        prefixes = tuple(f"{a}." for a in self.classifier_attrs)
        return [k for k in self.state_dict() if k.startswith(prefixes)]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised ``num_classes``-way one.

        ``0`` makes the network return pooled features. Auxiliary heads, where a
        family has them, are reset to the same size by the family's override.
        """
        check_num_classes(num_classes)
        setattr(self, self.classifier_attrs[0], make_linear(self.num_features, num_classes))
        self.num_classes = num_classes


def no_classifier_error(name: str) -> PaddleHubClsError:
    return PaddleHubClsError(f"{name} has no classifier attribute; this is a bug in paddlehub_cls")
