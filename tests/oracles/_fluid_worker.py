"""Subprocess entry of :mod:`oracles.fluid`: ``python _fluid_worker.py spec.json``.

Builds a static program (legacy IR: ``FLAGS_enable_pir_api=0`` is set before
paddle is imported), randomises its parameters in the scope, calibrates BN
statistics, saves one file per variable with ``paddle.static.save_vars``, packs
the release-style tar and runs the for_test clone. Results are described by
``<name>.oracle.json`` next to the tar.
"""

from __future__ import annotations

import os

os.environ["FLAGS_enable_pir_api"] = "0"

import json  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from importlib import import_module  # noqa: E402
from pathlib import Path  # noqa: E402

# Run by path, Python puts this file's folder first on sys.path, where our
# ``paddleclas.py`` / ``fluid.py`` would shadow real packages; put ``tests/``
# there instead so ``oracles`` (and builder modules like ``oracles.fluid_resnet``)
# import.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from oracles import flatten_outputs, perturb_bn_stats, random_array  # noqa: E402

# Var types that are persistable but not tensors to save (io.is_persistable in 2019 fluid).
_SKIP_TYPES = ("FEED_MINIBATCH", "FETCH_LIST", "READER", "RAW")


def _saved_vars(program):
    import paddle

    out = []
    skip = {getattr(paddle.framework.core.VarDesc.VarType, t) for t in _SKIP_TYPES}
    for var in program.list_vars():
        if var.persistable and var.desc.type() not in skip:
            out.append(var)
    return out


def _random_vars(saved, seed: int):
    """:func:`oracles.random_array` of each variable, from its declared shape and dtype."""
    from paddle.base.data_feeder import convert_dtype

    out = {}
    for var in saved:
        dtype = np.dtype(convert_dtype(var.dtype))
        if not np.issubdtype(dtype, np.floating) or any(int(d) < 0 for d in var.shape):
            raise SystemExit(
                f"persistable variable {var.name} ({dtype}, shape {list(var.shape)}) cannot be randomised; "
                "a 2019-style builder declares only float parameters and BN statistics"
            )
        out[var.name] = random_array(var.name, var.shape, dtype, seed)
    return out


def _calibrate(exe, main, scope, place, feed, seed: int) -> int:
    """BN running stats := batch stats of a forward pass on ``feed`` (momentum 0), then jitter."""
    cal = main.clone()
    bn_ops = []
    for op in cal.global_block().ops:
        if op.type == "batch_norm":
            op._set_attr("momentum", 0.0)
            op._set_attr("is_test", False)
            if op.has_attr("use_global_stats"):
                op._set_attr("use_global_stats", False)
            bn_ops.append(op)
        elif op.has_attr("is_test"):
            # dropout & co. in inference behaviour during calibration
            op._set_attr("is_test", True)
    if not bn_ops:
        return 0
    exe.run(cal, feed=feed, fetch_list=[], scope=scope)
    for op in bn_ops:
        mean_name, var_name = op.input("Mean")[0], op.input("Variance")[0]
        mean_t = scope.find_var(mean_name).get_tensor()
        var_t = scope.find_var(var_name).get_tensor()
        mean, var = perturb_bn_stats(mean_name, np.array(mean_t), np.array(var_t), seed)
        mean_t.set(mean, place)
        var_t.set(var, place)
    return len(bn_ops)


def _tar_dir(src: Path, tar_path: Path) -> None:
    # Uncompressed, top-level folder <name>_pretrained/, members sorted, like the release tars.
    tmp = tar_path.with_suffix(".tar.part")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tf:
        tf.add(src, arcname=src.name, recursive=False)
        for f in sorted(src.iterdir()):
            tf.add(f, arcname=f"{src.name}/{f.name}", recursive=False)
    os.replace(tmp, tar_path)


def main(spec_path: str) -> int:
    t0 = time.time()
    spec = json.loads(Path(spec_path).read_text())
    import paddle

    paddle.enable_static()
    seed = int(spec["seed"])
    np.random.seed(seed)
    x = np.load(spec["x_path"]).astype("float32")
    name = spec["name"]
    out_dir = Path(spec["out_dir"])

    module_name = spec["builder_module"]
    if module_name.startswith("tests."):
        module_name = module_name[len("tests."):]
    build_fn = getattr(import_module(module_name), spec["builder_fn"])

    main_prog, startup = paddle.static.Program(), paddle.static.Program()
    main_prog.random_seed = seed
    startup.random_seed = seed
    with paddle.utils.unique_name.guard(), paddle.static.program_guard(main_prog, startup):
        image = paddle.static.data("image", [None] + list(x.shape[1:]), "float32")
        outputs = build_fn(image, class_dim=int(spec["class_dim"]), **spec["kwargs"])
    fetch = flatten_outputs(outputs, lambda v: v)
    test_prog = main_prog.clone(for_test=True)

    place = paddle.CPUPlace()
    exe = paddle.static.Executor(place)
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope):
        saved = _saved_vars(main_prog)
        names = [v.name for v in saved]
        # The startup program would only initialise what is set here, so it is not run
        # (like a dygraph model built under LazyGuard); a variable it alone would have
        # created makes the runs below fail loudly.
        new = _random_vars(saved, seed)
        for n in names:
            scope.var(n).get_tensor().set(new[n], place)
        n_bn = 0
        if spec.get("calibrate", True):
            n_bn = _calibrate(exe, main_prog, scope, place, {"image": x}, seed)

        var_dir = out_dir / f"{name}_pretrained"
        if var_dir.exists():
            for f in var_dir.iterdir():
                f.unlink()
        paddle.static.save_vars(exe, dirname=str(var_dir), main_program=main_prog, vars=saved, filename=None)
        tar_path = out_dir / f"{name}_pretrained.tar"
        _tar_dir(var_dir, tar_path)

        results = exe.run(test_prog, feed={"image": x}, fetch_list=list(fetch.values()), scope=scope)
    flat = {k: np.asarray(r) for k, r in zip(fetch, results)}
    np.savez(out_dir / f"{name}.outputs.npz", **flat)
    np.save(out_dir / f"{name}.logits.npy", flat[next(iter(flat))])
    shapes = {n: [int(s) for s in new[n].shape] for n in names}
    info = {
        "tar": str(tar_path),
        "var_dir": str(var_dir),
        "keys": names,
        "shapes": shapes,
        "dtypes": {n: str(new[n].dtype) for n in names},
        "num_params": int(sum(int(np.prod(s)) for s in shapes.values())),
        "num_trainable": int(sum(int(np.prod(p.shape)) for p in main_prog.all_parameters() if p.trainable)),
        "bn_calibrated": n_bn,
        "output_keys": list(flat),
        "seconds": time.time() - t0,
    }
    (out_dir / f"{name}.oracle.json").write_text(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
