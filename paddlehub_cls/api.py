"""The public entry points: orchestration only.

HTTP, archives and caching live in :mod:`paddlehub_cls.hub`, file formats in
:mod:`paddlehub_cls.formats`, name maps in :mod:`paddlehub_cls.layouts`, networks
in :mod:`paddlehub_cls.models`. Paddle is imported only when a network is built.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from paddlehub_cls.errors import UnsafeWeightsError, WeightsFormatError
from paddlehub_cls.registry import ModelInfo, WeightVariant, load_registry

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from paddle import nn

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


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
    return _info(load_registry(), name)


def _info(reg: Any, name: str) -> ModelInfo:
    # "Name.tag" resolves through the variant; a bare name must not require weights.
    if isinstance(name, str) and reg.split_name(name)[1] is not None:
        return reg.resolve(name)[0]
    return reg.get(name)


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


@dataclass
class LoadReport:
    """What :func:`load_model` did, key by key.

    Attributes:
        model: registry name of the model.
        weights: variant tag, or ``"local"`` for a path.
        path: file or directory the tensors were read from.
        checksum: the verified checksum of the artifact (``md5:``/``sha256:``), if known.
        format: container read (``fluid``, ``pdparams``, ``safetensors``).
        layout: name map applied (``fluid2019``, ``paddle_vision``, ...).
        loaded: our keys restored from the file.
        reset: our keys freshly initialised (new classifier).
        adapted: our key -> how it was changed (``in_chans``).
        filled: our key -> why it was filled with a constant (absent in the source).
        cast: our key -> dtype conversion applied.
    """

    model: str
    weights: str
    path: str
    checksum: Optional[str]
    format: str
    layout: str
    loaded: List[str] = field(default_factory=list)
    reset: List[str] = field(default_factory=list)
    adapted: Dict[str, str] = field(default_factory=dict)
    filled: Dict[str, str] = field(default_factory=dict)
    cast: Dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [
            f"{self.model} weights {self.weights!r} from {self.path} "
            f"({self.format}, layout {self.layout}, checksum {self.checksum or 'none'})",
            f"  loaded {len(self.loaded)} tensors",
        ]
        if self.reset:
            lines.append(f"  reset {len(self.reset)}: {', '.join(self.reset)}")
        for title, items in (("adapted", self.adapted), ("filled", self.filled), ("cast", self.cast)):
            if items:
                lines.append(f"  {title} {len(items)}: " + "; ".join(f"{k}: {v}" for k, v in items.items()))
        return "\n".join(lines)


def local_weights_path(name: str, weights: PathLike) -> Optional[Path]:
    """The file or folder that ``weights`` names, or None when it names a registered variant.

    A tag registered for ``name`` always wins, even over a file or folder of that name in
    the current directory; any other string is a path when it contains a path separator or
    exists; an ``os.PathLike`` (``Path(...)``) is always a path.

    Raises:
        UnknownModelError: ``name`` is not in the registry (for a string ``weights``).
    """
    if isinstance(weights, os.PathLike):
        return Path(os.fspath(weights)).expanduser()
    if weights.lower() in {tag.lower() for tag in _info(load_registry(), name).weights}:
        return None
    local = Path(weights).expanduser()
    separators = [sep for sep in (os.sep, os.altsep) if sep]
    return local if any(sep in weights for sep in separators) or local.exists() else None


def _resolve_weights(
    name: str, weights: Optional[PathLike], pretrained: bool
) -> Tuple[ModelInfo, Optional[WeightVariant], Optional[Path]]:
    """Split ``weights`` into a registry variant or a local path.

    Returns:
        (model, variant, path): ``variant`` is the one to download, or for a local
        path the variant named in ``"Name.tag"`` (a hint), else None.
    """
    reg = load_registry()
    if weights is None and not pretrained:
        return _info(reg, name), None, None
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be a variant tag or a path, got {weights!r} ({type(weights).__name__})")
    if weights is not None:
        local = local_weights_path(name, weights)
        if local is not None:
            if not local.exists():
                raise FileNotFoundError(
                    f"weights path {str(local)!r} for {name} does not exist; pass an existing file or "
                    f"directory, or a variant tag such as {sorted(_info(reg, name).weights)}"
                )
            # "Name.tag" with a path says which variant's graph and names the file has.
            hinted = reg.split_name(name)[1] is not None
            info, hint = reg.resolve(name) if hinted else (_info(reg, name), None)
            return info, hint, local
    info, variant = reg.resolve(name, weights)
    return info, variant, None


def _first_conv_adapter(in_chans: int) -> Callable[["np.ndarray"], "np.ndarray"]:
    def adapt(w: "np.ndarray") -> "np.ndarray":
        import numpy as np

        w = np.asarray(w, dtype=np.float32)
        if w.shape[1] != 3:
            raise ValueError(f"first conv has {w.shape[1]} input channels, expected 3 to adapt to {in_chans}")
        if in_chans == 1:
            return w.sum(axis=1, keepdims=True)
        # Repeating the RGB filters keeps the pattern; scaling by 3/N keeps the
        # activation magnitude of an input whose channels look alike.
        reps = -(-in_chans // 3)
        return (np.tile(w, (1, reps, 1, 1))[:, :in_chans] * (3.0 / in_chans)).astype(np.float32)

    return adapt


def _check_args(num_classes: Optional[int], in_chans: int) -> None:
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0
    ):
        raise ValueError(
            f"num_classes must be None (keep the checkpoint's head), 0 (pooled features) or a positive int; "
            f"got {num_classes!r}"
        )
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")


def _pretrained_cfg(info: ModelInfo, variant: Optional[WeightVariant], model: Any) -> Dict[str, Any]:
    cfg = {
        "name": info.name,
        "architecture": info.architecture,
        "family": info.family,
        "num_classes": model.num_classes,
        "input_size": list(info.input_size),
        "mean": list(info.mean),
        "std": list(info.std),
        "interpolation": info.interpolation,
        "crop_pct": info.crop_pct,
        "classifier": list(model.classifier_attrs),
        "first_conv": model.first_conv,
        "tag": None,
    }
    if variant is not None:
        cfg.update(tag=variant.tag, urls=list(variant.urls), layout=variant.layout, checksum=variant.checksum)
    # The loaded file's own eval pipeline, so create_transform(model) follows it (None: the legacy fields).
    cfg["preprocess"] = info.preprocess_for(variant.tag) if variant is not None else info.preprocess_for(None)
    return cfg


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
    _check_args(num_classes, in_chans)
    if features_only:
        if num_classes not in (None, 0):
            raise ValueError(f"features_only=True returns feature maps, not logits; leave num_classes unset, "
                             f"got {num_classes!r}")
        from paddlehub_cls.features import FeatureListNet

        backbone = load_model(name, pretrained, 0, weights=weights, in_chans=in_chans, cache_dir=cache_dir,
                              progress=progress)
        return FeatureListNet(backbone, out_indices)
    if out_indices is not None:
        raise ValueError("out_indices selects feature maps: pass it with features_only=True")
    if weights is not None:
        pretrained = True
    info, variant, local = _resolve_weights(name, weights, pretrained)
    if pretrained and local is None:
        from paddlehub_cls import hub

        # Before paddle is imported (seconds): a download that cannot succeed fails at once.
        artifact = hub.download_variant(info, variant, cache_dir=cache_dir, progress=progress)

    import paddle

    from paddlehub_cls.models import get_builder

    builder = get_builder(info.architecture)
    build_kwargs = info.build_kwargs(variant.tag if variant is not None else None)
    head = variant.num_classes if variant is not None else info.num_classes
    if not pretrained:
        model = builder(num_classes=head if num_classes is None else num_classes, in_chans=in_chans, **build_kwargs)
        model.pretrained_cfg = _pretrained_cfg(info, None, model)
        model.eval()
        return model

    from paddlehub_cls import layouts

    if local is not None:
        path, checksum, tag = _unpack_local(local, cache_dir), None, "local"
        readable: Any = path
    else:
        path, checksum, tag = artifact.path, artifact.checksum, variant.tag
        readable = artifact
    try:
        source = _read_source(readable, cache_dir)
    except (UnsafeWeightsError, WeightsFormatError) as err:
        if local is None:
            # Verified bytes that are hostile or unreadable must not stay where a good artifact is expected.
            from paddlehub_cls import hub

            moved = hub.reject_artifact(artifact, str(err), cache_dir=cache_dir)
            if moved is not None:
                raise type(err)(f"{err} The downloaded file was moved to {moved}.") from err
        raise
    if local is None:
        # Build without random initialisation: every parameter is assigned below.
        with paddle.LazyGuard():
            model = builder(num_classes=head, in_chans=in_chans, **build_kwargs)
        match = layouts.match_layout(
            model, source.tensors, variant.layout, info.family, origin=str(path), adapt=_adapters(model, in_chans)
        )
    else:
        model, match, matched = _match_local(info, builder, source.tensors, variant, in_chans, str(path))
        head = model.num_classes
        if matched is not None:
            variant, tag = matched, f"local:{matched.tag}"
    reset_head = num_classes is not None and num_classes != head
    skip = set(model.classifier_keys()) if reset_head else set()
    report = LoadReport(
        model=info.name, weights=tag, path=str(path), checksum=checksum, format=source.format, layout=match.layout
    )
    _assign(model, match.arrays, skip)
    report.loaded = [k for k in match.arrays if k not in skip]
    report.filled, report.cast = dict(match.filled), dict(match.cast)
    report.adapted = {
        k: f"first conv adapted from 3 to {in_chans} input channels" for k in _adapters(model, in_chans)
    }
    if reset_head:
        model.reset_classifier(num_classes)
        report.reset = model.classifier_keys()
    model.pretrained_cfg = _pretrained_cfg(info, variant, model)
    model.load_report = report
    model.eval()
    logger.debug("%s", report)
    return model


def _read_source(source: Any, cache_dir: Optional[PathLike] = None) -> Any:
    """Tensors of an artifact: one the hub verified through its memory-mapped conversion in the
    cache (:mod:`paddlehub_cls.fastload`), a local path as it is."""
    from paddlehub_cls import fastload

    return fastload.read_source(source, cache_dir=cache_dir)


def _adapters(model: Any, in_chans: int) -> Dict[str, Callable[["np.ndarray"], "np.ndarray"]]:
    if in_chans == 3:
        return {}
    return {f"{model.first_conv}.weight": _first_conv_adapter(in_chans)}


def _match_local(
    info: ModelInfo,
    builder: Callable[..., Any],
    tensors: Dict[str, "np.ndarray"],
    hint: Optional[WeightVariant],
    in_chans: int,
    origin: str,
) -> Tuple[Any, Any, Optional[WeightVariant]]:
    """Find the weight variant whose graph and layout a local file fits.

    Variants differ in graph as well as names (dropout scaling, an extra
    shortcut conv), so each candidate is built with its own kwargs and matched
    with its own layout; a checkpoint of ours (``native`` names) is tried last,
    with the hinted or default variant's graph.

    Returns:
        (lazily built network, layout match, the variant matched or None for native).
    """
    import paddle

    from paddlehub_cls import layouts
    from paddlehub_cls.errors import WeightsMismatchError

    if hint is not None:
        candidates: List[Optional[WeightVariant]] = [hint]
    else:
        candidates = sorted(info.weights.values(), key=lambda v: v.tag != info.default_weights)
    candidates.append(None)
    tried = []
    for cand in candidates:
        graph = cand if cand is not None else hint
        kwargs = info.build_kwargs(graph.tag if graph is not None else None)
        layout = cand.layout if cand is not None else layouts.NATIVE
        head = cand.num_classes if cand is not None else info.num_classes
        with paddle.LazyGuard():
            model = builder(num_classes=head, in_chans=in_chans, **kwargs)
        # A fine-tuned checkpoint carries its own head size.
        found = _head_from_layout(model, tensors, info.family, layout)
        if found is not None and found != head:
            with paddle.LazyGuard():
                model = builder(num_classes=found, in_chans=in_chans, **kwargs)
        try:
            match = layouts.match_layout(
                model, tensors, layout, info.family, origin=origin, adapt=_adapters(model, in_chans)
            )
        except WeightsMismatchError as err:
            detail = " ".join(line.strip() for line in str(err).splitlines()[1:3])
            tried.append(f"{cand.tag if cand is not None else 'native'} (layout {layout}): {detail}")
            continue
        return model, match, cand
    raise WeightsMismatchError(
        f"{origin} fits none of the weight variants of {info.name}. Tried:\n  "
        + "\n  ".join(tried)
        + f"\nCheck that the file holds {info.name} weights; name the variant it came from with "
        f"'{info.name}.<tag>' to see the full mismatch."
    )


def _head_from_layout(model: Any, tensors: Dict[str, "np.ndarray"], family: str, layout: str) -> Optional[int]:
    """Classifier width of a checkpoint, read through the layout's name for it."""
    from paddlehub_cls import layouts

    src = layouts.get_layout(family, layout)(model).get(f"{model.classifier_attrs[0]}.weight")
    src = getattr(src, "key", src)
    if src in tensors and tensors[src].ndim == 2:
        return int(tensors[src].shape[-1])
    return None


def _assign(model: Any, arrays: Dict[str, "np.ndarray"], skip: set) -> None:
    from paddlehub_cls import fastload

    # Zero copy where the array can become the parameter's memory (see fastload.assign).
    fastload.assign(model, arrays, skip)


def _unpack_local(path: Path, cache_dir: Optional[PathLike]) -> Path:
    """A local archive is unpacked safely into the cache; files and dirs are used as they are."""
    if path.is_file():
        from paddlehub_cls import archive

        if archive.is_archive(path):
            from paddlehub_cls import hub

            return hub.unpack_local_archive(path, cache_dir=cache_dir)
    return path
