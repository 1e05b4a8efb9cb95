"""paddle.vision oracle: ``paddle.vision.models.<fn>``, random weights, its own ``paddle.save``.

Runs in-process: paddle.vision gives no global parameter names, so several
models may share the test process. Imports paddle only when called.

Example::

    from oracles.vision import vision_oracle
    pdparams, logits = vision_oracle("resnet50", {}, tmp_path, x)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from . import OracleResult, calibrate_bn_dygraph, flatten_outputs, randomize_layer

__all__ = ["vision_oracle"]


def vision_oracle(
    fn_name: str,
    kwargs: Mapping[str, Any],
    out_dir: Path,
    x: np.ndarray,
    seed: int = 0,
    name: Optional[str] = None,
    calibrate: bool = True,
) -> OracleResult:
    """Build ``paddle.vision.models.<fn_name>(pretrained=False, **kwargs)``, randomise, save, run.

    The model is built under ``paddle.LazyGuard`` and every state_dict tensor (BN
    running mean/variance included) is set by :func:`oracles.randomize_layer` with
    ``seed``; BN running statistics are then calibrated on ``x``
    (:func:`oracles.calibrate_bn_dygraph`, so deep residual nets keep O(1)
    activations); the model is put in eval mode, saved with ``paddle.save(model.state_dict(), out_dir / "<name>.pdparams")``
    and run on ``x`` on the current device under ``no_grad``.

    Args:
        fn_name: builder in ``paddle.vision.models``, e.g. ``"mobilenet_v2"``.
        kwargs: builder kwargs, e.g. ``{"scale": 0.25}`` or ``{"num_classes": 10}``.
        out_dir: folder for the ``.pdparams`` and the ``.outputs.npz`` (created).
        x: NCHW float32 input.
        seed: randomisation seed.
        name: file stem (default ``fn_name``).
        calibrate: calibrate BN statistics on ``x`` (default True).

    Returns:
        :class:`oracles.OracleResult` ``(pdparams_path, logits)`` with ``keys``,
        ``shapes``, ``num_keys``, ``num_params`` (state_dict elements),
        ``outputs_path`` (every output; googlenet returns ``(out, aux1, aux2)``
        and ``logits`` is ``out``) and ``extra["num_trainable"]``.
    """
    import paddle
    import paddle.vision.models as pvm

    t0 = time.time()
    try:
        builder = getattr(pvm, fn_name)
    except AttributeError:
        raise ValueError(
            f"paddle.vision.models has no {fn_name!r}; available: "
            f"{sorted(n for n in dir(pvm) if n[:1].islower() and not n.startswith('_'))}"
        ) from None
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 4:
        raise ValueError(f"oracle input must be NCHW with 4 dims, got shape {x.shape}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or fn_name

    paddle.seed(int(seed))
    # Lazily: every tensor is overwritten, so paddle's own random init would be wasted time.
    with paddle.LazyGuard():
        model = builder(pretrained=False, **dict(kwargs))
    model.eval()
    state = model.state_dict()
    randomize_layer(model, seed=int(seed))
    if calibrate:
        calibrate_bn_dygraph(model, x, seed=int(seed))
    pdparams = out_dir / f"{stem}.pdparams"
    paddle.save(model.state_dict(), str(pdparams))

    with paddle.no_grad():
        outputs = model(paddle.to_tensor(x))
    flat = flatten_outputs(outputs, lambda t: np.asarray(t.numpy()))
    outputs_path = out_dir / f"{stem}.outputs.npz"
    np.savez(outputs_path, **flat)
    shapes = {k: [int(s) for s in v.shape] for k, v in state.items()}
    return OracleResult(
        pdparams, flat[next(iter(flat))],
        keys=list(state), shapes=shapes,
        num_params=sum(int(np.prod(s)) for s in shapes.values()),
        outputs_path=outputs_path, seconds=time.time() - t0,
        num_trainable=sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient),
        output_keys=list(flat),
    )
