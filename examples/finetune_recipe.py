"""Fine-tune a pretrained classifier on your own image folders with paddle.Model (hapi).

The same steps that ``paddlehub-cls finetune`` runs, written out so you can change any of
them. Data layout: one sub-folder of images per class::

    DATA/cat/001.jpg  DATA/cat/002.jpg ...  DATA/dog/001.jpg ...

Run on one process::

    python examples/finetune_recipe.py --model ResNet50 --data DATA --epochs 5

or data-parallel, unchanged (GPUs, or CPU processes talking over gloo)::

    python -m paddle.distributed.launch --nproc_per_node 2 examples/finetune_recipe.py \
        --model ResNet50 --data DATA

No data at hand? ``--demo-data`` first writes a small three-class set of coloured shapes to
``--data`` (``--demo-data-only`` writes it and stops). ``--no-pretrained`` starts from random
weights (no download).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import paddle
import paddle.distributed as dist
from PIL import Image, ImageDraw

from paddlehub_cls import load_model
from paddlehub_cls.transforms import create_transform


def make_demo_dataset(root: Path, per_class: int = 40, size: int = 64, seed: int = 0) -> Path:
    """Three classes (red circles, green squares, blue stripes) on noisy grey backgrounds."""
    rng = np.random.default_rng(seed)
    classes = {"red_circles": (200, 40, 40), "green_squares": (40, 180, 60), "blue_stripes": (40, 70, 210)}
    for kind, colour in classes.items():
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            grey = int(rng.integers(60, 200))
            img = Image.fromarray(
                np.clip(grey + rng.integers(-25, 26, (size, size, 3)), 0, 255).astype(np.uint8)
            )
            draw = ImageDraw.Draw(img)
            fg = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in colour)
            if kind == "blue_stripes":
                w = int(rng.integers(3, 7))
                for y in range(-int(rng.integers(0, 2 * w)), size, 2 * w):
                    draw.rectangle([0, y, size, y + w - 1], fill=fg)
            else:
                for _ in range(3):
                    r = int(rng.integers(max(2, size // 10), max(3, size // 5)))
                    cx, cy = (int(v) for v in rng.integers(r, size - r, size=2))
                    shape = draw.ellipse if kind == "red_circles" else draw.rectangle
                    shape([cx - r, cy - r, cx + r, cy + r], fill=fg)
            img.save(folder / f"{i:03d}.png")
    return root


class Folder(paddle.vision.datasets.DatasetFolder):
    """DatasetFolder yielding (CHW float32 image, int64 label of shape [1]) as paddle.Model expects."""

    def __getitem__(self, index):
        path, label = self.samples[index]
        return self.transform(self.loader(path)), np.array([label], dtype="int64")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ResNet50")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--demo-data", action="store_true", help="write a small demo dataset to --data first")
    p.add_argument("--demo-data-only", action="store_true", help="write the demo dataset to --data and stop")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--val-split", type=float, default=0.2)
    p.add_argument("--freeze-backbone", action="store_true")
    p.add_argument("--no-pretrained", action="store_true")
    p.add_argument("--output", type=Path, default=Path("recipe_output"))
    args = p.parse_args(argv)
    if args.demo_data_only:
        make_demo_dataset(args.data)
        print(f"wrote {len(list(args.data.glob('*/*.png')))} images to {args.data}")
        return {}

    if args.demo_data and dist.get_rank() == 0 and not args.data.exists():
        make_demo_dataset(args.data)
    if dist.get_world_size() > 1:
        dist.init_parallel_env()
        dist.barrier()  # the other ranks wait for rank 0's demo data

    # 1. Data: one sub-folder per class, a fixed-seed split, the model's own preprocessing.
    paddle.seed(0)
    train_tf = create_transform(args.model, train=True, image_size=args.image_size)
    eval_tf = create_transform(args.model, train=False, image_size=args.image_size)
    full = Folder(str(args.data), transform=train_tf)
    classes = full.classes
    order = np.random.default_rng(0).permutation(len(full))
    n_val = int(len(full) * args.val_split)
    train = paddle.io.Subset(full, order[n_val:].tolist())
    val = paddle.io.Subset(Folder(str(args.data), transform=eval_tf), order[:n_val].tolist())

    # 2. Network: pretrained weights with a new len(classes)-way head.
    net = load_model(args.model, pretrained=not args.no_pretrained, num_classes=len(classes))
    if args.freeze_backbone:
        for key, param in net.named_parameters():
            if not key.startswith(tuple(f"{a}." for a in net.classifier_attrs)):
                param.stop_gradient = True
    net.train()

    # 3. paddle.Model: optimizer, loss, metric; fit() shows progress bars and evaluates each epoch.
    steps = max(1, -(-len(train) // (args.batch_size * dist.get_world_size())))
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(args.lr, T_max=args.epochs * steps)
    opt = paddle.optimizer.Momentum(
        learning_rate=schedule,
        momentum=0.9,
        weight_decay=paddle.regularizer.L2Decay(1e-4),
        parameters=[p for p in net.parameters() if not p.stop_gradient],
    )
    model = paddle.Model(net)
    model.prepare(opt, paddle.nn.CrossEntropyLoss(), paddle.metric.Accuracy())
    model.fit(train, val, epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=1)
    result = model.evaluate(val, batch_size=args.batch_size, verbose=0)

    # 4. Save our own state_dict (not hapi's prefix files) plus the class names, on rank 0 only.
    ckpt = args.output / "model.pdparams"
    if dist.get_rank() == 0:
        args.output.mkdir(parents=True, exist_ok=True)
        paddle.save(net.state_dict(), str(ckpt))
        (args.output / "classes.json").write_text(json.dumps({"model": args.model, "class_names": classes}))
        # 5. It loads back by name: the layout ("native") and head size come from the file.
        again = load_model(args.model, weights=ckpt, num_classes=len(classes))
        print(
            f"val accuracy {float(np.ravel(result['acc'])[0]):.3f}; saved {ckpt}; "
            f"reloaded with {again.num_classes} classes ({again.load_report.layout} layout)"
        )
    return {"val_acc": float(np.ravel(result["acc"])[0]), "checkpoint": ckpt, "classes": classes}


if __name__ == "__main__":
    main()
