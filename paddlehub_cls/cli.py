"""Command line interface: ``paddlehub-cls`` and ``python -m paddlehub_cls``.

Each subcommand is one ``add_<name>_parser(subparsers)`` function that registers its arguments
and sets ``handler`` to a ``run_<name>(args) -> int`` function; :data:`SUBCOMMANDS` lists the
``add_*`` functions in the order ``--help`` shows them. ``list`` and ``info`` read only the
registry and never import paddle.

Exit codes: 0 success, 1 an error (one line on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Callable, Optional, Sequence

from paddlehub_cls.errors import PaddleHubClsError
from paddlehub_cls.registry import ModelInfo, WeightVariant, load_registry

PROG = "paddlehub-cls"

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# list


def add_list_parser(subparsers: Any) -> None:
    """Register ``list [PATTERN] [--pretrained] [--json] [--long]``."""
    p = subparsers.add_parser(
        "list",
        help="list the registered models",
        description="List registered model names matching PATTERN (case-insensitive shell wildcards).",
    )
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN", help="e.g. 'resnet*' (default: all)")
    p.add_argument("--pretrained", action="store_true", help="only models with pretrained weights")
    p.add_argument("--json", action="store_true", help="print a JSON array with each model's summary")
    p.add_argument(
        "-l", "--long", action="store_true", help="one line per model with weights, params and top-1"
    )
    p.set_defaults(handler=run_list)


def _summary(info: ModelInfo) -> dict[str, Any]:
    default = info.weights.get(info.default_weights) if info.default_weights else None
    metrics = default.metrics if default is not None else None
    return {
        "name": info.name,
        "architecture": info.architecture,
        "family": info.family,
        "default_weights": info.default_weights,
        "weights": list(info.weights),
        "num_params": info.num_params["value"] if info.num_params else None,
        "top1": metrics["top1"] if metrics else None,
        "top1_by_weights": {t: (v.metrics["top1"] if v.metrics else None) for t, v in info.weights.items()},
    }


def run_list(args: argparse.Namespace) -> int:
    """Print the model names matching ``args.pattern``."""
    reg = load_registry()
    names = reg.find(args.pattern, pretrained=True if args.pretrained else None)
    if args.json:
        print(json.dumps([_summary(reg.get(n)) for n in names], indent=2))
    elif args.long:
        rows = [_summary(reg.get(n)) for n in names]
        width = max((len(r["name"]) for r in rows), default=0)
        for r in rows:
            # Accuracy belongs to a weight file, so it is shown per variant; * marks the default.
            tags = ", ".join(
                t + ("*" if t == r["default_weights"] else "") + (f" {top1:.2f}%" if top1 is not None else "")
                for t, top1 in r["top1_by_weights"].items()
            )
            params = f"{r['num_params'] / 1e6:.2f}M" if r["num_params"] else "-"
            print(f"{r['name']:<{width}}  params {params:>8}  weights (top-1): {tags or '-'}")
    else:
        for name in names:
            print(name)
    if not names:
        what = "pretrained model" if args.pretrained else "model"
        _error(f"no {what} matches {args.pattern!r}; run `{PROG} list` to see all {len(reg)} models")
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# info


def add_info_parser(subparsers: Any) -> None:
    """Register ``info NAME [--json]``."""
    p = subparsers.add_parser(
        "info",
        help="show a model's registry entry",
        description="Show the registry entry of NAME (case-insensitive); NAME.TAG shows one weight variant.",
    )
    p.add_argument("name", metavar="NAME", help="model name, e.g. ResNet50 or ResNet50.fluid2019")
    p.add_argument("--json", action="store_true", help="print the entry as JSON")
    p.set_defaults(handler=run_info)


def run_info(args: argparse.Namespace) -> int:
    """Print the registry entry of ``args.name``."""
    reg = load_registry()
    if args.name in reg or "." not in args.name:
        info, only = reg.get(args.name), None
    else:
        info, only = reg.resolve(args.name)
    tags = [only.tag] if only is not None else list(info.weights)
    if args.json:
        data = info.to_dict()
        data["weights"] = {t: data["weights"][t] for t in tags}
        print(json.dumps(data, indent=2))
        return 0
    print("\n".join(_info_lines(info, tags)))
    return 0


def _info_lines(info: ModelInfo, tags: Sequence[str]) -> list[str]:
    c, h, w = info.input_size
    lines = [
        info.name,
        f"  architecture  {info.architecture} (family {info.family})"
        + (f", kwargs {json.dumps(dict(info.arch_kwargs))}" if info.arch_kwargs else ""),
        f"  input         {c}x{h}x{w}, resize {info.interpolation}, crop_pct {info.crop_pct}, "
        f"mean {list(info.mean)}, std {list(info.std)}",
    ]
    if info.num_params:
        lines.append(
            f"  parameters    {info.num_params['value'] / 1e6:.2f} M; source: {info.num_params['source']}"
        )
        if info.num_params.get("note"):
            lines.append(f"                note: {info.num_params['note']}")
    if info.flops:
        lines.append(
            f"  FLOPs         {info.flops['value'] / 1e9:.2f} G {info.flops['unit']}; "
            f"source: {info.flops['source']}"
        )
    if info.paper:
        lines.append(f"  paper         {info.paper['title']} <{info.paper['url']}>")
    lines.append(f"  license       {info.license}")
    if not info.weights:
        lines.append("  weights       none (architecture only)")
    else:
        lines.append(f"  weights       default {info.default_weights}")
    for tag in tags:
        lines += _variant_lines(info.weights[tag], tag == info.default_weights)
    return lines


def _variant_lines(v: WeightVariant, is_default: bool) -> list[str]:
    out = [f"    {v.tag}{' (default)' if is_default else ''}: {v.container}, layout {v.layout}"]
    out += [f"      url       {u}" for u in v.urls]
    out.append(f"      checksum  {v.checksum}" if v.checksum else f"      checksum  none: {v.checksum_note}")
    if v.archive_root:
        out.append(f"      archive   {v.archive_root}/")
    if v.arch_kwargs:
        out.append(f"      kwargs    {json.dumps(dict(v.arch_kwargs))}")
    if v.metrics:
        # PaddleClas publishes top-1 only for many files (the schema makes top5 optional).
        top5 = v.metrics.get("top5")
        out.append(
            f"      accuracy  top-1 {v.metrics['top1']}%"
            + (f", top-5 {top5}%" if top5 is not None else "")
            + f"; source: {v.metrics['source']}"
        )
    if v.source:
        out.append(f"      source    {v.source}")
    if v.note:
        out.append(f"      note      {v.note}")
    return out


# ---------------------------------------------------------------------------------------------
# Parser and entry point

from paddlehub_cls.cache_cli import add_parsers as add_download_and_cache_parsers  # noqa: E402
from paddlehub_cls.exporting import add_parsers as add_export_parser  # noqa: E402
from paddlehub_cls.finetune import add_parsers as add_finetune_parser  # noqa: E402
from paddlehub_cls.predict import add_parsers as add_predict_parser  # noqa: E402

SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    add_list_parser,
    add_info_parser,
    add_download_and_cache_parsers,
    add_export_parser,
    add_predict_parser,
    add_finetune_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``paddlehub-cls`` argument parser with every subcommand in :data:`SUBCOMMANDS`."""
    from paddlehub_cls import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Pretrained PaddlePaddle ImageNet classifiers by name: registry, downloads and cache.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def _error(message: str) -> None:
    # One line, so scripts and log scrapers see the whole message.
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error, 0 after --help / --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if getattr(args, "handler", None) is None:
        parser.print_usage(sys.stderr)
        _error("a command is required (one of: " + ", ".join(subparsers_names(parser)) + ")")
        return 2
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args))
    except BrokenPipeError:
        # The reader went away (`paddlehub-cls list | head`): stop quietly, without a traceback at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except (PaddleHubClsError, ValueError, OSError) as exc:
        if args.verbose >= 2:
            logger.exception("%s failed", args.command)
        _error(str(exc))
        return 1


def subparsers_names(parser: argparse.ArgumentParser) -> list[str]:
    """Names of the subcommands registered on ``parser``."""
    for action in parser._actions:  # argparse keeps no public accessor for subparsers
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []
