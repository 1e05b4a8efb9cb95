"""Run an exported model with Paddle Inference or ONNX Runtime: :class:`Predictor`.

:func:`paddlehub_cls.export` writes the directory this module reads. The predictor uses
oneDNN on CPU (GPU when paddle is compiled with CUDA and a device is visible), a chosen number
of threads, batching, and the model's own preprocessing
(:func:`paddlehub_cls.transforms.create_transform` of the exported ``pretrained_cfg``).

Importing this module does not import paddle; creating a :class:`Predictor` does.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple, Union

# ExportedModelError lives in paddlehub_cls.errors; importing it from here keeps working.
from paddlehub_cls._types import PathLike
from paddlehub_cls.errors import ExportedModelError
from paddlehub_cls.exporting import CONFIG_NAME, CONFIG_VERSION, MODEL_PREFIX

#: the ONNX model of an ``export(..., format="onnx")`` directory (see paddlehub_cls.deploy.onnx).
ONNX_NAME = f"{MODEL_PREFIX}.onnx"
#: the engines a Predictor can run an export on.
BACKENDS = ("paddle", "onnxruntime")

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

logger = logging.getLogger(__name__)

Prediction = Dict[str, Any]

__all__ = ["ExportedModelError", "Predictor", "default_threads"]


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set, else the CPUs this process may run on."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _locate(path_or_dir: PathLike) -> Path:
    """The ``paddlehub_cls.json`` of an export directory or of a file inside it."""
    p = Path(os.fspath(path_or_dir)).expanduser()
    folder = p if p.is_dir() else p.parent
    config = folder / CONFIG_NAME
    if not config.is_file():
        what = "directory" if p.is_dir() else ("file" if p.exists() else "path (missing)")
        raise ExportedModelError(
            f"{str(p)!r} ({what}) is not a paddlehub_cls export: {config.name} is missing in "
            f"{str(folder)!r}. Write one with paddlehub_cls.export(model_or_name, out_dir) or "
            "`paddlehub-cls export NAME OUT_DIR`"
        )
    return config


def _paddle_files(folder: Path) -> Tuple[Path, Path]:
    """(program, params) of a Paddle Inference export."""
    program = next(
        (
            folder / f"{MODEL_PREFIX}{ext}"
            for ext in (".json", ".pdmodel")
            if (folder / f"{MODEL_PREFIX}{ext}").is_file()
        ),
        None,
    )
    params = folder / f"{MODEL_PREFIX}.pdiparams"
    if program is None or not params.is_file():
        raise ExportedModelError(
            f"export directory {str(folder)!r} lacks {MODEL_PREFIX}.json/.pdmodel or {params.name} "
            f"(found {sorted(x.name for x in folder.iterdir())}); export the model again"
        )
    return program, params


def _choose_backend(folder: Path, backend: Optional[str]) -> str:
    """The backend asked for, or the one the directory's files call for."""
    onnx = folder / ONNX_NAME
    if backend is None:
        return "onnxruntime" if onnx.is_file() else "paddle"
    if backend == "onnxruntime" and not onnx.is_file():
        raise ExportedModelError(
            f"backend='onnxruntime' needs {ONNX_NAME} in {str(folder)!r} (found "
            f"{sorted(x.name for x in folder.iterdir())}); export with format='onnx' "
            "(`paddlehub-cls export NAME OUT_DIR --format onnx`), or pass backend='paddle' or None"
        )
    return backend


