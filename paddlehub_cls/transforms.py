"""Preprocessing built from a model's registry metadata, on ``paddle.vision.transforms``.

The evaluation recipe defaults to the one the 2019 releases were measured with
(models@c1c5ed6 ``image_classification/reader.py``; WEIGHTS_FACTS 5a): decode to
RGB, resize the short side to 256 with ``Image.LANCZOS`` (sizes rounded), centre
crop 224 (start ``(w - 224) // 2``), scale by 1/255, normalise with the ImageNet
mean and std, CHW float32. The sizes, interpolation and statistics come from the
registry entry (``input_size``, ``crop_pct``, ``interpolation``, ``mean``, ``std``).

``paddle.vision.transforms.Resize(int)`` truncates the long side and its
``CenterCrop`` rounds the offset; both differ by a pixel from the 2019 reader on
most photos, so :class:`ResizeShort` and :class:`CenterCropFloor` reproduce it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image
from paddle.vision import transforms as T
from paddle.vision.transforms import functional as F

__all__ = [
    "CenterCropFloor",
    "ResizeShort",
    "ToCHWFloat",
    "ToRGB",
    "create_transform",
    "resolve_data_config",
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


class ResizeShort(T.BaseTransform):
    """Resize so the short side is ``size``, long side ``round(long * size / short)``.

    Args:
        size: target length of the short side.
        interpolation: PIL filter name (``"lanczos"``, ``"bilinear"``, ...).
    """

    def __init__(
        self, size: int, interpolation: str = "lanczos", keys: Optional[Sequence[str]] = None
    ) -> None:
        super().__init__(keys)
        self.size = int(size)
        self.interpolation = interpolation

    def _apply_image(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        scale = self.size / min(w, h)
        # Rounded as the 2019 reader does (int(round(w * percent))), not truncated.
        new_w, new_h = int(round(w * scale)), int(round(h * scale))
        return F.resize(img, (new_h, new_w), self.interpolation)


class CenterCropFloor(T.BaseTransform):
    """Centre crop to ``size`` x ``size`` with the offset rounded down, as the 2019 reader did.

    Raises:
        ValueError: if the image is smaller than the crop.
    """

    def __init__(self, size: int, keys: Optional[Sequence[str]] = None) -> None:
        super().__init__(keys)
        self.size = int(size)

    def _apply_image(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        if w < self.size or h < self.size:
            raise ValueError(f"cannot centre-crop {self.size}x{self.size} from an image of {w}x{h}")
        left, top = (w - self.size) // 2, (h - self.size) // 2
        return F.crop(img, top, left, self.size, self.size)


class ToCHWFloat(T.BaseTransform):
    """HWC uint8 image to a CHW float32 numpy array scaled to [0, 1]."""

    def _apply_image(self, img: Any) -> np.ndarray:
        arr = np.asarray(img, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return np.ascontiguousarray(arr.transpose(2, 0, 1) / np.float32(255.0))


class _NormalizeFloat32(T.Normalize):
    """``paddle.vision.transforms.Normalize`` that keeps float32 (numpy promotes nothing here)."""

    def _apply_image(self, img: np.ndarray) -> np.ndarray:
        return np.asarray(super()._apply_image(img), dtype=np.float32)


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


def create_transform(
    name_or_model: Union[str, Mapping[str, Any], Any],
    train: bool = False,
    *,
    image_size: Optional[int] = None,
    scale: Tuple[float, float] = (0.08, 1.0),
    hflip: float = 0.5,
) -> T.Compose:
    """Build the preprocessing of a model from its metadata.

    Eval: RGB, resize the short side to ``int(size / crop_pct)`` with the
    registry interpolation (LANCZOS for the 2019 releases: 256 for 224),
    centre crop ``size``, scale by 1/255, normalise. Train: RGB, random resized
    crop to ``size`` (same interpolation), horizontal flip, scale, normalise.

    Args:
        name_or_model: registry name, network from :func:`~paddlehub_cls.load_model`
            or a ``pretrained_cfg``-like mapping.
        train: build the training augmentation instead of the eval recipe.
        image_size: crop size overriding ``input_size`` (for fine-tuning at
            another resolution).
        scale: area range of ``RandomResizedCrop`` (train only).
        hflip: probability of a horizontal flip (train only).

    Returns:
        A ``paddle.vision.transforms.Compose`` mapping a PIL image or uint8 HWC
        array to a CHW float32 numpy array. ``.data_config`` holds the settings used.

    Example:
        >>> tf = create_transform("ResNet50")
        >>> x = tf(Image.open("cat.png"))        # (3, 224, 224) float32
    """
    cfg = resolve_data_config(name_or_model, image_size=image_size)
    _, height, width = cfg["input_size"]
    if height != width:
        raise ValueError(f"only square inputs are supported, got input_size {cfg['input_size']}")
    steps: list = [ToRGB()]
    if train:
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip must be a probability in [0, 1], got {hflip}")
        steps += [
            T.RandomResizedCrop(height, scale=tuple(scale), interpolation=cfg["interpolation"]),
            T.RandomHorizontalFlip(hflip),
        ]
    else:
        steps += [
            ResizeShort(_resize_size(height, cfg["crop_pct"]), cfg["interpolation"]),
            CenterCropFloor(height),
        ]
    steps += [
        ToCHWFloat(),
        _NormalizeFloat32(mean=list(cfg["mean"]), std=list(cfg["std"]), data_format="CHW"),
    ]
    transform = T.Compose(steps)
    transform.data_config = dict(cfg, train=train)
    return transform
