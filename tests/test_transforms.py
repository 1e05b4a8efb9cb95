"""create_transform against a hand-written numpy reference of the 2019 PIL reader."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from PIL import Image

from paddlehub_cls.transforms import create_transform, resolve_data_config, to_pil_image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CFG_2019 = {
    "input_size": [3, 224, 224],
    "mean": MEAN,
    "std": STD,
    "interpolation": "lanczos",
    "crop_pct": 0.875,
}


def chelsea() -> Image.Image:
    with resources.files("paddlehub_cls").joinpath("data/chelsea.png").open("rb") as fh:
        img = Image.open(fh)
        img.load()
    return img


def reader_2019(img: Image.Image, resize: int = 256, crop: int = 224) -> np.ndarray:
    """models@c1c5ed6 image_classification/reader.py, eval branch (WEIGHTS_FACTS 5a), by hand."""
    img = img.convert("RGB")
    w, h = img.size
    percent = float(resize) / min(w, h)
    rw, rh = int(round(w * percent)), int(round(h * percent))
    img = img.resize((rw, rh), Image.LANCZOS)
    left, top = (rw - crop) // 2, (rh - crop) // 2
    arr = (
        np.array(img.crop((left, top, left + crop, top + crop))).astype("float32").transpose((2, 0, 1)) / 255
    )
    arr -= np.array(MEAN).reshape((3, 1, 1))
    arr /= np.array(STD).reshape((3, 1, 1))
    return arr


def test_eval_matches_2019_reader_on_a_real_photo():
    img = chelsea()
    assert img.size == (451, 300)  # 451 * 256 / 300 = 384.85: rounding, not truncation, gives 385
    got = create_transform(CFG_2019)(img)
    want = reader_2019(img)
    assert got.dtype == np.float32 and got.shape == (3, 224, 224)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_eval_matches_2019_reader_for_odd_offsets_and_portrait():
    # 301 x 457: the short side is the width, the crop offset has a .5 that floor and round split on.
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, size=(457, 301, 3), dtype=np.uint8))
    np.testing.assert_allclose(create_transform(CFG_2019)(img), reader_2019(img), rtol=0, atol=1e-5)


def test_registry_name_gives_the_2019_recipe():
    tf = create_transform("ResNet50")
    assert tf.data_config["interpolation"] == "lanczos"
    np.testing.assert_allclose(tf(chelsea()), reader_2019(chelsea()), rtol=0, atol=1e-5)


def test_network_pretrained_cfg_is_used():
    from paddlehub_cls import load_model

    model = load_model("MobileNetV1", pretrained=False)
    cfg = dict(model.pretrained_cfg, crop_pct=1.0)
    model.pretrained_cfg = cfg
    out = create_transform(model)(chelsea())
    np.testing.assert_allclose(out, reader_2019(chelsea(), resize=224, crop=224), rtol=0, atol=1e-5)


def test_numpy_and_grayscale_inputs():
    img = chelsea()
    tf = create_transform(CFG_2019)
    np.testing.assert_array_equal(tf(np.asarray(img)), tf(img))
    gray = np.asarray(img.convert("L"))
    out = tf(gray)
    assert out.shape == (3, 224, 224)
    # Grey replicated to RGB: after removing the per-channel normalisation, the channels agree.
    raw = out * np.array(STD).reshape(3, 1, 1) + np.array(MEAN).reshape(3, 1, 1)
    np.testing.assert_allclose(raw[0], raw[1], atol=1e-5)
    np.testing.assert_array_equal(tf(np.asarray(img.convert("RGBA"))), tf(img))


def test_image_size_override_keeps_crop_pct():
    tf = create_transform(CFG_2019, image_size=160)
    assert tf.data_config["input_size"] == (3, 160, 160)
    out = tf(chelsea())
    np.testing.assert_allclose(out, reader_2019(chelsea(), resize=182, crop=160), rtol=0, atol=1e-5)


def test_train_transform_is_random_and_normalised():
    tf = create_transform(CFG_2019, train=True, image_size=64)
    img = chelsea()
    a, b = tf(img), tf(img)
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    assert not np.array_equal(a, b)
    lo = (0 - np.array(MEAN)) / np.array(STD)
    hi = (1 - np.array(MEAN)) / np.array(STD)
    for c in range(3):
        assert a[c].min() >= lo[c] - 1e-5 and a[c].max() <= hi[c] + 1e-5


def test_train_flip_is_applied():
    flat = np.zeros((64, 64, 3), dtype=np.uint8)
    flat[:, :32] = 255  # left half white
    always = create_transform(CFG_2019, train=True, image_size=64, scale=(1.0, 1.0), hflip=1.0)
    never = create_transform(CFG_2019, train=True, image_size=64, scale=(1.0, 1.0), hflip=0.0)
    # scale=(1, 1) with the default ratio range may still crop a band; the left and right edges tell.
    left_never, right_never = never(flat)[0, :, 0].mean(), never(flat)[0, :, -1].mean()
    left_always, right_always = always(flat)[0, :, 0].mean(), always(flat)[0, :, -1].mean()
    assert left_never > right_never
    assert left_always < right_always


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((8, 8, 3), dtype=np.float32), "uint8"),
        (np.zeros((8, 8, 5), dtype=np.uint8), "shape"),
        ("not an image", "PIL image"),
    ],
)
def test_bad_inputs_raise_clear_errors(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        to_pil_image(bad)


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="interpolation 'sinc'"):
        resolve_data_config(dict(CFG_2019, interpolation="sinc"))
    with pytest.raises(ValueError, match="crop_pct"):
        resolve_data_config(dict(CFG_2019, crop_pct=1.5))
    with pytest.raises(ValueError, match="lacks mean"):
        resolve_data_config({k: v for k, v in CFG_2019.items() if k != "mean"})
    with pytest.raises(ValueError, match="image_size"):
        resolve_data_config(CFG_2019, image_size=0)
    with pytest.raises(ValueError, match="pretrained_cfg"):
        resolve_data_config(object())
