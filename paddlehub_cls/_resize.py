"""OpenCV's ``cv2.resize(..., interpolation=INTER_LINEAR)`` on uint8 images, in numpy.

PaddleClas's default eval resize is ``cv2.resize`` with ``INTER_LINEAR``
(``ResizeImage(backend="cv2")``), which samples two taps per axis and does not
antialias when it downscales. OpenCV is not a dependency of this package, so this
module reproduces its 8-bit fixed-point arithmetic (OpenCV ``imgproc/src/resize.cpp``):

- per output column/row, ``f = float32((d + 0.5) * (src / dst) - 0.5)``, ``s = floor(f)``,
  weights ``round((1 - (f - s)) * 2048)`` and ``round((f - s) * 2048)`` (11 fractional bits);
- horizontally the taps are clamped to the image (``s < 0`` or ``s >= src - 1`` gives a
  single tap of weight 2048); vertically only the row indices are clamped, the weights stay;
- horizontal pass: an int sum ``p0 * a0 + p1 * a1``;
- vertical pass as OpenCV's SIMD kernel computes it (``VResizeLinearVec_32s8u``):
  ``((((r0 >> 4) * b0) >> 16) + (((r1 >> 4) * b1) >> 16) + 2) >> 2``, saturated to uint8
  (OpenCV's scalar fallback rounds ``(r0 * b0 + r1 * b1 + 2**21) >> 22`` instead, which
  differs by 1 on 8-12 % of the values; x86-64 and ARM64 builds take the SIMD path);
- an exact 2x downscale on both axes is a 2x2 box average ``(a + b + c + d + 2) >> 2``
  (OpenCV switches ``INTER_LINEAR`` to its fast ``INTER_AREA`` there); an unchanged size is a copy.

Measured: identical bytes to opencv-python 5.0.0 (x86-64) on real photos at every
short side PaddleClas uses (224-600, up- and downscaling); see docs/loading.md.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["resize_bilinear_cv2"]

_COEF_SCALE = np.float32(2048.0)  # 1 << INTER_RESIZE_COEF_BITS (11)


def _taps(src: int, dst: int, clamp_weights: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and 11-bit weights of the two taps of each output position."""
    # OpenCV computes the scale in double and the position in float32; both matter for the bits.
    scale = 1.0 / (dst / src)
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.int64)
    frac = (pos - first.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        outside = (first < 0) | (first >= src - 1)
        frac[outside] = 0.0
        first = np.clip(first, 0, src - 1)
    w1 = np.rint(frac * _COEF_SCALE).astype(np.int32)
    w0 = np.rint((np.float32(1.0) - frac) * _COEF_SCALE).astype(np.int32)
    return np.clip(first, 0, src - 1), np.clip(first + 1, 0, src - 1), w0, w1


def resize_bilinear_cv2(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize a uint8 HWC (or HW) array to ``size = (width, height)`` as ``cv2.resize`` INTER_LINEAR does.

    Raises:
        TypeError: ``image`` is not a uint8 array.
        ValueError: ``image`` is empty or not 2-D/3-D, or ``size`` is not two positive ints.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 numpy array, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected a non-empty (H, W) or (H, W, C) array, got shape {image.shape}")
    width, height = (int(v) for v in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"target size must be positive (width, height), got {size!r}")
    src_h, src_w = image.shape[:2]
    if (src_w, src_h) == (width, height):
        return image.copy()
    pixels = image.astype(np.int32)  # every intermediate fits: 255 * 2048 * 2 and (2**15) * 2048
    if src_w == 2 * width and src_h == 2 * height:
        box = pixels[0::2, 0::2] + pixels[1::2, 0::2] + pixels[0::2, 1::2] + pixels[1::2, 1::2]
        return ((box + 2) >> 2).astype(np.uint8)
    x0, x1, a0, a1 = _taps(src_w, width, clamp_weights=True)
    y0, y1, b0, b1 = _taps(src_h, height, clamp_weights=False)
    extra = (1,) * (image.ndim - 2)
    a0, a1 = a0.reshape((1, -1) + extra), a1.reshape((1, -1) + extra)
    rows = pixels[:, x0] * a0 + pixels[:, x1] * a1
    b0, b1 = b0.reshape((-1, 1) + extra), b1.reshape((-1, 1) + extra)
    out = ((((rows[y0] >> 4) * b0) >> 16) + (((rows[y1] >> 4) * b1) >> 16) + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)
