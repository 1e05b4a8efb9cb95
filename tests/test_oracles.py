"""Tests of the oracle harnesses themselves (tests/oracles).

The fidelity tests of every model family trust these harnesses, so here each
harness is checked against things it does not compute itself: a numpy parser of
the 2019 variable-file format (WEIGHTS_FACTS section 4), a numpy forward pass of
the example static network, a fresh model loading the saved file, and
paddle.vision's own parameter count.
"""

from __future__ import annotations

import json
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from oracles import (
    OracleError,
    OracleResult,
    classify_param,
    flatten_outputs,
    oracle_input,
    perturb_bn_stats,
    random_array,
    randomize_state,
    run_worker,
    subprocess_env,
)

# ---------------------------------------------------------------- policy (numpy only)


@pytest.mark.parametrize(
    "name, shape, kind",
    [
        ("bn1._variance", [64], "variance"),
        ("bn_conv1_variance", [64], "variance"),
        ("conv1_bn_mean", [32], "mean"),
        ("layer1.0.bn1._mean", [64], "mean"),
        ("bn1.weight", [64], "scale"),
        ("conv2_1_x1_bn_scale", [128], "scale"),
        ("bn1.bias", [64], "bias"),
        ("bn2a_branch1_offset", [256], "bias"),
        ("fc6_offset", [1000], "bias"),
        ("fc_0.b_0", [1000], "bias"),
        ("fc_0.w_0", [2048, 1000], "weight"),
        ("conv1_weights", [64, 3, 7, 7], "weight"),
        ("fc.weight", [512, 1000], "weight"),
        ("alpha", [], "scalar"),
    ],
)
def test_classify_param(name, shape, kind):
    assert classify_param(name, shape) == kind


def test_random_array_depends_only_on_seed_name_shape():
    a = random_array("conv1_weights", (8, 3, 3, 3), np.float32, seed=0)
    assert a.dtype == np.float32 and a.shape == (8, 3, 3, 3)
    np.testing.assert_array_equal(a, random_array("conv1_weights", (8, 3, 3, 3), np.float32, seed=0))
    assert not np.array_equal(a, random_array("conv1_weights", (8, 3, 3, 3), np.float32, seed=1))
    assert not np.array_equal(a, random_array("conv2_weights", (8, 3, 3, 3), np.float32, seed=0))


def test_random_array_scales():
    var = random_array("bn._variance", (4096,), np.float32, 0)
    assert var.min() >= 0.5 and var.max() <= 1.5
    scale = random_array("bn.weight", (4096,), np.float32, 0)
    assert scale.min() >= 0.8 and scale.max() <= 1.2
    conv = random_array("c_weights", (256, 64, 3, 3), np.float64, 0)
    assert conv.std() == pytest.approx(np.sqrt(2.0 / (64 * 9)), rel=0.05)
    fc = random_array("fc.weight", (512, 1000), np.float64, 0)  # [in, out]: fan-in is 512
    assert fc.std() == pytest.approx(np.sqrt(1.0 / 512), rel=0.05)
    bias = random_array("fc.bias", (4096,), np.float64, 0)
    assert bias.std() == pytest.approx(0.05, rel=0.1)


def test_randomize_state_keeps_keys_shapes_dtypes_and_ints():
    state = {
        "b.weight": np.ones(3, np.float32),
        "a.weight": np.zeros((4, 2, 3, 3), np.float16),
        "counter": np.array([7], np.int64),
    }
    new = randomize_state(state, seed=3)
    assert list(new) == list(state)
    for k in state:
        assert new[k].shape == state[k].shape and new[k].dtype == state[k].dtype
    np.testing.assert_array_equal(new["counter"], [7])
    assert not np.array_equal(new["a.weight"], state["a.weight"])
    # order of the input does not change any value
    rev = randomize_state(list(reversed(list(state.items()))), seed=3)
    for k in state:
        np.testing.assert_array_equal(new[k], rev[k])


def test_perturb_bn_stats_positive_and_dtype():
    mean = np.zeros(16, np.float32)
    var = np.zeros(16, np.float32)  # a dead channel after calibration
    m, v = perturb_bn_stats("bn._mean", mean, var, seed=0)
    assert m.dtype == np.float32 and v.dtype == np.float32
    assert (v >= 0.7e-3).all()
    m2, v2 = perturb_bn_stats("bn._mean", mean, var, seed=0)
    np.testing.assert_array_equal(v, v2)


