"""fastload: one conversion per verified artifact, memory-mapped warm loads, no random init, no re-hash."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import paddle
import pytest

from paddlehub_cls import _cache, fastload, formats, load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vision_file(tmp_path_factory) -> Path:
    """A random MobileNetV1 state_dict written by paddle.vision's own model and paddle.save."""
    from paddle.vision.models import mobilenet_v1

    paddle.seed(1)
    path = tmp_path_factory.mktemp("w") / "mobilenetv1_1.0.pdparams"
    paddle.save(mobilenet_v1().state_dict(), str(path))
    return path


@pytest.fixture
def pinned(cache_env: Path, vision_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MobileNetV1.paddle_vision served from a file:// URL and pinned to the random file's md5."""
    md5 = hashlib.md5(vision_file.read_bytes()).hexdigest()
    override = tmp_path / "pin.json"
    override.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "models": {
                    "MobileNetV1": {
                        "weights": {
                            "paddle_vision": {
                                "urls": [vision_file.as_uri()],
                                "checksum": f"md5:{md5}",
                                "size": vision_file.stat().st_size,
                            }
                        }
                    }
                },
            }
        )
    )
    monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(override))
    return cache_env


def converted_files(cache: Path) -> list:
    folder = cache / fastload.SUBDIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def reference_arrays(path: Path) -> dict:
    """The file's tensors as paddle itself reads them."""
    return {k: np.asarray(v) for k, v in paddle.load(str(path), return_numpy=True).items()}


def params(model) -> dict:
    return {k: v.numpy() for k, v in model.state_dict().items()}


def blob_of(cache: Path, file: Path) -> tuple:
    sha = hashlib.sha256(file.read_bytes()).hexdigest()
    return cache / "blobs" / "sha256" / sha, sha


def verified(cache: Path, blob: Path) -> _cache.Artifact:
    """The artifact ``hub.download_variant`` returns for a blob of the user cache ``cache``."""
    return _cache.Artifact(blob, blob.name, _cache.CacheRoot(cache, True))


def test_first_load_converts_once_and_warm_loads_map_it(pinned, vision_file, monkeypatch):
    cold = load_model("MobileNetV1")
    blob, sha = blob_of(pinned, vision_file)
    assert converted_files(pinned) == [f"{sha}.safetensors", f"{sha}.safetensors.json"]
    assert cold.load_report.format == "pdparams"

    # A warm load reads neither the pickle nor hashes any file: the stamps are trusted.
    def refuse(*args, **kwargs):
        raise AssertionError("the warm load read or hashed the source")

    monkeypatch.setattr(formats, "read_weights", refuse)
    monkeypatch.setattr(_cache, "hash_file", refuse)
    warm = load_model("MobileNetV1")
    assert warm.load_report.format == "pdparams"
    assert warm.load_report.checksum == f"sha256:{sha}"
    ref = params(cold)
    got = params(warm)
    assert got.keys() == ref.keys()
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    # And both equal what paddle itself reads from the file (the vision names map 1:1 in order).
    vision = reference_arrays(vision_file)
    assert sorted(float(np.abs(a).sum()) for a in vision.values()) == pytest.approx(
        sorted(float(np.abs(a).sum()) for a in got.values()), rel=1e-6
    )


def test_warm_load_initialises_nothing(pinned, monkeypatch):
    load_model("MobileNetV1")  # converts
    calls = []
    seen = set()

    def patch(cls):
        for sub in cls.__subclasses__():
            patch(sub)
        if "forward" in vars(cls) and cls not in seen:
            seen.add(cls)
            original = vars(cls)["forward"]

            def counted(self, *a, _orig=original, _cls=cls, **kw):
                calls.append(_cls.__name__)
                return _orig(self, *a, **kw)

            monkeypatch.setattr(cls, "forward", counted)

    patch(paddle.nn.initializer.Initializer)
    assert seen, "no initializer classes found to watch"
    load_model("MobileNetV1", pretrained=False)
    assert calls, "the initializer counter does not see a random build"
    calls.clear()
    model = load_model("MobileNetV1")
    assert calls == []
    for name, p in model.state_dict().items():
        assert p._is_initialized(), name


def test_converted_arrays_are_writable_copy_on_write(pinned, vision_file):
    load_model("MobileNetV1")
    blob, sha = blob_of(pinned, vision_file)
    conv = fastload.converted_path(pinned, sha)
    before = hashlib.sha256(conv.read_bytes()).hexdigest()
    src = fastload.read_source(verified(pinned, blob))
    assert src.format == "pdparams" and src.metadata["fastload"] == str(conv)
    name, arr = max(src.tensors.items(), key=lambda kv: kv[1].size)
    assert arr.flags.writeable and arr.flags.c_contiguous
    original = arr.copy()
    arr += 1.0
    assert hashlib.sha256(conv.read_bytes()).hexdigest() == before
    again = fastload.read_source(verified(pinned, blob))
    np.testing.assert_array_equal(again.tensors[name], original)
    assert not np.array_equal(arr, original)


