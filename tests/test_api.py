"""load_model orchestration: variants of a local file, head reset, in_chans, errors, reports.

Weight files here are written with ``paddle.save`` under a source's names by
inverting that source's layout over a randomly initialised network of ours; the
layouts themselves are proven against independent oracles in tests/test_models_*.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import paddle
import pytest

import paddlehub_cls as phc
from paddlehub_cls import layouts
from paddlehub_cls.errors import (
    PaddleHubClsError,
    UnknownModelError,
    UnsafeWeightsError,
    WeightsFormatError,
    WeightsMismatchError,
)
from paddlehub_cls.models import get_builder

paddle.set_device("cpu")
X = paddle.to_tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype("float32"))


def write_source_file(name: str, tag: str, path: Path, **overrides) -> dict:
    """A .pdparams holding random weights of ``name`` under variant ``tag``'s names; returns {our_key: array}."""
    info = phc.model_info(name)
    variant = info.variant(tag)
    kwargs = {**info.build_kwargs(tag), **overrides}
    paddle.seed(1)
    net = get_builder(info.architecture)(num_classes=variant.num_classes, **kwargs)
    ours = {k: v.numpy() for k, v in net.state_dict().items()}
    mapping = layouts.get_layout(info.family, variant.layout)(net)
    paddle.save({getattr(src, "key", src): ours[k] for k, src in mapping.items()}, str(path))
    return ours


def state(model) -> dict:
    return {k: v.numpy() for k, v in model.state_dict().items()}


def test_local_file_is_matched_to_the_variant_whose_graph_it_fits(tmp_path):
    # PaddleClas ResNet18 has a projection shortcut in its first block; paddle.vision's
    # (the default variant) has none, so a default build cannot hold this file.
    ours = write_source_file("ResNet18", "paddleclas", tmp_path / "r18.pdparams")
    model = phc.load_model("ResNet18", weights=tmp_path / "r18.pdparams")
    assert model.load_report.weights == "local:paddleclas"
    assert model.load_report.layout == "paddleclas_legendary"
    got = state(model)
    assert set(got) == set(ours)
    for key in ours:
        np.testing.assert_array_equal(got[key], ours[key], err_msg=key)


