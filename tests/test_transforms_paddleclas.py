"""create_transform against PaddleClas 2.6.0's own eval operators on real photos.

One case per preprocessing group that PaddleClas's configs use (ZOO_FACTS section 5: resize
short or squash, crop, cv2 or PIL, interpolation, channel order, scale, mean, std), and one per
distinct ``preprocess`` object in registry.json. The oracle decodes the file with OpenCV
(``DecodeImage``); our transform gets the same decoded pixels, so the comparison covers the
resize, crop and normalisation, not two JPEG decoders. Both backends are reproduced exactly
(PIL is PIL; OpenCV's INTER_LINEAR by ``paddlehub_cls._resize``), so the arrays must be equal.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

from oracles.paddleclas_preprocess import paddleclas_eval
from paddlehub_cls.registry import load_registry
from paddlehub_cls.transforms import create_transform, resolve_preprocess

pytestmark = pytest.mark.paddleclas

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
HALF = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
UNIT = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
SCALE = 1.0 / 255.0


def _pre(
    resize_size: int,
    crop: int,
    interpolation: str,
    backend: str,
    stats: Dict[str, List[float]],
    resize: str = "short",
    channel_order: str = "RGB",
    scale: float = SCALE,
) -> Dict[str, Any]:
    return dict(
        resize=resize,
        resize_size=resize_size,
        crop=crop,
        interpolation=interpolation,
        backend=backend,
        channel_order=channel_order,
        scale=scale,
        source="test",
        **stats,
    )


# The groups of ZOO_FACTS section 5 (counts and configs there), one representative each.
GROUPS = {
    "default_cv2_256_224": _pre(
        256, 224, "bilinear", "cv2", IMAGENET
    ),  # ResNet50_vd.yaml, PPLCNet, MobileNetV3
    "pil_bicubic_256_224": _pre(
        256, 224, "bicubic", "pil", IMAGENET
    ),  # SwinTransformer_*_224, DeiT, ConvNeXt
    "pil_bicubic_248_224": _pre(248, 224, "bicubic", "pil", IMAGENET),  # CSWin 224, FasterNet
    "pil_bicubic_248_224_half": _pre(248, 224, "bicubic", "pil", HALF),  # TNT, VAN
    "pil_bicubic_232_224": _pre(232, 224, "bicubic", "pil", IMAGENET),  # PPHGNetV2_B0-B6, PPHGNet_tiny
    "pil_bicubic_236_224": _pre(236, 224, "bicubic", "pil", IMAGENET),  # PPHGNet_small/base
    "vit_cv2_256_224_half": _pre(256, 224, "bilinear", "cv2", HALF),  # ViT_*_224
    "vit_cv2_384_384_half": _pre(384, 384, "bilinear", "cv2", HALF),  # ViT_*_384 (upscales most photos)
    "pil_bicubic_438_384": _pre(438, 384, "bicubic", "pil", IMAGENET),  # Swin base/large 384, DeiT 384
    "pil_bicubic_384_384": _pre(384, 384, "bicubic", "pil", IMAGENET),  # ConvNeXt 384
    "pil_bicubic_squash_384": _pre(384, 384, "bicubic", "pil", IMAGENET, resize="squash"),  # CvT_*_384
    "pil_bicubic_292_256": _pre(292, 256, "bicubic", "pil", IMAGENET),  # SwinV2 *_256
    "cv2_320_299": _pre(320, 299, "bilinear", "cv2", IMAGENET),  # InceptionV3/V4, Xception
    "efficientnet_b4_cv2_412_380": _pre(412, 380, "bilinear", "cv2", IMAGENET),  # EfficientNetB4
    "efficientnet_b7_cv2_632_600": _pre(632, 600, "bilinear", "cv2", IMAGENET),  # EfficientNetB7 (upscales)
    "tinynet_pil_bicubic_219_192": _pre(219, 192, "bicubic", "pil", IMAGENET),  # TinyNet_A
    "cv2_256_256": _pre(256, 256, "bilinear", "cv2", IMAGENET),  # RegNetX (crop = resize)
    "cv2_288_256": _pre(288, 256, "bilinear", "cv2", IMAGENET),  # ResNeSt101, CSPDarkNet53
    "mobilevit_bgr_pil_bilinear_292_256": _pre(292, 256, "bilinear", "pil", UNIT, channel_order="BGR"),
    "mobilevitv3_cv2_288_256_unit": _pre(288, 256, "bilinear", "cv2", UNIT),  # MobileViTV3_XXS/XS/S
    "pil_bilinear_256_224": _pre(256, 224, "bilinear", "pil", IMAGENET),  # MicroNet, PeleeNet
    "rednet_scale1": _pre(
        256,
        224,
        "bilinear",
        "cv2",
        {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
        scale=1.0,
    ),
    "reader2019_pil_lanczos_256_224": _pre(256, 224, "lanczos", "pil", IMAGENET),  # the fluid2019 archives
}


def _photos() -> Dict[str, bytes]:
    """Real photos: the package's own chelsea.png (skimage, BSD), Grace Hopper (matplotlib sample
    data; US Navy, public domain) and sklearn's china.jpg (CC BY 2.0, see its README.txt)."""
    with resources.files("paddlehub_cls").joinpath("data/chelsea.png").open("rb") as fh:
        photos = {"chelsea.png": fh.read()}
    mpl = Path(importlib.util.find_spec("matplotlib").origin).parent
    photos["grace_hopper.jpg"] = (mpl / "mpl-data" / "sample_data" / "grace_hopper.jpg").read_bytes()
    sk = Path(importlib.util.find_spec("sklearn").origin).parent
    photos["china.jpg"] = (sk / "datasets" / "images" / "china.jpg").read_bytes()
    return photos


