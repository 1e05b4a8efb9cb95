"""Deployment benchmark: ``python -m bench.deploy`` (or ``python bench/deploy.py``) from the repository root.

Needs the ``[onnx]`` and ``[serve]`` extras. Two parts, each against a baseline measured in the same run:

1. engines: ONNX Runtime and Paddle Inference vs dygraph (``model(x)`` under ``no_grad``) for
   ``--models`` at batch 1 and 8; the figure is the median seconds per batch and its speed-up over dygraph.
   A model the registry does not have (MobileNetV3_large_x1_0 before the zoo work lands) is skipped
   with a printed line.
2. serve: ``paddlehub-cls serve`` (a subprocess on 127.0.0.1) under 1, 8 and 32 concurrent clients
   posting the repo's photo for ``--serve-seconds``: throughput and p50/p99 latency, vs calling
   ``Predictor.predict`` on the same photo directly in this process (one image per call).

Weights are random (``pretrained=False``): speed does not depend on their values. Not a test: no
test asserts on time. The latest table: docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List

if __package__ in (None, ""):  # python bench/deploy.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "paddlehub_cls" / "data" / "chelsea.png"
DEFAULT_MODELS = ("ResNet50", "MobileNetV3_large_x1_0")


def per_batch(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_engines(name: str, work: Path, threads: int, repeats: int) -> List[Dict[str, Any]]:
    import numpy as np
    import paddle

    from paddlehub_cls import Predictor, export, load_model

    model = load_model(name, pretrained=False)
    model.eval()
    side = model.pretrained_cfg["input_size"][1]
    engines = {
        "onnxruntime": Predictor(
            export(model, work / f"{name}-onnx", format="onnx"), threads=threads, use_gpu=False
        ),
        "paddle": Predictor(export(model, work / f"{name}-paddle"), threads=threads, use_gpu=False),
    }
    rows = []
    for batch in (1, 8):
        x = np.random.default_rng(0).standard_normal((batch, 3, side, side)).astype(np.float32)
        xt = paddle.to_tensor(x)

        def dygraph() -> Any:
            with paddle.no_grad():
                return model(xt).numpy()

        base = per_batch(dygraph, repeats)
        rows.append({"model": name, "batch": batch, "engine": "dygraph", "s_per_batch": base, "speedup": 1.0})
        for engine, predictor in engines.items():
            s = per_batch(lambda: predictor.run(x), repeats)
            rows.append(
                {"model": name, "batch": batch, "engine": engine, "s_per_batch": s, "speedup": base / s}
            )
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(fn: Callable[[], Any], clients: int, seconds: float) -> Dict[str, float]:
    """Throughput and latency percentiles of ``clients`` threads calling ``fn`` for ``seconds``."""
    latencies: List[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        mine = []
        while time.perf_counter() < stop:
            t = time.perf_counter()
            fn()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "requests": len(latencies),
        "per_s": len(latencies) / wall,
        "p50_ms": 1e3 * q[49],
        "p99_ms": 1e3 * q[98],
    }


def bench_serve(name: str, work: Path, threads: int, seconds: float, backend: str) -> List[Dict[str, Any]]:
    import requests

    from paddlehub_cls import Predictor

    folder = work / f"{name}-{'onnx' if backend == 'onnxruntime' else 'paddle'}"
    direct = Predictor(folder, threads=threads, use_gpu=False)
    rows = [
        {
            "clients": 1,
            "how": "Predictor.predict in-process",
            **load(lambda: direct.predict(PHOTO), 1, seconds),
        }
    ]
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(threads), NO_PROXY="127.0.0.1")
    cmd = [
        sys.executable,
        "-m",
        "paddlehub_cls",
        "serve",
        str(folder),
        "--port",
        str(port),
        "--threads",
        str(threads),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    body = PHOTO.read_bytes()
    try:
        for _ in range(600):
            try:
                if requests.get(url + "/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise RuntimeError(
                f"the server did not start: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
            )

        def post() -> None:
            r = requests.post(url + "/predict", files={"file": ("c.png", body, "image/png")}, timeout=120)
            r.raise_for_status()

        for clients in (1, 8, 32):
            post()
            rows.append({"clients": clients, "how": f"serve ({backend})", **load(post, clients, seconds)})
        rows[-1]["health"] = requests.get(url + "/health", timeout=5).json()
    finally:
        proc.terminate()
        proc.wait(60)
    return rows


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="registry names")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of every engine (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches per engine figure (median)")
    parser.add_argument(
        "--serve-seconds", type=float, default=10.0, help="load duration per concurrency level"
    )
    parser.add_argument("--serve-backend", choices=("paddle", "onnxruntime"), default="onnxruntime")
    parser.add_argument("--json", default=str(REPO / "bench" / "deploy_results.json"), help="results file")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import warnings

    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
    from paddlehub_cls.registry import load_registry

    reg = load_registry()
    engines: List[Dict[str, Any]] = []
    serve: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        for name in args.models:
            if name not in reg:
                print(f"skip {name}: not in the registry (it arrives with the model zoo work)", flush=True)
                continue
            engines += bench_engines(name, Path(tmp), args.threads, args.repeats)
        served = next((m for m in args.models if m in reg), None)
        if served:
            serve = bench_serve(served, Path(tmp), args.threads, args.serve_seconds, args.serve_backend)
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; threads {args.threads}"
    )
    print("\n| model | batch | engine | ms per batch | speed-up vs dygraph |\n|---|---|---|---|---|")
    for r in engines:
        print(
            f"| {r['model']} | {r['batch']} | {r['engine']} | {1e3 * r['s_per_batch']:.1f} "
            f"| {r['speedup']:.2f}x |"
        )
    if serve:
        base = serve[0]["per_s"]
        print(f"\n{served}, one photo per request\n")
        print(
            "| clients | how | requests | per s | vs direct | p50 ms | p99 ms |\n"
            "|---|---|---|---|---|---|---|"
        )
        for r in serve:
            print(
                f"| {r['clients']} | {r['how']} | {r['requests']} | {r['per_s']:.2f} "
                f"| {r['per_s'] / base:.2f}x "
                f"| {r['p50_ms']:.0f} | {r['p99_ms']:.0f} |"
            )
    Path(args.json).write_text(json.dumps({"engines": engines, "serve": serve}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
