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
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "registry.json"
PAGE = ROOT / "docs" / "model_zoo.md"
PLOT = ROOT / "docs" / "img" / "accuracy_vs_params.png"
BEGIN = "<!-- BEGIN GENERATED MODEL TABLE: edit registry.json, then run python docs/gen_models_table.py -->"
END = "<!-- END GENERATED MODEL TABLE -->"
TAGS = ("fluid2019", "paddleclas", "paddle_vision")
DIGEST_KEY = "paddlehub_cls-plot-data-sha256"


def load_models(path: Path = REGISTRY) -> Dict[str, Dict[str, Any]]:
    """The ``models`` mapping of a registry file, in file order."""
    return json.loads(path.read_text(encoding="utf-8"))["models"]


def _acc(variant: Optional[Dict[str, Any]]) -> str:
    metrics = (variant or {}).get("metrics")
    if not metrics:
        return "n/a" if variant else ""
    # PaddleClas's model-zoo README gives top-1 only for many files: top-5 is then unknown.
    top5 = metrics.get("top5")
    return f"{metrics['top1']:.2f} / " + (f"{top5:.2f}" if top5 is not None else "n/p")


def render_table(models: Dict[str, Dict[str, Any]]) -> str:
    """The Markdown table (without markers), one row per model, sorted by parameter count."""
    rows = sorted(models.items(), key=lambda kv: ((kv[1].get("num_params") or {}).get("value") or 0, kv[0]))
    head = [
        "| Model | Family | Params (M) | FLOPs (G) | Input | fluid2019 top-1 / top-5 "
        "| paddleclas top-1 / top-5 "
        "| paddle_vision top-1 / top-5 | Default weights | Paper |",
        "|---|---|--:|--:|---|--:|--:|--:|---|---|",
    ]
    lines = []
    for name, m in rows:
        params = (m.get("num_params") or {}).get("value")
        flops = (m.get("flops") or {}).get("value")
        weights = m.get("weights", {})
        paper = m.get("paper")
        cells = [
            f"`{name}`",
            m["family"],
            f"{params / 1e6:.2f}" if params else "",
            f"{flops / 1e9:.2f}" if flops else "",
            "x".join(str(v) for v in m["input_size"]),
            *(_acc(weights.get(tag)) for tag in TAGS),
            f"`{m.get('default_weights')}`" if m.get("default_weights") else "none",
            f"[{paper['title']}]({paper['url']})" if paper else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(head + lines)


def update_page(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{PAGE.name} must contain the lines {BEGIN!r} and then {END!r}")
    return text[: start + len(BEGIN)] + "\n\n" + table + "\n\n" + text[end:]


def plot_points(models: Dict[str, Dict[str, Any]]) -> List[Tuple[str, str, float, float]]:
    """(name, family, params in millions, reported top-1) for every model with both figures.

    The top-1 is the 2019 release's (``fluid2019``) where reported, the default variant's otherwise,
    so every point comes from one evaluation protocol where possible.
    """
    points = []
    for name, m in sorted(models.items()):
        params = (m.get("num_params") or {}).get("value")
        weights = m.get("weights", {})
        chosen = [weights.get("fluid2019"), weights.get(m.get("default_weights") or "")]
        top1 = next((v["metrics"]["top1"] for v in chosen if v and v.get("metrics")), None)
        if params and top1 is not None:
            points.append((name, m["family"], params / 1e6, float(top1)))
    return points


def plot_digest(points: List[Tuple[str, str, float, float]]) -> str:
    return hashlib.sha256(json.dumps(points, sort_keys=True).encode()).hexdigest()


def write_plot(points: List[Tuple[str, str, float, float]], path: Path = PLOT) -> None:
    """Scatter of top-1 against parameters (log scale), one colour per family."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    families = sorted({p[1] for p in points})
    for fam in families:
        xs = [p[2] for p in points if p[1] == fam]
        ys = [p[3] for p in points if p[1] == fam]
        ax.scatter(xs, ys, s=40, label=fam)
    for name, _, x, y in points:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (millions, log scale)")
    ax.set_ylabel("ImageNet val top-1 (%)")
    ax.set_title("Reported top-1 (2019 release where listed) vs parameters")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
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