def test_changed_converted_file_is_converted_again(pinned, vision_file, monkeypatch):
    load_model("MobileNetV1")
    blob, sha = blob_of(pinned, vision_file)
    conv = fastload.converted_path(pinned, sha)
    size = conv.stat().st_size
    with open(conv, "r+b") as f:  # damage tensor data; the mtime changes
        f.seek(size - 64)
        f.write(b"\xff" * 64)
    converts = []
    real = fastload.convert
    monkeypatch.setattr(fastload, "convert", lambda *a: converts.append(a) or real(*a))
    src = fastload.read_source(verified(pinned, blob))
    assert len(converts) == 1
    direct = formats.read_weights(blob).tensors
    for k, v in direct.items():
        np.testing.assert_array_equal(src.tensors[k], v, err_msg=k)


def test_damaged_header_behind_a_fresh_stamp_is_converted_again(pinned, vision_file, caplog):
    load_model("MobileNetV1")
    blob, sha = blob_of(pinned, vision_file)
    conv = fastload.converted_path(pinned, sha)
    st = conv.stat()
    with open(conv, "r+b") as f:
        f.write(b"\xff" * 16)  # header length and the start of the JSON
    os.utime(conv, ns=(st.st_atime_ns, st.st_mtime_ns))  # the stamp still matches size and mtime
    with caplog.at_level(logging.WARNING, logger="paddlehub_cls.fastload"):
        src = fastload.read_source(verified(pinned, blob))
    assert "damaged converted weights" in caplog.text
    direct = formats.read_weights(blob).tensors
    assert src.tensors.keys() == direct.keys()
    for k, v in direct.items():
        np.testing.assert_array_equal(src.tensors[k], v, err_msg=k)


def test_conversion_removes_the_temporaries_of_killed_conversions(pinned, vision_file):
    """Under the conversion lock every temporary of that file is stale, however young."""
    _, sha = blob_of(pinned, vision_file)
    folder = pinned / fastload.SUBDIR
    folder.mkdir(parents=True)
    stale = [folder / f".{sha}.safetensors.4242-dead.tmp", folder / f".{sha}.safetensors.json.4242-beef.tmp"]
    other = folder / f".{'cd' * 32}.safetensors.4243-feed.tmp"  # another artifact's: not under our lock
    for p in stale + [other]:
        p.write_bytes(b"\0" * 4096)
    model = load_model("MobileNetV1")
    assert len(model.load_report.loaded) > 0
    assert [p for p in stale if p.exists()] == []
    assert other.exists()
    assert converted_files(pinned) == sorted([f"{sha}.safetensors", f"{sha}.safetensors.json", other.name])


def test_unwritable_cache_falls_back_to_the_source(pinned, vision_file, caplog):
    (pinned / "fastload").parent.mkdir(parents=True, exist_ok=True)
    (pinned / "fastload").write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="paddlehub_cls.fastload"):
        model = load_model("MobileNetV1")
    assert "reading it directly" in caplog.text and "PADDLEHUB_CLS_FASTLOAD=0" in caplog.text
    assert model.load_report.format == "pdparams" and len(model.load_report.loaded) > 0


def test_disabled_by_environment(pinned, monkeypatch):
    monkeypatch.setenv("PADDLEHUB_CLS_FASTLOAD", "0")
    load_model("MobileNetV1")
    assert converted_files(pinned) == []


def test_local_files_are_read_as_they_are(cache_env, vision_file):
    model = load_model("MobileNetV1", weights=str(vision_file))
    assert model.load_report.format == "pdparams"
    assert converted_files(cache_env) == []


def test_concurrent_first_loads_convert_once(pinned, vision_file, monkeypatch):
    load_model("MobileNetV1", pretrained=True)  # downloads and converts
    blob, sha = blob_of(pinned, vision_file)
    for p in (pinned / fastload.SUBDIR).iterdir():
        p.unlink()
    converts = []
    real = fastload.convert

    def slow_convert(*a):
        converts.append(a)
        time.sleep(0.3)  # keep the lock long enough for the other thread to wait on it
        return real(*a)

    monkeypatch.setattr(fastload, "convert", slow_convert)
    results, errors = [], []

    def worker():
        try:
            results.append(fastload.read_source(verified(pinned, blob)))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 3
    assert len(converts) == 1


