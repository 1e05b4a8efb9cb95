"""Every PaddleClas weight variant in registry.json points where PaddleClas 2.6.0 itself loads from.

The expected URL is computed from PaddleClas's own code, not from our registry: the
``MODEL_URLS`` dicts of ``ppcls/arch/backbone/**.py`` (read with ``ast``, nothing imported)
and the rewriting rules of ``ppcls/utils/save_load.py`` (``use_ssld`` turns ``_pretrained``
into ``_ssld_pretrained`` unless the URL already says ``ssld``; ``use_ssld_stage1_pretrained``
turns ``ssld_pretrained`` into ``ssld_stage1_pretrained``; ``use_imagenet22kto1k_pretrained``
turns ``_pretrained`` into ``_22kto1k_pretrained``; ``.pdparams`` is appended when missing).
"""

from __future__ import annotations

import ast
import functools
from typing import Dict

import pytest

from oracles.paddleclas import require_paddleclas
from paddlehub_cls.registry import load_registry

pytestmark = pytest.mark.paddleclas

#: registry names that PaddleClas spells differently
BUILDER_NAMES = {"ShuffleNetV2": "ShuffleNetV2_x1_0"}
#: MODEL_URLS keys without a builder function of that name: the function that loads them
LOADED_BY = {"ResNet18_dbb": "ResNet18"}  # ResNet18(layer_type="DiverseBranchBlock")

#: Files that MODEL_URLS cannot produce, with the document that names them. PaddleClas's
#: ``MODEL_URLS["PPHGNet_base"]`` is "" and ``SE_HRNet_W64_C`` has no entry at all, so its
#: builders cannot load anything; the published files are the SSLD ones.
DOCUMENTED = {
    ("PPHGNet_base", "paddleclas_ssld"): "legendary_models/PPHGNet_base_ssld_pretrained.pdparams",
    ("SE_HRNet_W64_C", "paddleclas_ssld"): "legendary_models/SE_HRNet_W64_C_ssld_pretrained.pdparams",
    # FixRes weights of the 32x48d network: linked by the docs, no constructor or MODEL_URLS entry.
    ("ResNeXt101_32x48d_wsl", "paddleclas_fixres"): "Fix_ResNeXt101_32x48d_wsl_pretrained.pdparams",
}
BASE = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"


def _model_urls() -> Dict[str, str]:
    """Every ``MODEL_URLS`` entry of PaddleClas's backbones: builder name -> URL."""
    root = require_paddleclas() / "ppcls" / "arch" / "backbone"
    urls: Dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "MODEL_URLS" for t in node.targets)
                and isinstance(node.value, ast.Dict)
            ):
                for key, value in zip(node.value.keys, node.value.values):
                    try:
                        k, v = ast.literal_eval(key), ast.literal_eval(value)
                    except ValueError:
                        continue
                    if isinstance(k, str) and isinstance(v, str):
                        urls.setdefault(k, v)
    return urls


@pytest.fixture(scope="module")
def model_urls() -> Dict[str, str]:
    urls = _model_urls()
    assert len(urls) > 300, f"only {len(urls)} MODEL_URLS entries found: is the PaddleClas checkout complete?"
    return urls


def expected_url(base: str, tag: str) -> str:
    """The URL PaddleClas's ``load_dygraph_pretrain`` fetches for ``tag`` of a ``MODEL_URLS`` entry."""
    url = base
    if tag in ("paddleclas_ssld", "paddleclas_ssld_stage1") and "ssld" not in url:
        url = url.replace("_pretrained", "_ssld_pretrained")
    if tag == "paddleclas_ssld_stage1":
        url = url.replace("ssld_pretrained", "ssld_stage1_pretrained")
    if tag == "paddleclas_22kto1k":
        url = url.replace("_pretrained", "_22kto1k_pretrained")
    return url if url.endswith(".pdparams") else url + ".pdparams"


def _paddleclas_variants():
    reg = load_registry()
    return [
        pytest.param(name, tag, id=f"{name}.{tag}")
        for name in reg.names()
        for tag, variant in reg.get(name).weights.items()
        if variant.layout.startswith("paddleclas")
    ]


