"""The documentation site: generated model table and plot current, nav and links valid, strict build.

`mkdocs build --strict` needs mkdocs (the `docs` extra). Without it this test skips on a
developer machine and fails under CI (CI=true), where it must run.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from paddlehub_cls.cli import build_parser, subparsers_names

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_models_table", DOCS / "gen_models_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()


def test_model_table_and_plot_are_current():
    problems = GEN.stale(GEN.load_models())
    assert problems == [], "; ".join(problems) + ": run python docs/gen_models_table.py"


def test_generator_notices_a_registry_change():
    models = GEN.load_models()
    changed = copy.deepcopy(models)
    changed["ResNet50"]["weights"]["paddleclas"]["metrics"]["top1"] = 12.34  # the figure the plot shows
    assert "12.34 / 93.00" in GEN.render_table(changed)
    assert GEN.render_table(changed) != GEN.render_table(models)
    assert GEN.plot_digest(GEN.plot_points(changed)) != GEN.plot_digest(GEN.plot_points(models))
    page = (DOCS / "model_zoo.md").read_text()
    assert GEN.update_page(page, GEN.render_table(models)) == page
    for name in models:
        assert f"| `{name}` |" in page


def test_table_groups_every_model_under_its_family():
    models = GEN.load_models()
    table = GEN.render_table(models)
    sections = table.split("### ")[1:]
    assert [sec.split("\n", 1)[0] for sec in sections] == sorted({m["family"] for m in models.values()})
    for sec in sections:
        family = sec.split("\n", 1)[0]
        rows = [line.split(" | ")[0][3:-1] for line in sec.splitlines() if line.startswith("| `")]
        assert sorted(rows) == sorted(n for n, m in models.items() if m["family"] == family)


def test_table_names_the_flops_convention():
    models = GEN.load_models()
    entry = copy.deepcopy(models["ResNet50"])
    entry["flops"] = {
        "value": 4_100_000_000,
        "unit": "paddle.flops count (about multiply-adds)",
        "source": "x",
    }
    assert "| 4.10 GMACs |" in GEN.render_table({"ResNet50": entry})
    assert "| 8.19 GFLOPs |" in GEN.render_table({"ResNet50": models["ResNet50"]})  # the 2 x convention


def test_plot_takes_every_model_and_scales_to_a_large_zoo(tmp_path):
    models = GEN.load_models()
    assert sorted(p[0] for p in GEN.plot_points(models)) == sorted(models)
    # 170 models in 24 families, a tenth without a published top-1: drawn, not dropped.
    big = {}
    for i in range(170):
        entry = copy.deepcopy(models["ResNet50"])
        entry["family"] = f"family{i % 24}"
        entry["num_params"]["value"] = 1_000_000 + i * 2_000_000
        entry["weights"] = {"paddleclas": copy.deepcopy(models["ResNet50"]["weights"]["paddleclas"])}
        entry["default_weights"] = "paddleclas"
        entry["weights"]["paddleclas"]["metrics"] = (
            None if i % 10 == 0 else {"top1": 60 + i / 10, "source": "x"}
        )
        big[f"Net{i}"] = entry
    points = GEN.plot_points(big)
    assert len(points) == 170 and sum(p[3] is None for p in points) == 17
    out = tmp_path / "plot.png"
    GEN.write_plot(points, out)
    from PIL import Image

    with Image.open(out) as img:
        assert img.text[GEN.DIGEST_KEY] == GEN.plot_digest(points)


def _nav_pages():
    text = (ROOT / "mkdocs.yml").read_text()
    return re.findall(r":\s*([\w/.-]+\.md)\s*$", text, flags=re.M)


def test_nav_pages_exist():
    pages = _nav_pages()
    for required in (
        "index.md",
        "loading.md",
        "finetuning.md",
        "features.md",
        "model_zoo.md",
        "cache.md",
        "formats.md",
        "cli.md",
        "errors.md",
        "performance.md",
        "security.md",
    ):
        assert required in pages
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert missing == []


def test_relative_links_and_images_resolve():
    bad = []
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                bad.append(f"{page.relative_to(ROOT)} -> {target}")
    assert bad == []


def test_cli_reference_lists_every_command_and_option():
    text = (DOCS / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = []
    for name in subparsers_names(parser):
        if f"## {name}\n" not in text:
            missing.append(f"section ## {name}")
        commands = [(name, sub.choices[name])]
        for action in sub.choices[name]._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                commands = [(f"{name} {k}", p) for k, p in action.choices.items()]
        for label, cmd in commands:
            if f"paddlehub-cls {label}" not in text:
                missing.append(f"usage of `paddlehub-cls {label}`")
            for action in cmd._actions:
                for opt in action.option_strings:
                    if opt.startswith("--") and opt != "--help" and opt not in text:
                        missing.append(f"{label} {opt}")
    assert missing == []


def test_features_table_matches_the_networks():
    from paddlehub_cls import load_model

    rows = re.findall(
        r"^\| ([^|]+) \| [^|]+ \| ([\d, ]+) \| ([\d, ]+) \|$", (DOCS / "features.md").read_text(), flags=re.M
    )
    assert len(rows) >= 7
    for label, channels, strides in rows:
        name = (re.findall(r"`(\w+)`", label) or [label.split()[0]])[0]
        info = load_model(name, pretrained=False).feature_info
        assert [int(c) for c in channels.split(",")] == [d["num_chs"] for d in info], name
        assert [int(s) for s in strides.split(",")] == [d["reduction"] for d in info], name


def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mkdocs is not installed, but CI must build the docs: pip install '.[docs]'")
        pytest.skip("mkdocs is not installed (pip install '.[docs]'); CI runs this check")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (tmp_path / "site" / "model_zoo" / "index.html").read_text()
    assert "SE_ResNeXt101_32x4d" in table and "accuracy_vs_params.png" in table
    assert (tmp_path / "site" / "img" / "accuracy_vs_params.png").is_file()
    assert not (tmp_path / "site" / "gen_models_table.py").exists()


def test_errors_page_lists_every_error_with_its_builtin():
    from paddlehub_cls import errors

    text = (DOCS / "errors.md").read_text()
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls is errors.PaddleHubClsError:
            continue
        entry = re.search(rf"\*\*`{name}`\*\* \(`(\w+)`", text)
        assert entry, f"docs/errors.md has no entry for {name}"
        assert any(
            base.__name__ == entry.group(1) for base in cls.__mro__
        ), f"{name}: docs say {entry.group(1)}"
