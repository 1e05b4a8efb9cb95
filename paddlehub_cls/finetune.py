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
import json
import logging
import math
import os
import random
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

# DatasetError lives in errors.py; it stays importable from here.
from paddlehub_cls.errors import DatasetError, WeightsFormatError

if TYPE_CHECKING:  # pragma: no cover
    from paddle import nn

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "FinetuneResult",
    "add_parsers",
    "apply_checkpoint_meta",
    "build_datasets",
    "finetune",
    "freeze_backbone",
    "load_checkpoint",
    "read_checkpoint_meta",
]

CHECKPOINT_FORMAT = "paddlehub_cls-finetune-checkpoint"
CHECKPOINT_VERSION = 1
#: weight of each auxiliary loss (GoogLeNet), as in the 2019 training script
AUX_LOSS_WEIGHT = 0.3

PathLike = Union[str, "os.PathLike[str]"]


# ----------------------------------------------------------------------- checkpoints


def sidecar_path(checkpoint: PathLike) -> Path:
    """``epoch_003.pdparams`` -> ``epoch_003.json``."""
    return Path(os.fspath(checkpoint)).with_suffix(".json")


def read_checkpoint_meta(checkpoint: PathLike) -> Optional[Dict[str, Any]]:
    """The JSON sidecar of a fine-tuned checkpoint, or None when there is none.

    Raises:
        WeightsFormatError: the sidecar exists but is not a checkpoint sidecar.
    """
    path = sidecar_path(checkpoint)
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsFormatError(f"checkpoint sidecar {path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise WeightsFormatError(
            f'{path} is not a paddlehub_cls fine-tuning sidecar (expected "format": {CHECKPOINT_FORMAT!r}); '
            f"rename it if it belongs to something else"
        )
    names = meta.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) < 1:
        raise WeightsFormatError(f"{path}: class_names must be a non-empty list of strings, got {names!r}")
    return meta


def apply_checkpoint_meta(model: Any, meta: Dict[str, Any]) -> Any:
    """Attach a sidecar's class names and training image size to a loaded network."""
    names = list(meta["class_names"])
    if model.num_classes != len(names):
        raise WeightsFormatError(
            f"checkpoint sidecar lists {len(names)} classes but the network has {model.num_classes} outputs"
        )
    model.class_names = names
    cfg = dict(model.pretrained_cfg or {})
    cfg["class_names"] = names
    if meta.get("image_size"):
        size = int(meta["image_size"])
        cfg["input_size"] = [cfg.get("input_size", [3])[0], size, size]
    model.pretrained_cfg = cfg
    return model


def load_checkpoint(checkpoint: PathLike, **kwargs: Any) -> "nn.Layer":
    """Load a fine-tuned checkpoint by its sidecar: model name, head size and class names.

    Equivalent to ``load_model(meta["model"], weights=checkpoint,
    num_classes=len(meta["class_names"]))`` plus the class names.

    Raises:
        FileNotFoundError: no sidecar next to the checkpoint (use ``load_model``
            with the model name instead).
    """
    from paddlehub_cls.api import load_model

    meta = read_checkpoint_meta(checkpoint)
    if meta is None:
        raise FileNotFoundError(
            f"no sidecar {sidecar_path(checkpoint)} next to {checkpoint}; load it with "
            f"load_model(NAME, weights={str(checkpoint)!r}, num_classes=N)"
        )
    model = load_model(meta["model"], weights=checkpoint, num_classes=len(meta["class_names"]), **kwargs)
    return apply_checkpoint_meta(model, meta)