def test_local_file_with_a_dropout_graph_gets_that_graph(tmp_path):
    # The 2019 SE_ResNeXt scales features by 0.5 at inference; its names also identify it.
    write_source_file("SE_ResNeXt50_32x4d", "fluid2019", tmp_path / "se.pdparams")
    model = phc.load_model("SE_ResNeXt50_32x4d", weights=str(tmp_path / "se.pdparams"))
    assert model.load_report.weights == "local:fluid2019"
    feats = model.forward_head(model.forward_features(X), pre_logits=True)
    logits = model(X)
    fc = model.get_classifier()
    expected = paddle.matmul(feats * 0.5, fc.weight) + fc.bias
    np.testing.assert_allclose(logits.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_name_tag_with_a_path_names_the_variant(tmp_path):
    write_source_file("ResNet18", "fluid2019", tmp_path / "r18.pdparams")
    model = phc.load_model("ResNet18.fluid2019", weights=tmp_path / "r18.pdparams")
    assert model.load_report.layout == "fluid2019"
    with pytest.raises(WeightsMismatchError, match=r"paddle_vision.*\n.*native"):
        phc.load_model("ResNet18.paddle_vision", weights=tmp_path / "r18.pdparams")


def test_fine_tuned_checkpoint_round_trips_with_its_head_size(tmp_path):
    write_source_file("MobileNetV1", "paddle_vision", tmp_path / "src.pdparams")
    tuned = phc.load_model("MobileNetV1", weights=tmp_path / "src.pdparams", num_classes=7)
    paddle.save(tuned.state_dict(), str(tmp_path / "tuned.pdparams"))
    again = phc.load_model("MobileNetV1", weights=tmp_path / "tuned.pdparams")
    assert again.num_classes == 7
    assert again.load_report.layout == "native"
    np.testing.assert_array_equal(again(X).numpy(), tuned(X).numpy())


def test_new_head_keeps_every_other_weight_and_reports_the_reset(tmp_path):
    ours = write_source_file("MobileNetV1", "paddle_vision", tmp_path / "w.pdparams")
    model = phc.load_model("MobileNetV1", weights=tmp_path / "w.pdparams", num_classes=10)
    assert model.num_classes == 10 and model(X).shape == [2, 10]
    got = state(model)
    assert sorted(model.load_report.reset) == ["fc.bias", "fc.weight"]
    assert got["fc.weight"].shape == (1024, 10)
    for key in ours:
        if key not in model.load_report.reset:
            np.testing.assert_array_equal(got[key], ours[key], err_msg=key)
    assert set(model.load_report.loaded) == set(ours) - {"fc.weight", "fc.bias"}


def test_num_classes_zero_returns_pooled_features(tmp_path):
    write_source_file("ResNet18", "paddle_vision", tmp_path / "w.pdparams")
    model = phc.load_model("ResNet18", weights=tmp_path / "w.pdparams", num_classes=0)
    out = model(X)
    assert out.shape == [2, model.num_features] == [2, 512]
    pooled = paddle.flatten(paddle.nn.functional.adaptive_avg_pool2d(model.forward_features(X), 1), 1)
    np.testing.assert_allclose(out.numpy(), pooled.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("in_chans", [1, 2, 4])
def test_in_chans_adapts_the_first_conv(tmp_path, in_chans):
    ours = write_source_file("MobileNetV1", "paddle_vision", tmp_path / "w.pdparams")
    model = phc.load_model("MobileNetV1", weights=tmp_path / "w.pdparams", in_chans=in_chans)
    key = f"{model.first_conv}.weight"
    w = state(model)[key]
    src = ours[key]
    if in_chans == 1:
        expected = src.sum(axis=1, keepdims=True)
    else:
        expected = np.concatenate([src, src], axis=1)[:, :in_chans] * (3.0 / in_chans)
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert key in model.load_report.adapted
    assert model(paddle.ones([1, in_chans, 64, 64])).shape == [1, 1000]


def test_random_model_needs_no_weights_and_comes_back_in_eval_mode():
    model = phc.load_model("ShuffleNetV2", pretrained=False, num_classes=5)
    assert not model.training
    assert model.num_classes == 5 and model.load_report is None
    assert model.pretrained_cfg["name"] == "ShuffleNetV2" and model.pretrained_cfg["input_size"] == [
        3,
        224,
        224,
    ]


@pytest.mark.parametrize("bad", [-1, 2.5, "10", True])
def test_invalid_num_classes_is_a_value_error_that_says_what_is_allowed(bad):
    with pytest.raises(ValueError, match="num_classes must be None"):
        phc.load_model("ResNet18", pretrained=False, num_classes=bad)


@pytest.mark.parametrize("bad", [0, -3, 1.0])
def test_invalid_in_chans(bad):
    with pytest.raises(ValueError, match="in_chans must be a positive int"):
        phc.load_model("ResNet18", pretrained=False, in_chans=bad)


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="ResNet50") as info:
        phc.load_model("resnet5O", pretrained=False)
    assert isinstance(info.value, LookupError) and isinstance(info.value, PaddleHubClsError)


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope" / "w.pdparams"
    with pytest.raises(FileNotFoundError, match="nope"):
        phc.load_model("ResNet18", weights=missing)


def test_file_of_another_model_lists_every_variant_tried(tmp_path):
    write_source_file("MobileNetV1", "paddle_vision", tmp_path / "mnv1.pdparams")
    with pytest.raises(WeightsMismatchError) as info:
        phc.load_model("ResNet18", weights=tmp_path / "mnv1.pdparams")
    msg = str(info.value)
    for tried in ("paddle_vision", "paddleclas", "fluid2019", "native"):
        assert tried in msg
    assert "mnv1.pdparams" in msg


def test_bfloat16_bits_are_not_taken_for_float_weights(tmp_path):
    ours = write_source_file("MobileNetV1", "paddle_vision", tmp_path / "w.pdparams")
    raw = paddle.load(str(tmp_path / "w.pdparams"), return_numpy=True)
    raw["fc.bias"] = ours["fc.bias"].view(np.uint32).astype(np.uint16)  # what paddle.save writes for bf16
    paddle.save(raw, str(tmp_path / "bf16.pdparams"))
    with pytest.raises(WeightsMismatchError, match="uint16 cannot fill the float32 parameter fc.bias"):
        phc.load_model("MobileNetV1.paddle_vision", weights=tmp_path / "bf16.pdparams")


def test_list_and_info_match_the_registry():
    assert phc.list_models("resnet[0-9]*[0-9]") == [
        "ResNet18",
        "ResNet34",
        "ResNet50",
        "ResNet101",
        "ResNet152",
    ]
    assert "ShuffleNetV2_swish" in phc.list_models(pretrained=True)
    assert phc.model_info("resnet50.FLUID2019").name == "ResNet50"


def test_load_report_reads_as_a_summary(tmp_path):
    write_source_file("MobileNetV1", "paddle_vision", tmp_path / "w.pdparams")
    report = phc.load_model("MobileNetV1", weights=tmp_path / "w.pdparams", num_classes=3).load_report
    text = str(report)
    assert "loaded 135 tensors" in text and "reset 2: fc.weight, fc.bias" in text
    assert os.fspath(tmp_path / "w.pdparams") in text


def test_verified_but_hostile_download_is_quarantined_and_nothing_runs(
    tmp_path, cache_env, http_server, monkeypatch
):
    import hashlib
    import json
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps({"fc.weight": Payload()}, protocol=4)
    sha = hashlib.sha256(data).hexdigest()
    # The registry URL is looked up on the mirror as BASE/HOST/PATH; the pin makes the bytes "verified".
    url = phc.model_info("MobileNetV1").variant("paddle_vision").urls[0]
    host_path = url.split("://", 1)[1]
    http_server.set_file("/" + host_path, data)
    monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", http_server.base_url)
    site = tmp_path / "site.json"
    site.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "models": {"MobileNetV1": {"weights": {"paddle_vision": {"checksum": f"sha256:{sha}"}}}},
            }
        )
    )
    monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(site))

    with pytest.raises(UnsafeWeightsError, match="moved to .*quarantine"):
        phc.load_model("MobileNetV1", weights="paddle_vision")
    assert not marker.exists()
    assert not (cache_env / "blobs" / "sha256" / sha).exists()
    assert [p.name.split(".")[0] for p in (cache_env / "quarantine").glob("*") if p.suffix != ".json"] == [
        sha
    ]


