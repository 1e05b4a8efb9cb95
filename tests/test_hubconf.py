"""hubconf.py: paddle.hub.list / help / load with source="local" on this repository."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import paddle
import pytest

from paddlehub_cls.models import ClassifierNet
from paddlehub_cls.registry import load_registry

REPO = str(Path(__file__).resolve().parents[1])


def test_list_has_one_entrypoint_per_registry_model():
    assert sorted(paddle.hub.list(REPO, source="local")) == sorted(load_registry().names())


def test_help_describes_the_model():
    text = paddle.hub.help(REPO, "ResNet50", source="local")
    assert text.startswith("ResNet50 (resnet family)") and "paddle_vision (default)" in text


def test_load_random_weights_with_load_model_kwargs():
    model = paddle.hub.load(REPO, "ShuffleNetV2", source="local", pretrained=False, num_classes=7)
    assert isinstance(model, ClassifierNet) and model.num_classes == 7
    assert model.pretrained_cfg["name"] == "ShuffleNetV2" and not model.training
    with pytest.raises(RuntimeError, match="Cannot find callable NoSuchNet"):
        paddle.hub.load(REPO, "NoSuchNet", source="local")


def test_load_pretrained_from_a_file_mirror(cache_env, tmp_path, monkeypatch):
    """pretrained=True fetches the default (paddle_vision) weights through PADDLEHUB_CLS_MIRROR."""
    paddle.seed(7)
    reference = paddle.vision.models.mobilenet_v1(pretrained=False)  # a file in paddle.vision's own layout
    reference.eval()
    variant = load_registry().get("MobileNetV1").variant()
    assert variant.layout == "paddle_vision"
    url = urlsplit(variant.urls[0])
    served = tmp_path / "mirror" / url.netloc / url.path.lstrip("/")
    served.parent.mkdir(parents=True)
    paddle.save(reference.state_dict(), str(served))
    data = served.read_bytes()
    # The published md5 belongs to the real file; a site registry pins ours instead.
    override = tmp_path / "site.json"
    override.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "models": {
                    "MobileNetV1": {
                        "weights": {
                            "paddle_vision": {
                                "checksum": f"sha256:{hashlib.sha256(data).hexdigest()}",
                                "size": len(data),
                            }
                        }
                    }
                },
            }
        )
    )
    monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(override))
    monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", (tmp_path / "mirror").as_uri())
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")  # no socket: only the file:// mirror can serve it

    model = paddle.hub.load(REPO, "MobileNetV1", source="local", pretrained=True)
    assert model.load_report.weights == "paddle_vision" and model.load_report.layout == "paddle_vision"
    assert model.load_report.checksum == f"sha256:{hashlib.sha256(data).hexdigest()}"
    x = paddle.rand([2, 3, 224, 224])
    with paddle.no_grad():
        np.testing.assert_allclose(model(x).numpy(), reference(x).numpy(), rtol=1e-4, atol=1e-5)
    assert any(cache_env.rglob("*")), "the verified file lands in the user cache"


def test_lower_case_names_load_like_torchvisions_and_stay_out_of_the_list():
    model = paddle.hub.load(REPO, "shufflenetv2", source="local", pretrained=False, num_classes=5)
    assert model.pretrained_cfg["name"] == "ShuffleNetV2" and model.num_classes == 5
    assert paddle.hub.help(REPO, "resnet50", source="local").startswith("ResNet50 (resnet family)")
    assert paddle.hub.help(REPO, "se_resnext50_32x4d", source="local").startswith("SE_ResNeXt50_32x4d ")
    names = paddle.hub.list(REPO, source="local")
    assert "resnet50" not in names and "ResNet50" in names  # one entry point per model, not two
