"""Oracle harnesses for the fidelity tests.

An *oracle* is a reference implementation (PaddleClas 2.6.0's own classes, a static
program with the 2019 fluid parameter names, or ``paddle.vision.models``) that is
given random weights, writes them in its source's real format with its source's
own writer, and reports its eval logits on a fixed input. A fidelity test loads
that file into our network and compares logits.

Modules:

- :mod:`oracles.paddleclas` -- ``run_paddleclas`` / ``paddleclas_param_count``
  (one subprocess per model: PaddleClas uses global ``ParamAttr`` names).
- :mod:`oracles.fluid` -- ``run_fluid_oracle`` (one subprocess per program:
  ``FLAGS_enable_pir_api=0`` must be set before paddle is imported).
- :mod:`oracles.vision` -- ``vision_oracle`` (in-process).

All three randomise weights with :func:`randomize_state` so results are
comparable. This package imports only numpy; paddle is imported inside the
functions (vision) or in the worker subprocesses (paddleclas, fluid).

Import it from test files as ``from oracles.paddleclas import run_paddleclas``
(pytest puts ``tests/`` on ``sys.path`` because ``tests/`` has no
``__init__.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "OracleError",
    "OracleResult",
    "classify_param",
    "random_array",
    "randomize_state",
    "randomize_layer",
    "perturb_bn_stats",
    "calibrate_bn_dygraph",
    "flatten_outputs",
    "oracle_input",
    "subprocess_env",
    "run_worker",
    "REPO_ROOT",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

# Bounds of the randomisation policy (see randomize_state).
BN_VARIANCE_RANGE = (0.5, 1.5)
BN_SCALE_RANGE = (0.8, 1.2)
BN_MEAN_STD = 0.1
BIAS_STD = 0.05


class OracleError(RuntimeError):
    """An oracle subprocess failed or produced unusable output.

    The message carries the command, the exit status and the tail of the
    subprocess's stderr, so a failing fidelity test shows PaddleClas's or
    Paddle's own traceback.
    """


class OracleResult(tuple):
    """A ``(weights_path, logits)`` pair that also carries details as attributes.

    Unpacks like the plain 2-tuple (``path, logits = run_...(...)``); the extra
    attributes depend on the oracle:

    - ``keys``: state_dict keys (pdparams oracles) or saved variable names
      (fluid), in save order.
    - ``shapes``: ``{key: shape list}``.
    - ``num_keys``: ``len(keys)``.
    - ``num_params``: total element count of everything saved (BN running
      statistics included).
    - ``outputs_path``: ``.npz`` with every output of the forward pass
      (``out0``, ``out1``, ... for list/tuple outputs, the dict keys for dict
      outputs); ``None`` where not written.
    - ``seconds``: wall time of the subprocess (diagnostics only).
    """

    def __new__(cls, path: Path, logits: np.ndarray, *more: Any, **info: Any) -> "OracleResult":
        # ``more`` lets a caller ask for a longer tuple (e.g. the outputs .npz).
        self = super().__new__(cls, (path, logits) + more)
        self.keys = list(info.pop("keys", []))
        self.shapes = dict(info.pop("shapes", {}))
        self.num_keys = len(self.keys)
        self.num_params = int(info.pop("num_params", 0))
        self.outputs_path = info.pop("outputs_path", None)
        self.seconds = float(info.pop("seconds", 0.0))
        self.extra = info
        return self

    @property
    def path(self) -> Path:
        return self[0]

    @property
    def logits(self) -> np.ndarray:
        return self[1]


def classify_param(name: str, shape: Sequence[int]) -> str:
    """Kind of a parameter for the randomisation policy.

    Works on both naming schemes: structured state_dict keys (``bn._variance``,
    ``bn.weight``, ``fc.bias``) and 2019 fluid names (``bn_conv1_variance``,
    ``conv1_bn_scale``, ``fc6_offset``, ``fc_0.w_0``, ``fc_0.b_0``).

    Returns:
        One of ``"variance"``, ``"mean"``, ``"scale"``, ``"bias"``, ``"weight"``,
        ``"scalar"``.
    """
    low = name.lower()
    ndim = len(shape)
    if ndim == 0:
        return "scalar"
    if low.endswith("variance"):
        return "variance"
    if low.endswith("mean"):
        return "mean"
    if ndim >= 2:
        return "weight"
    # 1-D from here on
    if (
        low.endswith("_scale")
        or low.endswith(".scale")
        or low.endswith(".weight")
        or low.endswith("_weight")
        or low.endswith(".gamma")
    ):
        return "scale"
    return "bias"


def _fan_in(shape: Sequence[int]) -> int:
    # Conv weights are [out, in/groups, kh, kw]; Paddle and fluid Linear/fc
    # weights are [in, out], so their fan-in is the first dim.
    if len(shape) == 2:
        return max(int(shape[0]), 1)
    return max(int(np.prod(shape[1:])), 1)


def _normal(rng: np.random.Generator, shape: Tuple[int, ...], mean: float, std: float) -> np.ndarray:
    # Drawn in float32: float64 draws and a cast cost twice the time (VGG: 138 M values).
    arr = np.asarray(rng.standard_normal(shape, dtype=np.float32))
    arr *= np.float32(std)
    arr += np.float32(mean)
    return arr


def _uniform(rng: np.random.Generator, shape: Tuple[int, ...], low: float, high: float) -> np.ndarray:
    arr = np.asarray(rng.random(shape, dtype=np.float32))
    arr *= np.float32(high - low)
    arr += np.float32(low)
    return arr


def random_array(name: str, shape: Sequence[int], dtype: Any, seed: int) -> np.ndarray:
    """One randomised tensor, a function of (seed, name, shape) only.

    The policy keeps activations O(1) through ~150 layers so logits neither
    explode nor vanish and a 1e-4 relative tolerance is a real test:

    - conv weights (ndim >= 3): N(0, sqrt(2 / fan_in)) (He, for ReLU nets);
    - fc weights (ndim == 2, ``[in, out]``): N(0, sqrt(1 / in));
    - BN variance: U(0.5, 1.5) (strictly positive); BN mean: N(0, 0.1);
    - BN scale (1-D ``.weight`` / ``_scale``): U(0.8, 1.2);
    - biases / BN offsets: N(0, 0.05); 0-d floats: U(0.8, 1.2).

    Each tensor has its own generator seeded from ``(seed, crc32(name))``, so
    the values do not depend on iteration order or on the other tensors. They
    are drawn in float32 and then cast to ``dtype``, so ``dtype`` does not
    change them either.
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])
    shape = tuple(int(s) for s in shape)
    kind = classify_param(name, shape)
    if kind == "variance":
        arr = _uniform(rng, shape, *BN_VARIANCE_RANGE)
    elif kind == "mean":
        arr = _normal(rng, shape, 0.0, BN_MEAN_STD)
    elif kind in ("scale", "scalar"):
        arr = _uniform(rng, shape, *BN_SCALE_RANGE)
    elif kind == "bias":
        arr = _normal(rng, shape, 0.0, BIAS_STD)
    else:
        gain = 1.0 if len(shape) == 2 else 2.0
        arr = _normal(rng, shape, 0.0, np.sqrt(gain / _fan_in(shape)))
    return np.ascontiguousarray(arr, dtype=dtype)