def _read_config(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportedModelError(f"cannot read {path}: {exc}; export the model again") from exc
    if not isinstance(data, dict) or not isinstance(data.get("pretrained_cfg"), dict) or "input" not in data:
        raise ExportedModelError(f"{path} lacks pretrained_cfg or input; export the model again")
    version = data.get("format_version")
    if not isinstance(version, int) or version > CONFIG_VERSION:
        raise ExportedModelError(
            f"{path} has format_version {version!r}; this paddlehub_cls reads up to {CONFIG_VERSION}: "
            "upgrade paddlehub_cls"
        )
    return data


def _want_gpu(use_gpu: Optional[bool]) -> bool:
    import paddle

    available = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if use_gpu is None:
        return available
    if use_gpu and not available:
        reason = "is not compiled with CUDA" if not paddle.is_compiled_with_cuda() else "sees no CUDA device"
        raise ValueError(
            f"use_gpu=True but this paddle ({paddle.__version__}) {reason}; install paddlepaddle-gpu and "
            "check "
            "CUDA_VISIBLE_DEVICES, or pass use_gpu=None (auto) / False"
        )
    return bool(use_gpu)


class _PaddleEngine:
    """Paddle Inference on a ``paddle.jit.save`` program: oneDNN on CPU, or a CUDA device."""

    def __init__(
        self, program: Path, params: Path, threads: int, use_gpu: Optional[bool], gpu_id: int
    ) -> None:
        import paddle.inference as pi

        cfg = pi.Config(str(program), str(params))
        if _want_gpu(use_gpu):
            cfg.enable_use_gpu(256, gpu_id)
            self.device = f"gpu:{gpu_id}"
        else:
            cfg.disable_gpu()
            # oneDNN kernels are what make CPU inference fast (issue 4 measured ~5x over dygraph).
            (cfg.enable_onednn if hasattr(cfg, "enable_onednn") else cfg.enable_mkldnn)()
            cfg.set_cpu_math_library_num_threads(threads)
            self.device = "cpu"
        cfg.switch_ir_optim(True)
        cfg.disable_glog_info()
        self._predictor = pi.create_predictor(cfg)
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output_name = self._predictor.get_output_names()[0]
        # A Paddle Inference predictor is not thread-safe; one lock keeps shared use correct.
        self._lock = threading.Lock()

    def run(self, x: "np.ndarray") -> "np.ndarray":
        with self._lock:
            self._input.reshape(list(x.shape))
            self._input.copy_from_cpu(x)
            self._predictor.run()
            return self._predictor.get_output_handle(self._output_name).copy_to_cpu()


class Predictor:
    """A Paddle Inference or ONNX Runtime predictor for a :func:`paddlehub_cls.export` directory.

    Args:
        path_or_dir: the export directory (or a file in it).
        threads: CPU threads for oneDNN/MKL; default :func:`default_threads`.
        use_gpu: None uses a GPU when paddle has CUDA and sees a device; True requires one.
        batch_size: images per forward pass in :meth:`predict` (an export with a fixed batch
            size always runs that many, padding the last batch).
        gpu_id: the device used on GPU.
        backend: ``"paddle"`` (Paddle Inference) or ``"onnxruntime"`` (an ``export(..., format="onnx")``
            directory; needs the ``[onnx]`` extra); None picks the one the directory's files call for.

    Attributes:
        pretrained_cfg: the exported model's metadata (preprocessing, head size, weights).
        input_size: ``(C, H, W)`` the program accepts.
        fixed_batch: the exported batch size, or None for any.
        device: ``"cpu"`` or ``"gpu:<id>"``.
        backend: ``"paddle"`` or ``"onnxruntime"``.
        threads: CPU threads in use.

    Raises:
        ExportedModelError: not an export directory, or ``backend`` asks for files it lacks.
        ValueError: bad arguments, or ``use_gpu=True`` without a usable GPU.
        MissingExtraError: an ONNX export without onnxruntime installed.

    Example:
        >>> p = Predictor("resnet50_infer")
        >>> p.predict("cat.jpg", topk=1)
        >>> logits = p.run(batch)        # (N, C, H, W) float32 -> (N, num_classes)
    """

    def __init__(
        self,
        path_or_dir: PathLike,
        *,
        threads: Optional[int] = None,
        use_gpu: Optional[bool] = None,
        batch_size: int = 8,
        gpu_id: int = 0,
        backend: Optional[str] = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None (automatic) or a positive int, got {threads!r}")
        if backend is not None and backend not in BACKENDS:
            raise ValueError(
                f"backend must be None (chosen by the export's files) or one of {list(BACKENDS)}, "
                f"got {backend!r}"
            )
        config_path = _locate(path_or_dir)
        self.path = config_path.parent
        self.backend = _choose_backend(self.path, backend)
        # The engine's files are checked before the JSON is read: a missing program is the likelier fault.
        files = _paddle_files(self.path) if self.backend == "paddle" else None
        self.config = _read_config(config_path)
        self.pretrained_cfg: Dict[str, Any] = self.config["pretrained_cfg"]
        shape = list(self.config["input"]["shape"])
        self.input_size: Tuple[int, int, int] = tuple(int(v) for v in shape[1:])  # type: ignore[assignment]
        self.fixed_batch: Optional[int] = int(shape[0]) if shape[0] not in (None, -1) else None
        self.batch_size = self.fixed_batch or batch_size
        self.num_classes = int(self.config["output"]["num_classes"])
        self.threads = threads or default_threads()
        self._engine: Any
        if files is None:
            from paddlehub_cls.deploy.onnx import OnnxRuntimeEngine

            self._engine = OnnxRuntimeEngine(self.path / ONNX_NAME, self.threads, use_gpu, gpu_id)
        else:
            self._engine = _PaddleEngine(*files, self.threads, use_gpu, gpu_id)
        self.device: str = self._engine.device
        self._transform: Any = None
        logger.debug(
            "Predictor for %s: %s on %s (%d threads)", self.path, self.backend, self.device, self.threads
        )

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.path)!r}, model={self.config.get('model')!r}, "
            f"input={list(self.input_size)}, "
            f"batch={self.fixed_batch or 'any'}, backend={self.backend!r}, device={self.device!r})"
        )

    def run(self, batch: "np.ndarray") -> "np.ndarray":
        """Logits of a preprocessed batch.

        Args:
            batch: ``(N, C, H, W)`` array (cast to float32 if needed), already preprocessed.

        Returns:
            ``(N, num_classes)`` float32 logits.

        Raises:
            ValueError: the batch does not fit the exported input spec.
        """
        import numpy as np

        x = np.asarray(batch)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_size:
            raise ValueError(
                f"expected a batch of shape (N, {', '.join(map(str, self.input_size))}), "
                f"got {list(x.shape)}; "
                "a single image needs x[None], and another size needs export(..., input_size=...)"
            )
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            raise ValueError(
                f"this model was exported for batches of exactly {self.fixed_batch}, got {x.shape[0]}; "
                "export it with batch_size=None for any batch size"
            )
        return self._engine.run(np.ascontiguousarray(x))

    @property
    def transform(self) -> Any:
        """The model's eval preprocessing (PIL image or uint8 HWC array -> CHW float32)."""
        if self._transform is None:
            from paddlehub_cls.transforms import create_transform

            self._transform = create_transform(self.pretrained_cfg)
        return self._transform

    def labels(self) -> List[str]:
        """Names of the outputs: the exported class names, ImageNet's for 1000 classes, else ``class_<i>``."""
        names = self.pretrained_cfg.get("class_names")
        if names is not None and len(names) == self.num_classes:
            return [str(n) for n in names]
        if self.num_classes == 1000:
            from paddlehub_cls.predict import imagenet_labels

            return list(imagenet_labels())
        return [f"class_{i}" for i in range(self.num_classes)]

    def predict(self, images: Union[Any, Iterable[Any]], topk: int = 5) -> List[List[Prediction]]:
        """Top-k classes of each image, preprocessed the way the model expects.

        Args:
            images: a file path, a folder (its image files, sorted by name), a PIL image, a
                uint8 HWC RGB array, or a list of these.
            topk: classes per image (capped at the number of classes).

        Returns:
            One list per image of ``{"index", "label", "probability"}`` dicts, most probable
            first, as :func:`paddlehub_cls.predict.predict` returns them.

        Raises:
            PredictionError: some images could not be read; ``results`` holds the others.
            ValueError: bad ``topk``, or an export without a classifier.
        """
        import numpy as np

        from paddlehub_cls.errors import ImageReadError, PredictionError
        from paddlehub_cls.predict import expand_images, read_image
        from paddlehub_cls.transforms import to_pil_image

        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ValueError(f"topk must be a positive int, got {topk!r}")
        if self.num_classes == 0:
            raise ValueError("this export has no classifier (num_classes=0); use run() for its features")
        labels = self.labels()
        k = min(topk, len(labels))
        items = expand_images(images)
        arrays: List[Optional[np.ndarray]] = []
        errors: Dict[str, str] = {}
        for item in items:
            try:
                if isinstance(item.source, Path):
                    image = read_image(item.source)
                else:
                    try:
                        image = to_pil_image(item.source)
                    except (TypeError, ValueError) as err:
                        raise ImageReadError(f"cannot use {item.name} as an image: {err}") from err
                arrays.append(np.asarray(self.transform(image), dtype=np.float32))
            except ImageReadError as err:
                errors[item.name] = str(err)
                arrays.append(None)
        good = [i for i, a in enumerate(arrays) if a is not None]
        results: List[Optional[List[Prediction]]] = [None] * len(items)
        for start in range(0, len(good), self.batch_size):
            idx = good[start : start + self.batch_size]
            batch = np.stack([arrays[i] for i in idx])
            if self.fixed_batch is not None and len(idx) < self.fixed_batch:
                pad = np.zeros((self.fixed_batch - len(idx), *batch.shape[1:]), dtype=batch.dtype)
                batch = np.concatenate([batch, pad])
            logits = self.run(batch)[: len(idx)].astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            for i, p in zip(idx, probs):
                top = np.argsort(-p, kind="stable")[:k]
                results[i] = [{"index": int(j), "label": labels[j], "probability": float(p[j])} for j in top]
        if errors:
            names = [item.name for item in items]
            raise PredictionError(
                f"{len(errors)} of {len(items)} images could not be read ({'; '.join(errors.values())}); "
                "the others were classified: see PredictionError.results",
                errors,
                results,
                names,
            )
        return results  # type: ignore[return-value]
