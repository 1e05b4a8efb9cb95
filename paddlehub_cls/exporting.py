"""Export a network as a Paddle Inference model: :func:`export` and ``paddlehub-cls export``.

The exported directory holds what ``paddle.jit.save`` writes for a static input spec
(``inference.json`` with the PIR program, or ``inference.pdmodel`` when PIR is off, and
``inference.pdiparams``) plus :data:`CONFIG_NAME`, a JSON file with the model's
``pretrained_cfg`` (preprocessing, head size, class names, weight variant) and the input spec.
:class:`paddlehub_cls.inference.Predictor` reads that directory.

The module is named ``exporting`` so that the submodule never shadows the function
``paddlehub_cls.export``. It imports paddle only when a network is exported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from paddlehub_cls._cliargs import add_model_arguments
from paddlehub_cls._types import PathLike

if TYPE_CHECKING:  # pragma: no cover
    from paddle import nn

logger = logging.getLogger(__name__)

#: file name prefix of the program and parameters inside an export directory.
MODEL_PREFIX = "inference"
#: the JSON file written beside them.
CONFIG_NAME = "paddlehub_cls.json"
#: version of the JSON layout; Predictor refuses newer ones.
CONFIG_VERSION = 1
INPUT_NAME = "x"
#: what :func:`export` writes: a Paddle Inference program, or an ONNX model (the ``[onnx]`` extra).
FORMATS = ("paddle", "onnx")

__all__ = ["CONFIG_NAME", "FORMATS", "MODEL_PREFIX", "add_parsers", "export", "install_files", "run_export"]


def _input_size(model: Any, input_size: Optional[Union[int, Sequence[int]]]) -> Tuple[int, int, int]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    default = cfg.get("input_size") or (3, 224, 224)
    channels = int(default[0])
    if input_size is None:
        size = tuple(int(v) for v in default)
    elif isinstance(input_size, int) and not isinstance(input_size, bool):
        size = (channels, input_size, input_size)
    elif (
        isinstance(input_size, (list, tuple))
        and len(input_size) in (2, 3)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in input_size)
    ):
        size = (channels, *input_size) if len(input_size) == 2 else tuple(input_size)
    else:
        raise ValueError(f"input_size must be an int (square side), (H, W) or (C, H, W); got {input_size!r}")
    if size[0] < 1 or min(size[1:]) < 8:
        raise ValueError(f"input_size {list(size)} is too small: channels >= 1 and sides >= 8 are needed")
    return size  # type: ignore[return-value]


def _check_batch(batch_size: Optional[int]) -> Optional[int]:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be None (any batch size) or a positive int, got {batch_size!r}")
    return batch_size


def _resolve(model_or_name: Any, weights: Optional[PathLike], pretrained: bool) -> "nn.Layer":
    if isinstance(model_or_name, str):
        # A fine-tuned checkpoint's sidecar supplies its class names and training image size.
        from paddlehub_cls.api import load_with_sidecar

        return load_with_sidecar(model_or_name, weights, pretrained=pretrained)
    if weights is not None:
        raise ValueError("weights= applies to a model name; the network you passed already has its weights")
    if not callable(getattr(model_or_name, "forward", None)) or not hasattr(model_or_name, "state_dict"):
        raise TypeError(
            f"expected a model name or a paddle.nn.Layer (e.g. from paddlehub_cls.load_model), "
            f"got {type(model_or_name).__name__}"
        )
    return model_or_name


def _config(model: Any, size: Tuple[int, int, int], batch_size: Optional[int]) -> Dict[str, Any]:
    import paddle

    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg["input_size"] = list(size)
    num_classes = int(getattr(model, "num_classes", cfg.get("num_classes", 0)) or 0)
    cfg["num_classes"] = num_classes
    names = getattr(model, "class_names", None) or cfg.get("class_names")
    if names is not None:
        cfg["class_names"] = [str(n) for n in names]
    labels = "class_names" if names is not None else ("imagenet-1k" if num_classes == 1000 else "index")
    return {
        "format_version": CONFIG_VERSION,
        "model": cfg.get("name", type(model).__name__),
        "pretrained_cfg": cfg,
        "labels": labels,
        "input": {"name": INPUT_NAME, "shape": [batch_size if batch_size else -1, *size], "dtype": "float32"},
        "output": {"kind": "logits", "num_classes": num_classes},
        "paddle_version": paddle.__version__,
    }


def export(
    model_or_name: Any,
    out_dir: PathLike,
    *,
    input_size: Optional[Union[int, Sequence[int]]] = None,
    batch_size: Optional[int] = None,
    weights: Optional[PathLike] = None,
    pretrained: bool = True,
    format: str = "paddle",
) -> Path:
    """Write a network as a Paddle Inference (or ONNX) model with its preprocessing metadata.

    Args:
        model_or_name: a registry name (loaded with :func:`paddlehub_cls.load_model`) or a
            network (exported in eval mode; its mode is restored afterwards).
        out_dir: directory to write into (created; files of an earlier export are replaced).
        input_size: ``int`` (square side), ``(H, W)`` or ``(C, H, W)``; default the model's
            ``pretrained_cfg["input_size"]``. The exported program accepts only this size.
        batch_size: fixed batch size, or None for any batch size.
        weights: variant tag or local checkpoint, with a model name only; a fine-tuned
            checkpoint's sidecar supplies its class names and training image size.
        pretrained: with a model name, False exports random weights (for tests and timing).
        format: ``"paddle"`` (Paddle Inference) or ``"onnx"`` (``inference.onnx`` through
            paddle2onnx; needs the ``[onnx]`` extra; see :func:`paddlehub_cls.deploy.onnx.export_onnx`).

    Returns:
        ``out_dir``, holding ``inference.json`` (or ``.pdmodel``), ``inference.pdiparams`` and
        ``paddlehub_cls.json`` (format ``"onnx"``: ``inference.onnx`` and ``paddlehub_cls.json``).

    Raises:
        ValueError: bad ``input_size``, ``batch_size`` or ``format``, or ``weights`` with a network.
        MissingExtraError: ``format="onnx"`` without paddle2onnx installed.
        TypeError: ``model_or_name`` is neither a name nor a network.
        UnknownModelError, DownloadError, ...: as :func:`paddlehub_cls.load_model`.
        OSError: ``out_dir`` cannot be written.

    Example:
        >>> path = export("ResNet50", "resnet50_infer", batch_size=None)
        >>> Predictor(path).predict("cat.jpg")
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {format!r}")
    if format == "onnx":
        from paddlehub_cls.deploy.onnx import export_onnx

        return export_onnx(
            model_or_name, out_dir, input_size=input_size, batch_size=batch_size, weights=weights,
            pretrained=pretrained,
        )
    batch_size = _check_batch(batch_size)
    model = _resolve(model_or_name, weights, pretrained)
    size = _input_size(model, input_size)
    import paddle

    out = Path(os.fspath(out_dir)).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    spec = [paddle.static.InputSpec([batch_size, *size], "float32", INPUT_NAME)]
    config = _config(model, size, batch_size)
    was_training = model.training
    model.eval()
    # Written next to the destination, then moved in: an interrupted export leaves no mix of files.
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        paddle.jit.save(model, str(tmp / MODEL_PREFIX), input_spec=spec)
        written = sorted(p.name for p in tmp.iterdir())
        if not any(n.endswith(".pdiparams") for n in written):
            raise OSError(f"paddle.jit.save wrote {written} into {tmp}, without a .pdiparams file")
        install_files(tmp, out, written, config)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if was_training:
            model.train()
    logger.info("exported %s (input %s) to %s", config["model"], config["input"]["shape"], out)
    return out


