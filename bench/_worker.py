"""One measurement in a fresh process: ``python bench/_worker.py MODE ARGS...``.

Every mode prints one JSON object as its last line of stdout. Paddle is imported before any
timer starts (the figures exclude ``import paddle``); ``OMP_NUM_THREADS`` comes from the
environment the benchmark sets. Peak memory is the kernel's high-water mark (``VmHWM``), reset
just before the measured call through ``/proc/self/clear_refs``, minus the RSS at that moment.

Modes:
    make-weights DIR              random resnet50/vgg16 state_dicts via paddle.vision + paddle.save
    ours-load NAME                paddlehub_cls.load_model(NAME) (warm or cold: the cache decides)
    vision-load ARCH URL MD5      paddle.vision.models.ARCH(pretrained=True), file already cached
    floor ARCH FILE [KWARGS]      our graph under LazyGuard (with its import) + reading FILE's bytes
    registry-info NAME            the default weights of NAME: tag, URL, layout, builder (or absent)
    make-variant NAME FILE        random weights of NAME saved under its default variant's layout names
    cold-wait NAME GO_FILE        import, say ready, wait for GO_FILE, then load_model(NAME)
    fetch URL SHA256 CACHE_DIR    paddlehub_cls.hub.fetch of one file (no paddle import)
    export NAME DIR               paddlehub_cls.export(NAME, DIR, pretrained=False)
    infer-dygraph NAME BATCH SEC  dygraph eval images/s (random weights)
    infer-predictor DIR BATCH SEC Predictor images/s
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List

warnings.filterwarnings("ignore", message="No ccache found")


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _measure(call: Callable[[], Any]) -> Dict[str, Any]:
    """Seconds and peak RSS added by ``call()``."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # resets VmHWM to the current RSS
        peak_reset = True
    except OSError:
        peak_reset = False
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    out = {
        "seconds": seconds,
        "rss_before_kb": before,
        "rss_after_kb": _status_kb("VmRSS"),
        "peak_kb": _status_kb("VmHWM"),
        "peak_reset": peak_reset,
    }
    out["peak_added_kb"] = out["peak_kb"] - before
    out["_result"] = result
    return out


def _emit(data: Dict[str, Any]) -> None:
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _digest(path: Path) -> Dict[str, Any]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest(), "size": path.stat().st_size}


def make_weights(out_dir: str) -> None:
    import paddle
    from paddle.vision import models

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = {}
    for arch in ("resnet50", "vgg16"):
        paddle.seed(0)
        path = out / f"{arch}.pdparams"
        paddle.save(getattr(models, arch)().state_dict(), str(path))
        info[arch] = _digest(path)
    _emit(info)


def _after_forward(m: Dict[str, Any], model: Any) -> None:
    """RSS once the weights have been used: a forward pass touches every parameter page."""
    import numpy as np
    import paddle

    model.eval()
    with paddle.no_grad():
        model(paddle.to_tensor(np.zeros((1, 3, 224, 224), dtype="float32"))).numpy()
    m["rss_after_forward_kb"] = _status_kb("VmRSS")
    m["forward_added_kb"] = m["rss_after_forward_kb"] - m["rss_before_kb"]


def ours_load(name: str) -> None:
    import paddle  # noqa: F401 - imported before the timer, as the figure excludes it

    import paddlehub_cls

    m = _measure(lambda: paddlehub_cls.load_model(name))
    model = m["_result"]
    m["format"] = model.load_report.format
    _after_forward(m, model)
    _emit(m)


def vision_load(arch: str, url: str, md5: str) -> None:
    import importlib

    import paddle
    from paddle.vision import models

    module = importlib.import_module(getattr(models, arch).__module__)
    # The real entry points at the release file; ours is a random file with its own md5, already
    # in WEIGHTS_HOME, so paddle finds it, md5-checks it and loads it without downloading.
    module.model_urls[arch] = (url, md5)
    m = _measure(lambda: getattr(models, arch)(pretrained=True))
    _after_forward(m, m["_result"])
    _emit(m)
    del paddle


