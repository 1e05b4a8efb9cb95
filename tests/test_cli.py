"""Tests for the command line interface (list and info).

``main(argv)`` is called in-process for behaviour; a few subprocess runs show that
``python -m paddlehub_cls`` works and that ``list`` / ``info`` never import paddle.
"""

from __future__ import annotations

import json
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
# Every packaged model, in the registry's natural order (the seed's 16 and the zoo families).
ALL_NAMES = sorted(RAW, key=registry_mod._natural_key)


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
    rc, out, err = _run(capsys, "list")
    assert (rc, err) == (0, "")
    assert out.splitlines() == ALL_NAMES


def test_list_pattern_is_case_insensitive_fnmatch(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "list", "RESNET1*")
    assert rc == 0 and out.splitlines() == ["ResNet18", "ResNet101", "ResNet152"]
    rc, out, _ = _run(capsys, "list", "*LE*net?2*")
    assert rc == 0 and out.splitlines() == ["MobileNetV2", "ShuffleNetV2", "ShuffleNetV2_swish"]


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
    rc, out, _ = _run(capsys, "list")
    assert rc == 0 and "BareNet" in out.splitlines()
    rc, out, _ = _run(capsys, "list", "--pretrained")
    assert rc == 0 and out.splitlines() == ALL_NAMES
    rc, out, err = _run(capsys, "list", "bare*", "--pretrained")
    assert rc == 1 and out == ""
    assert (
        err == "paddlehub-cls: error: no pretrained model matches 'bare*'; "
        f"run `paddlehub-cls list` to see all {len(RAW) + 1} models\n"
    )


def test_list_without_match_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "list", "alexnet")
    assert (rc, out) == (1, "")
    assert err.count("\n") == 1 and "no model matches 'alexnet'" in err
    rc, out, _ = _run(capsys, "list", "alexnet", "--json")
    assert rc == 1 and json.loads(out) == []


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
    proc = _run_module("-m", "paddlehub_cls", "list")
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
    "argv", [["list"], ["list", "--json"], ["info", "ResNet50", "--json"], ["info", "VGG16"]]
)
def test_list_and_info_do_not_import_paddle(argv: list) -> None:
    proc = _run_module("-X", "importtime", "-m", "paddlehub_cls", *argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = _imported_modules(proc.stderr)
    assert "paddlehub_cls.registry" in modules and "paddlehub_cls.cli" in modules  # the parse works
    paddle = [m for m in modules if m == "paddle" or m.startswith("paddle.")]
    assert paddle == [], f"{argv} imported {paddle[:5]}"
