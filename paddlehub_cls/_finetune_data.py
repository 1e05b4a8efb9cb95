"""Fine-tuning data: an image folder (one sub-folder per class) as train and validation datasets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

from paddlehub_cls.errors import DatasetError

__all__ = ["build_datasets"]

PathLike = Union[str, "os.PathLike[str]"]


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
