"""The CLI subcommands of cache management (list, verify, remove, export, import).

The functions live in :mod:`paddlehub_cls.cache` (and are importable from here too);
:func:`add_parsers` registers ``download NAME... | --all [--weights TAG]`` and
``cache ls | verify | rm | add | export | import`` on an argparse subparsers object; each
subcommand sets ``handler(args) -> int`` (the exit status). Nothing here imports paddle.

Bundles (``cache export`` / ``cache import``) are built in :mod:`paddlehub_cls._bundle`; the
converted files of :mod:`paddlehub_cls.fastload` are listed, removed and checked through
:mod:`paddlehub_cls._converted` (bundles never carry them: they are derived).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict
from typing import Any

from paddlehub_cls._bundle import BUNDLE_FORMAT, export_bundle, import_bundle
from paddlehub_cls._messages import message_line
from paddlehub_cls.cache import Entry, Problem, VerifyReport, list_entries, remove_model, verify_cache
from paddlehub_cls.errors import PaddleHubClsError

logger = logging.getLogger(__name__)


__all__ = [
    "BUNDLE_FORMAT",
    "Entry",
    "Problem",
    "VerifyReport",
    "add_parsers",
    "export_bundle",
    "import_bundle",
    "list_entries",
    "remove_model",
    "verify_cache",
]


# --------------------------------------------------------------------------- CLI


def add_parsers(subparsers: Any) -> None:
    """Register ``download`` and ``cache`` on an ``ArgumentParser.add_subparsers()`` object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache-dir", help="user cache root (default $PADDLEHUB_CLS_HOME or ~/.cache/paddlehub_cls)"
    )

    p = subparsers.add_parser(
        "download",
        parents=[common],
        help="download and verify weights into the cache",
        description="Download and verify weights; prints MODEL.TAG and the path for each.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="model names (or NAME.TAG)")
    p.add_argument("--all", action="store_true", help="every model with weights")
    p.add_argument("--weights", metavar="TAG", help="weight variant tag (default: each model's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_download)

    cache = subparsers.add_parser("cache", help="inspect and manage the weight cache")
    sub = cache.add_subparsers(dest="cache_command", metavar="COMMAND")
    sub.required = True
    ls = sub.add_parser(
        "ls",
        parents=[common],
        help="list cached artifacts and their converted copies (user and shared caches)",
    )
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=run_ls)
    ver = sub.add_parser("verify", parents=[common], help="re-hash everything; quarantine bad files")
    ver.add_argument("--json", action="store_true", help="machine-readable output")
    ver.set_defaults(handler=run_verify)
    rm = sub.add_parser("rm", parents=[common], help="remove a model's files from the user cache")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.set_defaults(handler=run_rm)
    add = sub.add_parser(
        "add",
        parents=[common],
        help="verify a weight file downloaded by hand and store it as a download would",
    )
    add.add_argument("name", metavar="NAME[.TAG]", help="the model (and weight variant) the file holds")
    add.add_argument("file", metavar="FILE", help="the file, as published at the variant's URL")
    add.set_defaults(handler=run_add)
    ex = sub.add_parser("export", parents=[common], help="write cached artifacts into a bundle (tar)")
    ex.add_argument("bundle", metavar="BUNDLE.tar")
    ex.add_argument("names", nargs="*", metavar="NAME", help="models to export (default: everything)")
    ex.set_defaults(handler=run_export)
    im = sub.add_parser("import", parents=[common], help="verify a bundle and add it to the user cache")
    im.add_argument("bundle", metavar="BUNDLE.tar")
    im.set_defaults(handler=run_import)


def _err(msg: str) -> None:
    sys.stderr.write(message_line(msg) + "\n")


def run_download(args: argparse.Namespace) -> int:
    from paddlehub_cls import hub
    from paddlehub_cls.registry import load_registry

    if bool(args.all) == bool(args.names):
        _err("give model names or --all (not both); see `paddlehub-cls list`")
        return 2
    reg = load_registry()
    names = [n for n in reg.names() if reg.get(n).weights] if args.all else args.names
    failed = 0
    for name in names:
        try:
            if args.all and args.weights and args.weights not in reg.get(name).weights:
                print(f"{name}: no {args.weights!r} weights, skipped")
                continue
            info, variant = reg.resolve(name, args.weights)
            path = hub.download_variant(
                info, variant, cache_dir=args.cache_dir, progress=False if args.no_progress else None
            ).path
            print(f"{info.name}.{variant.tag}\t{path}")
        except PaddleHubClsError as exc:
            failed += 1
            _err(f"{name}: {exc}")
    return 1 if failed else 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def run_ls(args: argparse.Namespace) -> int:
    entries = list_entries(args.cache_dir)
    if args.json:
        print(json.dumps([asdict(e) for e in entries], indent=1))
        return 0
    if not entries:
        print("cache is empty")
        return 0
    source = None
    for e in entries:
        where = "shared" if e.shared else "user"
        flags = e.trust + (",unpacked" if e.unpacked else "")
        label = e.label()
        if e.kind == "converted":
            flags = "converted"
            # Right after its artifact; the orphans, last, name theirs.
            label = "  converted copy" if e.sha256 == source else "converted, artifact not cached"
            name = os.path.relpath(e.path, e.root)
        else:
            source, name = e.sha256, e.filename
        print(f"{label:32} {_size(e.size):>10}  {e.sha256[:12]}  {flags:18} {where:6} {name}  {e.root}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    report = verify_cache(args.cache_dir)
    if args.json:
        print(json.dumps(asdict(report), indent=1))
    else:
        for p in report.problems:
            print(f"BAD  {p.path}: {p.reason} -> {p.action}")
        for r in report.repaired:
            print(f"FIXED {r}")
        if report.partials:
            print(f"{len(report.partials)} unfinished download(s) in tmp/ (resumed on next download)")
        print(f"checked {report.checked} file(s): {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def run_rm(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.names:
        try:
            for path in remove_model(name, cache_dir=args.cache_dir):
                print(f"removed {path}")
        except PaddleHubClsError as exc:
            failed += 1
            _err(str(exc))
    return 1 if failed else 0


def run_add(args: argparse.Namespace) -> int:
    from paddlehub_cls import hub

    path = hub.cache_add(args.name, args.file, cache_dir=args.cache_dir)
    print(f"added {args.file}\t{path}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    entries = export_bundle(args.bundle, args.names or None, cache_dir=args.cache_dir)
    print(f"wrote {len(entries)} artifact(s) to {args.bundle}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    entries = import_bundle(args.bundle, cache_dir=args.cache_dir)
    for e in entries:
        print(
            f"imported {e['sha256'][:12]} {e.get('filename') or ''} "
            f"({e.get('model') or '-'}.{e.get('tag') or '-'})"
        )
    return 0
