"""Preprocessing built from a model's registry metadata, on ``paddle.vision.transforms``.

The eval recipe is the weight file's own (the registry's ``preprocess`` object,
``ModelInfo.preprocess_for(tag)``), step by step as PaddleClas's eval operators do it
(``DecodeImage``, ``ResizeImage``, ``CropImage``, ``NormalizeImage``, ``ToCHWImage``):
RGB (or BGR) uint8, resize the short side to ``resize_size`` (sizes
``int(round(side * resize_size / short))``) or squash to ``resize_size`` squared, centre crop
``crop`` (start ``(w - crop) // 2``), ``(x * scale - mean) / std`` in float32, CHW.
The resize backend is PIL (``Image.resize``) or OpenCV's ``INTER_LINEAR``, which
:mod:`paddlehub_cls._resize` reproduces bit for bit in numpy (OpenCV is not a dependency).

Entries without ``preprocess`` (and ``pretrained_cfg`` mappings of older exports) fall back to
``input_size``, ``crop_pct``, ``interpolation``, ``mean`` and ``std`` with PIL resampling: the
2019 reader (models@c1c5ed6 ``image_classification/reader.py``; WEIGHTS_FACTS 5a).

``paddle.vision.transforms.Resize(int)`` truncates the long side and its
``CenterCrop`` rounds the offset; both differ by a pixel from the 2019 reader and
PaddleClas on most photos, so :class:`ResizeShort` and :class:`CenterCropFloor` reproduce it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image
from paddle.vision import transforms as T
from paddle.vision.transforms import functional as F

from paddlehub_cls._resize import resize_bilinear_cv2

__all__ = [
    "CenterCropFloor",
    "NormalizeCHW",
    "ResizeShort",
    "ToArray",
    "ToRGB",
    "create_transform",
    "resolve_data_config",
    "resolve_preprocess",
    "to_pil_image",
]

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def to_pil_image(image: Any) -> Image.Image:
    """Return ``image`` as an RGB PIL image.

    Args:
        image: a PIL image (any mode) or a uint8 numpy array of shape (H, W),
            (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA.

    Raises:
        TypeError: for another type or dtype.
        ValueError: for an array of another shape.
    """
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(
                f"image arrays must be uint8 RGB with values 0-255, got dtype {image.dtype}; "
                f"convert with (array * 255).round().astype('uint8') if yours are floats in [0, 1]"
            )
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2:
            return Image.fromarray(image).convert("RGB")
        if image.ndim == 3 and image.shape[2] in (3, 4):
            return Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
        raise ValueError(
            f"image array must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (HWC, RGB), "
            f"got {image.shape}"
        )
    raise TypeError(f"expected a PIL image or a uint8 numpy array, got {type(image).__name__}")


class ToRGB(T.BaseTransform):
    """Convert a PIL image or uint8 array to an RGB PIL image (the 2019 readers decode to RGB)."""

    def _apply_image(self, img: Any) -> Image.Image:
        return to_pil_image(img)


_PIL_FILTERS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
    "box": Image.BOX,
    "hamming": Image.HAMMING,
    # PIL has no INTER_AREA; BOX is the same average over the covered source pixels.
    "area": Image.BOX,
}
_BACKENDS = ("cv2", "pil")


def _resize_array(img: np.ndarray, size: Tuple[int, int], interpolation: str, backend: str) -> np.ndarray:
    """Resize a uint8 HWC array to ``size = (width, height)`` with PIL or OpenCV semantics."""
    if backend == "pil":
        return np.asarray(Image.fromarray(img).resize(size, _PIL_FILTERS[interpolation]))
    if interpolation == "bilinear":
        return resize_bilinear_cv2(img, size)
    try:
        import cv2  # only for the OpenCV filters that no packaged model uses
    except ImportError as exc:
        raise ValueError(
            f"resizing with backend 'cv2' and interpolation {interpolation!r} needs OpenCV "
            f"(only 'bilinear' is built in); install it with `pip install opencv-python-headless`, "
            f"or pass a config with backend 'pil'"
        ) from exc
    flags = {
        "nearest": cv2.INTER_NEAREST,
        "bicubic": cv2.INTER_CUBIC,
        "lanczos": cv2.INTER_LANCZOS4,
        "area": cv2.INTER_AREA,
    }
    return cv2.resize(img, size, interpolation=flags[interpolation])


class ResizeShort(T.BaseTransform):
    """Resize so the short side is ``size``, long side ``round(long * size / short)``.

    Args:
        size: target length of the short side.
        interpolation: filter name (``"lanczos"``, ``"bilinear"``, ...).
        backend: ``"pil"`` (``Image.resize``, antialiased) or ``"cv2"`` (OpenCV's
            resampling, two taps per axis, no antialiasing: PaddleClas's default).
        squash: resize to ``size`` x ``size`` instead, ignoring the aspect ratio
            (PaddleClas ``ResizeImage(size=...)``).
    """

    def __init__(
        self,
        size: int,
        interpolation: str = "lanczos",
        keys: Optional[Sequence[str]] = None,
        *,
        backend: str = "pil",
        squash: bool = False,
    ) -> None:
        super().__init__(keys)
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}, got {backend!r}")
        if interpolation not in _PIL_FILTERS:
            raise ValueError(f"interpolation must be one of {', '.join(_PIL_FILTERS)}, got {interpolation!r}")
        self.size = int(size)
        self.interpolation = interpolation
        self.backend = backend
        self.squash = squash

    def _apply_image(self, img: Any) -> Any:
        is_pil = isinstance(img, Image.Image)
        w, h = img.size if is_pil else (img.shape[1], img.shape[0])
        if self.squash:
            new_w = new_h = self.size
        else:
            scale = self.size / min(w, h)
            # Rounded as the 2019 reader and PaddleClas do (int(round(w * percent))), not truncated.
            new_w, new_h = int(round(w * scale)), int(round(h * scale))
        out = _resize_array(np.asarray(img), (new_w, new_h), self.interpolation, self.backend)
        return Image.fromarray(out) if is_pil else out


class CenterCropFloor(T.BaseTransform):
    """Centre crop to ``size`` x ``size`` with the offset rounded down, as the 2019 reader and PaddleClas do.

    Accepts a PIL image or an HWC array and returns the same kind.

    Raises:
        ValueError: if the image is smaller than the crop.
    """

    def __init__(self, size: int, keys: Optional[Sequence[str]] = None) -> None:
        super().__init__(keys)
        self.size = int(size)

    def _apply_image(self, img: Any) -> Any:
        is_pil = isinstance(img, Image.Image)
        w, h = img.size if is_pil else (img.shape[1], img.shape[0])
        if w < self.size or h < self.size:
            raise ValueError(f"cannot centre-crop {self.size}x{self.size} from an image of {w}x{h}")
        left, top = (w - self.size) // 2, (h - self.size) // 2
        if is_pil:
            return F.crop(img, top, left, self.size, self.size)
        return img[top : top + self.size, left : left + self.size]


class ToArray(T.BaseTransform):
    """A PIL image or uint8 array to an RGB (or, with ``channel_order="BGR"``, BGR) uint8 HWC array."""

    def __init__(self, channel_order: str = "RGB", keys: Optional[Sequence[str]] = None) -> None:
        super().__init__(keys)
        if channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {channel_order!r}")
        self.channel_order = channel_order

    def _apply_image(self, img: Any) -> np.ndarray:
        arr = np.asarray(to_pil_image(img))
        return np.ascontiguousarray(arr[:, :, ::-1]) if self.channel_order == "BGR" else arr


class NormalizeCHW(T.BaseTransform):
    """``(x * scale - mean) / std`` in float32 on an HWC array, then CHW (PaddleClas's NormalizeImage, ToCHWImage)."""

    def __init__(
        self,
        scale: float,
        mean: Sequence[float],
        std: Sequence[float],
        keys: Optional[Sequence[str]] = None,
    ) -> None:
        super().__init__(keys)
        self.scale = np.float32(scale)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, -1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, -1)

    def _apply_image(self, img: Any) -> np.ndarray:
        arr = (np.asarray(img).astype(np.float32) * self.scale - self.mean) / self.std
        return np.ascontiguousarray(arr.transpose(2, 0, 1))


def resolve_data_config(name_or_model: Any, *, image_size: Optional[int] = None) -> Dict[str, Any]:
    """The preprocessing settings of a model name, network or ``pretrained_cfg`` mapping.

    Args:
        name_or_model: a registry name (``"ResNet50"``), a network returned by
            :func:`paddlehub_cls.load_model` (its ``pretrained_cfg``) or a mapping
            with the same keys.
        image_size: override the crop size (the resize keeps the registry's crop
            percentage).

    Returns:
        ``{"input_size": (C, H, W), "mean", "std", "interpolation", "crop_pct"}``.

    Raises:
        UnknownModelError: unknown name.
        ValueError: the metadata is missing or invalid.
    """
    if isinstance(name_or_model, str):
        from paddlehub_cls.api import model_info

        info = model_info(name_or_model)
        cfg: Mapping[str, Any] = {
            "input_size": info.input_size,
            "mean": info.mean,
            "std": info.std,
            "interpolation": info.interpolation,
            "crop_pct": info.crop_pct,
        }
        origin = f"registry entry {info.name}"
    elif isinstance(name_or_model, Mapping):
        cfg, origin = name_or_model, "the given config"
    else:
        cfg = getattr(name_or_model, "pretrained_cfg", None)
        origin = f"{type(name_or_model).__name__}.pretrained_cfg"
        if not isinstance(cfg, Mapping):
            raise ValueError(
                f"{type(name_or_model).__name__} has no pretrained_cfg; pass a model name, a network from "
                f"paddlehub_cls.load_model, or a dict with input_size, mean, std, interpolation and crop_pct"
            )
    missing = [k for k in ("input_size", "mean", "std", "interpolation", "crop_pct") if cfg.get(k) is None]
    if missing:
        raise ValueError(f"{origin} lacks {', '.join(missing)}, needed to build the preprocessing")
    input_size = tuple(int(v) for v in cfg["input_size"])
    if len(input_size) != 3:
        raise ValueError(f"{origin}: input_size must be (C, H, W), got {cfg['input_size']!r}")
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
        input_size = (input_size[0], image_size, image_size)
    interpolation = str(cfg["interpolation"]).lower()
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(
            f"{origin}: interpolation {cfg['interpolation']!r} is not one of {', '.join(_INTERPOLATIONS)}"
        )
    crop_pct = float(cfg["crop_pct"])
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"{origin}: crop_pct must be in (0, 1], got {crop_pct}")
    return {
        "input_size": input_size,
        "mean": tuple(float(v) for v in cfg["mean"]),
        "std": tuple(float(v) for v in cfg["std"]),
        "interpolation": interpolation,
        "crop_pct": crop_pct,
    }


def _resize_size(crop: int, crop_pct: float) -> int:
    # 224 / 0.875 is exactly 256 in binary floating point, but other pairs are not;
    # the epsilon keeps e.g. 0.9 -> 320 / 0.9 * 0.9 from landing one pixel short.
    return int(math.floor(crop / crop_pct + 1e-6))


_PREPROCESS_KEYS = (
    "resize",
    "resize_size",
    "crop",
    "interpolation",
    "backend",
    "channel_order",
    "scale",
    "mean",
    "std",
)


def _from_legacy(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``preprocess`` object that ``input_size``/``crop_pct``/``interpolation``/``mean``/``std`` describe."""
    crop = cfg["input_size"][1]
    return {
        "resize": "short",
        "resize_size": _resize_size(crop, cfg["crop_pct"]),
        "crop": crop,
        "interpolation": cfg["interpolation"],
        "backend": "pil",
        "channel_order": "RGB",
        "scale": 1.0 / 255.0,
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "source": "input_size, crop_pct, interpolation, mean and std (the 2019 reader's recipe, PIL resampling)",
    }


def _registry_preprocess(
    name: str, weights: Optional[str]
) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any], str]:
    from paddlehub_cls.registry import load_registry

    reg = load_registry()
    if weights is None and name in reg:
        info, tag = reg.get(name), None
    else:
        info, variant = reg.resolve(name, weights)
        tag = variant.tag
    legacy = {
        "input_size": info.input_size,
        "mean": info.mean,
        "std": info.std,
        "interpolation": info.interpolation,
        "crop_pct": info.crop_pct,
    }
    shown = tag or info.default_weights
    return info.preprocess_for(tag), legacy, f"registry entry {info.name}" + (f".{shown}" if shown else "")


def resolve_preprocess(
    name_or_model: Any,
    *,
    weights: Optional[str] = None,
    export: bool = False,
    image_size: Optional[int] = None,
) -> Dict[str, Any]:
    """The eval preprocessing of a weight file, as a registry ``preprocess`` object.

    Args:
        name_or_model: a registry name (``"ResNet50_vd"`` or ``"ResNet50_vd.paddleclas_ssld"``),
            a network from :func:`paddlehub_cls.load_model` (its ``pretrained_cfg``, which
            holds the loaded variant's ``preprocess``), a ``preprocess`` object, or a mapping
            with ``input_size``, ``mean``, ``std``, ``interpolation`` and ``crop_pct``.
        weights: variant tag for a registry name (default: the model's default weights).
        export: apply the object's ``export`` overrides (PaddleClas's ``Infer`` config).
        image_size: override the crop; a short-side resize keeps the ratio crop / resize_size.

    Returns:
        ``resize``, ``resize_size``, ``crop``, ``interpolation``, ``backend``, ``channel_order``,
        ``scale``, ``mean``, ``std``, ``source`` (and ``note`` where the registry has one).

    Raises:
        UnknownModelError: unknown name or tag.
        ValueError: the metadata is missing or invalid, or ``image_size`` is not an int >= 8.
    """
    if isinstance(name_or_model, str):
        pre, legacy, origin = _registry_preprocess(name_or_model, weights)
    else:
        if weights is not None:
            raise ValueError(f"weights={weights!r} selects a registry variant; pass a model name with it")
        if isinstance(name_or_model, Mapping):
            cfg: Mapping[str, Any] = name_or_model
            origin = "the given config"
        else:
            cfg = getattr(name_or_model, "pretrained_cfg", None)
            origin = f"{type(name_or_model).__name__}.pretrained_cfg"
            if not isinstance(cfg, Mapping):
                raise ValueError(
                    f"{type(name_or_model).__name__} has no pretrained_cfg; pass a model name, a network from "
                    f"paddlehub_cls.load_model, or a dict with input_size, mean, std, interpolation and crop_pct"
                )
        if "resize" in cfg:
            pre = dict(cfg)  # a preprocess object itself
        else:
            pre = dict(cfg["preprocess"]) if isinstance(cfg.get("preprocess"), Mapping) else None
            side = (cfg.get("input_size") or [None, None])[1]
            if pre is not None and image_size is None and side and side != pre.get("crop"):
                # Fine-tuned or exported at another size (pretrained_cfg["input_size"]): keep its ratio.
                image_size = int(side)
        legacy = cfg
    if pre is None:
        pre = _from_legacy(resolve_data_config(legacy))
    missing = [k for k in _PREPROCESS_KEYS if pre.get(k) is None]
    if missing:
        raise ValueError(f"{origin}: its preprocess object lacks {', '.join(missing)}")
    overrides = pre.pop("export", None) or {}
    if export:
        pre.update(overrides)
    if pre["backend"] not in _BACKENDS or pre["interpolation"] not in _PIL_FILTERS:
        raise ValueError(
            f"{origin}: backend {pre['backend']!r} / interpolation {pre['interpolation']!r} is not one of "
            f"{', '.join(_BACKENDS)} / {', '.join(_PIL_FILTERS)}"
        )
    if pre["resize"] not in ("short", "squash") or pre["channel_order"] not in ("RGB", "BGR"):
        raise ValueError(
            f"{origin}: resize {pre['resize']!r} must be 'short' or 'squash' and channel_order "
            f"{pre['channel_order']!r} 'RGB' or 'BGR'"
        )
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
        if pre["resize"] == "squash":
            pre["resize_size"] = image_size
        else:
            pre["resize_size"] = _resize_size(image_size, pre["crop"] / pre["resize_size"])
        pre["crop"] = image_size
    return pre


def create_transform(
    name_or_model: Union[str, Mapping[str, Any], Any],
    train: bool = False,
    *,
    weights: Optional[str] = None,
    export: bool = False,
    image_size: Optional[int] = None,
    scale: Tuple[float, float] = (0.08, 1.0),
    hflip: float = 0.5,
) -> T.Compose:
    """Build the preprocessing of a weight file from its metadata.

    Eval reproduces the file's own eval pipeline (:func:`resolve_preprocess`; for
    PaddleClas weights its ``DataLoader.Eval`` config): RGB or BGR, resize the short side to
    ``resize_size`` (or squash), centre crop ``crop``, ``(x * scale - mean) / std``, CHW
    float32. Train: random resized crop to the crop size (same filter, PIL), horizontal
    flip, then the same channel order and normalisation.

    Args:
        name_or_model: registry name (``"ResNet50"``, ``"ResNet50.fluid2019"``), network
            from :func:`~paddlehub_cls.load_model`, a ``preprocess`` object or a
            ``pretrained_cfg``-like mapping.
        train: build the training augmentation instead of the eval recipe.
        weights: variant tag for a registry name (default: the model's default weights).
        export: follow the export (``Infer``) settings where they differ from eval.
        image_size: crop size overriding the registry's (for fine-tuning at
            another resolution).
        scale: area range of ``RandomResizedCrop`` (train only).
        hflip: probability of a horizontal flip (train only).

    Returns:
        A ``paddle.vision.transforms.Compose`` mapping a PIL image or uint8 HWC RGB
        array to a CHW float32 numpy array. ``.data_config`` holds the settings used
        (``input_size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``, ``preprocess``, ``train``).

    Example:
        >>> tf = create_transform("ResNet50_vd")
        >>> x = tf(Image.open("cat.png"))        # (3, 224, 224) float32
    """
    pre = resolve_preprocess(name_or_model, weights=weights, export=export, image_size=image_size)
    crop = int(pre["crop"])
    if train:
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip must be a probability in [0, 1], got {hflip}")
        interpolation = "box" if pre["interpolation"] == "area" else pre["interpolation"]
        steps: list = [
            ToRGB(),
            T.RandomResizedCrop(crop, scale=tuple(scale), interpolation=interpolation),
            T.RandomHorizontalFlip(hflip),
            ToArray(pre["channel_order"]),
        ]
    else:
        steps = [
            ToArray(pre["channel_order"]),
            ResizeShort(
                pre["resize_size"],
                pre["interpolation"],
                backend=pre["backend"],
                squash=pre["resize"] == "squash",
            ),
            CenterCropFloor(crop),
        ]
    steps.append(NormalizeCHW(pre["scale"], pre["mean"], pre["std"]))
    transform = T.Compose(steps)
    mean, std = list(pre["mean"]), list(pre["std"])
    transform.data_config = {
        "input_size": (3, crop, crop),
        "mean": tuple(float(v) for v in (mean * 3 if len(mean) == 1 else mean)),
        "std": tuple(float(v) for v in (std * 3 if len(std) == 1 else std)),
        "interpolation": pre["interpolation"],
        "crop_pct": crop / pre["resize_size"],
        "preprocess": pre,
        "train": train,
    }
    return transform
