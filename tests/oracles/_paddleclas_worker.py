"""Subprocess entry of :mod:`oracles.paddleclas`: ``python _paddleclas_worker.py spec.json``.

Runs in its own interpreter because PaddleClas gives parameters global
``ParamAttr`` names (two models in one process would collide). The spec is
written by :func:`oracles.paddleclas.run_paddleclas`; results go to files next
to the weights, described by ``<stem>.oracle.json``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from importlib import import_module
from pathlib import Path

# Run by path, Python puts this file's folder first on sys.path, where our
# ``paddleclas.py`` / ``fluid.py`` would shadow real packages; put ``tests/``
# there instead so the ``oracles`` package (shared randomisation) imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from oracles import calibrate_bn_dygraph, flatten_outputs, randomize_layer  # noqa: E402


def main(spec_path: str) -> int:
    t0 = time.time()
    spec = json.loads(Path(spec_path).read_text())
    import paddle

    paddle.set_device("cpu")
    paddle.seed(int(spec["seed"]))
    np.random.seed(int(spec["seed"]))

    # PaddleClas's logger is None until initialised and some constructors warn
    # through it (TheseusLayer.init_res); ERROR level keeps stdout quiet.
    from ppcls.utils import logger as ppcls_logger

    ppcls_logger.init_logger(log_level=logging.ERROR)

    mod = import_module(spec["module"])
    try:
        builder = getattr(mod, spec["builder"])
    except AttributeError:
        raise SystemExit(
            f"module {spec['module']!r} has no builder {spec['builder']!r}; "
            f"callables there: {sorted(n for n in dir(mod) if n[:1].isupper())}"
        )
    # Some constructors read a MODEL_URLS key that the dict lacks even with pretrained=False
    # (SE_HRNet_W64_C, ZOO_FACTS 1.2): the spec supplies the missing entries.
    for key, url in spec.get("model_urls", {}).items():
        mod.MODEL_URLS.setdefault(key, url)
    if spec["mode"] == "load" or not spec.get("lazy", True):
        # Some constructors read their fresh weights (ConvNeXt scales its head with
        # set_value), which a network built under paddle.LazyGuard does not have.
        model = builder(pretrained=False, **spec["kwargs"])
    else:
        # "run" sets every tensor and "count" reads only shapes: paddle's own init would be wasted.
        with paddle.LazyGuard():
            model = builder(pretrained=False, **spec["kwargs"])
    model.eval()

    state = model.state_dict()
    keys = list(state.keys())
    shapes = {k: [int(s) for s in v.shape] for k, v in state.items()}
    num_params = int(sum(int(np.prod(s)) for s in shapes.values()))
    num_trainable = int(sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient))
    info = {
        "keys": keys,
        "shapes": shapes,
        "num_params": num_params,
        "num_trainable": num_trainable,
        "class": type(model).__name__,
    }

    out_dir = Path(spec["out_dir"])
    stem = spec["stem"]
    if spec["mode"] == "run":
        randomize_layer(model, seed=int(spec["seed"]))
        x_np = np.load(spec["x_path"]).astype("float32")
        if spec.get("calibrate", True):
            info["bn_calibrated"] = calibrate_bn_dygraph(model, x_np, seed=int(spec["seed"]))
        if spec.get("damp"):
            suffixes, factor = spec["damp"]
            damped = 0
            for pname, param in model.named_parameters():
                if pname.endswith(tuple(suffixes)):
                    param.set_value(param * factor)
                    damped += 1
            if not damped:
                raise SystemExit(f"damp: no parameter of {spec['builder']} ends with {suffixes}")
            info["damped"] = damped
        pdparams = out_dir / f"{stem}.pdparams"
        paddle.save(model.state_dict(), str(pdparams))

        x = paddle.to_tensor(x_np)
        with paddle.no_grad():
            outputs = model(x)
        flat = flatten_outputs(outputs, lambda t: np.asarray(t.numpy()))
        np.savez(out_dir / f"{stem}.outputs.npz", **flat)
        main_key = next(iter(flat))
        np.save(out_dir / f"{stem}.logits.npy", flat[main_key])
        info.update(
            pdparams=str(pdparams),
            output_keys=list(flat),
            main_output=main_key,
        )
    elif spec["mode"] == "load":
        # Independent check that a .pdparams reproduces logits in a fresh model.
        loaded = paddle.load(spec["pdparams"])
        missing, unexpected = model.set_state_dict(loaded)
        if missing or unexpected:
            raise SystemExit(f"{spec['pdparams']} does not fit {spec['builder']}: "
                             f"missing {missing}, unexpected {unexpected}")
        model.eval()
        with paddle.no_grad():
            outputs = model(paddle.to_tensor(np.load(spec["x_path"]).astype("float32")))
        flat = flatten_outputs(outputs, lambda t: np.asarray(t.numpy()))
        np.savez(out_dir / f"{stem}.outputs.npz", **flat)
        np.save(out_dir / f"{stem}.logits.npy", flat[next(iter(flat))])
        info["output_keys"] = list(flat)
    info["seconds"] = time.time() - t0
    (out_dir / f"{stem}.oracle.json").write_text(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