def test_oracle_input_samples_differ_and_reproducible():
    x = oracle_input(3, 40, 48, seed=5)
    assert x.shape == (3, 3, 40, 48) and x.dtype == np.float32
    np.testing.assert_array_equal(x, oracle_input(3, 40, 48, seed=5))
    per_sample = x.reshape(3, 3, -1).mean(-1)
    assert np.abs(per_sample[0] - per_sample[1]).max() > 0.05


def test_flatten_outputs_main_first():
    assert list(flatten_outputs([1, 2, 3], np.asarray)) == ["out0", "out1", "out2"]
    d = flatten_outputs({"aux": 1, "logits": 2}, np.asarray)
    assert list(d) == ["logits", "aux"] and d["logits"] == 2
    assert list(flatten_outputs(np.zeros(2), np.asarray)) == ["out0"]


def test_oracle_result_unpacks_and_carries_info(tmp_path):
    res = OracleResult(tmp_path / "a.pdparams", np.zeros(2), keys=["x", "y"], num_params=5, foo=1)
    path, logits = res
    assert path == tmp_path / "a.pdparams" and res.num_keys == 2 and res.extra["foo"] == 1
    assert len(OracleResult(path, logits, tmp_path / "o.npz")) == 3


def test_run_worker_surfaces_stderr(tmp_path):
    script = tmp_path / "bad_worker.py"
    script.write_text("import sys\nsys.stderr.write('KABOOM from the worker\\n')\nsys.exit(3)\n")
    with pytest.raises(OracleError) as info:
        run_worker(script, tmp_path / "spec.json", subprocess_env(), what="demo")
    msg = str(info.value)
    assert "KABOOM from the worker" in msg and "exit status 3" in msg and "demo" in msg


def test_subprocess_env_threads_and_pythonpath(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("PYTHONPATH", "elsewhere")
    env = subprocess_env([tmp_path], FLAGS_enable_pir_api="0")
    assert env["OMP_NUM_THREADS"] == "1" and env["FLAGS_enable_pir_api"] == "0"
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path) and env["PYTHONPATH"].endswith("elsewhere")


# ---------------------------------------------------------------- fetch script / set-up checks


def test_require_paddleclas_explains_setup(tmp_path, monkeypatch):
    from oracles import paddleclas

    monkeypatch.setenv("PADDLEHUB_CLS_PADDLECLAS_DIR", str(tmp_path / "nowhere"))
    assert paddleclas.paddleclas_dir() == (tmp_path / "nowhere").resolve()
    assert not paddleclas.paddleclas_available()
    with pytest.raises(OracleError, match="fetch_paddleclas.py"):
        paddleclas.require_paddleclas()
    with pytest.raises(OracleError, match="nowhere"):
        paddleclas.run_paddleclas("m", "B", {}, tmp_path, np.zeros((1, 3, 8, 8), np.float32))


def _fake_pip(members):
    """A stand-in for ``pip download`` that writes a wheel with ``members``."""

    def run(cmd, capture_output, text):
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "paddleclas-2.6.0-py3-none-any.whl", "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)

        class Done:
            returncode = 0
            stderr = ""

        return Done()

    return run


def test_fetch_unpacks_and_is_idempotent(tmp_path, monkeypatch):
    from oracles import fetch_paddleclas as fp

    dest = tmp_path / "pc"
    monkeypatch.setattr(fp.subprocess, "run", _fake_pip({
        "paddleclas/ppcls/arch/__init__.py": "", "paddleclas/__init__.py": "",
        "paddleclas-2.6.0.dist-info/METADATA": "Name: paddleclas\n",
    }))
    assert not fp.is_fetched(dest)
    fp.fetch(dest)
    assert fp.is_fetched(dest)
    assert (dest / "paddleclas" / "ppcls" / "arch" / "__init__.py").is_file()
    assert json.loads((dest / fp.MARKER_NAME).read_text())["version"] == "2.6.0"

    def no_pip(*a, **k):
        raise AssertionError("pip must not run when the wheel is already unpacked")

    monkeypatch.setattr(fp.subprocess, "run", no_pip)
    fp.fetch(dest)  # second call: nothing to do
    assert [p.name for p in tmp_path.iterdir()] == ["pc"]  # no staging folder left behind