def _atomic_write_bytes(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8"))


def _optimizer_state_by_key(model: Any, optimizer: Any) -> Dict[str, Any]:
    """Optimizer accumulators keyed ``<state_dict key>/<accumulator>``.

    Paddle names accumulators after the parameters' global names (``linear_3.w_0_velocity_0``),
    which depend on how many layers the process built before; the state_dict key does not.
    """
    state = dict(optimizer.state_dict())
    state.pop("LR_Scheduler", None)  # the schedule is a closed form of the step, rebuilt on resume
    by_name = sorted(((p.name, k) for k, p in model.named_parameters()), key=lambda t: -len(t[0]))
    out: Dict[str, Any] = {}
    for acc_key, value in state.items():
        if not hasattr(value, "numpy"):
            continue
        for pname, key in by_name:
            if acc_key.startswith(pname + "_"):
                out[f"{key}/{acc_key[len(pname) + 1:]}"] = value.numpy()
                break
    return out


def _optimizer_state_for(model: Any, saved: Dict[str, Any]) -> Dict[str, Any]:
    params = dict(model.named_parameters())
    state: Dict[str, Any] = {}
    for k, value in saved.items():
        key, _, acc = k.rpartition("/")
        if key not in params:
            raise WeightsFormatError(
                f"optimizer state names parameter {key!r}, which this network does not have"
            )
        state[f"{params[key].name}_{acc}"] = value
    return state


# ----------------------------------------------------------------------- data


def _class_folder_dataset(root: Path, transform: Any) -> Any:
    import numpy as np
    from paddle.vision.datasets import DatasetFolder

    from paddlehub_cls.predict import IMAGE_SUFFIXES, read_image

    class ClassFolderDataset(DatasetFolder):
        """DatasetFolder returning (CHW float32, int64 label of shape [1]); bad files are named."""

        def __getitem__(self, index: int) -> Tuple[Any, Any]:
            path, target = self.samples[index]
            return self.transform(read_image(path)), np.array([target], dtype="int64")

    if not root.is_dir():
        raise DatasetError(f"data folder {str(root)!r} does not exist or is not a folder")
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not subdirs:
        raise DatasetError(
            f"data folder {str(root)!r} has no sub-folders; put the images of each class in their own "
            f"sub-folder: {root}/<class name>/*.jpg"
        )
    try:
        ds = ClassFolderDataset(str(root), loader=read_image, extensions=IMAGE_SUFFIXES, transform=transform)
    except RuntimeError as err:  # DatasetFolder's "Found 0 directories" when no image at all
        raise DatasetError(
            f"no image files ({', '.join(IMAGE_SUFFIXES)}) under the class folders of {str(root)!r}"
        ) from err
    counts = [0] * len(ds.classes)
    for _, t in ds.samples:
        counts[t] += 1
    empty = [c for c, n in zip(ds.classes, counts) if n == 0]
    if empty:
        raise DatasetError(
            f"class folder(s) {', '.join(repr(c) for c in empty)} under {str(root)!r} hold no image file; "
            f"remove them or add images"
        )
    if len(ds.classes) < 2:
        raise DatasetError(
            f"{str(root)!r} has one class folder ({ds.classes[0]!r}); a classifier needs at least 2"
        )
    return ds


def _stratified_split(targets: Sequence[int], val_split: float, seed: int) -> Tuple[List[int], List[int]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in sorted(set(targets)):
        idx = np.array([i for i, t in enumerate(targets) if t == cls])
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_split))
        if val_split > 0 and len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)  # every class in both parts
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return sorted(train), sorted(val)


def build_datasets(
    data: PathLike,
    model_or_cfg: Any,
    *,
    val_split: float = 0.2,
    seed: int = 0,
    image_size: Optional[int] = None,
) -> Tuple[Any, Optional[Any], List[str], str]:
    """Train and validation datasets of an image folder.

    Args:
        data: ``DIR`` with one sub-folder per class, or with ``train/`` and ``val/``
            each holding the same class sub-folders.
        model_or_cfg: model name, network or config for :func:`create_transform`.
        val_split: fraction of each class held out for validation (0 for none);
            ignored when ``DIR/train`` and ``DIR/val`` exist.
        seed: seed of the split (the same seed gives the same split).
        image_size: crop size (default the model's).

    Returns:
        ``(train, val or None, class_names, description)``; items are
        ``(CHW float32 array, int64 label of shape [1])``.

    Raises:
        DatasetError: the folder layout is wrong (the message says what to change).
    """
    import paddle

    from paddlehub_cls.transforms import create_transform

    root = Path(os.fspath(data)).expanduser()
    if isinstance(val_split, bool) or not isinstance(val_split, (int, float)) or not 0 <= val_split < 1:
        raise ValueError(f"val_split must be in [0, 1), got {val_split!r}")
    train_tf = create_transform(model_or_cfg, train=True, image_size=image_size)
    eval_tf = create_transform(model_or_cfg, train=False, image_size=image_size)
    if (root / "train").is_dir() and (root / "val").is_dir():
        train = _class_folder_dataset(root / "train", train_tf)
        val = _class_folder_dataset(root / "val", eval_tf)
        if val.classes != train.classes:
            raise DatasetError(
                f"{root}/train and {root}/val must hold the same class folders; train has {train.classes}, "
                f"val has {val.classes}"
            )
        return (
            train,
            val,
            list(train.classes),
            f"{root}/train ({len(train)} images) and {root}/val ({len(val)})",
        )
    full_train = _class_folder_dataset(root, train_tf)
    if val_split == 0:
        return full_train, None, list(full_train.classes), f"{root} ({len(full_train)} images, no validation)"
    full_eval = _class_folder_dataset(root, eval_tf)
    targets = [t for _, t in full_train.samples]
    train_idx, val_idx = _stratified_split(targets, val_split, seed)
    desc = (
        f"{root}: {len(train_idx)} train / {len(val_idx)} val images "
        f"(val_split {val_split}, seed {seed}, stratified by class)"
    )
    return (
        paddle.io.Subset(full_train, train_idx),
        paddle.io.Subset(full_eval, val_idx),
        list(full_train.classes),
        desc,
    )


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
    """

    output: Path
    class_names: List[str]
    history: List[Dict[str, Any]] = field(default_factory=list)
    checkpoints: List[Path] = field(default_factory=list)
    best_checkpoint: Optional[Path] = None
    plot: Optional[Path] = None
    data: str = ""


def _is_writer() -> bool:
    import paddle.distributed as dist

    return dist.get_rank() == 0


def _epoch_callback(state: Dict[str, Any]) -> Any:
    from paddle.hapi.callbacks import Callback

    class CheckpointPlot(Callback):
        """Averages the losses per epoch, then writes the checkpoint, sidecar, history and plot."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.sums = {"train": [0.0, 0], "eval": [0.0, 0]}
            self.row: Dict[str, Any] = {"epoch": state["start_epoch"] + epoch + 1}

        def _accumulate(self, mode: str, logs: Any) -> None:
            loss, n = logs.get("loss"), int(logs.get("batch_size", 1))
            if loss is not None:
                value = float(loss[0] if isinstance(loss, (list, tuple)) else loss)
                self.sums[mode][0] += value * n
                self.sums[mode][1] += n

        def on_train_batch_end(self, step: int, logs: Any = None) -> None:
            self._accumulate("train", logs or {})

        def on_eval_batch_end(self, step: int, logs: Any = None) -> None:
            self._accumulate("eval", logs or {})

        def on_eval_begin(self, logs: Any = None) -> None:
            self.sums["eval"] = [0.0, 0]

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            total, n = self.sums["train"]
            self.row.update(
                train_loss=total / max(n, 1),
                train_acc=float((logs or {}).get("acc", float("nan"))),
                lr=float(self.model._optimizer.get_lr()),
            )
            if not state["has_val"]:
                self._finish()

        def on_eval_end(self, logs: Any = None) -> None:
            total, n = self.sums["eval"]
            self.row.update(val_loss=total / max(n, 1), val_acc=float((logs or {}).get("acc", float("nan"))))
            self._finish()

        def _finish(self) -> None:
            state["history"].append(self.row)
            if _is_writer():
                _save_epoch(state, self.row, self.model._optimizer)

    return CheckpointPlot()