def randomize_state(
    named_arrays: Mapping[str, np.ndarray] | Iterable[Tuple[str, np.ndarray]],
    seed: int = 0,
) -> Dict[str, np.ndarray]:
    """Random replacement for every floating tensor of a state.

    Args:
        named_arrays: ``{name: array}`` (or pairs); only names, shapes and dtypes
            are used. Non-float arrays (int counters) are returned unchanged.
        seed: base seed; with :func:`random_array` each tensor depends only on
            ``(seed, name, shape)``.

    Returns:
        A new dict, same keys and order, same shapes and dtypes.
    """
    items = named_arrays.items() if isinstance(named_arrays, Mapping) else named_arrays
    out: Dict[str, np.ndarray] = {}
    for name, arr in items:
        arr = np.asarray(arr)
        if np.issubdtype(arr.dtype, np.floating):
            out[name] = random_array(name, arr.shape, arr.dtype, seed)
        else:
            out[name] = arr
    return out


def randomize_layer(model: Any, seed: int = 0) -> Dict[str, np.ndarray]:
    """Set every state_dict tensor of a dygraph ``model`` to its :func:`random_array`.

    Works on a network built under ``paddle.LazyGuard`` (no time spent on an
    initialisation that is overwritten): each lazy parameter gets its values
    here and its deferred initialiser is dropped, so nothing re-initialises it.

    Returns:
        The arrays set, by state_dict key.

    Integer buffers that the constructor computed (Swin's ``relative_position_index``)
    keep their values and are returned as they are.

    Raises:
        OracleError: a state tensor is not floating point and has no value, so it
            cannot be randomised (built lazily, it would stay empty).
    """
    out: Dict[str, np.ndarray] = {}
    for key, tensor in model.state_dict().items():
        dtype = np.dtype(str(tensor.dtype).replace("paddle.", ""))
        if not np.issubdtype(dtype, np.floating) and tensor._is_initialized():
            out[key] = tensor.numpy()
            continue
        if not np.issubdtype(dtype, np.floating):
            raise OracleError(
                f"{type(model).__name__}.{key} is {dtype}, not floating point: randomize_layer cannot set it; "
                "build this model without paddle.LazyGuard and use randomize_state"
            )
        arr = random_array(key, tensor.shape, dtype, seed)
        tensor.set_value(arr)
        if getattr(tensor, "_init_func", None) is not None:
            tensor._init_func = None
        out[key] = arr
    return out


