"""Fine-tune a named model on folders of images with ``paddle.Model`` (hapi).

``DIR/<class>/*.jpg`` (one sub-folder per class) is split into train/val with a
fixed seed, or ``DIR/train/<class>`` and ``DIR/val/<class>`` are used as they are.
The network gets a new ``len(classes)``-way head (``load_model(..., num_classes=N)``),
optionally with the backbone frozen, and is trained with momentum SGD and a cosine
schedule. Every epoch writes, in the output folder:

* ``epoch_NNN.pdparams``: the network's own ``state_dict`` (``paddle.save``), which
  ``load_model(NAME, weights=PATH, num_classes=N)`` reads back (layout ``native``);
* ``epoch_NNN.json``: the sidecar with the model name, class names, metrics, history
  and what ``--resume`` needs; ``epoch_NNN.pdopt``: optimizer state by parameter key;
* ``history.json`` and ``curves.png`` (loss and accuracy per epoch, when matplotlib
  is installed).

Run under ``python -m paddle.distributed.launch`` unchanged: ``paddle.Model``
wraps the network in ``DataParallel`` and shards the data; only rank 0 writes.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

# Checkpoints (and what each epoch writes) and the data live in their own modules;
# the public names (and DatasetError, from errors.py) stay importable from here.
from paddlehub_cls._checkpoint import (  # noqa: F401  (re-exported)
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    _optimizer_state_for,
    apply_checkpoint_meta,
    epoch_callback,
    is_writer,
    plot_history,
    read_checkpoint_meta,
    sidecar_path,
)
from paddlehub_cls._finetune_data import _build_datasets, build_datasets
from paddlehub_cls._types import PathLike
from paddlehub_cls.api import load_checkpoint  # noqa: F401  (re-exported)
from paddlehub_cls.errors import DatasetError  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "DatasetError",
    "FinetuneResult",
    "add_parsers",
    "apply_checkpoint_meta",
    "build_datasets",
    "finetune",
    "freeze_backbone",
    "load_checkpoint",
    "plot_history",
    "read_checkpoint_meta",
]

#: weight of each auxiliary loss (GoogLeNet), as in the 2019 training script
AUX_LOSS_WEIGHT = 0.3


# ----------------------------------------------------------------------- model


def freeze_backbone(model: Any) -> List[str]:
    """Train only the classifier: everything else gets ``stop_gradient`` and frozen BN statistics.

    Batch-norm layers outside the classifier stay in inference mode even when
    ``model.train()`` is called (a forward pre-hook), so their running
    statistics are not updated by the new data (Keras's convention).

    Returns:
        The state_dict keys left trainable.
    """
    from paddle import nn

    head = tuple(f"{a}." for a in model.classifier_attrs)
    trainable = []
    for key, param in model.named_parameters():
        if key.startswith(head):
            if not param.stop_gradient or key.endswith(("weight", "bias")):
                trainable.append(key)
        else:
            param.stop_gradient = True
    bn_types = (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm)

    def keep_eval(layer: Any, inputs: Any) -> None:
        layer.training = False

    for name, layer in model.named_sublayers():
        if isinstance(layer, bn_types) and not (name + ".").startswith(head):
            layer.register_forward_pre_hook(keep_eval)
    return trainable


def _loss_and_metric() -> Tuple[Any, Any]:
    import paddle
    from paddle import nn

    class MultiOutputCrossEntropy(nn.Layer):
        """Cross entropy of the main output plus 0.3 x each auxiliary output (GoogLeNet in train mode)."""

        def __init__(self) -> None:
            super().__init__()
            self.ce = nn.CrossEntropyLoss()

        def forward(self, *args: Any) -> Any:
            *outputs, label = args
            loss = self.ce(outputs[0], label)
            for aux in outputs[1:]:
                loss = loss + AUX_LOSS_WEIGHT * self.ce(aux, label)
            return loss

    class MainAccuracy(paddle.metric.Accuracy):
        """Top-1 accuracy of the first output (hapi passes every output, then the label)."""

        def compute(self, *args: Any) -> Any:
            return super().compute(args[0], args[-1])

    return MultiOutputCrossEntropy(), MainAccuracy(name="acc")


# ----------------------------------------------------------------------- training


@dataclass
class FinetuneResult:
    """What :func:`finetune` produced.

    Attributes:
        output: the output folder.
        class_names: class names in head order.
        history: one dict per epoch (epoch, train_loss, train_acc, val_loss, val_acc, lr).
        checkpoints: ``epoch_NNN.pdparams`` paths written (rank 0 only; empty elsewhere).
        best_checkpoint: the checkpoint with the highest val accuracy (or the last).
        plot: ``curves.png``, or None when matplotlib is missing.
        data: how the data was split.
        skipped: ``{path: reason}`` of the unreadable images left out (``skip_bad_images``).
    """

    output: Path
    class_names: List[str]
    history: List[Dict[str, Any]] = field(default_factory=list)
    checkpoints: List[Path] = field(default_factory=list)
    best_checkpoint: Optional[Path] = None
    plot: Optional[Path] = None
    data: str = ""
    skipped: Dict[str, str] = field(default_factory=dict)


def _check_positive(name: str, value: Any, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, (kind, int)) or value <= 0:
        raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}")


def finetune(
    name: str,
    data: PathLike,
    *,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    freeze: bool = False,
    val_split: float = 0.2,
    output: PathLike = "finetune_output",
    resume: Optional[PathLike] = None,
    weights: Optional[PathLike] = None,
    pretrained: bool = True,
    image_size: Optional[int] = None,
    num_workers: int = 0,
    seed: int = 0,
    verbose: int = 1,
    skip_bad_images: bool = False,
) -> FinetuneResult:
    """Fine-tune ``name`` on an image folder with ``paddle.Model``.

    Args:
        name: registry model name.
        data: image folder (see :func:`build_datasets`).
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: images per step and process.
        lr: initial learning rate of momentum SGD, decayed to 0 by a per-step cosine
            over ``epochs`` (a resumed run continues the curve at its step).
        momentum, weight_decay: SGD settings (L2 decay on the trainable weights).
        freeze: train only the classifier (:func:`freeze_backbone`).
        val_split: held-out fraction per class when there is no ``DIR/val``.
        output: folder for checkpoints, history and the plot.
        resume: an ``epoch_NNN.pdparams`` written by this function: restores the
            weights, optimizer and schedule and continues with epoch NNN+1.
        weights: starting weights (variant tag or local file), default the
            registry default; ignored when resuming.
        pretrained: False starts from random weights.
        image_size: train/eval crop size (default the model's input size).
        num_workers: DataLoader worker processes.
        seed: seeds the split, the initial head and the shuffling.
        verbose: hapi verbosity (0 silent, 1 progress bars, 2 one line per epoch).
        skip_bad_images: leave out the images that cannot be decoded (listed in
            ``FinetuneResult.skipped`` and the sidecar) instead of stopping.

    Returns:
        A :class:`FinetuneResult`.

    Raises:
        DatasetError: bad folder layout. ImageReadError: an image (train or
        validation) cannot be decoded; raised before anything is written.
        ValueError: bad arguments or a resume checkpoint that does not match the
        model, classes or epochs.
    """
    import numpy as np
    import paddle

    from paddlehub_cls.api import load_model, model_info

    for arg, value in (("epochs", epochs), ("batch_size", batch_size)):
        _check_positive(arg, value)
    _check_positive("lr", lr, float)
    info = model_info(name)
    # The augmentations draw from Python's and numpy's global generators, the init from paddle's.
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)
    train_ds, val_ds, class_names, data_desc, skipped = _build_datasets(
        data,
        info.name,
        val_split=val_split,
        seed=seed,
        image_size=image_size,
        skip_bad_images=skip_bad_images,
    )
    n = len(class_names)
    start_epoch, history, saved_opt = 0, [], None
    if resume is not None:
        meta = read_checkpoint_meta(resume)
        if meta is None:
            raise ValueError(f"cannot resume from {resume}: its sidecar {sidecar_path(resume)} is missing")
        if meta["model"] != info.name or meta["class_names"] != class_names:
            raise ValueError(
                f"cannot resume from {resume}: it is {meta['model']} on classes {meta['class_names']}, "
                f"this run is {info.name} on {class_names}"
            )
        if bool(meta.get("freeze_backbone")) != bool(freeze):
            raise ValueError(
                f"cannot resume from {resume}: it was trained with freeze_backbone="
                f"{bool(meta.get('freeze_backbone'))}; pass the same setting"
            )
        start_epoch, history = int(meta["epoch"]), list(meta.get("history", []))
        if start_epoch >= epochs:
            raise ValueError(
                f"{resume} has already trained {start_epoch} epochs; pass epochs > {start_epoch}"
            )
        model = load_model(info.name, weights=resume, num_classes=n)
        opt_file = Path(os.fspath(resume)).with_name(meta.get("optimizer_file") or "")
        if opt_file.is_file():
            from paddlehub_cls.formats.pdparams import load_pdparams

            saved_opt = load_pdparams(opt_file)  # restricted unpickler: a checkpoint runs no code
        else:
            logger.warning(
                "no optimizer state %s (kept for the newest epoch only): momentum restarts from zero",
                opt_file,
            )
        init = f"resumed from {resume}"
        image_size = meta.get("image_size") or image_size
    elif weights is not None or pretrained:
        model = load_model(info.name, weights=weights, num_classes=n)
        init = str(weights or info.default_weights)
    else:
        model = load_model(info.name, pretrained=False, num_classes=n)
        init = "random"
    model.class_names = class_names
    trainable = freeze_backbone(model) if freeze else None
    model.train()

    steps_per_epoch = max(1, math.ceil(len(train_ds) / (batch_size * paddle.distributed.get_world_size())))
    total_steps = epochs * steps_per_epoch
    # Closed-form cosine: a resumed run (even one with more epochs) picks up at its step
    # without replaying a recursive schedule.
    schedule = paddle.optimizer.lr.LambdaDecay(
        lr,
        lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)),
        last_epoch=start_epoch * steps_per_epoch - 1,
    )
    params = [p for p in model.parameters() if not p.stop_gradient]
    optimizer = paddle.optimizer.Momentum(
        learning_rate=schedule,
        momentum=momentum,
        parameters=params,
        weight_decay=paddle.regularizer.L2Decay(weight_decay) if weight_decay else None,
    )
    if saved_opt is not None:
        optimizer.set_state_dict(_optimizer_state_for(model, saved_opt))

    out = Path(os.fspath(output)).expanduser()
    if is_writer():
        out.mkdir(parents=True, exist_ok=True)
    size = image_size or int(info.input_size[-1])
    state: Dict[str, Any] = {
        "output": out,
        "model": model,
        "history": history,
        "checkpoints": [],
        "plot": None,
        "start_epoch": start_epoch,
        "has_val": val_ds is not None,
        "meta": {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": info.name,
            "num_classes": n,
            "class_names": class_names,
            "image_size": size,
            "epochs": epochs,
            "freeze_backbone": bool(freeze),
            "trainable": trainable,
            "init": init,
            "data": data_desc,
            "skipped_images": sorted(skipped),
            "batch_size": batch_size,
            "lr": lr,
            "world_size": paddle.distributed.get_world_size(),
        },
    }
    logger.info("fine-tuning %s on %s; %d classes; start from %s", info.name, data_desc, n, init)
    hapi = paddle.Model(model)
    loss, metric = _loss_and_metric()
    hapi.prepare(optimizer, loss, metric)
    with warnings.catch_warnings():
        # paddle's BatchNorm warns on every training forward that it tracks statistics.
        warnings.filterwarnings("ignore", message="When training, we now always track global mean")
        # hapi's own train_batch copies its label tensors with paddle.to_tensor, which warns.
        warnings.filterwarnings("ignore", message="To copy construct from a tensor")
        hapi.fit(
            train_ds,
            val_ds,
            epochs=epochs - start_epoch,
            batch_size=batch_size,
            shuffle=True,
            verbose=verbose,
            num_workers=num_workers,
            callbacks=[epoch_callback(state)],
            log_freq=10,
        )
    model.eval()
    best = None
    if state["checkpoints"]:
        scored = [(r.get("val_acc", r.get("train_acc", 0.0)), r["epoch"]) for r in history]
        best_epoch = max(scored, key=lambda t: (t[0], t[1]))[1]
        best = out / f"epoch_{best_epoch:03d}.pdparams"
    return FinetuneResult(
        out, class_names, history, state["checkpoints"], best, state["plot"], data_desc, dict(skipped)
    )


# ----------------------------------------------------------------------- CLI


def add_parsers(subparsers: "argparse._SubParsersAction") -> None:
    """Register ``finetune`` on the ``paddlehub-cls`` argument parser."""
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a model on folders of images",
        description=(
            "Fine-tune NAME on DIR (one sub-folder of images per class, or DIR/train and DIR/val). "
            "Writes epoch_NNN.pdparams + epoch_NNN.json per epoch, history.json and curves.png to --output. "
            "Runs unchanged under python -m paddle.distributed.launch."
        ),
    )
    p.add_argument("name", metavar="NAME", help="model name, e.g. MobileNetV1")
    p.add_argument("--data", required=True, metavar="DIR", help="image folder, one sub-folder per class")
    p.add_argument("--epochs", type=int, default=5, metavar="N", help="total epochs (default 5)")
    p.add_argument(
        "--batch-size", type=int, default=32, metavar="B", help="images per step and process (default 32)"
    )
    p.add_argument(
        "--lr",
        type=float,
        default=0.01,
        metavar="LR",
        help="initial learning rate, cosine-decayed (default 0.01)",
    )
    p.add_argument("--freeze-backbone", action="store_true", help="train only the new classifier")
    p.add_argument(
        "--val-split",
        type=float,
        default=0.2,
        metavar="F",
        help="fraction of each class held out for validation when DIR/val is absent (default 0.2)",
    )
    p.add_argument(
        "--output", default="finetune_output", metavar="DIR", help="output folder (default finetune_output)"
    )
    p.add_argument(
        "--resume", default=None, metavar="CKPT", help="continue from an epoch_NNN.pdparams of a run"
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="TAG_OR_PATH",
        help="starting weights: variant tag or local file (default: the registry default)",
    )
    p.add_argument("--no-pretrained", action="store_true", help="start from random weights")
    p.add_argument(
        "--image-size", type=int, default=None, metavar="S", help="crop size (default the model's)"
    )
    p.add_argument(
        "--num-workers", type=int, default=0, metavar="N", help="DataLoader worker processes (default 0)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the split, head init and shuffling (default 0)",
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="train without the images that cannot be decoded (listed at the end) instead of stopping",
    )
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")
    p.set_defaults(handler=run_finetune_command)


def run_finetune_command(args: argparse.Namespace, out: Any = None, err: Any = None) -> int:
    """Run ``paddlehub-cls finetune``; returns the exit status."""
    out = out or sys.stdout
    result = finetune(
        args.name,
        args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        freeze=args.freeze_backbone,
        val_split=args.val_split,
        output=args.output,
        resume=args.resume,
        weights=args.weights,
        pretrained=not args.no_pretrained,
        image_size=args.image_size,
        num_workers=args.num_workers,
        seed=args.seed,
        verbose=2 if args.quiet else 1,
        skip_bad_images=args.skip_bad_images,
    )
    if not is_writer():
        return 0
    print(f"data: {result.data}", file=out)
    for row in result.history:
        cells = [f"epoch {row['epoch']}"] + [
            f"{k} {row[k]:.4f}" for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in row
        ]
        print("  " + ", ".join(cells), file=out)
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint}", file=out)
        print(
            f"load it with: load_model({args.name!r}, weights={str(result.best_checkpoint)!r}, "
            f"num_classes={len(result.class_names)})",
            file=out,
        )
    if result.plot is not None:
        print(f"curves: {result.plot}", file=out)
    if result.skipped:
        n = len(result.skipped)
        print(f"skipped {n} unreadable image{'s' if n > 1 else ''}:", file=out)
        for path in sorted(result.skipped):
            print(f"  {path}: {result.skipped[path]}", file=out)
    return 0
