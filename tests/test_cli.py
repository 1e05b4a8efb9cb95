"""Tests for the command line interface (list and info).

``main(argv)`` is called in-process for behaviour; a few subprocess runs show that
``python -m paddlehub_cls`` works and that ``list`` / ``info`` never import paddle.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paddlehub_cls.cli import build_parser, main
from paddlehub_cls import registry as registry_mod
from paddlehub_cls.registry import ENV_REGISTRY

ROOT = Path(__file__).resolve().parents[1]
RAW = json.loads((ROOT / "registry.json").read_text(encoding="utf-8"))["models"]


def _natural(name: str) -> list:
    # ResNet18 < ResNet18_vd < ResNet101: digit runs compare as numbers (the documented order).
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name.lower())]


# Every packaged model, in the documented order; the family branches keep adding to registry.json.
ALL_NAMES = sorted(RAW, key=_natural)


@pytest.fixture(autouse=True)
def _no_user_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_REGISTRY, raising=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _private_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {
        "architecture": "resnet50",
        "family": "resnet",
        "num_classes": 10,
        "input_size": [3, 224, 224],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "license": "proprietary",
        "default_weights": None,
        "weights": {},
    }
    path = tmp_path / "site.json"
    path.write_text(json.dumps({"schema_version": 1, "models": {"BareNet": entry}}))
    monkeypatch.setenv(ENV_REGISTRY, str(path))


def test_list_prints_every_model_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "list", "--names")
    assert (rc, err) == (0, "")
    assert out.splitlines() == ALL_NAMES


def test_list_pattern_is_case_insensitive_fnmatch(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "list", "RESNET1*", "--names")
    assert rc == 0 and out.splitlines() == [n for n in ALL_NAMES if n.lower().startswith("resnet1")]
    assert out.splitlines()[:1] == ["ResNet18"] and "ResNet101" in out.splitlines()
    rc, out, _ = _run(capsys, "list", "*LE*net?2", "--names")
    assert rc == 0 and out.splitlines() == ["MobileNetV2", "ShuffleNetV2"]


def test_list_json_summarises_each_model(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "list", "vgg*", "--json")
    rows = json.loads(out)
    assert rc == 0 and [r["name"] for r in rows] == ["VGG11", "VGG13", "VGG16", "VGG19"]
    for row in rows:
        raw = RAW[row["name"]]
        assert row["default_weights"] == raw["default_weights"]
        assert sorted(row["weights"]) == sorted(raw["weights"])
        assert row["num_params"] == raw["num_params"]["value"]
        assert row["top1_by_weights"]["fluid2019"] == raw["weights"]["fluid2019"]["metrics"]["top1"]
    assert [r["default_weights"] for r in rows] == [
        "paddleclas",
        "paddleclas",
        "paddle_vision",
        "paddle_vision",
    ]


def test_list_long_marks_default_and_shows_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "list", "ResNet50", "--long")
    assert rc == 0
    (line,) = out.splitlines()
    assert line.startswith("ResNet50 ") and "25.56M" in line
    assert "fluid2019 76.50%" in line and "paddle_vision*" in line


def test_list_pretrained_filters_models_without_weights(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _private_registry(tmp_path, monkeypatch)
    rc, out, _ = _run(capsys, "list", "--names")
    assert rc == 0 and "BareNet" in out.splitlines()
    rc, out, _ = _run(capsys, "list", "--pretrained", "--names")
    assert rc == 0 and out.splitlines() == ALL_NAMES
    rc, out, err = _run(capsys, "list", "bare*", "--pretrained", "--names")
    assert rc == 1 and out == ""
    assert (
        err == "paddlehub-cls: error: no pretrained model matches 'bare*'; "
        f"run `paddlehub-cls list` to see all {len(ALL_NAMES) + 1} models\n"
    )


def test_list_without_match_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "list", "lenet")
    assert (rc, out) == (1, "")
    assert err.count("\n") == 1 and "no model matches 'lenet'" in err
    rc, out, _ = _run(capsys, "list", "lenet", "--json")
    assert rc == 1 and json.loads(out) == []


def _top1(name: str, tag: str) -> float | None:
    return (RAW[name]["weights"].get(tag, {}).get("metrics") or {}).get("top1")


def test_list_prints_a_table_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "list", "goog*")
    header, row = out.splitlines()
    assert rc == 0 and header.split() == ["name", "family", "default", "top-1", "params", "input"]
    raw = RAW["GoogLeNet"]
    want = [
        "GoogLeNet",
        raw["family"],
        raw["default_weights"],
        f"{_top1('GoogLeNet', raw['default_weights']):.2f}%",
        f"{raw['num_params']['value'] / 1e6:.2f}M",
        str(raw["preprocess"]["crop"]),
    ]
    assert row.split() == want


def test_list_filters_by_family_and_tag(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "list", "--family", "RESNET", "--names")
    assert rc == 0 and out.splitlines() == [n for n in ALL_NAMES if RAW[n]["family"] == "resnet"]
    rc, out, _ = _run(capsys, "list", "--tag", "paddle_vision", "--names")
    assert rc == 0 and out.splitlines() == [n for n in ALL_NAMES if "paddle_vision" in RAW[n]["weights"]]
    assert "SE_ResNeXt50_32x4d" not in out.splitlines()  # it has no paddle_vision file
    rc, out, _ = _run(capsys, "list", "vgg*", "--tag", "paddle_vision", "--names")
    assert out.splitlines() == ["VGG16", "VGG19"]


def test_list_unknown_family_or_tag_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "list", "--family", "resnett")
    assert (rc, out) == (1, "")
    assert err.startswith("paddlehub-cls: error: no model has family 'resnett'. Did you mean resnet")
    assert "Known: " + ", ".join(sorted({m["family"] for m in RAW.values()})) in err
    rc, _, err = _run(capsys, "list", "--tag", "ssld")
    assert rc == 1 and "no model has weight tag 'ssld'" in err and "paddleclas" in err


def test_list_sorts_by_top1_and_params(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "list", "--tag", "paddleclas", "--sort", "top1", "--names")
    names = out.splitlines()
    assert rc == 0 and sorted(names) == sorted(n for n in ALL_NAMES if "paddleclas" in RAW[n]["weights"])
    known = [n for n in ALL_NAMES if n in names and _top1(n, "paddleclas") is not None]
    # Highest first (ties in name order), then the files without a published figure.
    assert names[: len(known)] == sorted(known, key=lambda n: -_top1(n, "paddleclas"))
    assert all(_top1(n, "paddleclas") is None for n in names[len(known) :])
    rc, out, _ = _run(capsys, "list", "--sort", "params", "--names")
    params = [RAW[n]["num_params"]["value"] for n in out.splitlines()]
    assert params == sorted(params) and len(params) == len(ALL_NAMES)
    # Without --tag, top-1 is the default weights'; paddle_vision files without a figure come last.
    rc, out, _ = _run(capsys, "list", "--sort", "top1", "--names")
    names = out.splitlines()
    with_figure = [n for n in ALL_NAMES if _top1(n, RAW[n]["default_weights"]) is not None]
    assert names[: len(with_figure)] == sorted(
        with_figure, key=lambda n: -_top1(n, RAW[n]["default_weights"])
    )
    assert main(["list", "--sort", "flops"]) == 2
    assert "invalid choice: 'flops'" in capsys.readouterr().err


def test_list_models_api_filters() -> None:
    from paddlehub_cls import list_models

    assert list_models("vgg*", tag="paddle_vision") == ["VGG16", "VGG19"]
    # SE_ResNeXt152_64x4d has no published top-1: it sorts last.
    assert list_models(family="se_resnext", sort="top1") == [
        "SE_ResNeXt101_32x4d",
        "SE_ResNeXt50_32x4d",
        "SE_ResNeXt152_64x4d",
    ]
    with pytest.raises(ValueError, match="sort must be one of top1, params"):
        list_models(sort="flops")


def test_list_long_falls_back_to_the_figure_published_for_the_same_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A site registry re-lists ResNet50's PaddleClas file without metrics: its top-1 is still known.
    entry = json.loads(json.dumps(RAW["ResNet50"]))
    mirror = dict(entry["weights"]["paddleclas"], metrics=None)
    entry.update(default_weights="mirror", weights={"mirror": mirror})
    path = tmp_path / "site.json"
    path.write_text(json.dumps({"schema_version": 1, "models": {"MirrorNet": entry}}))
    monkeypatch.setenv(ENV_REGISTRY, str(path))
    rc, out, _ = _run(capsys, "list", "mirrornet", "-l")
    assert rc == 0 and "mirror* 76.50% (=ResNet50.paddleclas)" in out
    rc, out, _ = _run(capsys, "list", "mirrornet", "--json")
    (row,) = json.loads(out)
    assert row["top1"] == 76.5 and row["top1_from"] == {"mirror": "ResNet50.paddleclas"}


def test_info_shows_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "info", "mobilenetv2")
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "MobileNetV2"
    assert "  architecture  mobilenet_v2 (family mobilenet_v2)" in lines
    assert "  weights       default paddle_vision" in lines
    assert "    paddle_vision (default): pdparams, layout paddle_vision" in lines
    assert "      checksum  md5:0340af0a901346c8d46f4529882fb63d" in lines
    assert (
        "      url       https://paddle-imagenet-models-name.bj.bcebos.com/MobileNetV2_pretrained.tar"
        in lines
    )
    assert '      kwargs    {"expand_first_block": false}' in lines
    assert any(line.startswith("      checksum  none: ") for line in lines)
    assert any(line.startswith("      accuracy  top-1 72.15%, top-5 90.65%") for line in lines)


def test_info_shows_each_variants_eval_recipe_and_a_top1_without_top5(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, out, _ = _run(capsys, "info", "ResNet50")
    evals = [line for line in out.splitlines() if line.startswith("      eval      ")]
    assert rc == 0 and len(evals) == len(RAW["ResNet50"]["weights"])  # one per variant
    assert any("short side 256 -> crop 224, pil lanczos, RGB, x1/255" in e for e in evals)  # fluid2019
    assert any("cv2 bilinear" in e and "ResNet/ResNet50.yaml" in e for e in evals)  # PaddleClas config
    # Many PaddleClas tables publish only top-1: such a variant is shown, not a KeyError.
    name, tag = next(
        (n, t)
        for n, e in RAW.items()
        for t, v in e["weights"].items()
        if v.get("metrics") and "top5" not in v["metrics"]
    )
    rc, out, err = _run(capsys, "info", f"{name}.{tag}")
    top1 = RAW[name]["weights"][tag]["metrics"]["top1"]
    assert (rc, err) == (0, "") and f"      accuracy  top-1 {top1}%; source: " in out


def test_info_name_dot_tag_shows_one_variant(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "info", "VGG16.paddleclas")
    assert rc == 0
    assert "    paddleclas: pdparams, layout paddleclas_legendary" in out.splitlines()
    assert "fluid2019" not in out and "paddle_vision (default)" not in out
    rc, out, _ = _run(capsys, "info", "VGG16.paddleclas", "--json")
    assert list(json.loads(out)["weights"]) == ["paddleclas"]


def test_info_json_is_the_registry_entry(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "info", "resnet50", "--json")
    data = json.loads(out)
    raw = RAW["ResNet50"]
    assert rc == 0 and data["name"] == "ResNet50"
    assert set(data["weights"]) == {"fluid2019", "paddleclas", "paddle_vision"}
    assert data["weights"]["paddle_vision"]["checksum"] == "md5:ca6f485ee1ab0492d38f323885b0ad80"
    assert data["weights"]["fluid2019"]["urls"] == [
        "http://paddle-imagenet-models-name.bj.bcebos.com/ResNet50_pretrained.tar"
    ]
    for field in (
        "architecture",
        "family",
        "input_size",
        "mean",
        "std",
        "interpolation",
        "crop_pct",
        "num_params",
        "flops",
        "paper",
        "license",
        "default_weights",
    ):
        assert data[field] == raw[field], field


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["info", "resnet5"], "paddlehub-cls: error: unknown model 'resnet5'. Did you mean ResNet50"),
        (["info", "ResNet50.fluid"], "paddlehub-cls: error: model 'ResNet50' has no weights 'fluid'"),
        (["info", "Alex.Net"], "paddlehub-cls: error: unknown model 'Alex'"),
    ],
)
def test_info_errors_are_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str], argv: list, expected: str
) -> None:
    rc, out, err = _run(capsys, *argv)
    assert (rc, out) == (1, "")
    assert err.startswith(expected) and err.count("\n") == 1


def test_broken_registry_is_reported_as_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"schema_version": 1, "models": {"ResNet50": {"weights": {"fluid2019": {"urls": ["ftp://x/y"]}}}}}'
    )
    monkeypatch.setenv(ENV_REGISTRY, str(bad))
    rc, out, err = _run(capsys, "list")
    assert (rc, out) == (1, "")
    assert err.count("\n") == 1 and str(bad) in err and "URL scheme 'ftp' is not allowed" in err


@pytest.mark.parametrize("argv", [[], ["info"], ["list", "--bogus"], ["frobnicate"], ["list", "a", "b"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list) -> None:
    rc, out, err = _run(capsys, *argv)
    assert (rc, out) == (2, "")
    assert err.startswith("usage: paddlehub-cls")


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "--help")
    assert rc == 0 and "list" in out and "info" in out
    rc, out, _ = _run(capsys, "--version")
    assert rc == 0 and out.startswith("paddlehub-cls ")


def test_build_parser_registers_list_and_info() -> None:
    args = build_parser().parse_args(["list", "vgg*", "--pretrained", "--json"])
    assert (args.command, args.pattern, args.pretrained, args.json) == ("list", "vgg*", True, True)
    args = build_parser().parse_args(["info", "ResNet50"])
    assert (args.command, args.name, args.json) == ("info", "ResNet50", False)


def _run_module(*argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV_REGISTRY}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_python_dash_m_runs_the_cli() -> None:
    proc = _run_module("-m", "paddlehub_cls", "list", "--names")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ALL_NAMES
    proc = _run_module("-m", "paddlehub_cls", "info", "nope")
    assert proc.returncode == 1 and proc.stderr.startswith("paddlehub-cls: error: unknown model 'nope'")


def _imported_modules(importtime_stderr: str) -> list[str]:
    # Lines look like "import time:   1234 |   5678 |   package.module" (indented by depth).
    return [
        line.rsplit("|", 1)[1].strip()
        for line in importtime_stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["list", "--json"],
        ["list", "-l", "--sort", "top1", "--tag", "paddleclas"],
        ["info", "ResNet50", "--json"],
        ["info", "VGG16"],
    ],
)
def test_list_and_info_do_not_import_paddle(argv: list) -> None:
    proc = _run_module("-X", "importtime", "-m", "paddlehub_cls", *argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = _imported_modules(proc.stderr)
    assert "paddlehub_cls.registry" in modules and "paddlehub_cls.cli" in modules  # the parse works
    paddle = [m for m in modules if m == "paddle" or m.startswith("paddle.")]
    assert paddle == [], f"{argv} imported {paddle[:5]}"


def test_commands_that_import_paddle_filter_its_ccache_warning(tmp_path: Path) -> None:
    # paddle warns "No ccache found" on import when no ccache is on PATH; leaving out the
    # folders that hold one makes that so on any machine.
    env = {k: v for k, v in os.environ.items() if k != ENV_REGISTRY}
    path = [d for d in env.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "ccache").exists()]
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), PATH=os.pathsep.join(path))
    argv = ["finetune", "ShuffleNetV2", "--data", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]
    proc = subprocess.run(
        [sys.executable, "-m", "paddlehub_cls", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    # The one line the user needs, and nothing else: paddle was imported before the error.
    assert proc.stderr.splitlines() == [
        f"paddlehub-cls: error: data folder {str(tmp_path / 'nope')!r} does not exist or is not a folder"
    ]


def test_predict_without_network_prints_the_ways_out_one_per_line_before_importing_paddle(
    tmp_path: Path,
) -> None:
    # RFC 2606: .invalid never resolves, so this fails at name resolution with no network at all.
    url = "http://weights.paddlehub-cls.invalid/ResNet50_pretrained.pdparams"
    entry = json.loads(json.dumps(RAW["ResNet50"]))
    entry["weights"] = {"site": dict(entry["weights"]["paddleclas"], urls=[url])}
    entry["default_weights"] = "site"
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"schema_version": 1, "models": {"SiteNet": entry}}), encoding="utf-8")
    code = (
        "import sys; from paddlehub_cls.cli import main; "
        f"rc = main(['predict', 'SiteNet', {str(ROOT / 'paddlehub_cls/data/chelsea.png')!r}]); "
        "print('paddle imported' if 'paddle' in sys.modules else 'paddle not imported'); sys.exit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLEHUB_CLS_")}
    env.update(
        OMP_NUM_THREADS="1", PADDLEHUB_CLS_REGISTRY=str(site), PADDLEHUB_CLS_HOME=str(tmp_path / "cache")
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == "paddle not imported\n", proc.stderr
    first, *rest = proc.stderr.splitlines()
    assert first.startswith("paddlehub-cls: error: could not download SiteNet weights 'site'")
    assert rest and all(line.startswith("  ") for line in rest)
    advice = "\n".join(rest)
    for way in (
        "--weights PATH",
        "PADDLEHUB_CLS_MIRROR=BASE",
        "paddlehub-cls cache add SiteNet.site FILE",
        "PADDLEHUB_CLS_OFFLINE=1",
        "BASE/weights.paddlehub-cls.invalid/ResNet50_pretrained.pdparams",
    ):
        assert way in advice, way
    assert "cache import" not in proc.stderr


@pytest.mark.parametrize("command", ["predict", "export", "serve"])
def test_weights_help_lists_the_registry_tags_read_when_help_is_printed(
    command: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tags = {t for entry in RAW.values() for t in entry["weights"]}
    entry = json.loads(json.dumps(RAW["ResNet50"]))
    entry["weights"] = {"site_mirror": entry["weights"]["paddleclas"]}
    entry["default_weights"] = "site_mirror"
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"schema_version": 1, "models": {"SiteNet": entry}}), encoding="utf-8")
    monkeypatch.setenv(ENV_REGISTRY, str(site))
    rc = main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert rc == 0 and "site_mirror" in text and all(t in text for t in tags), text
    # A broken site registry does not break the parser: the help says why the list is missing.
    site.write_text("{", encoding="utf-8")
    rc = main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert rc == 0 and "registry could not be read" in text and "site.json" in text
    assert main(["cache", "ls"]) == 0


def test_list_with_a_tag_shows_that_variants_top1(capsys: pytest.CaptureFixture[str]) -> None:
    # PP-HGNetV2 defaults to its SSLD stage-1 files, which publish no top-1; --tag shows the stage-2 figures.
    rc, out, _ = _run(capsys, "list", "PPHGNetV2_B*", "--tag", "PADDLECLAS_SSLD", "--sort", "top1")
    header, *rows = out.splitlines()
    assert rc == 0 and header.split()[:4] == ["name", "family", "weights", "top-1"]
    names = [r.split()[0] for r in rows]
    want = {n: RAW[n]["weights"]["paddleclas_ssld"]["metrics"]["top1"] for n in names}
    assert [r.split()[2:4] for r in rows] == [["paddleclas_ssld", f"{want[n]:.2f}%"] for n in names]
    assert list(want.values()) == sorted(want.values(), reverse=True) and len(names) == 7