def test_fetch_refuses_escaping_member(tmp_path, monkeypatch):
    from oracles import fetch_paddleclas as fp

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(fp.subprocess, "run", _fake_pip({
        "paddleclas/ppcls/arch/__init__.py": "", "../../evil.py": "print('x')",
    }))
    with pytest.raises(SystemExit, match="escapes"):
        fp.fetch(work / "pc")
    assert not (work / "pc").exists()
    assert not list(tmp_path.rglob("evil.py"))
    assert [p.name for p in work.iterdir()] == []


# ---------------------------------------------------------------- 2019 variable files (own parser)


def _varint(buf: bytes, pos: int):
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def parse_2019_var(data: bytes) -> np.ndarray:
    """One LoDTensor variable file -> array, checking every header field (WEIGHTS_FACTS 4)."""
    assert np.frombuffer(data, "<u4", 1, 0)[0] == 0, "LoDTensor version"
    assert np.frombuffer(data, "<u8", 1, 4)[0] == 0, "lod_level of a parameter"
    assert np.frombuffer(data, "<u4", 1, 12)[0] == 0, "tensor version"
    desc_size = int(np.frombuffer(data, "<i4", 1, 16)[0])
    desc = data[20:20 + desc_size]
    pos, dtype_code, dims = 0, None, []
    while pos < len(desc):
        tag = desc[pos]
        pos += 1
        if tag == 0x08:
            dtype_code, pos = _varint(desc, pos)
        elif tag == 0x10:
            dim, pos = _varint(desc, pos)
            dims.append(dim)
        else:
            raise AssertionError(f"unexpected TensorDesc tag {tag:#x}")
    assert dtype_code == 5, f"expected FP32 (5), got {dtype_code}"
    payload = data[20 + desc_size:]
    assert len(payload) == int(np.prod(dims)) * 4, "payload size"
    return np.frombuffer(payload, "<f4").reshape(dims)


# ---------------------------------------------------------------- fluid oracle

TOY_NAMES = sorted([
    "conv1_weights", "bn_conv1_scale", "bn_conv1_offset", "bn_conv1_mean", "bn_conv1_variance",
    "conv2_weights", "conv2_bn_scale", "conv2_bn_offset", "conv2_bn_mean", "conv2_bn_variance",
])
TOY_SHAPES = {"conv1_weights": [8, 3, 3, 3], "conv2_weights": [16, 8, 3, 3], "bn_conv1_mean": [8],
              "conv2_bn_variance": [16]}


@pytest.fixture(scope="module")
def toy_fluid(tmp_path_factory):
    from oracles.fluid import run_fluid_oracle

    out = tmp_path_factory.mktemp("fluid")
    x = oracle_input(2, 32, 32, seed=1)
    res = run_fluid_oracle("oracles._example_fluid", "build", {}, "Toy", out, x, seed=0, class_dim=10)
    return res, x, out


def _tar_arrays(tar_path: Path, top: str):
    with tarfile.open(tar_path, "r:") as tf:  # "r:" refuses compressed archives
        names = tf.getnames()
        arrays = {}
        for m in tf.getmembers():
            if m.isfile():
                assert m.name.startswith(top + "/")
                arrays[m.name[len(top) + 1:]] = parse_2019_var(tf.extractfile(m).read())
    return names, arrays


def test_fluid_tar_layout_and_names(toy_fluid):
    res, _, out = toy_fluid
    tar_path, logits = res
    assert tar_path == out / "Toy_pretrained.tar"
    names, arrays = _tar_arrays(tar_path, "Toy_pretrained")
    assert all(n == "Toy_pretrained" or n.startswith("Toy_pretrained/") for n in names)
    assert sorted(arrays) == sorted(TOY_NAMES + ["fc8_weights", "fc8_offset"]) == res.keys
    for k, shape in TOY_SHAPES.items():
        assert list(arrays[k].shape) == shape
    assert arrays["fc8_weights"].shape == (16, 10)  # fc weight is [in, out]
    assert (arrays["bn_conv1_variance"] > 0).all() and (arrays["conv2_bn_variance"] > 0).all()
    assert res.num_params == sum(a.size for a in arrays.values())
    assert sorted(p.name for p in res.extra["var_dir"].iterdir()) == res.keys


