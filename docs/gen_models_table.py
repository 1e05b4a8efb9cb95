"""Regenerate the model table of docs/model_zoo.md and the accuracy-vs-parameters plot.

    python docs/gen_models_table.py           # rewrite the table and docs/img/accuracy_vs_params.png
    python docs/gen_models_table.py --check   # exit 1 if either is stale (CI)

Reads the packaged registry.json only (never $PADDLEHUB_CLS_REGISTRY), so the page shows
what ships. The table sits between two marker comments; the rest of the page is written
by hand. The plot needs matplotlib (the ``docs`` extra); it stores a digest of the data it
shows in its PNG metadata, which is how ``--check`` and tests/test_docs.py tell it is
current without comparing pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "registry.json"
PAGE = ROOT / "docs" / "model_zoo.md"
PLOT = ROOT / "docs" / "img" / "accuracy_vs_params.png"
BEGIN = "<!-- BEGIN GENERATED MODEL TABLE: edit registry.json, then run python docs/gen_models_table.py -->"
END = "<!-- END GENERATED MODEL TABLE -->"
DIGEST_KEY = "paddlehub_cls-plot-data-sha256"


def load_models(path: Path = REGISTRY) -> Dict[str, Dict[str, Any]]:
    """The ``models`` mapping of a registry file, in file order."""
    return json.loads(path.read_text(encoding="utf-8"))["models"]


def _acc(variant: Dict[str, Any]) -> str:
    metrics = variant.get("metrics")
    if not metrics:
        return "n/a"
    top5 = metrics.get("top5")
    return f"{metrics['top1']:.2f} / {top5:.2f}" if top5 is not None else f"{metrics['top1']:.2f}"


def _flops(flops: Optional[Dict[str, Any]]) -> str:
    """GFLOPs in the entry's own convention, named: the seed's are about 2 x multiply-adds,
    PaddleClas's zh README gives paddle.flops counts (about multiply-adds, "GMACs")."""
    if not flops:
        return ""
    unit = flops.get("unit", "")
    # "multiply-adds ..., about half the 2 x ... FLOPs" is a multiply-add count: what the unit
    # counts is said first; the seed's "FLOPs (..., about 2 x multiply-adds)" is a FLOP count.
    low = unit.lower()
    macs = low.startswith(("multiply-add", "mac")) or "about multiply-adds" in low
    return f"{flops['value'] / 1e9:.2f} {'GMACs' if macs else 'GFLOPs'}"


def _preprocess(m: Dict[str, Any]) -> str:
    """The default weights' eval recipe in a few words, e.g. ``256 -> 224 cv2 bilinear``."""
    default = m.get("weights", {}).get(m.get("default_weights") or "", {})
    pre = default.get("preprocess") or m.get("preprocess")
    if not pre:
        return f"{m['crop_pct']:.3f} crop, PIL {m['interpolation']}"
    size = f"{pre['resize_size']} -> {pre['crop']}" if pre["resize"] == "short" else f"squash {pre['crop']}"
    extra = "" if pre["channel_order"] == "RGB" else " BGR"
    return f"{size} {pre['backend']} {pre['interpolation']}{extra}"


def _weights(m: Dict[str, Any]) -> str:
    """Each weight variant with its top-1 / top-5; the default in bold."""
    cells = []
    for tag, variant in m.get("weights", {}).items():
        label = f"**`{tag}`**" if tag == m.get("default_weights") else f"`{tag}`"
        cells.append(f"{label} {_acc(variant)}")
    return "<br>".join(cells) or "none"


def render_table(models: Dict[str, Dict[str, Any]]) -> str:
    """The Markdown tables (without markers): one per family (families in name order), one row per
    model sorted by parameter count."""
    families = sorted({m["family"] for m in models.values()})
    out = []
    for family in families:
        members = [(n, m) for n, m in models.items() if m["family"] == family]
        members.sort(key=lambda kv: ((kv[1].get("num_params") or {}).get("value") or 0, kv[0]))
        out += [
            f"### {family}",
            "",
            "| Model | Params (M) | FLOPs | Input | Eval preprocessing (default weights) "
            "| Weights: top-1 / top-5 (default in bold) | Paper |",
            "|---|--:|--:|---|---|---|---|",
        ]
        for name, m in members:
            params = (m.get("num_params") or {}).get("value")
            paper = m.get("paper")
            cells = [
                f"`{name}`",
                f"{params / 1e6:.2f}" if params else "",
                _flops(m.get("flops")),
                "x".join(str(v) for v in m["input_size"]),
                _preprocess(m),
                _weights(m),
                f"[{paper['title']}]({paper['url']})" if paper else "",
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out).rstrip()