def test_a_registered_tag_wins_over_a_file_of_that_name_and_a_path_object_is_a_path(
    tmp_path, cache_env, monkeypatch
):
    """weights="paddleclas" is the variant even when ./paddleclas exists; Path("paddleclas") is the file."""
    import hashlib
    import json

    variant = phc.model_info("ShuffleNetV2").variant("paddleclas")
    served = tmp_path / "mirror" / variant.urls[0].split("://", 1)[1]
    served.parent.mkdir(parents=True)
    ours = write_source_file("ShuffleNetV2", "paddleclas", served)
    sha = hashlib.sha256(served.read_bytes()).hexdigest()
    site = tmp_path / "site.json"
    site.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "models": {"ShuffleNetV2": {"weights": {"paddleclas": {"checksum": f"sha256:{sha}"}}}},
            }
        )
    )
    monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(site))
    monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", (tmp_path / "mirror").as_uri())
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")  # only the file:// mirror can serve it
    work = tmp_path / "work"
    work.mkdir()
    # A file in the current directory that happens to carry the tag's name: paddle.vision layout.
    mine = write_source_file("ShuffleNetV2", "paddle_vision", work / "paddleclas")
    monkeypatch.chdir(work)

    tagged = phc.load_model("ShuffleNetV2", weights="paddleclas")
    assert tagged.load_report.weights == "paddleclas" and tagged.load_report.layout == variant.layout
    assert tagged.load_report.checksum == f"sha256:{sha}"
    local = phc.load_model("ShuffleNetV2", weights=Path("paddleclas"))
    assert local.load_report.weights == "local:paddle_vision"
    for model, want in ((tagged, ours), (local, mine)):
        got = state(model)
        key = "fc.weight"
        np.testing.assert_array_equal(got[key], want[key])
    # A string that is no tag of the model is still a path.
    assert phc.load_model("ShuffleNetV2", weights="./paddleclas").load_report.weights == "local:paddle_vision"