def _conv(x, w, stride, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", win, w)


def _bn(x, a, bn):
    c = (slice(None), None, None)
    return ((x - a[bn + "_mean"][c]) / np.sqrt(a[bn + "_variance"][c] + 1e-5)) * a[bn + "_scale"][c] \
        + a[bn + "_offset"][c]


def test_fluid_logits_equal_numpy_forward_of_saved_files(toy_fluid):
    """Saved values are those the program used, and the documented layer semantics hold.

    The numpy forward uses BN with the *moving* statistics (for_test clone),
    dropout as multiplication by 1 - p (downscale_in_infer), fc weight [in, out].
    """
    res, x, _ = toy_fluid
    _, a = _tar_arrays(res.path, "Toy_pretrained")
    h = np.maximum(_bn(_conv(x.astype(np.float64), a["conv1_weights"], 2, 1), a, "bn_conv1"), 0)
    n, c, hh, ww = h.shape
    h = h.reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
    h = np.maximum(_bn(_conv(h, a["conv2_weights"], 1, 1), a, "conv2_bn"), 0)
    pooled = h.mean(axis=(2, 3)) * (1 - 0.5)
    expected = pooled @ a["fc8_weights"] + a["fc8_offset"]
    assert res.logits.shape == (2, 10) and np.isfinite(res.logits).all()
    np.testing.assert_allclose(res.logits, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert np.abs(res.logits[0] - res.logits[1]).max() > 1e-3


def test_fluid_reproducible_and_seed_dependent(toy_fluid, tmp_path):
    from oracles.fluid import run_fluid_oracle

    res, x, _ = toy_fluid
    again = run_fluid_oracle("oracles._example_fluid", "build", {}, "Toy", tmp_path / "a", x, seed=0,
                             class_dim=10)
    np.testing.assert_array_equal(again.logits, res.logits)
    assert again.path.read_bytes() != b"" and _tar_arrays(again.path, "Toy_pretrained")[1].keys() == \
        _tar_arrays(res.path, "Toy_pretrained")[1].keys()
    for k, v in _tar_arrays(again.path, "Toy_pretrained")[1].items():
        np.testing.assert_array_equal(v, _tar_arrays(res.path, "Toy_pretrained")[1][k])
    other = run_fluid_oracle("oracles._example_fluid", "build", {}, "Toy", tmp_path / "b", x, seed=1,
                             class_dim=10)
    assert not np.allclose(other.logits, res.logits)


def test_fluid_unnamed_fc_and_multi_output(tmp_path):
    from oracles.fluid import run_fluid_oracle

    x = oracle_input(1, 16, 16)
    res = run_fluid_oracle("oracles._example_fluid", "build", {"named_fc": False}, "Plain", tmp_path, x,
                           class_dim=4)
    assert "fc_0.w_0" in res.keys and "fc_0.b_0" in res.keys and res.shapes["fc_0.w_0"] == [16, 4]
    two = run_fluid_oracle("tests.oracles._example_fluid", "build_two_heads", {}, "Two", tmp_path, x,
                           class_dim=4)
    outs = np.load(two.outputs_path)
    assert sorted(outs.files) == ["out0", "out1"]
    np.testing.assert_array_equal(outs["out0"], two.logits)
    assert not np.allclose(outs["out0"], outs["out1"])
    assert {"out_weights", "out_offset", "out1_weights", "out1_offset"} <= set(two.keys)


def test_fluid_builder_error_surfaces(tmp_path):
    from oracles.fluid import run_fluid_oracle

    with pytest.raises(OracleError, match="no_such_builder"):
        run_fluid_oracle("oracles._example_fluid", "no_such_builder", {}, "X", tmp_path,
                         oracle_input(1, 8, 8))


# ---------------------------------------------------------------- paddle.vision oracle


def test_vision_oracle_mobilenet_v1(tmp_path):
    import paddle
    from oracles.vision import vision_oracle

    x = oracle_input(2, 64, 64, seed=2)
    res = vision_oracle("mobilenet_v1", {"scale": 0.25}, tmp_path, x, seed=0)
    path, logits = res
    assert path == tmp_path / "mobilenet_v1.pdparams" and path.is_file()
    assert logits.shape == (2, 1000) and np.isfinite(logits).all() and logits.std() > 1e-2
    assert np.abs(logits[0] - logits[1]).max() > 1e-3

    saved = paddle.load(str(path), return_numpy=True)
    assert sorted(saved) == sorted(res.keys)
    assert res.num_params == sum(v.size for v in saved.values())
    fresh = paddle.vision.models.mobilenet_v1(scale=0.25, pretrained=False)
    for k, v in fresh.state_dict().items():  # every tensor was replaced
        assert not np.array_equal(v.numpy(), saved[k]), k
    assert all((saved[k] > 0).all() for k in saved if k.endswith("_variance"))

    fresh.set_state_dict(saved)
    fresh.eval()
    with paddle.no_grad():
        again = fresh(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(again, logits, rtol=1e-5, atol=1e-6)

    same = vision_oracle("mobilenet_v1", {"scale": 0.25}, tmp_path / "s", x, seed=0)
    np.testing.assert_array_equal(same.logits, logits)
    other = vision_oracle("mobilenet_v1", {"scale": 0.25}, tmp_path / "o", x, seed=1)
    assert not np.allclose(other.logits, logits)


def test_vision_oracle_unknown_name(tmp_path):
    from oracles.vision import vision_oracle

    with pytest.raises(ValueError, match="no_such_net"):
        vision_oracle("no_such_net", {}, tmp_path, oracle_input(1, 8, 8))


# ---------------------------------------------------------------- PaddleClas oracle

MBV1 = "ppcls.arch.backbone.legendary_models.mobilenet_v1"


@pytest.fixture(scope="session")
def paddleclas_ready():
    from oracles.paddleclas import require_paddleclas

    message = None
    try:
        return require_paddleclas()
    except OracleError as exc:
        message = str(exc)
    # CI sets PaddleClas up, so its absence is a failure, not a skip
    pytest.fail(message, pytrace=False)


@pytest.mark.paddleclas
def test_paddleclas_mobilenet_v1(paddleclas_ready, tmp_path):
    import paddle
    from oracles.paddleclas import paddleclas_forward, paddleclas_param_count, run_paddleclas

    x = oracle_input(2, 64, 64, seed=3)
    res = run_paddleclas(MBV1, "MobileNetV1_x0_25", {}, tmp_path, x, seed=0)
    path, logits = res
    assert path == tmp_path / "MobileNetV1_x0_25.pdparams" and path.is_file()
    assert logits.shape == (2, 1000) and np.isfinite(logits).all() and logits.std() > 1e-2
    assert np.abs(logits[0] - logits[1]).max() > 1e-3

    saved = paddle.load(str(path), return_numpy=True)
    assert sorted(saved) == sorted(res.keys) and res.num_keys == len(saved)
    assert all((saved[k] > 0).all() for k in saved if k.endswith("_variance"))
    # same architecture as paddle.vision's mobilenet_v1(scale=0.25): same element count
    vision = paddle.vision.models.mobilenet_v1(scale=0.25, pretrained=False)
    expected = sum(int(np.prod(v.shape)) for v in vision.state_dict().values())
    assert res.num_params == sum(v.size for v in saved.values()) == expected
    assert paddleclas_param_count(MBV1, "MobileNetV1_x0_25", {}) == expected

    # a fresh PaddleClas model loading the file reproduces the logits
    np.testing.assert_allclose(paddleclas_forward(MBV1, "MobileNetV1_x0_25", {}, path, tmp_path / "f", x),
                               logits, rtol=1e-5, atol=1e-6)
    again = run_paddleclas(MBV1, "MobileNetV1_x0_25", {}, tmp_path / "again", x, seed=0)
    np.testing.assert_array_equal(again.logits, logits)


@pytest.mark.paddleclas
def test_paddleclas_googlenet_all_outputs(paddleclas_ready, tmp_path):
    from oracles.paddleclas import run_paddleclas

    x = oracle_input(1, 224, 224, seed=4)
    path, logits, npz = run_paddleclas("ppcls.arch.backbone.model_zoo.googlenet", "GoogLeNet",
                                       {"class_num": 10}, tmp_path, x, all_outputs=True)
    outs = np.load(npz)
    assert sorted(outs.files) == ["out0", "out1", "out2"]
    assert all(outs[k].shape == (1, 10) for k in outs.files)
    np.testing.assert_array_equal(outs["out0"], logits)
    assert path.is_file() and np.isfinite(logits).all()


@pytest.mark.paddleclas
def test_paddleclas_bad_builder_surfaces_error(paddleclas_ready, tmp_path):
    from oracles.paddleclas import run_paddleclas

    with pytest.raises(OracleError, match="has no builder 'NoSuchNet'"):
        run_paddleclas(MBV1, "NoSuchNet", {}, tmp_path, oracle_input(1, 32, 32))


def test_oracles_package_does_not_import_paddle():
    import subprocess

    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "import oracles, oracles.paddleclas, oracles.fluid, oracles.vision; "
            "assert 'paddle' not in sys.modules, 'paddle imported'")
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], check=True)