def floor(arch: str, file: str, kwargs: str = "{}") -> None:
    import paddle

    def work() -> None:
        from paddlehub_cls.models import get_builder

        with paddle.LazyGuard():
            get_builder(arch)(num_classes=1000, **json.loads(kwargs))
        with open(file, "rb") as f:
            f.read()

    _emit(_measure(work))


def registry_info(name: str) -> None:
    from paddlehub_cls.registry import load_registry

    reg = load_registry()
    if name not in reg or not reg.get(name).default_weights:
        _emit({"present": False})
        return
    info = reg.get(name)
    variant = info.variant(None)
    _emit(
        {
            "present": True,
            "tag": variant.tag,
            "url": variant.urls[0],
            "layout": variant.layout,
            "container": variant.container,
            "architecture": info.architecture,
            "kwargs": info.build_kwargs(None),
        }
    )


def make_variant(name: str, file: str) -> None:
    """Random weights written as the release file would be: its layout's names, ``paddle.save``."""
    import paddle

    import paddlehub_cls
    from paddlehub_cls.layouts import OptionalSource
    from paddlehub_cls.layouts import get_layout
    from paddlehub_cls.registry import load_registry

    info = load_registry().get(name)
    paddle.seed(0)
    model = paddlehub_cls.load_model(name, pretrained=False)
    mapping = get_layout(info.family, info.variant(None).layout)(model)
    state = {}
    for key, value in model.state_dict().items():
        src = mapping[key]
        state[src.key if isinstance(src, OptionalSource) else src] = value
    paddle.save(state, file)
    _emit(_digest(Path(file)))


def cold_wait(name: str, go_file: str) -> None:
    import paddle  # noqa: F401

    import paddlehub_cls

    print("ready", flush=True)
    go = Path(go_file)
    while not go.exists():
        time.sleep(0.002)
    model = paddlehub_cls.load_model(name)
    _emit({"end": time.time(), "layout": model.load_report.layout})


def fetch(url: str, sha256: str, cache_dir: str) -> None:
    from paddlehub_cls import hub

    m = _measure(lambda: hub.fetch(url, f"sha256:{sha256}", cache_dir=cache_dir, progress=False))
    m["path"] = str(m["_result"])
    _emit(m)


def export(name: str, out_dir: str) -> None:
    import paddlehub_cls

    paddlehub_cls.export(name, out_dir, pretrained=False)
    _emit({"dir": out_dir})


def _images_per_second(run: Callable[[], Any], batch: int, seconds: float) -> Dict[str, Any]:
    run()  # warm-up: allocations, oneDNN primitive creation
    times: List[float] = []
    spent = 0.0
    while spent < seconds or len(times) < 2:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    times.sort()
    median = times[len(times) // 2]
    return {"images_per_second": batch / median, "iterations": len(times), "median_batch_seconds": median}


def infer_dygraph(name: str, batch: str, seconds: str) -> None:
    import numpy as np
    import paddle

    import paddlehub_cls

    model = paddlehub_cls.load_model(name, pretrained=False)
    size = model.pretrained_cfg["input_size"]
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(int(batch), *size)).astype("float32"))

    def run() -> None:
        with paddle.no_grad():
            model(x).numpy()

    _emit(_images_per_second(run, int(batch), float(seconds)))


def infer_predictor(out_dir: str, batch: str, seconds: str) -> None:
    import numpy as np

    import paddlehub_cls

    predictor = paddlehub_cls.Predictor(out_dir, threads=int(os.environ.get("OMP_NUM_THREADS", "1")))
    x = np.random.default_rng(0).normal(size=(int(batch), *predictor.input_size)).astype("float32")
    _emit(_images_per_second(lambda: predictor.run(x), int(batch), float(seconds)))


MODES: Dict[str, Callable[..., None]] = {
    "make-weights": make_weights,
    "ours-load": ours_load,
    "vision-load": vision_load,
    "floor": floor,
    "registry-info": registry_info,
    "make-variant": make_variant,
    "cold-wait": cold_wait,
    "fetch": fetch,
    "export": export,
    "infer-dygraph": infer_dygraph,
    "infer-predictor": infer_predictor,
}

if __name__ == "__main__":
    MODES[sys.argv[1]](*sys.argv[2:])
