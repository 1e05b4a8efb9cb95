"""The built wheel ships registry.json, and an installed (non-editable) copy finds every model.

The wheel is built from a copy of the source tree (so no build/ or egg-info lands in the checkout)
without build isolation, so no network is needed: the test environment must have
``setuptools>=68``, ``wheel`` and ``build`` (the ``test`` extra lists ``build``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Every model of the checkout's registry.json: the installed wheel must ship the same file.
MODELS = sorted(json.loads((ROOT / "registry.json").read_text(encoding="utf-8"))["models"])
# Top-level entries of the checkout that are not part of the source distribution.
_SKIP_TOP = {
    ".git",
    "build",
    "dist",
    "tests",
    "bench",
    "third_party",
    ".pytest_cache",
    ".hypothesis",
    ".venv",
    "site",
    ".whl",
    ".gl",
}


def _ignore(directory: str, names: list) -> list:
    top = Path(directory) == ROOT
    return [n for n in names if (top and n in _SKIP_TOP) or n == "__pycache__" or n.endswith(".egg-info")]


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PADDLEHUB_CLS_REGISTRY") and not k.startswith("PIP_")
    }
    env.update(PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _run(cmd: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert (
        proc.returncode == 0
    ), f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("pkg")
    src = work / "src"
    # symlinks=True keeps paddlehub_cls/registry.json -> ../registry.json, as in a checkout.
    shutil.copytree(ROOT, src, symlinks=True, ignore=_ignore)
    _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", work / "dist", src], cwd=work
    )
    (whl,) = (work / "dist").glob("paddlehub_cls-*.whl")
    return whl


def test_wheel_contains_the_registry_and_the_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "paddlehub_cls/registry.json" in names
        info = zf.getinfo("paddlehub_cls/registry.json")
        # A symlink stored as such would unpack as a dangling link (its mode bits say S_IFLNK).
        assert (info.external_attr >> 16) & 0o170000 != 0o120000
        assert zf.read("paddlehub_cls/registry.json") == (ROOT / "registry.json").read_bytes()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "paddlehub-cls = paddlehub_cls.cli:main" in zf.read(entry_points).decode()
        assert not [n for n in names if n.startswith("tests/")]
        # `paddlehub-cls serve` reads its page from the package.
        assert "paddlehub_cls/deploy/page.html" in names and "paddlehub_cls/deploy/serve.py" in names


def test_installed_wheel_lists_every_model(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(
        _run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
        ).stdout.strip()
    )
    # The runtime dependencies (paddle, numpy, ...) come from this interpreter's environment, listed
    # after the venv's own site-packages so the installed paddlehub_cls is the one imported.
    (site / "_outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", wheel],
        cwd=tmp_path,
    )

    code = (
        "import json, sys, paddlehub_cls\n"
        "names = paddlehub_cls.list_models()\n"
        "info = paddlehub_cls.model_info('resnet50')\n"
        "print(json.dumps({'file': paddlehub_cls.__file__, 'names': names, 'default': info.default_weights,\n"
        "  'paddle': sorted(m for m in sys.modules if m == 'paddle' or m.startswith('paddle.'))}))\n"
    )
    out = json.loads(_run([py, "-c", code], cwd=tmp_path).stdout)  # cwd is not the checkout
    assert Path(out["file"]).resolve().is_relative_to(site.resolve()), out["file"]
    assert sorted(out["names"]) == MODELS
    assert out["default"] == "paddle_vision"
    assert out["paddle"] == []
    installed = site / "paddlehub_cls" / "registry.json"
    assert installed.is_file() and not installed.is_symlink()

    script = venv / ("Scripts/paddlehub-cls.exe" if os.name == "nt" else "bin/paddlehub-cls")
    listed = _run([script, "list", "--names"], cwd=tmp_path).stdout.split()
    assert sorted(listed) == MODELS
