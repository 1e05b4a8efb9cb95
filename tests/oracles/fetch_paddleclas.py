"""Download PaddleClas 2.6.0 (wheel only, no dependencies) and unpack it for the oracles.

Usage::

    python tests/oracles/fetch_paddleclas.py [--dest third_party/paddleclas] [--force]

Runs ``pip download paddleclas==2.6.0 --no-deps`` into a temporary folder and
unpacks the wheel into the destination (default ``$PADDLEHUB_CLS_PADDLECLAS_DIR``
or ``third_party/paddleclas`` under the repo root). The wheel is never
installed: the oracle subprocess puts ``<dest>/paddleclas`` on PYTHONPATH and
imports ``ppcls``. Its runtime imports come from ``tests/requirements-oracles.txt``.

Idempotent: a destination holding the marker file for this version is left as
is (``--force`` re-fetches). The unpack goes to a sibling temp folder renamed
into place, so an interrupted run never leaves a half-written destination.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PADDLECLAS_VERSION = "2.6.0"
MARKER_NAME = ".paddlehub_cls_fetched"
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_dest() -> Path:
    env = os.environ.get("PADDLEHUB_CLS_PADDLECLAS_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / "third_party" / "paddleclas"


def is_fetched(dest: Path) -> bool:
    marker = dest / MARKER_NAME
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text())
    except ValueError:
        return False
    return meta.get("version") == PADDLECLAS_VERSION and (dest / "paddleclas" / "ppcls" / "arch").is_dir()


def _safe_extract(wheel: Path, target: Path) -> None:
    # A wheel is a zip; refuse members that would land outside the target.
    target_resolved = target.resolve()
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            out = (target / info.filename).resolve()
            if out != target_resolved and target_resolved not in out.parents:
                raise SystemExit(f"refusing wheel member {info.filename!r}: it escapes {target}")
        zf.extractall(target)


def fetch(dest: Path, force: bool = False) -> Path:
    """Make sure ``dest`` holds the unpacked wheel; return ``dest``."""
    dest = dest.resolve()
    if is_fetched(dest) and not force:
        print(f"PaddleClas {PADDLECLAS_VERSION} already unpacked at {dest}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="paddleclas_dl_") as dl:
        cmd = [sys.executable, "-m", "pip", "download", f"paddleclas=={PADDLECLAS_VERSION}",
               "--no-deps", "--only-binary=:all:", "-d", dl]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(
                f"`{' '.join(cmd)}` failed with exit status {proc.returncode}:\n{proc.stderr[-4000:]}"
            )
        wheels = sorted(Path(dl).glob(f"paddleclas-{PADDLECLAS_VERSION}-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"expected one paddleclas {PADDLECLAS_VERSION} wheel in {dl}, "
                             f"found {[w.name for w in Path(dl).iterdir()]}")
        staging = Path(tempfile.mkdtemp(prefix=".paddleclas_unpack_", dir=dest.parent))
        try:
            _safe_extract(wheels[0], staging)
            if not (staging / "paddleclas" / "ppcls" / "arch").is_dir():
                raise SystemExit(f"{wheels[0].name} has no paddleclas/ppcls/arch; not the expected wheel")
            (staging / MARKER_NAME).write_text(json.dumps(
                {"version": PADDLECLAS_VERSION, "wheel": wheels[0].name}))
            if dest.exists():
                shutil.rmtree(dest)
            staging.rename(dest)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    print(f"PaddleClas {PADDLECLAS_VERSION} unpacked at {dest} (import root {dest / 'paddleclas'})")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=None,
                        help="destination folder (default: $PADDLEHUB_CLS_PADDLECLAS_DIR or "
                             "third_party/paddleclas in the repo root)")
    parser.add_argument("--force", action="store_true", help="re-download even if already present")
    args = parser.parse_args(argv)
    fetch(args.dest if args.dest is not None else default_dest(), force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
