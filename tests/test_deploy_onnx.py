"""export(format="onnx") and Predictor(backend="onnxruntime"): ONNX Runtime equals dygraph for every family.

One representative per registry family (its smallest model by parameter count) is chosen when the
tests are collected, so families added to registry.json are covered without editing this file.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from oracles import oracle_input
from _modelcheck import scale_parameters, unit_bn_statistics
from test_export import assert_logits_close, dygraph, random_net

from paddlehub_cls import Predictor, export, load_model
from paddlehub_cls.cli import main as cli_main
from paddlehub_cls.errors import ExportedModelError, MissingExtraError, PaddleHubClsError
from paddlehub_cls.registry import load_registry

#: the side tried first for the parity check (a 64x64 forward is ~12x cheaper than 224x224).
SMALL_SIDE = 64
#: the side tried first where 64 is below a family's smallest input (unpadded stems)
SMALL_SIDES = {
    "inception_v3": 96,
    "inception_v4": 96,
}


def family_representatives() -> list:
    """The smallest model (by num_params, then name) of each registry family."""
    reg = load_registry()
    best: dict = {}
    for name in reg.names():
        info = reg.get(name)
        size = info.num_params["value"] if info.num_params else float("inf")
        if info.family not in best or (size, name) < best[info.family][:2]:
            best[info.family] = (size, name, info.family)
    return [
        pytest.param(name, id=f"{family}-{name}")
        for _, name, family in sorted(best.values(), key=lambda t: t[2])
    ]


def test_every_family_has_a_representative():
    reg = load_registry()
    families = {reg.get(n).family for n in reg.names()}
    picked = {p.values[0] for p in family_representatives()}
    assert {reg.get(n).family for n in picked} == families and len(picked) == len(families)


#: families checked at their registry size although a 64x64 dygraph forward works: VGG's adaptive
#: pooling then upsamples 2x2 to 7x7, which paddle2onnx turns into an AveragePool of stride 0 (export
#: raises ExportError); Swin's padded windows run in dygraph but not in the exported programs.
FULL_SIZE_FAMILIES = ("vgg", "swin_transformer")
#: family -> (parameter name suffixes, factor) shrunk after randomising, where random weights make the
#: logits so large that float-order noise passes the tolerance: StarNet's star products square each
#: block's scale; TinyNet_E's and EfficientNetV2's residual sums grow ~2x per block (logits ~1e4-1e12)
DAMPED = {
    "starnet": ((".g.bn.weight", ".g.bn.bias"), 0.05),
    "tinynet": ((".project.bn.weight", ".project.bn.bias"), 0.3),
    "efficientnet_v2": ((".project.bn.weight", ".project.bn.bias"), 0.1),
}
# alexnet: its adaptive pool to fc6's 6x6 upsamples a small map, as VGG's does.
FULL_SIZE_FAMILIES += ("alexnet",)
#: families compared with unit BN running statistics: calibrated on 4 random images, LeViT (nothing
#: normalises its residual stream) reaches logits ~1e6 at 64 and amplifies kernel rounding to 7% of
#: them (1.25e5 of 1.7e6; 197 of 1506 at 224); with unit statistics ONNX Runtime is within 8e-6 of 4.2.
UNIT_BN_FAMILIES = ("levit",)


def _cheapest_side(name: str) -> int:
    """SMALL_SIDE when the architecture accepts it, else its registry input size (position
    embeddings and fixed windows need their own size)."""
    import paddle

    info = load_registry().get(name)
    small = SMALL_SIDES.get(info.family, SMALL_SIDE)
    if info.family not in FULL_SIZE_FAMILIES:
        model = load_model(name, pretrained=False)
        model.eval()
        try:
            with paddle.no_grad():
                out = model(paddle.to_tensor(oracle_input(1, small, small)))
            if tuple(out.shape) == (1, model.num_classes):
                return small
        except (ValueError, RuntimeError, AssertionError):  # how paddle reports a shape mismatch
            pass
    return int(info.input_size[1])


@pytest.mark.parametrize("name", family_representatives())
def test_onnxruntime_equals_dygraph_for_each_family(name, tmp_path):
    side = _cheapest_side(name)
    model = random_net(name, seed=1, size=side)
    family = load_registry().get(name).family
    if family in DAMPED:
        assert scale_parameters(model, *DAMPED[family]) > 0
    if load_registry().get(name).family in UNIT_BN_FAMILIES:
        unit_bn_statistics(model)
    out = export(model, tmp_path / "onnx", input_size=side, format="onnx")
    predictor = Predictor(out, threads=1, use_gpu=False)
    assert predictor.backend == "onnxruntime" and predictor.input_size == (3, side, side)
    for batch in (1, 8):
        x = oracle_input(batch, side, side, seed=batch)
        assert_logits_close(predictor.run(x), dygraph(model, x))


@pytest.fixture(scope="module")
def mobilenet_exports(tmp_path_factory):
    model = random_net("MobileNetV1", seed=4, size=96)
    root = tmp_path_factory.mktemp("both")
    return (
        model,
        export(model, root / "onnx", input_size=96, format="onnx"),
        export(model, root / "paddle", input_size=96),
    )


def test_onnx_export_holds_the_same_metadata_as_the_paddle_export(mobilenet_exports):
    model, onnx_dir, paddle_dir = mobilenet_exports
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["inference.onnx", "paddlehub_cls.json"]
    onnx_cfg = json.loads((onnx_dir / "paddlehub_cls.json").read_text())
    paddle_cfg = json.loads((paddle_dir / "paddlehub_cls.json").read_text())
    assert onnx_cfg["format"] == "onnx" and onnx_cfg["files"] == ["inference.onnx"]
    assert onnx_cfg["onnx"]["converter"].startswith("paddle2onnx ")
    for key in ("model", "pretrained_cfg", "labels", "input", "output"):
        assert onnx_cfg[key] == paddle_cfg[key], key
    assert onnx_cfg["input"]["shape"] == [-1, 3, 96, 96]

    import onnx

    graph = onnx.load(str(onnx_dir / "inference.onnx")).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value"), "the batch dimension must be dynamic"
    assert [d.dim_value for d in dims[1:]] == [3, 96, 96]


def test_backends_are_chosen_by_the_files_and_agree(mobilenet_exports):
    model, onnx_dir, paddle_dir = mobilenet_exports
    ort, pd = Predictor(onnx_dir, threads=1, use_gpu=False), Predictor(paddle_dir, threads=1, use_gpu=False)
    assert (ort.backend, pd.backend) == ("onnxruntime", "paddle")
    assert Predictor(paddle_dir, backend="paddle", use_gpu=False).backend == "paddle"
    assert "backend='onnxruntime'" in repr(ort)
    cat = resources.files("paddlehub_cls").joinpath("data/chelsea.png")
    with resources.as_file(cat) as path:
        a, b = ort.predict([path, np.full((50, 80, 3), 200, np.uint8)], topk=5), pd.predict(
            [path, np.full((50, 80, 3), 200, np.uint8)], topk=5
        )
    for x, y in zip(a, b):
        assert [p["label"] for p in x] == [p["label"] for p in y]
        np.testing.assert_allclose([p["probability"] for p in x], [p["probability"] for p in y], atol=1e-5)
    x = oracle_input(3, 96, 96, seed=9)
    assert_logits_close(ort.run(x), pd.run(x))
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, 3, 96, 96\)"):
        ort.run(oracle_input(1))


def test_backend_errors_name_the_problem(mobilenet_exports, tmp_path):
    _, onnx_dir, paddle_dir = mobilenet_exports
    with pytest.raises(
        ExportedModelError, match=r"backend='onnxruntime' needs inference.onnx .*--format onnx"
    ):
        Predictor(paddle_dir, backend="onnxruntime")
    with pytest.raises(ExportedModelError, match="lacks inference.json/.pdmodel or inference.pdiparams"):
        Predictor(onnx_dir, backend="paddle")
    with pytest.raises(ValueError, match=r"backend must be None .* got 'tensorrt'"):
        Predictor(onnx_dir, backend="tensorrt")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "paddlehub_cls.json").write_text((onnx_dir / "paddlehub_cls.json").read_text())
    (broken / "inference.onnx").write_bytes(b"not a model")
    with pytest.raises(ExportedModelError, match="cannot load .*inference.onnx.*export the model again"):
        Predictor(broken)


def test_missing_extras_name_the_extra(monkeypatch, tmp_path):
    net = load_model("MobileNetV1", pretrained=False)
    monkeypatch.setitem(sys.modules, "paddle2onnx", None)  # import now raises ImportError
    with pytest.raises(
        MissingExtraError, match=r"ONNX export needs .*'paddle2onnx'.*paddlehub_cls\[onnx\]"
    ) as info:
        export(net, tmp_path / "x", input_size=32, format="onnx")
    assert info.value.extra == "onnx"
    assert isinstance(info.value, PaddleHubClsError) and isinstance(info.value, ImportError)
    out = tmp_path / "y"
    out.mkdir()
    (out / "paddlehub_cls.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "pretrained_cfg": {},
                "input": {"shape": [-1, 3, 32, 32]},
                "output": {"num_classes": 1000},
            }
        )
    )
    (out / "inference.onnx").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        MissingExtraError, match=r"backend='onnxruntime'.*'onnxruntime'.*paddlehub_cls\[onnx\]"
    ):
        Predictor(out)
    with pytest.raises(ValueError, match=r"format must be one of \['paddle', 'onnx'\], got 'tflite'"):
        export(net, tmp_path / "z", format="tflite")


def test_cli_export_format_onnx_replaces_a_paddle_export(tmp_path, cache_env, capsys):
    out = tmp_path / "cli"
    assert cli_main(["export", "ShuffleNetV2", str(out), "--random", "--input-size", "64"]) == 0
    assert (out / "inference.pdiparams").is_file()
    capsys.readouterr()
    code = cli_main(
        ["export", "ShuffleNetV2", str(out), "--random", "--input-size", "64", "--format", "onnx"]
    )
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.split() == [str(out / "inference.onnx"), str(out / "paddlehub_cls.json")]
    assert sorted(p.name for p in Path(out).iterdir()) == ["inference.onnx", "paddlehub_cls.json"]
    assert Predictor(out, threads=1).run(oracle_input(2, 64, 64)).shape == (2, 1000)
