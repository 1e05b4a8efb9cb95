"""How :func:`~paddlehub_cls.load_model` builds a network and fills it with weights.

:mod:`paddlehub_cls.api` keeps the public entry points thin (as timm's ``_factory`` beside its
``_builder``); this module resolves ``weights`` to a registry variant or a local path, builds the
network once without random initialisation, matches a local file against the variants' layouts,
adapts the first conv to ``in_chans`` and reports what it did in a :class:`LoadReport`. Paddle is
imported only when a network is built.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import UnsafeWeightsError, WeightsFormatError
from paddlehub_cls.registry import ModelInfo, Registry, WeightVariant, load_registry

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from paddle import nn

logger = logging.getLogger(__name__)



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


def info_for(reg: Registry, name: str) -> ModelInfo:
    """The entry of ``name``; a ``"Name.tag"`` resolves through its variant."""
    # A bare name must not require weights.
    if isinstance(name, str) and reg.split_name(name)[1] is not None:
        return reg.resolve(name)[0]
    return reg.get(name)


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
    if weights.lower() in {tag.lower() for tag in info_for(load_registry(), name).weights}:
        return None
    local = Path(weights).expanduser()
    separators = [sep for sep in (os.sep, os.altsep) if sep]
    return local if any(sep in weights for sep in separators) or local.exists() else None


def resolve_weights(
    name: str, weights: Optional[PathLike], pretrained: bool
) -> Tuple[ModelInfo, Optional[WeightVariant], Optional[Path]]:
    """Split ``weights`` into a registry variant or a local path.

    Returns:
        (model, variant, path): ``variant`` is the one to download, or for a local
        path the variant named in ``"Name.tag"`` (a hint), else None.
    """
    reg = load_registry()
    if weights is None and not pretrained:
        return info_for(reg, name), None, None
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights must be a variant tag or a path, got {weights!r} ({type(weights).__name__})"
        )
    if weights is not None:
        local = local_weights_path(name, weights)
        if local is not None:
            if not local.exists():
                raise FileNotFoundError(
                    f"weights path {str(local)!r} for {name} does not exist; pass an existing file or "
                    f"directory, or a variant tag such as {sorted(info_for(reg, name).weights)}"
                )
            # "Name.tag" with a path says which variant's graph and names the file has.
            hinted = reg.split_name(name)[1] is not None
            info, hint = reg.resolve(name) if hinted else (info_for(reg, name), None)
            return info, hint, local
    info, variant = reg.resolve(name, weights)
    return info, variant, None


def check_args(num_classes: Optional[int], in_chans: int) -> None:
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0
    ):
        raise ValueError(
            f"num_classes must be None (keep the checkpoint's head), 0 (pooled features) or a positive int; "
            f"got {num_classes!r}"
        )
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")


def pretrained_cfg(info: ModelInfo, variant: Optional[WeightVariant], model: Any) -> Dict[str, Any]:
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


def load(
    name: str,
    pretrained: bool,
    num_classes: Optional[int],
    *,
    weights: Optional[PathLike],
    in_chans: int,
    cache_dir: Optional[PathLike],
    progress: Optional[bool],
) -> "nn.Layer":
    """What :func:`paddlehub_cls.load_model` does once its arguments are checked (features aside)."""
    if weights is not None:
        pretrained = True
    info, variant, local = resolve_weights(name, weights, pretrained)
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
        width = head if num_classes is None else num_classes
        model = builder(num_classes=width, in_chans=in_chans, **build_kwargs)
        model.pretrained_cfg = pretrained_cfg(info, None, model)
        model.eval()
        return model

    from paddlehub_cls import fastload, layouts

    if local is not None:
        path, checksum, tag = unpack_local(local, cache_dir), None, "local"
        readable: Any = path
    else:
        path, checksum, tag = artifact.path, artifact.checksum, variant.tag
        readable = artifact
    try:
        # A verified artifact is read through its memory-mapped conversion, a local path as it is.
        source = fastload.read_source(readable, cache_dir=cache_dir)
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
        adapt = adapters(model, in_chans)
        match = layouts.match_layout(
            model, source.tensors, variant.layout, info.family, origin=str(path), adapt=adapt
        )
    else:
        model, match, matched = match_local(info, builder, source.tensors, variant, in_chans, str(path))
        head = model.num_classes
        if matched is not None:
            variant, tag = matched, f"local:{matched.tag}"
    reset_head = num_classes is not None and num_classes != head
    skip = set(model.classifier_keys()) if reset_head else set()
    report = LoadReport(
        model=info.name, weights=tag, path=str(path), checksum=checksum, format=source.format,
        layout=match.layout,
    )
    # Zero copy where an array can become the parameter's memory (see fastload.assign).
    fastload.assign(model, match.arrays, skip)
    report.loaded = [k for k in match.arrays if k not in skip]
    report.filled, report.cast = dict(match.filled), dict(match.cast)
    report.adapted = {
        k: f"first conv adapted from 3 to {in_chans} input channels" for k in adapters(model, in_chans)
    }
    if reset_head:
        model.reset_classifier(num_classes)
        report.reset = model.classifier_keys()
    model.pretrained_cfg = pretrained_cfg(info, variant, model)
    model.load_report = report
    model.eval()
    logger.debug("%s", report)
    return model


def first_conv_adapter(in_chans: int) -> Callable[["np.ndarray"], "np.ndarray"]:
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


def adapters(model: Any, in_chans: int) -> Dict[str, Callable[["np.ndarray"], "np.ndarray"]]:
    if in_chans == 3:
        return {}
    return {f"{model.first_conv}.weight": first_conv_adapter(in_chans)}


def match_local(
    info: ModelInfo,
    builder: Callable[..., Any],
    tensors: Dict[str, "np.ndarray"],
    hint: Optional[WeightVariant],
    in_chans: int,
    origin: str,
) -> Tuple[Any, Any, Optional[WeightVariant]]:
    """Find the weight variant whose graph and layout a local file fits.

    Variants differ in graph as well as names (dropout scaling, an extra
    shortcut conv), so each candidate is built once, with its own kwargs, and matched
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
        # A fine-tuned checkpoint carries its own head size: swap the head, not the whole network.
        found = head_from_layout(model, tensors, info.family, layout)
        if found is not None and found != head:
            with paddle.LazyGuard():
                model.reset_classifier(found)
        try:
            match = layouts.match_layout(
                model, tensors, layout, info.family, origin=origin, adapt=adapters(model, in_chans)
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


def head_from_layout(model: Any, tensors: Dict[str, "np.ndarray"], family: str, layout: str) -> Optional[int]:
    """Classifier width of a checkpoint, read through the layout's name for it."""
    from paddlehub_cls import layouts

    src = layouts.get_layout(family, layout)(model).get(f"{model.classifier_attrs[0]}.weight")
    src = getattr(src, "key", src)
    if src in tensors and tensors[src].ndim == 2:
        return int(tensors[src].shape[-1])
    return None


def unpack_local(path: Path, cache_dir: Optional[PathLike]) -> Path:
    """A local archive is unpacked safely into the cache; files and dirs are used as they are."""
    if path.is_file():
        from paddlehub_cls import archive

        if archive.is_archive(path):
            from paddlehub_cls import hub

            return hub.unpack_local_archive(path, cache_dir=cache_dir)
    return path
