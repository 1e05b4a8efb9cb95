"""predict(): labels, batching, inputs, per-image errors, and the predict command."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image
from test_transforms import chelsea, reader_2019

from paddlehub_cls import load_model
from paddlehub_cls.predict import (
    ImageReadError,
    PredictionError,
    add_parsers,
    imagenet_labels,
    iter_predictions,
    predict,
    run_predict_command,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def net():
    paddle.seed(0)
    return load_model("ShuffleNetV2", pretrained=False)


@pytest.fixture(scope="module")
def weights_file(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "shufflenet_random.pdparams"
    paddle.save(net.state_dict(), str(path))
    return path


def reference_probs(model, img):
    x = paddle.to_tensor(reader_2019(img)[None].astype("float32"))
    with paddle.no_grad():
        logits = model(x).numpy()[0].astype("float64")
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_labels_file_is_imagenet():
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[0] == "tench" and labels[281] == "tabby"


def test_probabilities_match_a_reference_forward(net, monkeypatch):
    from paddlehub_cls.registry import load_registry

    # predict() follows pretrained_cfg["preprocess"]; the 2019 recipe has a hand-written reference.
    fluid2019 = load_registry().get("ShuffleNetV2").preprocess_for("fluid2019")
    monkeypatch.setattr(net, "pretrained_cfg", dict(net.pretrained_cfg, preprocess=fluid2019))
    img = chelsea()
    (res,) = predict(net, img, topk=5)
    want = reference_probs(net, img)
    order = np.argsort(-want)[:5]
    assert [r["index"] for r in res] == [int(i) for i in order]
    np.testing.assert_allclose([r["probability"] for r in res], want[order], rtol=1e-4, atol=1e-7)
    assert [r["label"] for r in res] == [imagenet_labels()[i] for i in order]
    assert all(a["probability"] >= b["probability"] for a, b in zip(res, res[1:]))


def test_inputs_paths_folders_arrays_and_batching(net, tmp_path):
    img = chelsea()
    folder = tmp_path / "imgs"
    folder.mkdir()
    variants = [
        img,
        img.transpose(Image.FLIP_LEFT_RIGHT),
        img.rotate(90, expand=True),
        img.crop((0, 0, 300, 300)),
    ]
    for name, v in zip(["d.png", "b.jpg", "a.png", "c.bmp"], variants):
        v.save(folder / name)
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    by_folder = predict(net, folder, topk=3, batch_size=3)
    assert len(by_folder) == 4  # notes.txt skipped
    files = sorted(folder.glob("*.*"))
    files = [f for f in files if f.suffix != ".txt"]
    by_files = predict(net, [str(f) for f in files], topk=3, batch_size=1)
    assert _same(by_files, by_folder)
    # a.png is the rotated image: the sorted order puts it first.
    (rot,) = predict(net, np.asarray(variants[2]), topk=3)
    assert _same([rot], [by_folder[0]])


def _same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert [r["index"] for r in ra] == [r["index"] for r in rb]
        np.testing.assert_allclose([r["probability"] for r in ra], [r["probability"] for r in rb], rtol=1e-4)
    return True


def test_bad_file_is_named_and_the_others_still_classified(net, tmp_path):
    good = tmp_path / "good.png"
    chelsea().save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a JPEG")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:2000])
    missing = tmp_path / "missing.png"
    with pytest.raises(PredictionError) as info:
        predict(net, [good, bad, trunc, missing, good], topk=2, batch_size=4)
    err = info.value
    assert set(err.errors) == {str(bad), str(trunc), str(missing)}
    assert "bad.jpg" in str(err) and "not an image format" in err.errors[str(bad)]
    assert "trunc.png" in err.errors[str(trunc)] and "does not exist" in err.errors[str(missing)]
    assert err.results[1] is None and err.results[2] is None and err.results[3] is None
    assert _same([err.results[0]], [err.results[4]])
    assert _same([err.results[0]], predict(net, good, topk=2))
    assert isinstance(err, OSError)


def test_image_errors_live_in_errors_and_keep_their_old_import_path():
    import importlib

    from paddlehub_cls import errors

    # ``paddlehub_cls.predict`` the attribute is the function; the module is looked up by name.
    predict_module = importlib.import_module("paddlehub_cls.predict")

    assert predict_module.ImageReadError is errors.ImageReadError is ImageReadError
    assert predict_module.PredictionError is errors.PredictionError is PredictionError
    for cls in (ImageReadError, PredictionError):
        assert issubclass(cls, errors.PaddleHubClsError) and issubclass(cls, OSError)
        assert cls.__name__ in errors.__all__
    err = PredictionError("1 of 2 images could not be read", {"a.png": "bad"}, [None, []], ["a.png", "b.png"])
    assert str(err) == "1 of 2 images could not be read" and err.errors == {"a.png": "bad"}


def test_custom_head_labels(tmp_path):
    model = load_model("ShuffleNetV2", pretrained=False, num_classes=3)
    res = predict(model, chelsea(), topk=10)[0]
    assert len(res) == 3 and {r["label"] for r in res} == {"class_0", "class_1", "class_2"}
    model.class_names = ["cat", "dog", "fox"]
    res = predict(model, chelsea(), topk=1)[0]
    assert res[0]["label"] == ["cat", "dog", "fox"][res[0]["index"]]


def test_train_mode_model_is_run_in_eval_and_restored():
    model = load_model("GoogLeNet", pretrained=False)
    model.train()
    (res,) = predict(model, chelsea(), topk=1)
    assert model.training
    model.eval()
    (again,) = predict(model, chelsea(), topk=1)
    assert res[0]["index"] == again[0]["index"]
    assert res[0]["probability"] == pytest.approx(again[0]["probability"], rel=1e-5)


def test_argument_errors(net, tmp_path):
    with pytest.raises(ValueError, match="topk"):
        predict(net, chelsea(), topk=0)
    with pytest.raises(ValueError, match="batch_size"):
        predict(net, chelsea(), batch_size=0)
    with pytest.raises(ValueError, match="no classifier"):
        predict(load_model("ShuffleNetV2", pretrained=False, num_classes=0), chelsea())
    with pytest.raises(ValueError, match="weights= applies to a model name"):
        predict(net, chelsea(), weights="fluid2019")
    with pytest.raises(ImageReadError, match="holds no image file"):
        predict(net, tmp_path)


def _parse(argv):
    parser = argparse.ArgumentParser(prog="paddlehub-cls")
    add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_predict_command_text_json_and_exit_status(weights_file, tmp_path):
    good = tmp_path / "cat.png"
    chelsea().save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out, err = io.StringIO(), io.StringIO()
    args = _parse(["predict", "ShuffleNetV2", str(good), "--topk", "3", "--weights", str(weights_file)])
    assert args.handler(args, out, err) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == str(good) and len(lines) == 4 and lines[1].lstrip().startswith("1. ")

    out, err = io.StringIO(), io.StringIO()
    args = _parse(["predict", "ShuffleNetV2", str(bad), str(good), "--json", "--weights", str(weights_file)])
    assert run_predict_command(args, out, err) == 1
    doc = json.loads(out.getvalue())
    assert doc["results"][0]["image"] == str(bad) and "error" in doc["results"][0]
    assert len(doc["results"][1]["predictions"]) == 5
    assert "broken.png" in err.getvalue()


def test_iter_predictions_streams_errors_in_order(net, tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("nope")
    seq = list(iter_predictions(net, [chelsea(), bad, chelsea()], topk=1, batch_size=8))
    assert [n for n, _ in seq] == ["<image 0>", str(bad), "<image 2>"]
    assert isinstance(seq[1][1], ImageReadError) and isinstance(seq[2][1], list)


def test_cli_entry_point_runs_predict(weights_file, tmp_path):
    """The packaged command, as a user runs it (after cli.py registers predict)."""
    img = ROOT / "paddlehub_cls" / "data" / "chelsea.png"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "paddlehub_cls",
            "predict",
            "ShuffleNetV2",
            str(img),
            str(tmp_path / "nope.png"),
            "--topk",
            "2",
            "--json",
            "--weights",
            str(weights_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["results"][0]["image"] == str(img) and len(doc["results"][0]["predictions"]) == 2
    assert "nope.png" in proc.stderr and "does not exist" in proc.stderr


def test_predict_over_a_folder_with_a_truncated_jpeg_names_it_or_skips_it(weights_file, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    chelsea().save(folder / "a_cat.png")
    buf = io.BytesIO()
    chelsea().save(buf, "JPEG")
    bad = folder / "b_cut.jpg"
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    chelsea().save(folder / "c_cat.png")

    out, err = io.StringIO(), io.StringIO()
    assert (
        run_predict_command(
            _parse(["predict", "ShuffleNetV2", str(folder), "--weights", str(weights_file)]), out, err
        )
        == 1
    )
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("paddlehub-cls: error: ") for line in lines), lines
    assert str(bad) in lines[0] and "truncated" in lines[0] and "1 of 3 images" in lines[1]
    assert [line for line in out.getvalue().splitlines() if not line.startswith(" ")] == [
        str(folder / "a_cat.png"),
        str(folder / "c_cat.png"),
    ]

    out, err = io.StringIO(), io.StringIO()
    argv = [
        "predict",
        "ShuffleNetV2",
        str(folder),
        "--json",
        "--skip-bad-images",
        "--weights",
        str(weights_file),
    ]
    assert run_predict_command(_parse(argv), out, err) == 0
    doc = json.loads(out.getvalue())
    assert [r["image"] for r in doc["results"]] == [str(folder / "a_cat.png"), str(folder / "c_cat.png")]
    assert list(doc["skipped"]) == [str(bad)] and "truncated" in doc["skipped"][str(bad)]
    lines = err.getvalue().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("paddlehub-cls: warning: skipped ") and str(bad) in lines[0]
    )


def test_predict_json_names_the_weights_it_resolved(tmp_path, cache_env, monkeypatch):
    import hashlib

    from test_api import write_source_file

    from paddlehub_cls.registry import load_registry

    variant = load_registry().get("ShuffleNetV2").variant()  # the default, paddle_vision
    served = tmp_path / "mirror" / variant.urls[0].split("://", 1)[1]
    served.parent.mkdir(parents=True)
    write_source_file("ShuffleNetV2", variant.tag, served)
    sha = hashlib.sha256(served.read_bytes()).hexdigest()
    site = tmp_path / "site.json"
    pin = {"ShuffleNetV2": {"weights": {variant.tag: {"checksum": f"sha256:{sha}"}}}}
    site.write_text(json.dumps({"schema_version": 1, "models": pin}))
    monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(site))
    monkeypatch.setenv("PADDLEHUB_CLS_MIRROR", (tmp_path / "mirror").as_uri())
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")  # only the file:// mirror can serve it
    img = tmp_path / "cat.png"
    chelsea().save(img)
    out, err = io.StringIO(), io.StringIO()
    assert (
        run_predict_command(_parse(["predict", "ShuffleNetV2", str(img), "--json"]), out, err) == 0
    ), err.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["model"] == "ShuffleNetV2" and doc["weights"] == "paddle_vision"
    assert Path(doc["weights_file"]).read_bytes() == served.read_bytes()  # the verified copy in the cache
