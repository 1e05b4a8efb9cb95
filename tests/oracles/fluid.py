"""2019 fluid oracle: a static program with the release's parameter names, saved like the release.

``run_fluid_oracle`` runs ONE subprocess (``FLAGS_enable_pir_api=0`` must be in
the environment before paddle is imported, and static names are global) that:

1. builds ``getattr(import_module(builder_module), builder_fn)(image, class_dim=..., **kwargs)``
   inside ``unique_name.guard()`` + ``program_guard(main, startup)``, with
   ``image = paddle.static.data("image", [None, C, H, W], "float32")`` (C, H, W
   from ``x``); the builder returns the logits Variable, or a list/tuple whose
   first item is the main output (GoogLeNet: ``[out, out1, out2]``);
2. ``test_prog = main.clone(for_test=True)``; does not run ``startup``: its
   initialisers would be overwritten (a dygraph model would be built under
   ``paddle.LazyGuard``);
3. creates every persistable variable (parameters and BN moving mean/variance)
   in the scope with :func:`oracles.random_array` of its declared shape, then calibrates BN moving
   statistics on ``x`` (a clone with ``batch_norm`` momentum 0 and dropout
   ``is_test``; then :func:`oracles.perturb_bn_stats`) so deep nets keep O(1)
   activations;
4. ``paddle.static.save_vars(exe, dirname=out_dir/"<name>_pretrained",
   main_program=main, vars=<those variables>, filename=None)`` -- one file per
   variable in the 2019 LoDTensor format (WEIGHTS_FACTS section 4) -- and packs
   ``out_dir/"<name>_pretrained.tar"`` (uncompressed, top-level folder
   ``<name>_pretrained/``, like the release archives);
5. runs ``test_prog`` on ``x`` and returns ``(tar_path, logits)``.

Builder modules live in ``tests/oracles/`` and are named ``oracles.<module>``
(e.g. ``"oracles.fluid_resnet"``); ``tests.oracles.<module>`` is accepted too.
``tests/oracles/_example_fluid.py`` is a complete small example.

Static APIs that reproduce the 2019 fluid layers (paddle 3.3.1, legacy IR)
--------------------------------------------------------------------------
Checked by ``tests/test_oracles.py`` (graph ops and saved names) where marked [t].

- conv: ``paddle.static.nn.conv2d(x, num_filters, filter_size, stride, padding,
  groups=g, param_attr=ParamAttr(name=n + "_weights"), bias_attr=False, act=None)``
  -> weight ``[out, in/g, kh, kw]``, no bias; the same ``conv2d`` /
  ``depthwise_conv2d`` op and arithmetic as fluid.layers.conv2d. For the VGG
  releases' conv bias pass ``bias_attr=ParamAttr(name=n + "_offset")`` [t: names].
  ``act="relu"`` works as in fluid.
- batch norm: ``paddle.static.nn.batch_norm(x, act=..., param_attr=ParamAttr(name=bn + "_scale"),
  bias_attr=ParamAttr(name=bn + "_offset"), moving_mean_name=bn + "_mean",
  moving_variance_name=bn + "_variance")`` (defaults momentum 0.9, epsilon 1e-5
  as fluid); moving mean/variance are persistable and saved [t]. The for_test
  clone switches it to the moving statistics (``is_test``) [t].
- fc: ``paddle.static.nn.fc(x, size, weight_attr=ParamAttr(name=...),
  bias_attr=ParamAttr(name=...), activation=None)``; weight ``[in, out]``, input
  flattened from dim 1 (``num_flatten_dims=1``, C,H,W order) [t]. Unnamed, it is
  ``fc_0.w_0`` / ``fc_0.b_0`` (counter reset by ``unique_name.guard()`` in the
  worker) [t]. fluid's ``act="softmax"`` on fc: use ``activation="softmax"`` or
  ``paddle.nn.functional.softmax``.
- pool: ``paddle.nn.functional.max_pool2d(x, k, stride, padding)`` and
  ``avg_pool2d(x, k, stride, padding, exclusive=True)`` = fluid ``pool2d``
  (``exclusive=True`` is fluid's default for avg); ``ceil_mode`` as in fluid.
  Global pool (``global_pooling=True``): ``adaptive_avg_pool2d(x, 1)`` or
  ``avg_pool2d(x, kernel_size=x.shape[2:])`` [t: adaptive].
- dropout (fluid default ``dropout_implementation="downgrade_in_infer"``):
  ``paddle.nn.functional.dropout(x, p, mode="downscale_in_infer")`` with the
  default ``training=True``; the for_test clone sets the op's ``is_test`` and
  it multiplies by ``1 - p`` at inference [t].
- other ops (``paddle.concat``, ``paddle.reshape``, ``paddle.transpose``,
  ``paddle.split``, ``paddle.nn.functional.relu6 / swish / sigmoid``,
  ``paddle.multiply``, ``paddle.add``, ``paddle.flatten``) work in legacy static
  mode as in dygraph.
- raw parameters: ``paddle.static.create_parameter(shape, "float32",
  attr=ParamAttr(name=...))``.

Oracles may use global ``ParamAttr`` names (each runs in its own process); our
library may not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import OracleError, OracleResult, run_worker, subprocess_env

__all__ = ["run_fluid_oracle", "read_var_names"]

_WORKER = Path(__file__).resolve().parent / "_fluid_worker.py"


def run_fluid_oracle(
    builder_module: str,
    builder_fn: str,
    kwargs: Mapping[str, Any],
    name: str,
    out_dir: Path,
    x: np.ndarray,
    seed: int = 0,
    class_dim: int = 1000,
    calibrate: bool = True,
) -> OracleResult:
    """Build, randomise, save (release tar) and run a 2019-style static program.

    Args:
        builder_module: module of the builder, e.g. ``"oracles.fluid_resnet"``.
        builder_fn: ``def fn(image, class_dim, **kwargs) -> logits Variable``
            (or a list/tuple, main output first).
        kwargs: extra builder kwargs (JSON-serialisable).
        name: release name, e.g. ``"ResNet50"``; files ``<name>_pretrained/``
            and ``<name>_pretrained.tar``.
        out_dir: output folder (created).
        x: NCHW float32 input; its C, H, W fix the program's input shape.
        seed: randomisation seed.
        class_dim: passed to the builder.
        calibrate: calibrate BN moving statistics on ``x`` (default True).

    Returns:
        :class:`oracles.OracleResult` ``(tar_path, logits)`` with ``keys`` (saved
        variable names = file names in the tar, sorted), ``shapes``, ``num_keys``,
        ``num_params``, ``outputs_path`` (``.npz`` of every fetched output) and
        ``extra``: ``var_dir`` (the unpacked folder), ``dtypes``,
        ``num_trainable``, ``bn_calibrated``, ``output_keys``. The names and
        shapes are also written to ``out_dir/"<name>.oracle.json"``.

    Raises:
        OracleError: the subprocess failed (message carries its stderr).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 4:
        raise ValueError(f"oracle input must be NCHW with 4 dims, got shape {x.shape}")
    x_path = out_dir / f"{name}.input.npy"
    np.save(x_path, x)
    spec = {
        "builder_module": builder_module,
        "builder_fn": builder_fn,
        "kwargs": dict(kwargs),
        "name": name,
        "out_dir": str(out_dir.resolve()),
        "x_path": str(x_path.resolve()),
        "seed": int(seed),
        "class_dim": int(class_dim),
        "calibrate": bool(calibrate),
    }
    spec_path = out_dir / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    result_path = out_dir / f"{name}.oracle.json"
    if result_path.exists():
        result_path.unlink()
    t0 = time.time()
    run_worker(_WORKER, spec_path, subprocess_env(FLAGS_enable_pir_api="0"),
               what=f"fluid program {builder_module}.{builder_fn}(**{dict(kwargs)!r}) as {name}")
    if not result_path.is_file():
        raise OracleError(f"fluid worker for {name} exited 0 but wrote no {result_path}")
    info = json.loads(result_path.read_text())
    logits = np.load(out_dir / f"{name}.logits.npy")
    return OracleResult(
        Path(info["tar"]), logits,
        keys=sorted(info["keys"]), shapes=info["shapes"], num_params=info["num_params"],
        outputs_path=out_dir / f"{name}.outputs.npz", seconds=time.time() - t0,
        var_dir=Path(info["var_dir"]), dtypes=info["dtypes"], num_trainable=info["num_trainable"],
        bn_calibrated=info["bn_calibrated"], output_keys=info["output_keys"],
    )


def read_var_names(out_dir: Path, name: str) -> list:
    """Sorted variable names saved by a previous :func:`run_fluid_oracle` call for ``name``."""
    info = json.loads((Path(out_dir) / f"{name}.oracle.json").read_text())
    return sorted(info["keys"])
