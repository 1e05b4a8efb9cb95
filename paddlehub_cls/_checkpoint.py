"""Fine-tuning checkpoints: the JSON sidecar, loading a checkpoint back, and what each epoch writes.

``epoch_NNN.pdparams`` is the network's own ``state_dict``; ``epoch_NNN.json`` (the
sidecar) names the model, the class names and the training run; ``epoch_NNN.pdopt``
holds the optimizer state keyed by state_dict key, for ``--resume``; ``history.json``
and ``curves.png`` follow the run. The hapi callback of :func:`epoch_callback` writes
them on rank 0. Used by :mod:`paddlehub_cls.finetune` (which re-exports the public
names) and by ``predict`` for a checkpoint's class names. Imports paddle and
matplotlib only inside the functions that need them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from paddlehub_cls._cache import atomic_write_json
from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import WeightsFormatError

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "apply_checkpoint_meta",
    "epoch_callback",
    "is_writer",
    "plot_history",
    "read_checkpoint_meta",
    "save_epoch",
    "sidecar_path",
]

CHECKPOINT_FORMAT = "paddlehub_cls-finetune-checkpoint"
CHECKPOINT_VERSION = 1


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


def _atomic_write_bytes(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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


def save_epoch(state: Dict[str, Any], row: Dict[str, Any], optimizer: Any) -> None:
    """Write one epoch's checkpoint, optimizer state, sidecar, ``history.json`` and ``curves.png``.

    Args:
        state: the run's state kept by :func:`paddlehub_cls.finetune.finetune` (output folder,
            network, history, sidecar fields); ``checkpoints`` and ``plot`` are updated.
        row: the epoch's metrics (``epoch``, losses, accuracies, lr).
        optimizer: the optimizer whose accumulators go to ``epoch_NNN.pdopt``.
    """
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
    # Indented for people reading them, in the order written.
    atomic_write_json(sidecar_path(weights), meta, indent=2, sort_keys=False, end="\n")
    atomic_write_json(
        out / "history.json",
        {"model": meta["model"], "class_names": meta["class_names"], "history": state["history"]},
        indent=2,
        sort_keys=False,
        end="\n",
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
        logger.warning(
            'matplotlib is not installed, so no curves.png; install the plot extra: pip install "paddlehub_cls[plot]"'
        )
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


def is_writer() -> bool:
    """True on the process that writes files (rank 0; the only one without distribution)."""
    import paddle.distributed as dist

    return dist.get_rank() == 0


def epoch_callback(state: Dict[str, Any]) -> Any:
    """A ``paddle.hapi`` callback that averages each epoch's losses and calls :func:`save_epoch` on rank 0.

    Args:
        state: as for :func:`save_epoch`; ``start_epoch`` numbers the epochs of a resumed run and
            ``has_val`` says whether an evaluation ends each epoch.
    """
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
            if is_writer():
                save_epoch(state, self.row, self.model._optimizer)

    return CheckpointPlot()
