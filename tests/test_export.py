"""export() and Predictor: Paddle Inference outputs equal the dygraph network's; metadata, batching, CLI."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import paddle
import pytest
from oracles import calibrate_bn_dygraph, oracle_input, randomize_state

import paddlehub_cls
from paddlehub_cls import Predictor, export, load_model
from paddlehub_cls.cli import main as cli_main
from paddlehub_cls.inference import ExportedModelError
from paddlehub_cls.predict import PredictionError, predict


def random_net(name: str, seed: int = 0, size: int = 224):
    """A network with random weights and calibrated BN statistics, so logits are O(1) and differ per image."""
    model = load_model(name, pretrained=False)
    model.set_state_dict(randomize_state({k: v.numpy() for k, v in model.state_dict().items()}, seed=seed))
    calibrate_bn_dygraph(model, oracle_input(4, size, size, seed=seed), seed=seed)
    return model


def dygraph(model, x: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def assert_logits_close(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    assert float(ref.std()) > 1e-2, "reference logits are nearly constant: the random weights are degenerate"
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    diff = float(np.abs(ours - ref).max())
    assert diff < tol, f"max abs diff {diff:.3g} >= tolerance {tol:.3g}"


@pytest.fixture(scope="module", params=["MobileNetV1", "ResNet18"])
def exported(request, tmp_path_factory):
    model = random_net(request.param)
    out = export(model, tmp_path_factory.mktemp(request.param))
    return model, out, Predictor(out, threads=2, use_gpu=False)


@pytest.mark.parametrize("batch", [1, 3])
def test_predictor_equals_dygraph(exported, batch):
    model, _, predictor = exported
    x = oracle_input(batch, seed=7)
    assert_logits_close(predictor.run(x), dygraph(model, x))


def test_export_writes_program_params_and_metadata(exported):
    model, out, predictor = exported
    files = sorted(p.name for p in Path(out).iterdir())
    assert "inference.pdiparams" in files and ("inference.json" in files or "inference.pdmodel" in files)
    assert not [f for f in files if f.startswith(".")], "temporary files left behind"
    cfg = json.loads((Path(out) / "paddlehub_cls.json").read_text())
    assert cfg["model"] == model.pretrained_cfg["name"]
    assert cfg["input"] == {"name": "x", "shape": [-1, 3, 224, 224], "dtype": "float32"}
    assert cfg["labels"] == "imagenet-1k" and cfg["output"]["num_classes"] == 1000
    for key in ("mean", "std", "interpolation", "crop_pct"):
        assert cfg["pretrained_cfg"][key] == model.pretrained_cfg[key]
    assert predictor.input_size == (3, 224, 224) and predictor.fixed_batch is None
    assert predictor.device == "cpu" and predictor.threads == 2
    gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    assert Predictor(out).device == ("gpu:0" if gpu else "cpu")
    assert not model.training


def test_predict_applies_the_models_preprocessing(exported):
    model, _, predictor = exported
    cat = str(resources.files("paddlehub_cls").joinpath("data/chelsea.png"))
    flat = np.full((40, 70, 3), 128, dtype=np.uint8)
    ours = predictor.predict([cat, flat], topk=3)
    ref = predict(model, [cat, flat], topk=3)
    for a, b in zip(ours, ref):
        assert [p["index"] for p in a] == [p["index"] for p in b]
        assert [p["label"] for p in a] == [p["label"] for p in b]
        np.testing.assert_allclose([p["probability"] for p in a], [p["probability"] for p in b], atol=1e-4)


def test_predict_reports_unreadable_images_and_keeps_the_others(exported, tmp_path):
    _, _, predictor = exported
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    good = np.zeros((32, 32, 3), dtype=np.uint8)
    with pytest.raises(PredictionError, match="1 of 2 images could not be read") as info:
        predictor.predict([good, bad], topk=1)
    assert info.value.results[0] is not None and info.value.results[1] is None
    assert str(bad) in info.value.errors


def test_fixed_batch_and_input_size(tmp_path):
    model = random_net("MobileNetV1", seed=3, size=96)
    out = export(model, tmp_path / "b2", input_size=96, batch_size=2)
    predictor = Predictor(out, threads=1, batch_size=5, use_gpu=False)
    assert predictor.input_size == (3, 96, 96) and predictor.fixed_batch == 2 and predictor.batch_size == 2
    x = oracle_input(2, 96, 96, seed=5)
    assert_logits_close(predictor.run(x), dygraph(model, x))
    with pytest.raises(ValueError, match="exported for batches of exactly 2, got 3"):
        predictor.run(oracle_input(3, 96, 96))
    with pytest.raises(
        ValueError, match=r"expected a batch of shape \(N, 3, 96, 96\), got \[2, 3, 224, 224\]"
    ):
        predictor.run(oracle_input(2))
    # predict() pads the last batch of a fixed-batch export: three images give three answers.
    images = [np.full((100, 120, 3), v, dtype=np.uint8) for v in (10, 120, 250)]
    assert len(predictor.predict(images, topk=1)) == 3
    cfg = json.loads((out / "paddlehub_cls.json").read_text())
    assert cfg["pretrained_cfg"]["input_size"] == [3, 96, 96]


def test_export_keeps_training_mode_and_checks_arguments(tmp_path):
    model = load_model("MobileNetV1", pretrained=False)
    model.train()
    with pytest.raises(ValueError, match="input_size must be"):
        export(model, tmp_path / "x", input_size="big")
    with pytest.raises(ValueError, match="batch_size must be None"):
        export(model, tmp_path / "x", batch_size=0)
    with pytest.raises(ValueError, match="weights= applies to a model name"):
        export(model, tmp_path / "x", weights="paddle_vision")
    with pytest.raises(TypeError, match="expected a model name or a paddle.nn.Layer"):
        export(42, tmp_path / "x")
    out = export(model, tmp_path / "m", input_size=(64, 64), batch_size=1)
    assert model.training
    assert json.loads((out / "paddlehub_cls.json").read_text())["input"]["shape"] == [1, 3, 64, 64]


def test_cli_export_by_name_with_local_weights(tmp_path, cache_env, capsys):
    paddle.seed(2)
    net = load_model("MobileNetV1", pretrained=False)
    weights = tmp_path / "mine.pdparams"
    paddle.save(net.state_dict(), str(weights))
    out = tmp_path / "cli"
    code = cli_main(
        [
            "export",
            "MobileNetV1",
            str(out),
            "--weights",
            str(weights),
            "--batch-size",
            "1",
            "--input-size",
            "64",
        ]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out.split()
    assert str(out / "paddlehub_cls.json") in printed and str(out / "inference.pdiparams") in printed
    cfg = json.loads((out / "paddlehub_cls.json").read_text())
    assert cfg["model"] == "MobileNetV1" and cfg["input"]["shape"] == [1, 3, 64, 64]
    x = oracle_input(1, 64, 64)
    net.eval()
    got = Predictor(out, threads=1, use_gpu=False).run(x)
    np.testing.assert_allclose(got, dygraph(net, x), rtol=1e-4, atol=1e-4)


def test_cli_export_of_a_fine_tuned_checkpoint_keeps_class_names_and_image_size(tmp_path, cache_env, capsys):
    from paddlehub_cls.finetune import CHECKPOINT_FORMAT

    paddle.seed(3)
    net = load_model("ShuffleNetV2", pretrained=False, num_classes=3)
    ckpt = tmp_path / "runs" / "x" / "epoch_005.pdparams"
    ckpt.parent.mkdir(parents=True)
    paddle.save(net.state_dict(), str(ckpt))
    # The sidecar fields that `finetune` writes beside every checkpoint and that a reader relies on.
    names = ["cat", "dog", "fox"]
    sidecar = {"format": CHECKPOINT_FORMAT, "model": "ShuffleNetV2", "class_names": names, "image_size": 64}
    ckpt.with_suffix(".json").write_text(json.dumps(sidecar))
    out = tmp_path / "exported"
    assert (
        cli_main(["export", "ShuffleNetV2", str(out), "--weights", str(ckpt)]) == 0
    ), capsys.readouterr().err
    cfg = json.loads((out / "paddlehub_cls.json").read_text())
    assert cfg["labels"] == "class_names" and cfg["pretrained_cfg"]["class_names"] == names
    assert cfg["input"]["shape"] == [-1, 3, 64, 64] and cfg["output"]["num_classes"] == 3
    img = resources.files("paddlehub_cls").joinpath("data/chelsea.png")
    with resources.as_file(img) as path:
        top = Predictor(out, threads=1, use_gpu=False).predict(path, topk=3)[0]
    assert sorted(p["label"] for p in top) == names


def test_cli_export_reports_errors_in_one_line(tmp_path, capsys):
    assert cli_main(["export", "NoSuchNet", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "NoSuchNet" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["export", "MobileNetV1", str(tmp_path / "o"), "--input-size", "1", "2", "3", "4"]) == 1
    assert "--input-size takes 1, 2 or 3 numbers" in capsys.readouterr().err


def test_predictor_errors(tmp_path, monkeypatch):
    from paddlehub_cls import errors

    assert ExportedModelError is errors.ExportedModelError and "ExportedModelError" in errors.__all__
    assert issubclass(ExportedModelError, errors.PaddleHubClsError) and issubclass(
        ExportedModelError, OSError
    )
    with pytest.raises(
        ExportedModelError, match="is not a paddlehub_cls export: paddlehub_cls.json is missing"
    ):
        Predictor(tmp_path)
    (tmp_path / "paddlehub_cls.json").write_text("{}")
    with pytest.raises(ExportedModelError, match="lacks inference.json/.pdmodel or inference.pdiparams"):
        Predictor(tmp_path)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Predictor(tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="threads must be None"):
        Predictor(tmp_path, threads=0)


def test_use_gpu_true_without_cuda_says_how_to_fix(tmp_path, monkeypatch):
    out = export(load_model("MobileNetV1", pretrained=False), tmp_path / "g", input_size=32, batch_size=1)
    monkeypatch.setattr(paddle, "is_compiled_with_cuda", lambda: False)
    with pytest.raises(ValueError, match="use_gpu=True but this paddle .* is not compiled with CUDA"):
        Predictor(out, use_gpu=True)
    assert Predictor(out).device == "cpu"  # auto picks the CPU


def test_lazy_exports_are_the_functions():
    assert paddlehub_cls.export is export and paddlehub_cls.Predictor is Predictor
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        paddlehub_cls.nope  # noqa: B018
