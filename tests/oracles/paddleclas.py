"""PaddleClas 2.6.0 oracle: its own class, random weights, its own ``paddle.save``.

Set-up (CI does this once)::

    pip install -r tests/requirements-oracles.txt
    python tests/oracles/fetch_paddleclas.py        # unpacks into third_party/paddleclas

``$PADDLEHUB_CLS_PADDLECLAS_DIR`` overrides the location. Nothing is installed
or downloaded at import or call time; a missing checkout raises
:class:`oracles.OracleError` saying how to create it.

Every call runs ONE subprocess (PaddleClas uses global ``ParamAttr`` names, so
two models cannot share a process). ``module`` is the PaddleClas module path,
e.g. ``ppcls.arch.backbone.legendary_models.resnet`` or
``ppcls.arch.backbone.model_zoo.se_resnext``, ``builder`` its function, e.g.
``ResNet50`` (called as ``builder(pretrained=False, **kwargs)``; PaddleClas's
builders take ``class_num``, not ``num_classes``).

Example::

    from oracles.paddleclas import run_paddleclas
    res = run_paddleclas("ppcls.arch.backbone.legendary_models.resnet", "ResNet50",
                         {}, tmp_path, x)
    pdparams, logits = res          # also res.keys, res.num_keys, res.num_params
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import REPO_ROOT, OracleError, OracleResult, run_worker, subprocess_env

__all__ = [
    "PADDLECLAS_VERSION",
    "paddleclas_dir",
    "paddleclas_available",
    "require_paddleclas",
    "run_paddleclas",
    "paddleclas_param_count",
    "paddleclas_model_info",
    "paddleclas_forward",
]

PADDLECLAS_VERSION = "2.6.0"
MARKER_NAME = ".paddlehub_cls_fetched"
_WORKER = Path(__file__).resolve().parent / "_paddleclas_worker.py"


def paddleclas_dir() -> Path:
    """Where the unpacked wheel lives: ``$PADDLEHUB_CLS_PADDLECLAS_DIR`` or ``third_party/paddleclas``."""
    env = os.environ.get("PADDLEHUB_CLS_PADDLECLAS_DIR")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "third_party" / "paddleclas"


def _import_root(root: Path) -> Path:
    # The wheel's top-level package ``paddleclas`` holds ``ppcls`` (a namespace
    # package), so ``<root>/paddleclas`` goes on PYTHONPATH for ``import ppcls``.
    return root / "paddleclas"


def paddleclas_available() -> bool:
    """True when the unpacked PaddleClas wheel is present (marker written by the fetch script)."""
    root = paddleclas_dir()
    return (root / MARKER_NAME).is_file() and (_import_root(root) / "ppcls" / "arch").is_dir()


def require_paddleclas() -> Path:
    """The import root for PaddleClas, or :class:`OracleError` saying how to set it up."""
    root = paddleclas_dir()
    if not paddleclas_available():
        raise OracleError(
            f"PaddleClas {PADDLECLAS_VERSION} is not unpacked at {root} "
            f"(no {MARKER_NAME} marker or no paddleclas/ppcls/arch there). Set it up with: "
            "`pip install -r tests/requirements-oracles.txt && python tests/oracles/fetch_paddleclas.py` "
            "(or point $PADDLEHUB_CLS_PADDLECLAS_DIR at an existing unpacked copy)."
        )
    return _import_root(root)


def _write_input(out_dir: Path, stem: str, x: np.ndarray) -> Path:
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 4:
        raise ValueError(f"oracle input must be NCHW with 4 dims, got shape {x.shape}")
    path = out_dir / f"{stem}.input.npy"
    np.save(path, x)
    return path


def _call(mode: str, module: str, builder: str, kwargs: Mapping[str, Any], out_dir: Path,
          stem: str, x_path: Optional[Path], seed: int, calibrate: bool = True,
          pdparams: Optional[Path] = None, lazy: bool = True,
          model_urls: Optional[Mapping[str, str]] = None,
          damp: Optional[Tuple[Sequence[str], float]] = None) -> Dict[str, Any]:
    import_root = require_paddleclas()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "mode": mode,
        "module": module,
        "builder": builder,
        "kwargs": dict(kwargs),
        "out_dir": str(out_dir.resolve()),
        "stem": stem,
        "x_path": str(x_path) if x_path else None,
        "seed": int(seed),
        "calibrate": bool(calibrate),
        "pdparams": str(pdparams) if pdparams else None,
        "lazy": bool(lazy),
        "model_urls": dict(model_urls or {}),
        "damp": [list(damp[0]), float(damp[1])] if damp else None,
    }
    spec_path = out_dir / f"{stem}.spec.json"
    spec_path.write_text(json.dumps(spec))
    result_path = out_dir / f"{stem}.oracle.json"
    if result_path.exists():
        result_path.unlink()
    t0 = time.time()
    run_worker(_WORKER, spec_path, subprocess_env([import_root]),
               what=f"PaddleClas {module}.{builder}(**{dict(kwargs)!r})")
    if not result_path.is_file():
        raise OracleError(f"PaddleClas worker for {module}.{builder} exited 0 but wrote no {result_path}")
    info = json.loads(result_path.read_text())
    info["seconds"] = time.time() - t0
    return info


def run_paddleclas(
    module: str,
    builder: str,
    kwargs: Mapping[str, Any],
    out_dir: Path,
    x: np.ndarray,
    seed: int = 0,
    all_outputs: bool = False,
    name: Optional[str] = None,
    calibrate: bool = True,
    lazy: bool = True,
    model_urls: Optional[Mapping[str, str]] = None,
    damp: Optional[Tuple[Sequence[str], float]] = None,
) -> OracleResult:
    """Build a PaddleClas model, randomise it, save its state_dict, run it on ``x``.

    In one subprocess: ``getattr(import_module(module), builder)(pretrained=False,
    **kwargs)`` built under ``paddle.LazyGuard``, every state_dict tensor (BN running
    mean/variance included) set by :func:`oracles.randomize_layer`, BN
    running statistics calibrated on ``x`` (:func:`oracles.calibrate_bn_dygraph`),
    ``eval()``,
    ``paddle.save(model.state_dict(), out_dir / "<name>.pdparams")``, forward on
    ``x`` on CPU.

    Args:
        module: PaddleClas module, e.g. ``"ppcls.arch.backbone.legendary_models.resnet"``.
        builder: builder function in it, e.g. ``"ResNet50"``.
        kwargs: extra builder kwargs (JSON-serialisable), e.g. ``{"class_num": 10}``.
        out_dir: folder for the outputs (created).
        x: NCHW float32 input.
        seed: randomisation seed.
        all_outputs: also return the path of the ``.npz`` holding every output
            (``out0`` = main, ``out1``... = aux heads for GoogLeNet).
        name: file stem (default ``builder``).
        calibrate: calibrate BN statistics on ``x`` (default True).
        lazy: build under ``paddle.LazyGuard`` (default True); False for constructors
            that read their initial weights (ConvNeXt's ``head.weight.set_value``).
        model_urls: entries added to the module's ``MODEL_URLS`` before building, for
            constructors that read a key the dict lacks (``SE_HRNet_W64_C``).
        damp: ``(suffixes, factor)``: after calibration, parameters whose names end with one
            of ``suffixes`` are multiplied by ``factor``. Deep residual networks with random
            weights grow their activations block by block (EfficientNetV2-S: logits ~1e12
            at 64x64) until the rounding of one conv kernel against another decides the
            logits; shrinking the last BN of each residual branch keeps them O(1e2).

    Returns:
        :class:`oracles.OracleResult` ``(pdparams_path, logits)`` -- or
        ``(pdparams_path, logits, outputs_npz_path)`` with ``all_outputs=True`` --
        with attributes ``keys``, ``shapes``, ``num_keys``, ``num_params``
        (state_dict element count), ``outputs_path``, ``seconds`` and
        ``extra["num_trainable"]``, ``extra["model_class"]``. ``logits`` is the main
        output (first of a list/tuple).

    Raises:
        OracleError: PaddleClas is not set up, or the subprocess failed (message
            carries its stderr).
    """
    stem = name or builder
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_path = _write_input(out_dir, stem, x)
    info = _call("run", module, builder, kwargs, out_dir, stem, x_path, seed, calibrate,
                 lazy=lazy, model_urls=model_urls, damp=damp)
    logits = np.load(out_dir / f"{stem}.logits.npy")
    outputs_path = out_dir / f"{stem}.outputs.npz"
    more = (outputs_path,) if all_outputs else ()
    return OracleResult(
        Path(info["pdparams"]), logits, *more,
        keys=info["keys"], shapes=info["shapes"], num_params=info["num_params"],
        outputs_path=outputs_path, seconds=info["seconds"],
        num_trainable=info["num_trainable"], model_class=info["class"], output_keys=info["output_keys"],
    )


def paddleclas_model_info(module: str, builder: str, kwargs: Mapping[str, Any],
                          out_dir: Optional[Path] = None) -> Dict[str, Any]:
    """State_dict facts of a PaddleClas model without running it.

    Returns:
        ``{"keys": [...], "shapes": {...}, "num_params": int (state_dict elements,
        BN running stats included), "num_trainable": int, "class": str}``.
    """
    if out_dir is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="pc_oracle_") as tmp:
            return _call("count", module, builder, kwargs, Path(tmp), builder, None, 0)
    return _call("count", module, builder, kwargs, Path(out_dir), f"{builder}.{uuid.uuid4().hex[:8]}",
                 None, 0)


def paddleclas_param_count(module: str, builder: str, kwargs: Mapping[str, Any]) -> int:
    """Element count of the PaddleClas model's state_dict (BN running mean/variance included).

    For the trainable count use ``paddleclas_model_info(...)["num_trainable"]``.
    """
    return int(paddleclas_model_info(module, builder, kwargs)["num_params"])


def paddleclas_forward(module: str, builder: str, kwargs: Mapping[str, Any], pdparams: Path,
                       out_dir: Path, x: np.ndarray, name: Optional[str] = None) -> np.ndarray:
    """Main output of a fresh PaddleClas model loaded (``set_state_dict``) from ``pdparams``.

    A second, independent subprocess: use it to check that a saved file (ours
    or the oracle's) reproduces the oracle's logits. Raises :class:`OracleError`
    if the file has missing or unexpected keys for the model.
    """
    stem = name or f"{builder}.forward"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_path = _write_input(out_dir, stem, x)
    _call("load", module, builder, kwargs, out_dir, stem, x_path, 0, False, Path(pdparams).resolve())
    return np.load(out_dir / f"{stem}.logits.npy")
