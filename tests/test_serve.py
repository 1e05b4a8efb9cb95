"""`paddlehub-cls serve`: a real server process on 127.0.0.1, real HTTP clients and a real headless browser.

The served weights are made here (random, with calibrated BN statistics so the top-5 is well defined)
and given by ``--weights PATH``: nothing is downloaded.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import paddle
import pytest
import requests
from test_export import random_net

from paddlehub_cls import Predictor, export

MODEL = "ShuffleNetV2"
CAT = Path(str(resources.files("paddlehub_cls").joinpath("data/chelsea.png")))
#: the upload limit the test servers run with (MiB), so an oversized body is cheap to send.
UPLOAD_MB = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m paddlehub_cls serve ...`` in a subprocess, ready when /health answers."""

    def __init__(self, args, env, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "paddlehub_cls", "serve", *args, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {log.read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server did not answer /health within 180 s: {log.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "shufflenet.pdparams"
    paddle.save(random_net(MODEL, seed=5).state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def reference(weights, tmp_path_factory) -> Predictor:
    """A Predictor of the same weights, run directly in this process."""
    return Predictor(export(MODEL, tmp_path_factory.mktemp("ref"), weights=weights), threads=1, use_gpu=False)


@pytest.fixture(scope="module")
def server_env(tmp_path_factory):
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLEHUB_CLS_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(root)] + [p for p in [env.get("PYTHONPATH")] if p]),
        OMP_NUM_THREADS="1",
        PADDLEHUB_CLS_HOME=str(tmp_path_factory.mktemp("cache")),
        PADDLEHUB_CLS_OFFLINE="1",  # the server must not reach for the network
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


@pytest.fixture(scope="module")
def server(weights, server_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "server.log"
    args = [
        MODEL,
        "--weights",
        str(weights),
        "--threads",
        "1",
        "--max-batch",
        "8",
        "--max-wait-ms",
        "50",
        "--max-upload-mb",
        str(UPLOAD_MB),
    ]
    srv = Server(args, server_env, log)
    yield srv
    srv.stop()


def expected(reference: Predictor, image, k: int = 5):
    return reference.predict(image, topk=k)[0]


def assert_same_top(got, want) -> None:
    assert [p["label"] for p in got] == [p["label"] for p in want]
    assert [p["index"] for p in got] == [p["index"] for p in want]
    np.testing.assert_allclose([p["probability"] for p in got], [p["probability"] for p in want], atol=1e-5)


def test_predict_multipart_json_and_raw_agree_with_the_predictor(server, reference):
    want = expected(reference, CAT)
    data = CAT.read_bytes()
    r = requests.post(server.url + "/predict", files={"file": ("chelsea.png", data, "image/png")}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == MODEL
    assert_same_top(r.json()["predictions"], want)
    r = requests.post(
        server.url + "/predict", json={"image": base64.b64encode(data).decode(), "topk": 3}, timeout=60
    )
    assert r.status_code == 200, r.text
    assert_same_top(r.json()["predictions"], want[:3])
    r = requests.post(
        server.url + "/predict?topk=2", data=data, headers={"Content-Type": "image/png"}, timeout=60
    )
    assert_same_top(r.json()["predictions"], want[:2])


def test_health_and_models(server, reference):
    health = requests.get(server.url + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["model"] == MODEL and health["backend"] == "paddle"
    models = requests.get(server.url + "/models", timeout=10).json()
    assert models[0]["name"] == MODEL and models[0]["input_size"] == list(reference.input_size)
    assert models[0]["num_classes"] == 1000 and models[0]["labels"] == "imagenet-1k"
    assert models[0]["preprocessing"]["mean"] == reference.pretrained_cfg["mean"]


def test_32_concurrent_clients_are_batched_without_error(server, reference):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, size=(40 + i, 60, 3), dtype=np.uint8) for i in range(32)]
    import io

    from PIL import Image

    def png(a) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    before = requests.get(server.url + "/health", timeout=10).json()
    barrier = threading.Barrier(32)

    def client(i):
        body = png(images[i])
        barrier.wait()
        return requests.post(
            server.url + "/predict", files={"file": (f"{i}.png", body, "image/png")}, timeout=120
        )

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(client, range(32)))
    assert [r.status_code for r in answers] == [200] * 32, [r.text for r in answers if r.status_code != 200]
    for image, r in zip(images, answers):
        assert_same_top(r.json()["predictions"], expected(reference, image))
    after = requests.get(server.url + "/health", timeout=10).json()
    assert after["images"] - before["images"] == 32
    assert after["batches"] - before["batches"] < 32, "concurrent requests were never batched together"
    assert 1 < after["largest_batch"] <= after["max_batch"] == 8


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        (
            {"files": {"file": ("x.png", b"this is not an image", "image/png")}},
            400,
            "is not an image that PIL can decode",
        ),
        ({"files": {"other": ("x.png", b"", "image/png")}}, 400, "the uploaded file 'x.png' is empty"),
        ({"data": {"field": "value"}, "files": {}}, 415, "unsupported Content-Type"),
        ({"json": {"image": "@@not base64@@"}}, 400, "not valid base64"),
        ({"json": {"picture": "x"}}, 400, "must be an object"),
        (
            {"data": b"\x89PNG", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported Content-Type 'text/plain'",
        ),
        (
            {"data": b"x" * (UPLOAD_MB * 2**20 + 1), "headers": {"Content-Type": "image/png"}},
            413,
            f"upload limit of {UPLOAD_MB * 2**20} bytes",
        ),
    ],
    ids=["non-image", "empty-file", "urlencoded", "bad-base64", "json-without-image", "text", "oversized"],
)
def test_bad_bodies_get_a_4xx_naming_the_problem(server, kwargs, status, message):
    r = requests.post(server.url + "/predict", timeout=60, **kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_oversized_chunked_upload_is_cut_off(server):
    def chunks():
        for _ in range(UPLOAD_MB * 4 + 1):  # 256 KiB more than the limit, with no Content-Length
            yield b"\0" * 2**18

    r = requests.post(
        server.url + "/predict", data=chunks(), headers={"Content-Type": "image/png"}, timeout=60
    )
    assert r.status_code == 413 and "upload limit" in r.json()["detail"]
    r = requests.post(
        server.url + "/predict?topk=zero", files={"file": ("c.png", CAT.read_bytes())}, timeout=60
    )
    assert r.status_code == 400 and "topk must be a positive integer, got 'zero'" in r.json()["detail"]


def test_sigterm_finishes_in_flight_requests_under_load(weights, server_env, tmp_path, reference):
    out = export(MODEL, tmp_path / "onnx", weights=weights, format="onnx")
    # A long batch wait keeps requests in flight while the signal arrives.
    srv = Server(
        [str(out), "--threads", "1", "--max-batch", "4", "--max-wait-ms", "300"],
        server_env,
        tmp_path / "server.log",
    )
    assert requests.get(srv.url + "/health", timeout=10).json()["backend"] == "onnxruntime"
    want = expected(reference, CAT)
    body = CAT.read_bytes()
    with ThreadPoolExecutor(12) as pool:
        futures = [
            pool.submit(requests.post, srv.url + "/predict", files={"file": ("c.png", body)}, timeout=120)
            for _ in range(12)
        ]
        deadline = time.monotonic() + 60
        while requests.get(srv.url + "/health", timeout=10).json()["in_flight"] < 12:
            assert time.monotonic() < deadline, "the 12 requests never were in flight together"
            time.sleep(0.01)
        srv.proc.send_signal(signal.SIGTERM)
        answers = [f.result() for f in futures]
    assert [r.status_code for r in answers] == [200] * 12
    for r in answers:
        assert_same_top(r.json()["predictions"], want)
    # uvicorn re-raises the signal after its graceful shutdown, so the exit status names SIGTERM.
    assert srv.proc.wait(60) == -signal.SIGTERM, (tmp_path / "server.log").read_text()[-2000:]
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url + "/health", timeout=5)


def test_cli_serve_errors(server_env, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "paddlehub_cls", "serve", str(tmp_path), "--max-batch", "0"],
        env=server_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "--max-batch must be >= 1" in run.stderr


def test_page_shows_the_top5_in_a_headless_browser(server, reference):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    browser, driver_exe = shutil.which("chromium"), shutil.which("chromedriver")
    assert (
        browser and driver_exe
    ), "needs Debian's chromium and chromium-driver (.ci/run installs them with apt-get)"
    options.binary_location = browser
    driver = webdriver.Chrome(service=Service(driver_exe), options=options)
    try:
        driver.get(server.url + "/")
        assert MODEL in driver.title
        driver.find_element(By.ID, "file").send_keys(str(CAT))
        WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#top5 li")) == 5)
        items = driver.find_elements(By.CSS_SELECTOR, "#top5 li")
        shown = [
            (li.get_attribute("data-label"), float(li.get_attribute("data-probability"))) for li in items
        ]
        texts = [li.text for li in items]
    finally:
        driver.quit()
    want = expected(reference, CAT)
    assert [label for label, _ in shown] == [p["label"] for p in want]
    np.testing.assert_allclose([p for _, p in shown], [p["probability"] for p in want], atol=1e-5)
    assert texts[0].startswith(f"{want[0]['label']} ({100 * want[0]['probability']:.2f}%)")


def test_sigint_stops_the_server_like_ctrl_c(server_env, tmp_path):
    from paddlehub_cls import load_model

    out = export(load_model("MobileNetV1", pretrained=False), tmp_path / "m", input_size=64)
    srv = Server([str(out), "--threads", "1"], server_env, tmp_path / "server.log")
    assert requests.get(srv.url + "/models", timeout=10).json()[0]["input_size"] == [3, 64, 64]
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(60) == 130
    assert "paddlehub-cls: error: interrupted" in (tmp_path / "server.log").read_text()
