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
import warnings
from typing import Any, Callable, Optional, Sequence

from paddlehub_cls._listing import SORT_KEYS, find_models, summary
from paddlehub_cls._messages import PROG, message_line
from paddlehub_cls.errors import PaddleHubClsError
from paddlehub_cls.registry import ModelInfo, WeightVariant, load_registry

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# list


def add_list_parser(subparsers: Any) -> None:
    """Register ``list [PATTERN] [--pretrained] [--family F] [--tag T] [--sort KEY] [--names|-l|--json]``."""
    p = subparsers.add_parser(
        "list",
        help="list the registered models",
        description="List registered models matching PATTERN (case-insensitive shell wildcards) as a table: "
        "name, family, default weights, their top-1, parameters and input size.",
    )
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN", help="e.g. 'resnet*' (default: all)")
    p.add_argument("--pretrained", action="store_true", help="only models with pretrained weights")
    p.add_argument("--family", metavar="F", help="only this family, e.g. resnet")
    p.add_argument("--tag", metavar="T", help="only models with weights of this tag, e.g. paddleclas_ssld")
    p.add_argument(
        "--sort",
        choices=SORT_KEYS,
        help="top1: most accurate first (of --tag's weights, else the default's); " "params: smallest first",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--names", action="store_true", help="only the names, one per line (for scripts)")
    out.add_argument("--json", action="store_true", help="print a JSON array with each model's summary")
    out.add_argument(
        "-l", "--long", action="store_true", help="one line per model with every weight variant and its top-1"
    )
    p.set_defaults(handler=run_list)


def _pct(top1: Optional[float]) -> str:
    return f"{top1:.2f}%" if top1 is not None else "-"


def _table(rows: list[dict[str, Any]], tag: Optional[str] = None) -> list[str]:
    """The ``list`` table; with ``tag`` (``--tag``) its weights and top-1 are that variant's, not the default's."""

    def shown(r: dict[str, Any]) -> Optional[str]:
        if tag is None:
            return r["default_weights"]
        return next((t for t in r["weights"] if t.lower() == tag.lower()), None)

    header = ("name", "family", "default" if tag is None else "weights", "top-1", "params", "input")
    cells = [
        (
            r["name"],
            r["family"],
            shown(r) or "-",
            _pct(r["top1_by_weights"].get(shown(r)) if tag else r["top1"]),
            f"{r['num_params'] / 1e6:.2f}M" if r["num_params"] else "-",
            str(r["input_size"]),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    # Text columns left-aligned, figures right-aligned.
    return [
        "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        for row in [header, *cells]
    ]


def run_list(args: argparse.Namespace) -> int:
    """Print the models matching ``args.pattern`` and the filters."""
    reg = load_registry()
    names = find_models(
        reg,
        args.pattern,
        pretrained=True if args.pretrained else None,
        family=args.family,
        tag=args.tag,
        sort=args.sort,
    )
    rows = [summary(reg, reg.get(n)) for n in names]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.names:
        for name in names:
            print(name)
    elif args.long:
        width = max((len(r["name"]) for r in rows), default=0)
        for r in rows:
            # Accuracy belongs to a weight file, so it is shown per variant; * marks the default,
            # "=Model.tag" a figure published for the same file under another entry.
            tags = ", ".join(
                t
                + ("*" if t == r["default_weights"] else "")
                + (f" {top1:.2f}%" if top1 is not None else "")
                + (f" (={r['top1_from'][t]})" if t in r["top1_from"] else "")
                for t, top1 in r["top1_by_weights"].items()
            )
            params = f"{r['num_params'] / 1e6:.2f}M" if r["num_params"] else "-"
            print(f"{r['name']:<{width}}  params {params:>8}  weights (top-1): {tags or '-'}")
    elif rows:
        print("\n".join(_table(rows, args.tag)))
    if not names:
        what = "pretrained model" if args.pretrained else "model"
        filters = "".join(
            f" {k} {v!r}" for k, v in (("in family", args.family), ("with weights", args.tag)) if v
        )
        _error(f"no {what} matches {args.pattern!r}{filters}; run `{PROG} list` to see all {len(reg)} models")
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
        pre = info.preprocess_for(tag)
        if pre:
            lines.append(f"      eval      {_describe_preprocess(pre)}")
    return lines


def _describe_preprocess(pre: dict[str, Any]) -> str:
    """A weight file's eval recipe on one line (what ``create_transform`` does for it)."""
    size = (
        f"short side {pre['resize_size']} -> crop {pre['crop']}"
        if pre["resize"] == "short"
        else (f"squash to {pre['resize_size']}")
    )
    scale = "1/255" if abs(pre["scale"] - 1 / 255) < 1e-9 else f"{pre['scale']:g}"
    return (
        f"{size}, {pre['backend']} {pre['interpolation']}, {pre['channel_order']}, x{scale}, "
        f"mean {pre['mean']}, std {pre['std']}; source: {pre['source']}"
    )


def _variant_lines(v: WeightVariant, is_default: bool) -> list[str]:
    out = [f"    {v.tag}{' (default)' if is_default else ''}: {v.container}, layout {v.layout}"]
    out += [f"      url       {u}" for u in v.urls]
    out.append(f"      checksum  {v.checksum}" if v.checksum else f"      checksum  none: {v.checksum_note}")
    if v.archive_root:
        out.append(f"      archive   {v.archive_root}/")
    if v.arch_kwargs:
        out.append(f"      kwargs    {json.dumps(dict(v.arch_kwargs))}")
    if v.metrics:
        top5 = v.metrics.get("top5")  # many PaddleClas tables publish only top-1
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
from paddlehub_cls.deploy.serve import add_parsers as add_serve_parser  # noqa: E402
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
    add_serve_parser,
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
    print(message_line(message), file=sys.stderr)


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
    # paddle warns on import when no ccache is installed, which only matters for compiling C++
    # extensions; set before any command imports paddle.
    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
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