def test_the_rewriting_rules_follow_paddleclas():
    base = BASE + "legendary_models/ResNet50_vd_pretrained"
    assert expected_url(base, "paddleclas") == base + ".pdparams"
    assert (
        expected_url(base, "paddleclas_ssld")
        == BASE + "legendary_models/ResNet50_vd_ssld_pretrained.pdparams"
    )
    ssld = BASE + "legendary_models/PPHGNetV2_B4_ssld_pretrained.pdparams"
    assert expected_url(ssld, "paddleclas_ssld") == ssld
    assert expected_url(ssld, "paddleclas_ssld_stage1").endswith(
        "/PPHGNetV2_B4_ssld_stage1_pretrained.pdparams"
    )
    swin = BASE + "SwinTransformer_large_patch4_window7_224_pretrained"
    assert expected_url(swin, "paddleclas_22kto1k").endswith("_window7_224_22kto1k_pretrained.pdparams")


@pytest.mark.parametrize("name,tag", _paddleclas_variants())
def test_registry_url_is_the_one_paddleclas_loads(name: str, tag: str, model_urls: Dict[str, str]) -> None:
    variant = load_registry().get(name).weights[tag]
    if (name, tag) in DOCUMENTED:
        assert variant.urls[0] == BASE + DOCUMENTED[name, tag]
        return
    urls = model_urls
    builder = BUILDER_NAMES.get(name, name)
    assert builder in urls, f"PaddleClas 2.6.0 has no MODEL_URLS entry {builder!r} (for {name}.{tag})"
    assert variant.urls[0] == expected_url(urls[builder], tag)
    assert variant.container == "pdparams" and variant.archive_root is None


@functools.lru_cache(maxsize=1)
def _builder_defaults() -> Dict[str, Dict[str, object]]:
    """Per PaddleClas builder: its keyword defaults, plus ``stage1`` when its module always asks
    for the SSLD stage-1 file (``use_ssld_stage1_pretrained=True`` written into a call), and
    ``use_imagenet22kto1k_pretrained`` when the builder's own body passes it as True
    (``CvT_W24_384``: ``model_zoo/cvt.py:722``)."""
    root = require_paddleclas() / "ppcls" / "arch" / "backbone"
    out: Dict[str, Dict[str, object]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        stage1 = any(
            isinstance(n, ast.keyword)
            and n.arg == "use_ssld_stage1_pretrained"
            and isinstance(n.value, ast.Constant)
            and n.value.value is True
            for n in ast.walk(tree)
        )
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name[:1].isupper():
                args = node.args.args[-len(node.args.defaults) :] if node.args.defaults else []
                defaults = {
                    a.arg: ast.literal_eval(d)
                    for a, d in zip(args, node.args.defaults)
                    if isinstance(d, ast.Constant)
                }
                defaults["stage1"] = stage1
                if any(
                    isinstance(n, ast.keyword)
                    and n.arg == "use_imagenet22kto1k_pretrained"
                    and isinstance(n.value, ast.Constant)
                    and n.value.value is True
                    for n in ast.walk(node)
                ):
                    defaults["use_imagenet22kto1k_pretrained"] = True
                out.setdefault(node.name, defaults)
    return out


def _models_with_paddleclas_default():
    reg = load_registry()
    return [
        n
        for n in reg.names()
        if reg.get(n).default_weights and reg.get(n).variant().layout.startswith("paddleclas")
    ]


@pytest.mark.parametrize("name", _models_with_paddleclas_default())
def test_default_weights_are_what_paddleclas_loads_with_pretrained_true(
    name: str, model_urls: Dict[str, str]
) -> None:
    info = load_registry().get(name)
    builder = BUILDER_NAMES.get(name, name)
    defaults = _builder_defaults()[LOADED_BY.get(builder, builder)]
    if defaults.get("use_imagenet22kto1k_pretrained") is True:
        tag = "paddleclas_22kto1k"
    elif defaults.get("use_ssld") is True or "ssld" in model_urls.get(builder, "ssld"):
        tag = "paddleclas_ssld"
    else:
        tag = "paddleclas"
    if defaults["stage1"] and tag == "paddleclas_ssld":
        tag = "paddleclas_ssld_stage1"
    assert info.default_weights == tag