def _serve_only_from(http_server, monkeypatch, tmp_path, name: str, tag: str) -> str:
    """Point variant ``name.tag`` at the 127.0.0.1 server alone (still unpinned); returns its URL."""
    import json

    url = http_server.url(f"/{name}_{tag}.pdparams")
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"schema_version": 1, "models": {name: {"weights": {tag: {"urls": [url]}}}}}))
    monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(site))
    return url


def test_a_captive_portal_page_on_first_use_is_not_pinned(tmp_path, cache_env, http_server, monkeypatch):
    from httpserver import Fault

    from paddlehub_cls.errors import DownloadError

    url = _serve_only_from(http_server, monkeypatch, tmp_path, "MobileNetV1", "paddleclas")
    ours = write_source_file("MobileNetV1", "paddleclas", tmp_path / "real.pdparams")
    path = url.split(http_server.base_url, 1)[1]
    http_server.set_file(path, (tmp_path / "real.pdparams").read_bytes())
    http_server.add_fault(path, Fault(body=b"<html><body>Welcome to the hotel wifi</body></html>"))
    with pytest.raises(DownloadError, match="not a readable pdparams file"):
        phc.load_model("MobileNetV1", weights="paddleclas")
    with pytest.warns(UserWarning, match="trusting it on first use"):
        model = phc.load_model("MobileNetV1", weights="paddleclas")  # no user action in between
    got = state(model)
    for key in ours:
        np.testing.assert_array_equal(got[key], ours[key], err_msg=key)


def test_a_truncated_first_use_download_is_dropped_with_its_pin(
    tmp_path, cache_env, http_server, monkeypatch
):
    url = _serve_only_from(http_server, monkeypatch, tmp_path, "MobileNetV1", "paddleclas")
    ours = write_source_file("MobileNetV1", "paddleclas", tmp_path / "real.pdparams")
    real = (tmp_path / "real.pdparams").read_bytes()
    path = url.split(http_server.base_url, 1)[1]
    # Header and STOP opcode intact, a block of the middle lost: only the full parse notices.
    http_server.set_file(path, real[:1000] + real[-1000:])
    with pytest.warns(UserWarning, match="trusting it on first use"):
        with pytest.raises(WeightsFormatError, match="moved to .*quarantine"):
            phc.load_model("MobileNetV1", weights="paddleclas")
    http_server.set_file(path, real)
    with pytest.warns(UserWarning, match="trusting it on first use"):
        model = phc.load_model("MobileNetV1", weights="paddleclas")
    np.testing.assert_array_equal(state(model)["fc.weight"], ours["fc.weight"])


def test_cache_add_then_offline_load(tmp_path, cache_env, monkeypatch):
    ours = write_source_file("MobileNetV1", "paddleclas", tmp_path / "downloaded.pdparams")
    with pytest.warns(UserWarning, match="trusting it on first use"):
        phc.cache_add("MobileNetV1.paddleclas", tmp_path / "downloaded.pdparams")
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")
    model = phc.load_model("MobileNetV1", weights="paddleclas")
    assert model.load_report.weights == "paddleclas"
    np.testing.assert_array_equal(state(model)["fc.weight"], ours["fc.weight"])


def test_with_no_network_load_model_fails_before_importing_paddle(tmp_path, subprocess_env):
    import json
    import subprocess
    import sys

    site = tmp_path / "site.json"
    url = "http://weights.paddlehub-cls.invalid/ResNet50_pretrained.pdparams"  # RFC 2606: never resolves
    site.write_text(
        json.dumps(
            {"schema_version": 1, "models": {"ResNet50": {"weights": {"paddleclas": {"urls": [url]}}}}}
        )
    )
    code = (
        "import sys, logging\n"
        "import paddlehub_cls\n"
        "from paddlehub_cls.errors import DownloadError\n"
        "try:\n"
        "    paddlehub_cls.load_model('ResNet50', weights='paddleclas')\n"
        "except DownloadError as exc:\n"
        "    print('paddle' in sys.modules)\n"
        "    print(str(exc).splitlines()[1])\n"
    )
    env = dict(subprocess_env, PADDLEHUB_CLS_REGISTRY=str(site))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert lines[0] == "False", out.stderr[-2000:]
    assert lines[1].startswith(f"  {url}: cannot resolve host weights.paddlehub-cls.invalid ("), lines
