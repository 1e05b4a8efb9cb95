"""Classify images with a named model: ``predict`` and the ``paddlehub-cls predict`` command.

Importing this module does not import paddle (so ``paddlehub_cls`` can re-export
:func:`predict` cheaply); paddle is imported when a network is run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
    Union,
)

# ImageReadError and PredictionError live in errors.py; they stay importable from here.
from paddlehub_cls._cliargs import add_model_arguments
from paddlehub_cls.errors import ImageReadError, PaddleHubClsError, PredictionError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from paddle import nn
    from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "ImageReadError",
    "PredictionError",
    "add_parsers",
    "expand_images",
    "iter_predictions",
    "predict",
    "read_image",
]

#: file suffixes taken from a folder (lower case); files given by name are always tried.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")

ImageInput = Union[str, "os.PathLike[str]", "Image.Image", "np.ndarray"]
Prediction = Dict[str, Any]


@dataclass(frozen=True)
class _Item:
    name: str
    source: Any  # a Path, a PIL image or an array


def expand_images(images: Union[ImageInput, Iterable[ImageInput]]) -> List[_Item]:
    """Flatten ``images`` into named items: folders become their image files, sorted by name.

    Raises:
        ImageReadError: a path does not exist, or a folder holds no image file.
    """
    if isinstance(images, (str, os.PathLike)) or not isinstance(images, Iterable) or _is_array(images):
        images = [images]
    items: List[_Item] = []
    for i, image in enumerate(images):
        if isinstance(image, (str, os.PathLike)):
            path = Path(os.fspath(image)).expanduser()
            if path.is_dir():
                files = sorted(
                    p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                )
                if not files:
                    raise ImageReadError(
                        f"folder {str(path)!r} holds no image file (looked for {', '.join(IMAGE_SUFFIXES)}); "
                        f"pass image files or a folder that contains some"
                    )
                items.extend(_Item(str(p), p) for p in files)
            else:
                # A missing file is reported per image by _load, so the others still run.
                items.append(_Item(str(path), path))
        else:
            items.append(_Item(f"<image {i}>", image))
    return items


def _is_array(obj: Any) -> bool:
    return type(obj).__module__ == "numpy" and hasattr(obj, "shape")


def read_image(path: Union[str, "os.PathLike[str]"]) -> "Image.Image":
    """Open an image file as RGB.

    Raises:
        ImageReadError: the file is missing, not an image, or corrupt; the message names it.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(os.fspath(path))
    if not path.exists():
        raise ImageReadError(f"image file {str(path)!r} does not exist; check the path")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except UnidentifiedImageError as err:
        raise ImageReadError(
            f"cannot read image {str(path)!r}: not an image format Pillow recognises "
            f"({path.stat().st_size} bytes); pass a JPEG, PNG, BMP, GIF, WebP or TIFF file"
        ) from err
    except (OSError, ValueError, SyntaxError) as err:
        # Truncated or corrupt data surfaces from img.load() as OSError/ValueError/SyntaxError.
        raise ImageReadError(
            f"cannot decode image {str(path)!r}: {err}; the file is corrupt or truncated"
        ) from err


def _load(item: _Item) -> "Image.Image":
    from paddlehub_cls.transforms import to_pil_image

    if isinstance(item.source, Path):
        return read_image(item.source)
    try:
        return to_pil_image(item.source)
    except (TypeError, ValueError) as err:
        raise ImageReadError(f"cannot use {item.name} as an image: {err}") from err