def install_files(tmp: Path, out: Path, written: Sequence[str], config: Dict[str, Any]) -> None:
    """Move ``written`` from ``tmp`` into ``out`` and write ``config`` as :data:`CONFIG_NAME`.

    The files of an earlier export (of either format) are removed first, so that a Predictor never
    sees a program of one export beside the metadata of another.
    """
    config["files"] = list(written)
    exts = (".json", ".pdmodel", ".pdiparams", ".pdiparams.info", ".onnx")
    stale = [out / CONFIG_NAME] + [out / f"{MODEL_PREFIX}{ext}" for ext in exts]
    for p in stale:
        if p.exists():
            p.unlink()
    for name in written:
        os.replace(tmp / name, out / name)
    cfg_tmp = out / f".{CONFIG_NAME}.tmp"
    cfg_tmp.write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    os.replace(cfg_tmp, out / CONFIG_NAME)


# ---------------------------------------------------------------------------------------------- CLI


def add_parsers(subparsers: Any) -> None:
    """Register ``export NAME OUT_DIR [--weights TAG] [--batch-size N] [--input-size N]``."""
    p = subparsers.add_parser(
        "export",
        help="export a model for Paddle Inference",
        description=(
            "Write NAME with its weights as a Paddle Inference model (paddle.jit.save with a static input "
            "spec) plus paddlehub_cls.json (preprocessing, labels) into OUT_DIR; load it with "
            "paddlehub_cls.Predictor(OUT_DIR)."
        ),
    )
    add_model_arguments(p, local="a local checkpoint (its sidecar's class names and image size are kept)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="directory to write (created)")
    p.add_argument("--batch-size", type=int, default=None, help="fixed batch size (default: any)")
    p.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="square side, or H W, or C H W (default: the model's own input size)",
    )
    p.add_argument("--random", action="store_true", help="export random weights (no download; for testing)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="paddle",
        help="paddle: Paddle Inference (default); onnx: inference.onnx for ONNX Runtime "
        "(needs paddlehub_cls[onnx])",
    )
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Run ``paddlehub-cls export``; prints the files written."""
    size: Optional[Union[int, List[int]]] = None
    if args.input_size:
        if len(args.input_size) not in (1, 2, 3):
            raise ValueError(f"--input-size takes 1, 2 or 3 numbers, got {args.input_size}")
        size = args.input_size[0] if len(args.input_size) == 1 else list(args.input_size)
    if args.random and args.weights:
        raise ValueError("--random and --weights exclude each other")
    out = export(
        args.name,
        args.out_dir,
        input_size=size,
        batch_size=args.batch_size,
        weights=args.weights,
        pretrained=not args.random,
        format=args.format,
    )
    for name in sorted(p.name for p in out.iterdir() if not p.name.startswith(".")):
        print(out / name)
    return 0
