"""ONNX export through paddle2onnx, and the ONNX Runtime engine behind ``Predictor(backend="onnxruntime")``.

:func:`export_onnx` first writes the Paddle Inference program (:func:`paddlehub_cls.export`), then
converts it with paddle2onnx; the export directory holds ``inference.onnx`` and the same
``paddlehub_cls.json`` as a Paddle export (preprocessing, labels, input spec), plus an ``onnx``
section. Both need the ``[onnx]`` extra: ``pip install "paddlehub_cls[onnx]"``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Union

from paddlehub_cls._types import PathLike
from paddlehub_cls.deploy import require
from paddlehub_cls.errors import ExportError
from paddlehub_cls.exporting import CONFIG_NAME, MODEL_PREFIX, export, install_files
from paddlehub_cls.inference import ONNX_NAME

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

logger = logging.getLogger(__name__)

#: the opset asked of paddle2onnx; it raises it when an operator needs a newer one.
OPSET = 13
EXTRA = "onnx"

__all__ = ["ONNX_NAME", "OPSET", "OnnxRuntimeEngine", "export_onnx"]


def export_onnx(
    model_or_name: Any,
    out_dir: PathLike,
    *,
    input_size: Optional[Union[int, Sequence[int]]] = None,
    batch_size: Optional[int] = None,
    weights: Optional[PathLike] = None,
    pretrained: bool = True,
    opset: int = OPSET,
) -> Path:
    """Write a network as an ONNX model with its preprocessing metadata.

    Args:
        model_or_name, input_size, batch_size, weights, pretrained: as :func:`paddlehub_cls.export`;
            ``batch_size=None`` gives the ONNX input a dynamic batch dimension.
        out_dir: directory to write (created; files of an earlier export are replaced).
        opset: the lowest ONNX opset to target.

    Returns:
        ``out_dir``, holding ``inference.onnx`` and ``paddlehub_cls.json``.

    Raises:
        MissingExtraError: paddle2onnx or onnxruntime is not installed (the ``[onnx]`` extra).
        ExportError: paddle2onnx failed to convert the program, or onnxruntime cannot load the result.
        ValueError, TypeError, UnknownModelError, DownloadError, OSError: as :func:`paddlehub_cls.export`.
    """
    p2o = require("paddle2onnx", EXTRA, "ONNX export")
    out = Path(os.fspath(out_dir)).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-onnx-", dir=out))
    try:
        paddle_dir = export(
            model_or_name,
            tmp / "paddle",
            input_size=input_size,
            batch_size=batch_size,
            weights=weights,
            pretrained=pretrained,
        )
        config = json.loads((paddle_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        program = next(paddle_dir / n for n in config["files"] if n.endswith((".json", ".pdmodel")))
        params = paddle_dir / f"{MODEL_PREFIX}.pdiparams"
        try:
            # save_file=None returns the bytes before paddle2onnx's optional Polygraphy pass, which
            # would pip-install packages at run time; its own graph optimiser still runs.
            data = p2o.export(
                str(program),
                str(params),
                save_file=None,
                opset_version=opset,
                auto_upgrade_opset=True,
                enable_onnx_checker=True,
                enable_optimize=True,
            )
        # paddle2onnx logs its error and then fails with whatever it hit; on some unsupported
        # attributes its C++ parser even calls exit(-1), which arrives as SystemExit.
        except (Exception, SystemExit) as exc:
            raise ExportError(
                f"paddle2onnx {getattr(p2o, '__version__', '?')} could not convert {config['model']} "
                f"({program.name}): {type(exc).__name__}: {exc}; export format='paddle' instead, or report "
                "the operator named above to paddle2onnx"
            ) from exc
        if not isinstance(data, bytes) or not data:
            raise ExportError(
                f"paddle2onnx {getattr(p2o, '__version__', '?')} returned no model for {config['model']} "
                f"({program.name}); export format='paddle' instead"
            )
        _check_loads(data, config["model"], getattr(p2o, "__version__", "?"))
        (tmp / ONNX_NAME).write_bytes(data)
        config["format"] = "onnx"
        config["onnx"] = {"opset_min": opset, "converter": f"paddle2onnx {getattr(p2o, '__version__', '?')}"}
        install_files(tmp, out, [ONNX_NAME], config)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported %s as ONNX (input %s) to %s", config["model"], config["input"]["shape"], out)
    return out


def _check_loads(data: bytes, model: str, converter: str) -> None:
    """Load the converted graph in ONNX Runtime, so that an export it would refuse fails here.

    paddle2onnx's own checker passes graphs that ONNX Runtime's shape inference refuses (an
    adaptive pooling that upsamples becomes an AveragePool of stride 0); failing at export names
    the model and the remedy. (onnx's strict shape inference dies of SIGFPE on that graph.)
    """
    ort = require("onnxruntime", EXTRA, "ONNX export")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ExportError(
            f"paddle2onnx {converter} converted {model} into an ONNX graph that onnxruntime "
            f"{ort.__version__} cannot load: {exc}; export at the model's own input size "
            "(input_size=None), or use format='paddle'"
        ) from exc


class OnnxRuntimeEngine:
    """Runs ``inference.onnx`` with ONNX Runtime; the engine of ``Predictor(backend="onnxruntime")``.

    Args:
        model_path: the ``.onnx`` file.
        threads: intra-op CPU threads.
        use_gpu: None uses CUDA when onnxruntime offers it; True requires it.
        gpu_id: the CUDA device.

    Raises:
        MissingExtraError: onnxruntime is not installed.
        ValueError: ``use_gpu=True`` without onnxruntime's CUDA provider.
        ExportedModelError: the file is not a loadable ONNX model.
    """

    def __init__(self, model_path: Path, threads: int, use_gpu: Optional[bool], gpu_id: int = 0) -> None:
        from paddlehub_cls.errors import ExportedModelError

        ort = require("onnxruntime", EXTRA, "Predictor(backend='onnxruntime')")
        available = ort.get_available_providers()
        has_cuda = "CUDAExecutionProvider" in available
        if use_gpu and not has_cuda:
            raise ValueError(
                f"use_gpu=True but onnxruntime {ort.__version__} offers only {available}; install "
                "onnxruntime-gpu, or pass use_gpu=None (auto) / False"
            )
        providers: List[Any] = ["CPUExecutionProvider"]
        self.device = "cpu"
        if has_cuda and use_gpu is not False:
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": gpu_id}))
            self.device = f"gpu:{gpu_id}"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Predictor runs one batch at a time: a second pool of threads would only compete.
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types, not OSError
            raise ExportedModelError(
                f"onnxruntime {ort.__version__} cannot load {model_path}: {exc}; export the model again"
            ) from exc
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def run(self, x: "np.ndarray") -> "np.ndarray":
        """``(N, num_classes)`` outputs of a float32 NCHW batch (an InferenceSession is thread-safe)."""
        return self._session.run([self._output], {self._input: x})[0]
