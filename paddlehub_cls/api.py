"""The public entry points: orchestration only.

How a network is built and filled lives in :mod:`paddlehub_cls._builder`; HTTP, archives and
caching in :mod:`paddlehub_cls.hub`, file formats in :mod:`paddlehub_cls.formats`, name maps in
:mod:`paddlehub_cls.layouts`, networks in :mod:`paddlehub_cls.models`. Paddle is imported only
when a network is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from paddlehub_cls import _builder
from paddlehub_cls._builder import LoadReport, info_for, local_weights_path
from paddlehub_cls._types import PathLike
from paddlehub_cls.registry import ModelInfo, load_registry

if TYPE_CHECKING:  # pragma: no cover
    from paddle import nn


__all__ = [
    "LoadReport",
    "download",
    "list_models",
    "load_checkpoint",
    "load_model",
    "load_with_sidecar",
    "local_weights_path",
    "model_info",
]


def list_models(
    pattern: str = "*",
    *,
    pretrained: Optional[bool] = None,
    family: Optional[str] = None,
    tag: Optional[str] = None,
    sort: Optional[str] = None,
) -> List[str]:
    """Names of the registered models matching ``pattern`` and the filters.

    Args:
        pattern: fnmatch pattern, matched case-insensitively (``"resnet*"``).
        pretrained: True keeps models with at least one weight variant, False
            those without any, None keeps all.
        family: keep one family, e.g. ``"resnet"`` (case-insensitive; ``paddlehub-cls list -l``
            shows each model's).
        tag: keep models with a weight variant of this tag, e.g. ``"paddleclas_ssld"``.
        sort: ``"top1"``: highest published ImageNet top-1 first (of the ``tag`` variant when
            ``tag`` is given, else of the default weights; a variant without its own figure
            uses the one published for the same file); ``"params"``: fewest parameters first;
            None: name order. Models without the figure come last.

    Returns:
        Model names in their release spelling, in natural order (ResNet18 before ResNet101)
        unless ``sort`` is given.

    Raises:
        UnknownModelError: no model has that ``family`` or ``tag``; the message lists the known ones.
        ValueError: ``sort`` is not ``"top1"``, ``"params"`` or None.

    Example:
        >>> list_models(tag="paddleclas_ssld", sort="top1")[:3]
    """
    from paddlehub_cls._listing import find_models

    return find_models(load_registry(), pattern, pretrained=pretrained, family=family, tag=tag, sort=sort)


def model_info(name: str) -> ModelInfo:
    """Registry metadata of ``name`` (case-insensitive; ``"Name.tag"`` accepted).

    Raises:
        UnknownModelError: listing the closest names.
    """
    return info_for(load_registry(), name)


def download(
    name: str,
    *,
    weights: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    progress: Optional[bool] = None,
) -> Path:
    """Fetch (or find in a cache) the verified weights of ``name``.

    Args:
        name: model name, optionally ``"Name.tag"``.
        weights: variant tag; default the registry's default variant.
        cache_dir: user cache root (default ``$PADDLEHUB_CLS_HOME`` or
            ``~/.cache/paddlehub_cls``).
        progress: show a progress bar; default only on a terminal.

    Returns:
        The verified file, or the unpacked directory for archive variants.
    """
    from paddlehub_cls import hub

    info, variant = load_registry().resolve(name, weights)
    return hub.download_variant(info, variant, cache_dir=cache_dir, progress=progress).path


def load_model(
    name: str,
    pretrained: bool = True,
    num_classes: Optional[int] = None,
    *,
    weights: Optional[PathLike] = None,
    in_chans: int = 3,
    cache_dir: Optional[PathLike] = None,
    progress: Optional[bool] = None,
    features_only: bool = False,
    out_indices: Optional[Sequence[int]] = None,
) -> "nn.Layer":
    """Build ``name`` and restore its ImageNet weights.

    Args:
        name: release name (``"ResNet50"``, case-insensitive) or ``"Name.tag"``.
        pretrained: restore weights; False gives a randomly initialised network.
        num_classes: None keeps the checkpoint's head; a positive int restores
            every weight but the classifier, which is freshly initialised with
            that many outputs; 0 returns a pooled-feature extractor.
        weights: a variant tag (``"fluid2019"``, ``"paddleclas"``,
            ``"paddle_vision"``) or a local file/directory (format and layout
            detected from its content). Implies ``pretrained=True``.
        in_chans: input channels; for 1 the first conv sums its RGB filters,
            otherwise they are repeated and scaled by 3/in_chans.
        cache_dir: user cache root for downloads.
        progress: show a download progress bar; default only on a terminal.
        features_only: return a :class:`~paddlehub_cls.features.FeatureListNet`
            that maps images to the list of stage feature maps (channels and
            strides in its ``feature_info``); the classifier is dropped.
        out_indices: with ``features_only``, the stages to return (default all).

    Returns:
        The network in eval mode, with ``pretrained_cfg`` and ``load_report`` set
        (call ``model.train()`` before fine-tuning).

    Raises:
        UnknownModelError: unknown model or tag.
        WeightsMismatchError: the weights do not fit the network.
        DownloadError, ChecksumError, OfflineError: the weights could not be fetched.
        ValueError: invalid ``num_classes`` or ``in_chans``.
    """
    _builder.check_args(num_classes, in_chans)
    if out_indices is not None and not features_only:
        raise ValueError("out_indices selects feature maps: pass it with features_only=True")
    if features_only and num_classes not in (None, 0):
        raise ValueError(
            "features_only=True returns feature maps, not logits; leave num_classes unset, "
            f"got {num_classes!r}"
        )
    model = _builder.load(
        name,
        pretrained,
        0 if features_only else num_classes,
        weights=weights,
        in_chans=in_chans,
        cache_dir=cache_dir,
        progress=progress,
    )
    if features_only:
        from paddlehub_cls.features import FeatureListNet

        return FeatureListNet(model, out_indices)
    return model


def load_checkpoint(checkpoint: PathLike, **kwargs: Any) -> "nn.Layer":
    """Load a fine-tuned checkpoint by its sidecar: model name, head size and class names.

    Equivalent to ``load_model(meta["model"], weights=checkpoint,
    num_classes=len(meta["class_names"]))`` plus the class names.

    Raises:
        FileNotFoundError: no sidecar next to the checkpoint (use ``load_model``
            with the model name instead).
    """
    from paddlehub_cls._checkpoint import apply_checkpoint_meta, read_checkpoint_meta, sidecar_path

    meta = read_checkpoint_meta(checkpoint)
    if meta is None:
        raise FileNotFoundError(
            f"no sidecar {sidecar_path(checkpoint)} next to {checkpoint}; load it with "
            f"load_model(NAME, weights={str(checkpoint)!r}, num_classes=N)"
        )
    model = load_model(meta["model"], weights=checkpoint, num_classes=len(meta["class_names"]), **kwargs)
    return apply_checkpoint_meta(model, meta)


def load_with_sidecar(name: str, weights: Optional[PathLike], **kwargs: Any) -> "nn.Layer":
    """``load_model(name, weights=weights, **kwargs)``, plus a fine-tuned checkpoint's sidecar.

    When ``weights`` is a local checkpoint with an ``epoch_NNN.json`` beside it, its class
    names and training image size are attached (``apply_checkpoint_meta``), so every
    route from a name and a checkpoint (``predict``, ``export``) keeps them.
    """
    from paddlehub_cls._checkpoint import apply_checkpoint_meta, read_checkpoint_meta

    model = load_model(name, weights=weights, **kwargs)
    local = local_weights_path(name, weights) if weights is not None else None
    if local is not None and local.is_file():
        meta = read_checkpoint_meta(local)
        if meta is not None:
            apply_checkpoint_meta(model, meta)
    return model