PHOTOS = _photos()


def _decoded_rgb(encoded: bytes) -> np.ndarray:
    import cv2

    return np.ascontiguousarray(cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1])


def _assert_same_as_paddleclas(pre: Dict[str, Any]) -> None:
    tf = create_transform(pre)
    for name, encoded in PHOTOS.items():
        want = paddleclas_eval(encoded, pre)
        got = tf(_decoded_rgb(encoded))
        assert got.dtype == np.float32 and got.shape == want.shape == (3, pre["crop"], pre["crop"]), name
        diff = np.abs(got - want.astype(np.float32))
        assert np.array_equal(
            got, want
        ), f"{name}: max |diff| {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_paddleclas_group_matches_its_operators(group):
    _assert_same_as_paddleclas(GROUPS[group])


def _registry_objects() -> Dict[str, Dict[str, Any]]:
    """Every distinct eval preprocess object in registry.json, named by its first model.variant."""
    reg, found, seen = load_registry(), {}, set()
    for name in reg.names():
        info = reg.get(name)
        for tag in list(info.weights) or [None]:
            pre = info.preprocess_for(tag)
            if pre is None:
                continue
            for export in (False, True):
                obj = resolve_preprocess(pre, export=export)
                key = tuple((k, str(v)) for k, v in sorted(obj.items()) if k not in ("source", "note"))
                if key not in seen:
                    seen.add(key)
                    found[f"{name}.{tag}" + (".export" if export else "")] = obj
    return found


REGISTRY_OBJECTS = _registry_objects()


def test_the_registry_has_preprocess_objects():
    # The seed's three recipes at least: PaddleClas cv2, paddle.vision (same) and the 2019 PIL reader.
    kinds = {(o["backend"], o["interpolation"]) for o in REGISTRY_OBJECTS.values()}
    assert {("cv2", "bilinear"), ("pil", "lanczos")} <= kinds


@pytest.mark.parametrize("variant", sorted(REGISTRY_OBJECTS))
def test_every_registry_recipe_matches_paddleclas_operators(variant):
    _assert_same_as_paddleclas(REGISTRY_OBJECTS[variant])


def test_pil_input_equals_decoded_array_for_a_png():
    from PIL import Image
    import io

    pre = GROUPS["default_cv2_256_224"]
    img = Image.open(io.BytesIO(PHOTOS["chelsea.png"]))
    np.testing.assert_array_equal(create_transform(pre)(img), paddleclas_eval(PHOTOS["chelsea.png"], pre))


def test_numpy_bilinear_is_opencv_bit_for_bit_on_random_shapes():
    """resize_bilinear_cv2 against cv2.resize(INTER_LINEAR): up, down, one axis, 2x, 1-pixel sides, grey."""
    import cv2
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from paddlehub_cls._resize import resize_bilinear_cv2

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(
        st.integers(1, 40),
        st.integers(1, 40),
        st.integers(1, 60),
        st.integers(1, 60),
        st.sampled_from([0, 1, 3, 4]),
        st.integers(0, 2**32 - 1),
    )
    def check(h, w, new_h, new_w, channels, seed):
        shape = (h, w) if channels == 0 else (h, w, channels)
        img = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
        want = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        got = resize_bilinear_cv2(img, (new_w, new_h))
        assert got.shape == want.reshape(got.shape).shape
        np.testing.assert_array_equal(got, want.reshape(got.shape))

    check()