def test_converted_file_in_a_shared_cache_is_used_and_not_written(pinned, vision_file, tmp_path, monkeypatch):
    load_model("MobileNetV1")
    shared = tmp_path / "shared"
    shutil.copytree(pinned, shared, copy_function=shutil.copy2)  # copy2 keeps mtimes, so stamps stay fresh
    user = tmp_path / "fresh-user"
    monkeypatch.setenv("PADDLEHUB_CLS_HOME", str(user))
    monkeypatch.setenv("PADDLEHUB_CLS_SHARED_CACHE", str(shared))
    monkeypatch.setattr(
        fastload, "convert", lambda *a: pytest.fail("converted although a shared copy exists")
    )
    model = load_model("MobileNetV1")
    assert len(model.load_report.loaded) > 0
    assert converted_files(user) == []


def test_artifact_key():
    sha = "ab" * 32
    root = _cache.CacheRoot(Path("/c"), True)
    assert _cache.Artifact(root.blob(sha), sha, root).key == sha
    inner = "ResNet50_pretrained"
    a = _cache.Artifact(root.unpacked(sha) / inner, sha, root, inner=inner).key
    b = _cache.Artifact(root.unpacked(sha) / "Other", sha, root, inner="Other").key
    assert a.startswith(f"{sha}-") and b.startswith(f"{sha}-") and a != b and len(a) == 64 + 17
    assert _cache.Artifact(root.blob("cd" * 32), "cd" * 32, root).key != sha


def test_a_plain_path_is_read_directly_even_in_the_cache(pinned, vision_file, monkeypatch):
    """Only an artifact the hub returned is converted; a path (local weights) never is."""
    load_model("MobileNetV1")
    blob, sha = blob_of(pinned, vision_file)
    monkeypatch.setattr(fastload, "find_converted", lambda *a: pytest.fail("looked for a converted copy"))
    src = fastload.read_source(blob)
    assert src.format == "pdparams" and "fastload" not in src.metadata


def test_iter_and_remove_converted(pinned, vision_file):
    load_model("MobileNetV1")
    _, sha = blob_of(pinned, vision_file)
    listed = list(fastload.iter_converted())
    assert [p.name for p, _ in listed] == [f"{sha}.safetensors"]
    assert listed[0][1]["source_format"] == "pdparams"
    assert fastload.remove_converted(sha) == [listed[0][0]]
    assert converted_files(pinned) == []


def test_assign_shares_writable_arrays_and_copies_the_rest(tmp_path):
    paddle.seed(0)
    with paddle.LazyGuard():
        net = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.BatchNorm1D(3))
    keys = list(net.state_dict())
    rng = np.random.default_rng(0)
    arrays = {k: rng.normal(size=tuple(p.shape)).astype("float32") for k, p in net.state_dict().items()}
    ro = keys[0]
    arrays[ro].setflags(write=False)  # a read-only array must be copied, not shared
    arrays[keys[1]] = arrays[keys[1]].astype("float64")  # cast once; the cast array is then shared
    shared = fastload.assign(net, arrays)
    assert set(shared) == set(keys[1:])
    for k, p in net.state_dict().items():
        np.testing.assert_allclose(p.numpy(), arrays[k].astype("float32"), err_msg=k)
        assert p._is_initialized() and getattr(p, "_init_func", None) is None
    # Zero copy: the parameter is the array's memory.
    k = keys[2]
    arrays[k][...] = 7.0
    np.testing.assert_array_equal(net.state_dict()[k].numpy(), np.full(arrays[k].shape, 7.0, "float32"))
    net.eval()
    out = net(paddle.ones([2, 4]))
    assert out.shape == [2, 3]


def test_assign_gives_one_array_used_twice_two_memories():
    with paddle.LazyGuard():
        net = paddle.nn.Sequential(paddle.nn.Linear(3, 3), paddle.nn.Linear(3, 3))
    w, b = np.eye(3, dtype="float32"), np.zeros(3, "float32")
    arrays = {"0.weight": w, "0.bias": b, "1.weight": w, "1.bias": b.copy()}
    shared = fastload.assign(net, arrays)
    assert "0.weight" in shared and "1.weight" not in shared
    with paddle.no_grad():
        net[1].weight.add_(paddle.ones([3, 3]))
    np.testing.assert_array_equal(net[0].weight.numpy(), np.eye(3))


def test_assign_refuses_a_wrong_shape():
    from paddlehub_cls.errors import WeightsMismatchError

    with paddle.LazyGuard():
        net = paddle.nn.Linear(4, 3)
    arrays = {k: np.zeros((2, 2), "float32") for k in net.state_dict()}
    with pytest.raises(WeightsMismatchError, match=r"array shape \[2, 2\] does not match"):
        fastload.assign(net, arrays)


def test_modules_import_without_paddle():
    code = (
        "import sys, paddlehub_cls, paddlehub_cls.fastload, paddlehub_cls.exporting, "
        "paddlehub_cls.inference, "
        "paddlehub_cls.cli; paddlehub_cls.export; paddlehub_cls.Predictor; "
        "assert 'paddle' not in sys.modules, sorted(m for m in sys.modules if m.startswith('paddle'))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