def perturb_bn_stats(key: str, mean: np.ndarray, var: np.ndarray, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Random per-channel jitter of calibrated BN running statistics.

    After calibration a BN layer's running mean/variance equal the batch
    statistics of its input, so eval mode would exactly whiten it; the jitter
    (mean shifted by N(0, 0.1) standard deviations, variance floored at 1e-3 and
    scaled by U(0.7, 1.4)) keeps the BN maths non-trivial. The next layer sums
    over many channels, so the per-channel factors average out instead of
    compounding with depth.
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(("bnstat:" + key).encode("utf-8"))])
    mean = np.asarray(mean)
    var_in = np.asarray(var)
    var64 = np.maximum(var_in.astype(np.float64), 1e-3)
    new_mean = mean.astype(np.float64) + rng.normal(0.0, 0.1, size=var64.shape) * np.sqrt(var64)
    new_var = var64 * rng.uniform(0.7, 1.4, size=var64.shape)
    return new_mean.astype(mean.dtype), new_var.astype(var_in.dtype)


def calibrate_bn_dygraph(model: Any, x: np.ndarray, seed: int = 0) -> int:
    """Set every BN layer's running statistics from a forward pass on ``x``, then jitter them.

    Random weights with BN in eval mode (running stats unrelated to the actual
    activations) make residual nets grow by ~2x per block (ResNet152 logits
    ~1e11). So, like data-dependent initialisation, each BN layer gets
    momentum 0 and training mode (every other layer stays in eval, so dropout
    is off) for one forward pass on ``x``; its running mean/variance then are
    its input's batch statistics, which :func:`perturb_bn_stats` jitters.

    Returns:
        Number of BN layers calibrated. The model is left in eval mode.
    """
    import paddle
    from paddle.nn.layer.norm import _BatchNormBase

    bn_types: Tuple[type, ...] = (_BatchNormBase, paddle.nn.BatchNorm)
    named = [(n, l) for n, l in model.named_sublayers(include_self=True) if isinstance(l, bn_types)]
    if not named:
        model.eval()
        return 0
    model.eval()
    saved = []
    for _, layer in named:
        saved.append(layer._momentum)
        layer._momentum = 0.0
        layer.training = True
    with paddle.no_grad(), warnings.catch_warnings():
        # Paddle notes that training mode tracks running stats: that is the point here.
        warnings.filterwarnings("ignore", message="When training, we now always track global mean")
        model(paddle.to_tensor(np.asarray(x, dtype=np.float32)))
    for (name, layer), momentum in zip(named, saved):
        layer._momentum = momentum
        layer.training = False
        mean, var = perturb_bn_stats(name, layer._mean.numpy(), layer._variance.numpy(), seed)
        layer._mean.set_value(mean)
        layer._variance.set_value(var)
    model.eval()
    return len(named)