@lru_cache(maxsize=1)
def imagenet_labels() -> Tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in class-index order."""
    text = resources.files("paddlehub_cls").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(labels) != 1000:
        raise PaddleHubClsError(
            f"packaged imagenet_classes.txt has {len(labels)} names, expected 1000; reinstall"
        )
    return labels


def class_labels(model: Any) -> List[str]:
    """Labels of a network's outputs.

    Class names carried by the network (``model.class_names`` or
    ``pretrained_cfg["class_names"]``, set for fine-tuned checkpoints) win; a
    1000-way head gets the ImageNet names; anything else ``class_<i>``.
    """
    n = int(model.num_classes)
    names = getattr(model, "class_names", None)
    if names is None and isinstance(getattr(model, "pretrained_cfg", None), dict):
        names = model.pretrained_cfg.get("class_names")
    if names is not None and len(names) == n:
        return [str(x) for x in names]
    if names is not None:
        logger.warning("ignoring %d class names for a %d-way classifier", len(names), n)
    if n == 1000:
        return list(imagenet_labels())
    return [f"class_{i}" for i in range(n)]


def _resolve_model(model_or_name: Any, weights: Optional[Any]) -> "nn.Layer":
    if isinstance(model_or_name, str):
        from paddlehub_cls.api import load_with_sidecar

        return load_with_sidecar(model_or_name, weights)
    if weights is not None:
        raise ValueError("weights= applies to a model name; the network you passed already has its weights")
    if getattr(model_or_name, "num_classes", None) is None:
        raise TypeError(
            f"expected a model name or a paddlehub_cls network, got {type(model_or_name).__name__}"
        )
    return model_or_name


def iter_predictions(
    model_or_name: Any,
    images: Union[ImageInput, Iterable[ImageInput]],
    topk: int = 5,
    *,
    batch_size: int = 8,
    weights: Optional[Any] = None,
    transform: Optional[Callable[[Any], Any]] = None,
) -> Iterator[Tuple[str, Union[List[Prediction], ImageReadError]]]:
    """Yield ``(name, predictions or ImageReadError)`` for each input, in order.

    The streaming form of :func:`predict`: a file that cannot be read yields its
    error and the others are still classified.
    """
    import numpy as np

    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk must be a positive int, got {topk!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    # Resolved first: a missing or unreachable weight file fails before the slow paddle import.
    model = _resolve_model(model_or_name, weights)
    import paddle

    if model.num_classes == 0:
        raise ValueError(
            "this network has no classifier (num_classes=0, a feature extractor); "
            "load it with num_classes=None to classify"
        )
    labels = class_labels(model)
    k = min(topk, len(labels))
    if transform is None:
        from paddlehub_cls.transforms import create_transform

        transform = create_transform(model)
    items = expand_images(images)

    def run(batch: List[Tuple[str, "np.ndarray"]]) -> Iterator[Tuple[str, List[Prediction]]]:
        x = paddle.to_tensor(np.stack([arr for _, arr in batch]))
        with paddle.no_grad():
            out = model(x)
        if isinstance(out, (tuple, list)):  # auxiliary heads: the first output is the main one
            out = out[0]
        probs = paddle.nn.functional.softmax(out.astype("float32"), axis=-1).numpy()
        for (name, _), p in zip(batch, probs):
            top = np.argsort(-p, kind="stable")[:k]
            yield name, [{"index": int(i), "label": labels[i], "probability": float(p[i])} for i in top]

    was_training = model.training
    model.eval()
    try:
        batch: List[Tuple[str, np.ndarray]] = []
        for item in items:
            try:
                arr = transform(_load(item))
            except ImageReadError as err:
                # Flush what is ready so results keep the input order.
                yield from run(batch) if batch else ()
                batch = []
                yield item.name, err
                continue
            batch.append((item.name, np.asarray(arr, dtype="float32")))
            if len(batch) == batch_size:
                yield from run(batch)
                batch = []
        if batch:
            yield from run(batch)
    finally:
        if was_training:
            model.train()


def predict(
    model_or_name: Any,
    images: Union[ImageInput, Iterable[ImageInput]],
    topk: int = 5,
    *,
    batch_size: int = 8,
    weights: Optional[Any] = None,
    transform: Optional[Callable[[Any], Any]] = None,
) -> List[List[Prediction]]:
    """Top-k classes of each image.

    Args:
        model_or_name: a registry name (loaded with its default weights, or
            ``weights``) or a network from :func:`paddlehub_cls.load_model`.
        images: a file path, a folder (its image files, sorted by name), a PIL
            image, a uint8 HWC RGB array, or a list of these.
        topk: classes per image (capped at the number of classes).
        batch_size: images per forward pass.
        weights: variant tag or local checkpoint (with a model name only); a
            fine-tuned checkpoint's JSON sidecar supplies its class names.
        transform: preprocessing; default :func:`~paddlehub_cls.transforms.create_transform`
            of the model (the 2019 evaluation recipe).

    Returns:
        One list per image (folders expanded) of ``{"index", "label",
        "probability"}`` dicts, most probable first; probabilities are the
        softmax of the network's logits. Labels are the ImageNet names for
        1000-way heads, the checkpoint's class names when the network carries
        them, else ``class_<i>``.

    Raises:
        PredictionError: some images could not be read; its ``results`` holds
            the predictions of the others (None where one failed) and
            ``errors`` the reason per file.
        UnknownModelError, ValueError: bad model name or arguments.

    Example:
        >>> predict("ResNet50", "cat.jpg", topk=1)
        [[{'index': 281, 'label': 'tabby', 'probability': 0.61}]]
    """
    names: List[str] = []
    results: List[Optional[List[Prediction]]] = []
    errors: Dict[str, str] = {}
    for name, res in iter_predictions(
        model_or_name, images, topk, batch_size=batch_size, weights=weights, transform=transform
    ):
        names.append(name)
        if isinstance(res, ImageReadError):
            errors[name] = str(res)
            results.append(None)
        else:
            results.append(res)
    if errors:
        detail = "; ".join(errors.values())
        raise PredictionError(
            f"{len(errors)} of {len(names)} images could not be read ({detail}); "
            f"the others were classified: see PredictionError.results",
            errors,
            results,
            names,
        )
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------------------- CLI


def add_parsers(subparsers: "argparse._SubParsersAction") -> None:
    """Register ``predict`` on the ``paddlehub-cls`` argument parser."""
    p = subparsers.add_parser(
        "predict",
        help="classify images with a pretrained model",
        description=(
            "Print the top-k classes of each image (files, or folders of images): ImageNet labels, or a "
            "fine-tuned checkpoint's class names. An unreadable image is reported and the others still run."
        ),
    )
    add_model_arguments(p)
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files or folders of images")
    p.add_argument("--topk", type=int, default=5, metavar="N", help="classes to print per image (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument(
        "--batch-size", type=int, default=8, metavar="B", help="images per forward pass (default 8)"
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="report unreadable images as skipped (a warning each) and exit 0 instead of 1",
    )
    p.set_defaults(handler=run_predict_command)


def run_predict_command(args: argparse.Namespace, out: Any = None, err: Any = None) -> int:
    """Run ``paddlehub-cls predict``; returns the exit status (1 if any image failed)."""
    from paddlehub_cls.cli import message_line

    out = out or sys.stdout
    err = err or sys.stderr
    skip = getattr(args, "skip_bad_images", False)
    model = _resolve_model(args.name, args.weights)
    failed: Dict[str, str] = {}
    report: List[Dict[str, Any]] = []
    for name, res in iter_predictions(model, args.images, args.topk, batch_size=args.batch_size):
        if isinstance(res, ImageReadError):
            failed[name] = str(res)
            if skip:
                print(message_line(f"skipped {name}: {res}", "warning"), file=err)
            else:
                print(message_line(res), file=err)
                report.append({"image": name, "error": str(res)})
            continue
        report.append({"image": name, "predictions": res})
        if not args.json:
            print(name, file=out)
            for rank, pred in enumerate(res, 1):
                print(
                    f"  {rank}. {pred['label']:<32} {pred['index']:>5}  {pred['probability']:.4f}", file=out
                )
            out.flush()
    if args.json:
        loaded = getattr(model, "load_report", None)
        doc: Dict[str, Any] = {
            "model": model.pretrained_cfg.get("name", args.name),
            # What was loaded: the variant tag ("paddle_vision"; "local:TAG" or "local" for a file).
            "weights": loaded.weights if loaded is not None else args.weights,
            "weights_file": loaded.path if loaded is not None else None,
            "results": report,
        }
        if skip:
            doc["skipped"] = failed
        json.dump(doc, out, indent=2)
        out.write("\n")
    if failed and not skip:
        print(
            message_line(f"{len(failed)} of {len(report)} images could not be read (listed above)"), file=err
        )
        return 1
    return 0