def update_page(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{PAGE.name} must contain the lines {BEGIN!r} and then {END!r}")
    return text[: start + len(BEGIN)] + "\n\n" + table + "\n\n" + text[end:]


# The variant whose top-1 stands for a model when its default weights have none published.
_FALLBACK_TAGS = ("paddleclas", "fluid2019")


def plot_points(models: Dict[str, Dict[str, Any]]) -> List[Tuple[str, str, float, Optional[float]]]:
    """(name, family, params in millions, reported top-1 or None) for every model with a parameter count.

    The top-1 is the default weights' (what ``load_model(NAME)`` gives) where published, else the
    PaddleClas or 2019 file's of the same architecture; None when no variant has one.
    """
    points = []
    for name, m in sorted(models.items()):
        params = (m.get("num_params") or {}).get("value")
        weights = m.get("weights", {})
        chosen = [weights.get(m.get("default_weights") or ""), *(weights.get(t) for t in _FALLBACK_TAGS)]
        top1 = next((v["metrics"]["top1"] for v in chosen if v and v.get("metrics")), None)
        if params:
            points.append((name, m["family"], params / 1e6, float(top1) if top1 is not None else None))
    return points


def plot_digest(points: List[Tuple[str, str, float, Optional[float]]]) -> str:
    return hashlib.sha256(json.dumps(points, sort_keys=True).encode()).hexdigest()


def write_plot(points: List[Tuple[str, str, float, Optional[float]]], path: Path = PLOT) -> None:
    """Scatter of top-1 against parameters (log scale), one colour and marker per family.

    Models without a published top-1 sit on a strip below the axis range, marked x. With many
    models only the most accurate of each family is labelled, to keep the labels readable.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 7.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    families = sorted({p[1] for p in points})
    known = [p[3] for p in points if p[3] is not None]
    floor = (min(known) if known else 60.0) - 2.0
    colours = colormaps["tab20"]
    markers = "osD^v<>pPXh*"
    label_all = len(points) <= 40
    for i, fam in enumerate(families):
        mine = [p for p in points if p[1] == fam and p[3] is not None]
        if mine:
            ax.scatter(
                [p[2] for p in mine],
                [p[3] for p in mine],
                s=36,
                color=colours(i % 20),
                marker=markers[i % len(markers)],
                label=fam,
                edgecolors="black",
                linewidths=0.3,
            )
        labelled = mine if label_all else sorted(mine, key=lambda p: -p[3])[:1]
        for name, _, x, y in labelled:
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    missing = [p for p in points if p[3] is None]
    if missing:
        ax.scatter(
            [p[2] for p in missing],
            [floor] * len(missing),
            s=30,
            marker="x",
            color="grey",
            label=f"no published top-1 ({len(missing)})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("parameters (millions, log scale)")
    ax.set_ylabel("ImageNet val top-1 (%)")
    ax.set_title(
        f"Reported top-1 (default weights, else the PaddleClas or 2019 file) vs parameters ({len(points)} models)"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 if len(families) <= 30 else 2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png", metadata={DIGEST_KEY: plot_digest(points)})


def stale(models: Dict[str, Dict[str, Any]]) -> List[str]:
    """What is out of date (empty when the page and plot match the registry)."""
    problems = []
    text = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
    try:
        if update_page(text, render_table(models)) != text:
            problems.append(f"{PAGE.relative_to(ROOT)}: the model table differs from registry.json")
    except ValueError as err:
        problems.append(str(err))
    if not PLOT.is_file():
        problems.append(f"{PLOT.relative_to(ROOT)} is missing")
    else:
        from PIL import Image

        with Image.open(PLOT) as img:
            if img.text.get(DIGEST_KEY) != plot_digest(plot_points(models)):
                problems.append(f"{PLOT.relative_to(ROOT)} was drawn from other registry data")
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the outputs are stale")
    args = parser.parse_args(argv)
    models = load_models()
    if args.check:
        problems = stale(models)
        for p in problems:
            print(f"stale: {p}", file=sys.stderr)
        if problems:
            print("run: python docs/gen_models_table.py", file=sys.stderr)
        return 1 if problems else 0
    PAGE.write_text(update_page(PAGE.read_text(encoding="utf-8"), render_table(models)), encoding="utf-8")
    write_plot(plot_points(models))
    print(f"wrote {PAGE.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
