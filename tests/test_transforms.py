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


def test_registry_variant_fluid2019_gives_the_2019_recipe():
    for tf in (create_transform("ResNet50.fluid2019"), create_transform("ResNet50", weights="fluid2019")):
        assert tf.data_config["interpolation"] == "lanczos"
        assert tf.data_config["preprocess"]["backend"] == "pil"
        np.testing.assert_allclose(tf(chelsea()), reader_2019(chelsea()), rtol=0, atol=1e-5)


def test_registry_default_variant_uses_its_own_preprocess():
    # ResNet50's default file is paddle_vision, which records PaddleClas's cv2 recipe, not the 2019 reader.
    tf = create_transform("ResNet50")
    assert tf.data_config["preprocess"]["backend"] == "cv2"
    assert tf.data_config["preprocess"]["interpolation"] == "bilinear"
    assert not np.allclose(tf(chelsea()), reader_2019(chelsea()), atol=1e-3)


def test_network_pretrained_cfg_is_used():
    from paddlehub_cls import load_model
    from paddlehub_cls.registry import load_registry

    model = load_model("MobileNetV1", pretrained=False)
    assert model.pretrained_cfg["preprocess"] == load_registry().get("MobileNetV1").preprocess_for(None)
    # Without a preprocess object the legacy fields apply.
    model.pretrained_cfg = dict(model.pretrained_cfg, preprocess=None, crop_pct=1.0)
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


PIL_232 = {
    "resize": "short",
    "resize_size": 232,
    "crop": 224,
    "interpolation": "lanczos",
    "backend": "pil",
    "channel_order": "RGB",
    "scale": 1 / 255,
    "mean": list(MEAN),
    "std": list(STD),
    "source": "test",
}


def test_preprocess_object_drives_the_eval_pipeline():
    got = create_transform(PIL_232)(chelsea())
    np.testing.assert_allclose(got, reader_2019(chelsea(), resize=232, crop=224), rtol=0, atol=1e-5)
    # image_size keeps the ratio crop / resize_size: 160 / (224 / 232) = 165.7 -> 165.
    tf = create_transform(PIL_232, image_size=160)
    assert tf.data_config["preprocess"]["resize_size"] == 165
    np.testing.assert_allclose(tf(chelsea()), reader_2019(chelsea(), resize=165, crop=160), rtol=0, atol=1e-5)


def test_fine_tuned_input_size_overrides_the_registry_crop():
    # A fine-tuned checkpoint's pretrained_cfg says input_size 64 while preprocess still says 224.
    cfg = {"input_size": [3, 64, 64], "preprocess": PIL_232, **{k: CFG_2019[k] for k in ("mean", "std")}}
    tf = create_transform(cfg)
    assert tf.data_config["input_size"] == (3, 64, 64)
    np.testing.assert_allclose(tf(chelsea()), reader_2019(chelsea(), resize=66, crop=64), rtol=0, atol=1e-5)


def test_squash_bgr_and_scale_one():
    pre = dict(
        PIL_232,
        resize="squash",
        resize_size=200,
        crop=200,
        channel_order="BGR",
        scale=1.0,
        mean=[0.0, 0.0, 0.0],
        std=[1.0, 1.0, 1.0],
    )
    out = create_transform(pre)(chelsea())
    want = np.asarray(chelsea().convert("RGB").resize((200, 200), Image.LANCZOS), dtype=np.float32)
    np.testing.assert_array_equal(out, want[:, :, ::-1].transpose(2, 0, 1))


def test_export_overrides_apply_only_when_asked():
    pre = dict(PIL_232, export={"resize_size": 256})
    assert create_transform(pre).data_config["preprocess"]["resize_size"] == 232
    assert create_transform(pre, export=True).data_config["preprocess"]["resize_size"] == 256
    np.testing.assert_allclose(
        create_transform(pre, export=True)(chelsea()), reader_2019(chelsea()), atol=1e-5
    )


def test_cv2_filters_other_than_bilinear_need_opencv(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    tf = create_transform(dict(PIL_232, backend="cv2", interpolation="bicubic"))
    with pytest.raises(ValueError, match="opencv-python-headless"):
        tf(chelsea())
    # bilinear needs no OpenCV: it is built in.
    assert create_transform(dict(PIL_232, backend="cv2", interpolation="bilinear"))(chelsea()).shape == (
        3,
        224,
        224,
    )


def test_bad_preprocess_objects_raise_clear_errors():
    with pytest.raises(ValueError, match="backend 'gpu'"):
        create_transform(dict(PIL_232, backend="gpu"))
    with pytest.raises(ValueError, match="lacks crop"):
        create_transform({k: v for k, v in PIL_232.items() if k != "crop"})
    with pytest.raises(ValueError, match="resize 'long'"):
        create_transform(dict(PIL_232, resize="long"))
    with pytest.raises(ValueError, match="weights='paddleclas' selects a registry variant"):
        create_transform(PIL_232, weights="paddleclas")
    with pytest.raises(ValueError, match="cannot centre-crop 224x224 from an image of 200x200"):
        create_transform(dict(PIL_232, resize="squash", resize_size=200))(chelsea())


def test_pretrained_cfg_of_a_loaded_variant_carries_that_variants_recipe():
    from types import SimpleNamespace

    from paddlehub_cls._builder import pretrained_cfg as _pretrained_cfg
    from paddlehub_cls.registry import load_registry

    info = load_registry().get("ResNet50")
    net = SimpleNamespace(num_classes=1000, classifier_attrs=("fc",), first_conv="conv1")
    fluid = _pretrained_cfg(info, info.variant("fluid2019"), net)
    assert fluid["tag"] == "fluid2019" and fluid["preprocess"]["interpolation"] == "lanczos"
    np.testing.assert_allclose(create_transform(fluid)(chelsea()), reader_2019(chelsea()), rtol=0, atol=1e-5)
    clas = _pretrained_cfg(info, info.variant("paddleclas"), net)
    assert (clas["preprocess"]["backend"], clas["preprocess"]["interpolation"]) == ("cv2", "bilinear")
