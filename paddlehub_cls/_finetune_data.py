"""Fine-tuning data: an image folder (one sub-folder per class) as train and validation datasets."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import DatasetError, ImageReadError

__all__ = ["build_datasets", "find_unreadable"]

logger = logging.getLogger(__name__)


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
    _check_classes(ds, root, skipped=0)
    return ds


def _check_classes(ds: Any, root: Path, skipped: int) -> None:
    counts = [0] * len(ds.classes)
    for _, t in ds.samples:
        counts[t] += 1
    empty = [c for c, n in zip(ds.classes, counts) if n == 0]
    if empty:
        what = f"readable image ({skipped} unreadable skipped)" if skipped else "image file"
        raise DatasetError(
            f"class folder(s) {', '.join(repr(c) for c in empty)} under {str(root)!r} hold no {what}; "
            f"remove them or add images"
        )
    if len(ds.classes) < 2:
        raise DatasetError(
            f"{str(root)!r} has one class folder ({ds.classes[0]!r}); a classifier needs at least 2"
        )


def find_unreadable(paths: Sequence[str]) -> Dict[str, str]:
    """Decode every image once and return ``{path: reason}`` for those that cannot be read.

    A file that fails inside a DataLoader worker kills its queue and leaves training blocked,
    so fine-tuning checks every file before the first step. Decoding releases the GIL, so a
    few threads share the work.
    """
    from concurrent.futures import ThreadPoolExecutor

    from paddlehub_cls.predict import read_image

    def reason(path: str) -> Optional[str]:
        try:
            read_image(path)
        except ImageReadError as err:
            return str(err)
        return None

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(reason, paths))
    return {p: r for p, r in zip(paths, reasons) if r is not None}


def _drop_unreadable(datasets: Sequence[Tuple[Any, Path]], skip: bool) -> Dict[str, str]:
    paths = [p for ds, _ in datasets for p, _ in ds.samples]
    bad = find_unreadable(paths)
    if bad and not skip:
        first, reason = next(iter(bad.items()))
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ImageReadError(
            f"{reason}{more}; {len(bad)} of {len(paths)} images cannot be read: fix or delete them, or pass "
            f"--skip-bad-images (Python: skip_bad_images=True) to train without them"
        )
    for path, reason in bad.items():
        logger.warning("skipping unreadable image: %s", reason)
    for ds, root in datasets:
        ds.samples = [s for s in ds.samples if s[0] not in bad]
        ds.targets = [t for _, t in ds.samples]
        _check_classes(ds, root, skipped=len(bad))
    return bad


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
    skip_bad_images: bool = False,
) -> Tuple[Any, Optional[Any], List[str], str]:
    """Train and validation datasets of an image folder.

    Every image is decoded once here, so a corrupt file stops the run before training starts
    (a file that fails inside the data loader would leave it blocked).

    Args:
        data: ``DIR`` with one sub-folder per class, or with ``train/`` and ``val/``
            each holding the same class sub-folders.
        model_or_cfg: model name, network or config for :func:`create_transform`.
        val_split: fraction of each class held out for validation (0 for none);
            ignored when ``DIR/train`` and ``DIR/val`` exist.
        seed: seed of the split (the same seed gives the same split).
        image_size: crop size (default the model's).
        skip_bad_images: leave out the files that cannot be decoded (each logged as a
            warning) instead of raising.

    Returns:
        ``(train, val or None, class_names, description)``; items are
        ``(CHW float32 array, int64 label of shape [1])``.

    Raises:
        DatasetError: the folder layout is wrong (the message says what to change).
        ImageReadError: a file cannot be decoded and ``skip_bad_images`` is False; the
            message names it.
    """
    return _build_datasets(
        data,
        model_or_cfg,
        val_split=val_split,
        seed=seed,
        image_size=image_size,
        skip_bad_images=skip_bad_images,
    )[:4]


def _build_datasets(
    data: PathLike,
    model_or_cfg: Any,
    *,
    val_split: float,
    seed: int,
    image_size: Optional[int],
    skip_bad_images: bool,
) -> Tuple[Any, Optional[Any], List[str], str, Dict[str, str]]:
    """:func:`build_datasets` plus ``{path: reason}`` of the files skipped."""
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
        bad = _drop_unreadable([(train, root / "train"), (val, root / "val")], skip_bad_images)
        desc = f"{root}/train ({len(train)} images) and {root}/val ({len(val)})" + _skipped_note(bad)
        return train, val, list(train.classes), desc, bad
    full_train = _class_folder_dataset(root, train_tf)
    bad = _drop_unreadable([(full_train, root)], skip_bad_images)
    if val_split == 0:
        desc = f"{root} ({len(full_train)} images, no validation{_skipped_note(bad, ';')})"
        return full_train, None, list(full_train.classes), desc, bad
    # The same files seen through the evaluation transform (a shallow copy shares the sample list).
    full_eval = copy.copy(full_train)
    full_eval.transform = eval_tf
    targets = [t for _, t in full_train.samples]
    train_idx, val_idx = _stratified_split(targets, val_split, seed)
    desc = (
        f"{root}: {len(train_idx)} train / {len(val_idx)} val images "
        f"(val_split {val_split}, seed {seed}, stratified by class{_skipped_note(bad, ';')})"
    )
    return (
        paddle.io.Subset(full_train, train_idx),
        paddle.io.Subset(full_eval, val_idx),
        list(full_train.classes),
        desc,
        bad,
    )


def _skipped_note(bad: Dict[str, str], sep: str = ";") -> str:
    if not bad:
        return ""
    return f"{sep} {len(bad)} unreadable image{'s' if len(bad) > 1 else ''} skipped"
