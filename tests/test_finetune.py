"""Fine-tuning: data split, checkpoints that load back, resume, frozen backbone, 2-process launch."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from paddlehub_cls import load_model
from paddlehub_cls.cli import build_parser
from paddlehub_cls.errors import ImageReadError
from paddlehub_cls.finetune import (
    DatasetError,
    _loss_and_metric,
    build_datasets,
    finetune,
    freeze_backbone,
    load_checkpoint,
    plot_history,
    read_checkpoint_meta,
)
from paddlehub_cls.formats.pdparams import load_pdparams
from paddlehub_cls.predict import predict

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["blue_stripes", "green_squares", "red_circles"]


def _load_recipe():
    spec = importlib.util.spec_from_file_location("finetune_recipe", ROOT / "examples" / "finetune_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECIPE = _load_recipe()


def make_shapes(root: Path, per_class: int = 40, size: int = 64, seed: int = 0) -> Path:
    """Three classes, each its own shape and colour family, on noisy grey backgrounds."""
    return RECIPE.make_demo_dataset(root, per_class=per_class, size=size, seed=seed)


def _cli(argv):
    out = io.StringIO()
    args = build_parser().parse_args(argv)
    assert args.handler(args, out) == 0
    return out.getvalue()


def test_end_to_end_finetune_resume_load_and_predict(tmp_path):
    data = make_shapes(tmp_path / "shapes")
    out = tmp_path / "run"
    # ResNet18 from random weights (no download): 3 epochs, then resume up to 5 through the CLI.
    first = finetune(
        "ResNet18",
        data,
        epochs=3,
        batch_size=16,
        lr=0.01,
        pretrained=False,
        image_size=64,
        output=out,
        verbose=0,
    )
    assert [r["epoch"] for r in first.history] == [1, 2, 3]
    text = _cli(
        [
            "finetune",
            "ResNet18",
            "--data",
            str(data),
            "--epochs",
            "5",
            "--batch-size",
            "16",
            "--lr",
            "0.01",
            "--image-size",
            "64",
            "--output",
            str(out),
            "--quiet",
            "--resume",
            str(out / "epoch_003.pdparams"),
        ]
    )
    assert "best checkpoint:" in text and "curves:" in text

    meta = read_checkpoint_meta(out / "epoch_005.pdparams")
    assert meta["model"] == "ResNet18" and meta["class_names"] == sorted(CLASSES) and meta["epoch"] == 5
    assert meta["data"].endswith("96 train / 24 val images (val_split 0.2, seed 0, stratified by class)")
    history = meta["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    assert history[:3] == json.loads((out / "epoch_003.json").read_text())["history"]
    # The resumed epochs follow the cosine over 5 epochs: after epoch 4 the lr is 0.01 * (1 + cos(0.8 pi)) / 2.
    assert history[3]["lr"] == pytest.approx(0.01 * (1 + np.cos(0.8 * np.pi)) / 2, rel=1e-5)
    final_acc = history[-1]["val_acc"]
    assert final_acc >= 0.8, history  # chance is 1/3

    for e in (1, 2, 3, 4, 5):
        assert (out / f"epoch_{e:03d}.pdparams").is_file() and (out / f"epoch_{e:03d}.json").is_file()
    assert sorted(p.name for p in out.glob("*.pdopt")) == ["epoch_005.pdopt"]
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert json.loads((out / "history.json").read_text())["history"] == history

    # The checkpoint is our native state_dict: load_model detects the layout and the head.
    model = load_model("ResNet18", weights=out / "epoch_005.pdparams", num_classes=3)
    assert model.num_classes == 3 and model.load_report.layout == "native"
    assert model.load_report.reset == []
    # Independent check of the saved weights: classify every image with predict().
    files = sorted(data.glob("*/*.png"))
    results = predict("ResNet18", files, topk=1, weights=str(out / "epoch_005.pdparams"), batch_size=32)
    hits = [res[0]["label"] == f.parent.name for f, res in zip(files, results)]
    assert np.mean(hits) >= 0.8
    again = load_checkpoint(out / "epoch_005.pdparams")
    assert again.class_names == sorted(CLASSES) and again.pretrained_cfg["input_size"] == [3, 64, 64]


def test_frozen_backbone_keeps_pretrained_weights(tmp_path):
    data = make_shapes(tmp_path / "shapes", per_class=4, size=40)
    paddle.seed(1)
    start = tmp_path / "start.pdparams"
    paddle.save(
        load_model("ResNet18", pretrained=False).state_dict(), str(start)
    )  # a local "pretrained" file
    res = finetune(
        "ResNet18",
        data,
        epochs=1,
        batch_size=4,
        lr=0.05,
        weights=start,
        freeze=True,
        image_size=32,
        output=tmp_path / "out",
        verbose=0,
    )
    before = load_pdparams(start)
    after = load_pdparams(res.checkpoints[0])
    assert set(before) == set(after)
    changed = [k for k in before if not k.startswith("fc.") and not np.array_equal(before[k], after[k])]
    assert changed == []  # conv weights and BN running statistics alike
    assert after["fc.weight"].shape == (512, 3) and before["fc.weight"].shape == (512, 1000)
    meta = read_checkpoint_meta(res.checkpoints[0])
    assert meta["freeze_backbone"] is True and meta["trainable"] == ["fc.weight", "fc.bias"]


def test_freeze_backbone_flags_and_batchnorm_mode():
    model = load_model("MobileNetV1", pretrained=False, num_classes=4)
    assert freeze_backbone(model) == ["fc.weight", "fc.bias"]
    grads = {k: p.stop_gradient for k, p in model.named_parameters()}
    assert not grads["fc.weight"] and all(v for k, v in grads.items() if not k.startswith("fc."))
    model.train()
    bn = model.stem.bn
    mean_before = bn._mean.numpy().copy()
    model(paddle.rand([2, 3, 32, 32]) * 5 + 3)
    np.testing.assert_array_equal(bn._mean.numpy(), mean_before)  # stays in inference mode


def test_aux_outputs_are_weighted_and_accuracy_uses_the_main_output():
    loss_fn, metric = _loss_and_metric()
    paddle.seed(0)
    main, aux1, aux2 = (paddle.randn([4, 3]) for _ in range(3))
    label = paddle.to_tensor([[0], [1], [2], [1]], dtype="int64")
    ce = paddle.nn.CrossEntropyLoss()
    want = ce(main, label) + 0.3 * ce(aux1, label) + 0.3 * ce(aux2, label)
    np.testing.assert_allclose(float(loss_fn(main, aux1, aux2, label)), float(want), rtol=1e-6)
    metric.update(metric.compute(main, aux1, aux2, label))
    expected = float(np.mean(main.numpy().argmax(1) == label.numpy()[:, 0]))
    assert metric.accumulate() == pytest.approx(expected)


def test_split_is_deterministic_stratified_and_uses_train_val_folders(tmp_path):
    data = make_shapes(tmp_path / "d", per_class=10, size=24)
    a = build_datasets(data, "ResNet18", val_split=0.3, seed=5, image_size=16)
    b = build_datasets(data, "ResNet18", val_split=0.3, seed=5, image_size=16)
    c = build_datasets(data, "ResNet18", val_split=0.3, seed=6, image_size=16)
    assert a[2] == sorted(CLASSES)
    assert list(a[1].indices) == list(b[1].indices) != list(c[1].indices)
    labels = [a[1].dataset.samples[i][1] for i in a[1].indices]
    assert sorted(labels) == [0] * 3 + [1] * 3 + [2] * 3
    assert not set(a[0].indices) & set(a[1].indices) and len(a[0]) + len(a[1]) == 30
    x, y = a[1][0]
    assert x.shape == (3, 16, 16) and x.dtype == np.float32 and y.dtype == np.int64 and y.shape == (1,)

    split = tmp_path / "split"
    make_shapes(split / "train", per_class=3, size=24)
    make_shapes(split / "val", per_class=2, size=24, seed=1)
    train, val, names, desc = build_datasets(split, "ResNet18", image_size=16)
    assert (len(train), len(val), names) == (9, 6, sorted(CLASSES)) and "train (9 images)" in desc


def test_dataset_errors_say_what_to_fix(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        build_datasets(tmp_path / "nope", "ResNet18")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DatasetError, match="no sub-folders"):
        build_datasets(tmp_path / "flat", "ResNet18")
    one = make_shapes(tmp_path / "one", per_class=2, size=16)
    for kind in ("green_squares", "blue_stripes"):
        for f in (one / kind).iterdir():
            f.unlink()
    with pytest.raises(DatasetError, match="'blue_stripes', 'green_squares'.*hold no image"):
        build_datasets(one, "ResNet18")
    (one / "blue_stripes").rmdir()
    (one / "green_squares").rmdir()
    with pytest.raises(DatasetError, match="needs at least 2"):
        build_datasets(one, "ResNet18")
    bad = make_shapes(tmp_path / "bad", per_class=2, size=16)
    (bad / "red_circles" / "000.png").write_bytes(b"garbage")
    # Found while building, not by a loader thread mid-epoch.
    with pytest.raises(ImageReadError, match=r"000\.png.*skip_bad_images=True"):
        build_datasets(bad, "ResNet18", val_split=0, image_size=16)
    train, _, _, desc = build_datasets(bad, "ResNet18", val_split=0, image_size=16, skip_bad_images=True)
    assert len(train) == 5 and str(bad / "red_circles" / "000.png") not in [p for p, _ in train.samples]
    assert "1 unreadable image skipped" in desc
    with pytest.raises(ValueError, match="val_split"):
        build_datasets(bad, "ResNet18", val_split=1.0)


def _truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _run_cli(argv, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    # The timeout is a hang guard: the loader used to block forever on one corrupt image.
    return subprocess.run(
        [sys.executable, "-m", "paddlehub_cls", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=240,
    )


FINETUNE_ARGV = ["finetune", "ShuffleNetV2", "--epochs", "1", "--batch-size", "4", "--no-pretrained"]
FINETUNE_ARGV += ["--image-size", "32", "--quiet"]


@pytest.mark.parametrize("workers", ["0", "1"])
def test_cli_finetune_on_a_truncated_jpeg_ends_with_one_line_naming_it(tmp_path, workers):
    data = make_shapes(tmp_path / "d", per_class=3, size=32)
    bad = _truncated_jpeg(data / "red_circles" / "broken.jpg")
    out = tmp_path / "run"
    argv = FINETUNE_ARGV + ["--data", str(data), "--output", str(out), "--num-workers", workers]
    proc = _run_cli(argv, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("paddlehub-cls: error: ") and str(bad) in last and "--skip-bad-images" in last
    assert not out.exists(), "nothing may be written for a run that never started"


def test_bad_image_in_the_validation_folder_stops_before_anything_is_written(tmp_path):
    split = tmp_path / "split"
    make_shapes(split / "train", per_class=3, size=24)
    make_shapes(split / "val", per_class=2, size=24, seed=1)
    bad = _truncated_jpeg(split / "val" / "green_squares" / "cut.jpg")
    out = tmp_path / "run"
    with pytest.raises(ImageReadError, match=re.escape(str(bad))):
        finetune("ShuffleNetV2", split, epochs=1, pretrained=False, image_size=24, output=out, verbose=0)
    assert not out.exists()
    res = finetune(
        "ShuffleNetV2",
        split,
        epochs=1,
        batch_size=4,
        pretrained=False,
        image_size=24,
        output=out,
        verbose=0,
        skip_bad_images=True,
    )
    assert list(res.skipped) == [str(bad)] and "truncated" in res.skipped[str(bad)]
    assert "val (6); 1 unreadable image skipped" in res.data  # 2 per class + the truncated file
    assert read_checkpoint_meta(res.checkpoints[0])["skipped_images"] == [str(bad)]


def test_cli_finetune_skip_bad_images_trains_on_the_rest_and_lists_the_skipped(tmp_path):
    data = make_shapes(tmp_path / "d", per_class=3, size=32)
    bad = _truncated_jpeg(data / "blue_stripes" / "broken.jpg")
    garbage = data / "green_squares" / "not_an_image.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "run"
    argv = FINETUNE_ARGV + [
        "--data",
        str(data),
        "--output",
        str(out),
        "--val-split",
        "0",
        "--skip-bad-images",
    ]
    proc = _run_cli(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Sorted by path: blue_stripes/ before green_squares/.
    assert f"skipped 2 unreadable images:\n  {bad}: " in proc.stdout and f"\n  {garbage}: " in proc.stdout
    meta = read_checkpoint_meta(out / "epoch_001.pdparams")
    assert meta["skipped_images"] == sorted([str(bad), str(garbage)])
    assert meta["data"].startswith(f"{data} (9 images, no validation")


def test_curves_need_the_plot_extra_and_the_readme_and_warning_name_it(tmp_path, monkeypatch, caplog):
    text = (ROOT / "pyproject.toml").read_text()
    extra = re.search(r"^plot = \[([^\]]*)\]", text, re.M)
    assert extra and '"matplotlib>=' in extra.group(1)
    assert 'pip install "paddlehub_cls[plot]"' in (ROOT / "README.md").read_text()
    # A plain install: every matplotlib module is missing.
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, mod, None)
    with caplog.at_level(logging.WARNING, logger="paddlehub_cls"):
        assert plot_history([{"epoch": 1, "train_loss": 1.0}], tmp_path / "c.png") is None
    assert 'pip install "paddlehub_cls[plot]"' in caplog.text and not (tmp_path / "c.png").exists()


def test_dataset_error_lives_in_errors_and_keeps_its_old_import_path():
    from paddlehub_cls import errors

    assert DatasetError is errors.DatasetError
    assert issubclass(DatasetError, errors.PaddleHubClsError) and issubclass(DatasetError, ValueError)
    assert "DatasetError" in errors.__all__


def test_resume_refuses_mismatches(tmp_path):
    data = make_shapes(tmp_path / "d", per_class=3, size=24)
    res = finetune(
        "ShuffleNetV2",
        data,
        epochs=1,
        batch_size=8,
        pretrained=False,
        image_size=32,
        output=tmp_path / "o",
        verbose=0,
    )
    ckpt = res.checkpoints[0]
    with pytest.raises(ValueError, match="already trained 1 epochs"):
        finetune("ShuffleNetV2", data, epochs=1, resume=ckpt, output=tmp_path / "o", verbose=0)
    with pytest.raises(ValueError, match="it is ShuffleNetV2"):
        finetune("MobileNetV1", data, epochs=2, resume=ckpt, output=tmp_path / "o", verbose=0)
    with pytest.raises(ValueError, match="freeze_backbone=False"):
        finetune("ShuffleNetV2", data, epochs=2, resume=ckpt, freeze=True, output=tmp_path / "o", verbose=0)
    lone = tmp_path / "lone.pdparams"
    lone.write_bytes(ckpt.read_bytes())
    with pytest.raises(ValueError, match="sidecar"):
        finetune("ShuffleNetV2", data, epochs=2, resume=lone, output=tmp_path / "o", verbose=0)
    with pytest.raises(FileNotFoundError, match="num_classes=N"):
        load_checkpoint(lone)


def test_runs_unchanged_under_paddle_distributed_launch_with_two_cpu_processes(tmp_path):
    """`python -m paddle.distributed.launch --nproc_per_node 2 <console script> finetune ...` (gloo, CPU)."""
    data = make_shapes(tmp_path / "d", per_class=8, size=32)
    script = tmp_path / "paddlehub_cls_cli.py"  # what the paddlehub-cls console script runs
    script.write_text("import sys\nfrom paddlehub_cls.cli import main\nsys.exit(main())\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "paddle.distributed.launch",
        "--nproc_per_node",
        "2",
        "--log_dir",
        str(tmp_path / "log"),
        str(script),
        "finetune",
        "ShuffleNetV2",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--no-pretrained",
        "--image-size",
        "32",
        "--output",
        str(tmp_path / "out"),
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=400)
    logs = "\n".join(
        p.read_text(errors="replace")[-2000:] for p in sorted((tmp_path / "log").glob("workerlog.*"))
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs
    meta = read_checkpoint_meta(tmp_path / "out" / "epoch_001.pdparams")
    assert meta["world_size"] == 2
    # 18 training images (6 per class) over 2 ranks of 4 per step: ceil(9 / 4) = 3 steps, where one
    # process would take 5. Only rank 0 prints hapi's progress; rank 1 ran and exited cleanly.
    assert "step 3/3" in (tmp_path / "log" / "workerlog.0").read_text(errors="replace")
    assert (tmp_path / "log" / "workerlog.1").is_file()
    model = load_model("ShuffleNetV2", weights=tmp_path / "out" / "epoch_001.pdparams", num_classes=3)
    assert model.num_classes == 3


def test_documented_python_recipe_runs(tmp_path, capsys):
    out = RECIPE.main(
        [
            "--model",
            "ShuffleNetV2",
            "--data",
            str(tmp_path / "demo"),
            "--demo-data",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--image-size",
            "32",
            "--no-pretrained",
            "--output",
            str(tmp_path / "o"),
        ]
    )
    assert out["classes"] == CLASSES and 0.0 <= out["val_acc"] <= 1.0
    assert "reloaded with 3 classes (native layout)" in capsys.readouterr().out
    state = load_pdparams(out["checkpoint"])
    assert state["fc.weight"].shape == (1024, 3)