def _save_epoch(state: Dict[str, Any], row: Dict[str, Any], optimizer: Any) -> None:
    import paddle

    out: Path = state["output"]
    model = state["model"]
    stem = f"epoch_{row['epoch']:03d}"
    weights = out / f"{stem}.pdparams"
    _atomic_write_bytes(weights, lambda tmp: paddle.save(model.state_dict(), str(tmp)))
    acc_state = _optimizer_state_by_key(model, optimizer)
    _atomic_write_bytes(out / f"{stem}.pdopt", lambda tmp: paddle.save(acc_state, str(tmp)))
    # Optimizer state is as large as the weights: keep it for the newest epoch only.
    for old in out.glob("epoch_*.pdopt"):
        if old.name != f"{stem}.pdopt":
            old.unlink(missing_ok=True)
    meta = dict(
        state["meta"],
        epoch=row["epoch"],
        metrics=row,
        history=list(state["history"]),
        weights_file=weights.name,
        optimizer_file=f"{stem}.pdopt",
    )
    _write_json(sidecar_path(weights), meta)
    _write_json(
        out / "history.json",
        {"model": meta["model"], "class_names": meta["class_names"], "history": state["history"]},
    )
    state["checkpoints"].append(weights)
    state["plot"] = plot_history(state["history"], out / "curves.png", title=f"{meta['model']} fine-tuning")
    logger.info("epoch %d: saved %s", row["epoch"], weights)


def plot_history(history: Sequence[Dict[str, Any]], path: PathLike, *, title: str = "") -> Optional[Path]:
    """Save loss and accuracy per epoch as a PNG (matplotlib, Agg; no global backend change).

    Returns:
        The PNG path, or None (with a warning) when matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        logger.warning("matplotlib is not installed, so no curves.png; pip install matplotlib")
        return None
    path = Path(os.fspath(path))
    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    for ax, metric, label in (
        (fig.add_subplot(1, 2, 1), "loss", "loss"),
        (fig.add_subplot(1, 2, 2), "acc", "accuracy"),
    ):
        for split, style in (("train", "o-"), ("val", "s--")):
            ys = [r.get(f"{split}_{metric}") for r in history]
            if any(y is not None and not math.isnan(y) for y in ys):
                ax.plot(epochs, [float("nan") if y is None else y for y in ys], style, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
        if metric == "acc":
            ax.set_ylim(0, 1.02)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _atomic_write_bytes(path, lambda tmp: fig.savefig(str(tmp), format="png"))
    return path


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

    Returns:
        A :class:`FinetuneResult`.

    Raises:
        DatasetError: bad folder layout. ValueError: bad arguments or a resume
        checkpoint that does not match the model, classes or epochs.
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
    train_ds, val_ds, class_names, data_desc = build_datasets(
        data, info.name, val_split=val_split, seed=seed, image_size=image_size
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
    if _is_writer():
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
            callbacks=[_epoch_callback(state)],
            log_freq=10,
        )
    model.eval()
    best = None
    if state["checkpoints"]:
        scored = [(r.get("val_acc", r.get("train_acc", 0.0)), r["epoch"]) for r in history]
        best_epoch = max(scored, key=lambda t: (t[0], t[1]))[1]
        best = out / f"epoch_{best_epoch:03d}.pdparams"
    return FinetuneResult(out, class_names, history, state["checkpoints"], best, state["plot"], data_desc)


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
    )
    if not _is_writer():
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
    return 0