def oracle_input(
    batch: int = 2, height: int = 224, width: int = 224, seed: int = 0, channels: int = 3
) -> np.ndarray:
    """A fixed NCHW float32 input whose samples differ in content, not only in noise.

    Pure per-pixel noise averages out under global pooling, so every sample of a
    random network would give nearly the same logits. Here each sample is a
    smooth random field (a few low-frequency cosines) with its own per-channel
    offset and contrast, plus a little noise, roughly in the range of
    ImageNet-normalised pixels.
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x1A9E])
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, height), np.linspace(0.0, 1.0, width), indexing="ij")
    out = np.empty((batch, channels, height, width), dtype=np.float64)
    for n in range(batch):
        for c in range(channels):
            field = np.zeros((height, width))
            for _ in range(4):
                fy, fx = rng.uniform(0.5, 6.0, size=2)
                phase = rng.uniform(0.0, 2 * np.pi)
                field += rng.normal() * np.cos(2 * np.pi * (fy * yy + fx * xx) + phase)
            field = field / (np.abs(field).max() + 1e-6)
            out[n, c] = rng.normal(0.0, 0.5) + rng.uniform(0.5, 1.5) * field
    out += rng.normal(0.0, 0.1, size=out.shape)
    return out.astype(np.float32)


def flatten_outputs(outputs: Any, to_numpy: Any) -> Dict[str, np.ndarray]:
    """Name every output of a forward pass; the main output comes first.

    A tensor gives ``{"out0": a}``; a list/tuple gives ``out0, out1, ...`` in
    order (PaddleClas GoogLeNet returns ``[out, out1, out2]``, paddle.vision
    googlenet ``(out, aux1, aux2)``: main first); a dict keeps its keys, with
    ``logits``/``output``/``out`` moved first when present.
    """
    if isinstance(outputs, Mapping):
        keys = list(outputs)
        for preferred in ("logits", "output", "out"):
            if preferred in outputs:
                keys.remove(preferred)
                keys.insert(0, preferred)
                break
        return {str(k): to_numpy(outputs[k]) for k in keys}
    if isinstance(outputs, (list, tuple)):
        flat: Dict[str, np.ndarray] = {}
        for i, o in enumerate(outputs):
            flat[f"out{i}"] = to_numpy(o)
        return flat
    return {"out0": to_numpy(outputs)}


def subprocess_env(extra_pythonpath: Sequence[Path] = (), **overrides: str) -> Dict[str, str]:
    """Environment for an oracle subprocess: few threads, quiet logs, CPU only."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", os.environ.get("PADDLEHUB_CLS_ORACLE_THREADS", "1"))
    env["GLOG_minloglevel"] = "2"
    env["GLOG_v"] = "0"
    env["FLAGS_call_stack_level"] = "2"
    # Oracles run on CPU so their logits do not depend on the runner's GPU.
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    paths = [str(p) for p in extra_pythonpath]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(overrides)
    return env


def run_worker(
    worker: Path,
    spec_path: Path,
    env: Mapping[str, str],
    what: str,
    timeout: Optional[float] = None,
) -> None:
    """Run ``python <worker> <spec_path>``; raise :class:`OracleError` with its stderr on failure."""
    if timeout is None:
        timeout = float(os.environ.get("PADDLEHUB_CLS_ORACLE_TIMEOUT", "900"))
    cmd = [sys.executable, "-W", "ignore:No ccache found:UserWarning", str(worker), str(spec_path)]
    try:
        proc = subprocess.run(cmd, env=dict(env), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        tail = exc.stderr or b""
        tail = tail.decode("utf-8", "replace") if isinstance(tail, bytes) else tail
        raise OracleError(
            f"oracle subprocess for {what} timed out after {timeout:.0f}s "
            f"(raise PADDLEHUB_CLS_ORACLE_TIMEOUT if the machine is slow); command: {cmd}\n"
            f"--- stderr tail ---\n{tail[-6000:]}"
        ) from None
    if proc.returncode != 0:
        raise OracleError(
            f"oracle subprocess for {what} failed with exit status {proc.returncode}; "
            f"command: {cmd}\n--- stderr tail ---\n{proc.stderr[-8000:]}"
            f"\n--- stdout tail ---\n{proc.stdout[-2000:]}"
        )
