"""``paddlehub-cls serve``: an HTTP classification service on FastAPI + uvicorn (the ``[serve]`` extra).

Endpoints: ``POST /predict`` (a multipart upload, a JSON body ``{"image": "<base64>", "topk": 5}`` or
raw image bytes; answers the top-k with labels), ``GET /health``, ``GET /models`` and ``GET /`` (a
page to drop an image on). Concurrent requests are grouped into batches (:class:`MicroBatcher`)
of at most ``max_batch`` images, waiting at most ``max_wait_ms`` for a batch to fill. Uvicorn
handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish, then exits.

Importing this module imports neither FastAPI nor paddle.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import io
import json
import logging
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from paddlehub_cls._cliargs import add_model_arguments
from paddlehub_cls.deploy import require
from paddlehub_cls.errors import PaddleHubClsError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from paddlehub_cls.inference import Predictor

logger = logging.getLogger(__name__)

EXTRA = "serve"
DEFAULT_PORT = 8000
DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_WAIT_MS = 5.0
DEFAULT_MAX_UPLOAD_MB = 10.0
#: seconds uvicorn gives in-flight requests after SIGTERM/SIGINT.
GRACEFUL_SECONDS = 30

__all__ = ["MicroBatcher", "add_parsers", "create_app", "run_serve"]


class HTTPProblem(PaddleHubClsError, ValueError):
    """A request the service refuses; becomes a JSON ``{"detail": ...}`` answer with ``status``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class MicroBatcher:
    """Runs preprocessed images of concurrent requests through a Predictor in shared batches.

    A batch starts with the first waiting image and takes the others that arrive within
    ``max_wait_s``, up to ``max_batch``; the Predictor runs in a worker thread, so the event loop
    keeps accepting requests meanwhile.

    Attributes:
        batches: batches run so far. images: images classified so far. largest: the biggest batch.
    """

    def __init__(self, predictor: "Predictor", max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait >= 0, got {max_batch} and {max_wait_s}")
        self.predictor = predictor
        self.max_batch = min(max_batch, predictor.fixed_batch or max_batch)
        self.max_wait_s = max_wait_s
        self.batches = self.images = self.largest = 0
        self._queue: Optional["asyncio.Queue[Any]"] = None
        self._task: Optional["asyncio.Task[None]"] = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Finish the queued images, then stop."""
        if self._queue is not None and self._task is not None:
            await self._queue.put(None)
            await self._task

    async def submit(self, image: "np.ndarray") -> "np.ndarray":
        """The output row (logits) of one preprocessed ``(C, H, W)`` image."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.submit() before start()")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((image, future))
        return await future

    async def _loop(self) -> None:
        assert self._queue is not None  # start() set it
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            items = [first]
            deadline = loop.time() + self.max_wait_s
            while len(items) < self.max_batch:
                timeout = deadline - loop.time()
                try:
                    item = (
                        self._queue.get_nowait()
                        if timeout <= 0
                        else await asyncio.wait_for(self._queue.get(), timeout)
                    )
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                if item is None:
                    stopping = True
                    break
                items.append(item)
            await self._run(loop, items)

    async def _run(
        self, loop: asyncio.AbstractEventLoop, items: List[Tuple[Any, "asyncio.Future[Any]"]]
    ) -> None:
        import numpy as np

        batch = np.stack([image for image, _ in items])
        fixed = self.predictor.fixed_batch
        if fixed is not None and len(items) < fixed:
            batch = np.concatenate([batch, np.zeros((fixed - len(items), *batch.shape[1:]), batch.dtype)])
        try:
            logits = await loop.run_in_executor(None, self.predictor.run, batch)
        except Exception as exc:  # handed to every waiting request, which answers 500 with it
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.images += len(items)
        self.largest = max(self.largest, len(items))
        for (_, future), row in zip(items, logits):
            if not future.done():
                future.set_result(row)


def decode_image(data: bytes, source: str) -> Any:
    """An RGB PIL image from uploaded bytes; :class:`HTTPProblem` 400/413 naming the problem."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise HTTPProblem(400, f"the {source} is empty: send an image file (JPEG, PNG, ...)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise HTTPProblem(413, f"the {source} decodes to too many pixels: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise HTTPProblem(
            400,
            f"the {source} ({len(data)} bytes, starting {data[:12]!r}) is not an image that PIL can decode "
            f"({type(exc).__name__}: {exc}); send a JPEG, PNG, BMP, GIF or WebP file",
        ) from exc


def topk_of(logits: "np.ndarray", labels: List[str], k: int) -> List[Dict[str, Any]]:
    """``{"index", "label", "probability"}`` of the ``k`` largest softmax probabilities."""
    import numpy as np

    z = logits.astype(np.float64) - float(logits.max())
    probs = np.exp(z) / np.exp(z).sum()
    top = np.argsort(-probs, kind="stable")[:k]
    return [{"index": int(i), "label": labels[i], "probability": float(probs[i])} for i in top]


async def _read_limited(request: Any, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    too_big = (
        f"the request body exceeds this server's upload limit of {limit} bytes"
        " (start the server with a larger --max-upload-mb to accept it)"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPProblem(413, f"{too_big}: Content-Length is {declared}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_bytes(request: Any, body: bytes, limit: int) -> Tuple[bytes, str, Optional[Any]]:
    """(image bytes, what they were called, topk from the body) of a multipart, JSON or raw body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def once() -> Any:
            yield body

        try:
            form = await MultiPartParser(
                request.headers, once(), max_files=4, max_fields=8, max_part_size=limit
            ).parse()
        except MultiPartException as exc:
            raise HTTPProblem(400, f"the multipart body cannot be parsed: {exc.message}") from exc
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise HTTPProblem(
                400, f"the multipart body has no file (fields: {sorted(form.keys())}); send it as 'file'"
            )
        return await files[0].read(), f"uploaded file {files[0].filename!r}", form.get("topk")
    if ctype == "application/json":
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise HTTPProblem(400, f"the JSON body cannot be parsed: {exc}") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("image"), str):
            raise HTTPProblem(
                400, 'the JSON body must be an object {"image": "<base64 of the file>", "topk": 5}'
            )
        text = (
            payload["image"].split(",", 1)[-1] if payload["image"].startswith("data:") else payload["image"]
        )
        try:
            return base64.b64decode(text, validate=True), "base64 image", payload.get("topk")
        except (binascii.Error, ValueError) as exc:
            raise HTTPProblem(400, f"the JSON field 'image' is not valid base64: {exc}") from exc
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return body, "request body", None
    raise HTTPProblem(
        415,
        f"unsupported Content-Type {ctype or '(none)'!r}: send multipart/form-data with a 'file' field, "
        'application/json {"image": "<base64>"}, or the image bytes as image/*',
    )


def _topk_arg(raw: Any, num_classes: int) -> int:
    if raw is None:
        return min(5, num_classes)
    try:
        k = int(raw)
    except (TypeError, ValueError):
        k = 0
    if k < 1 or isinstance(raw, bool):
        raise HTTPProblem(400, f"topk must be a positive integer, got {raw!r}")
    return min(k, num_classes)


def create_app(
    predictor: "Predictor",
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2**20),
) -> Any:
    """The FastAPI application serving ``predictor``.

    Raises:
        MissingExtraError: FastAPI is not installed (the ``[serve]`` extra).
    """
    from contextlib import asynccontextmanager

    fastapi = require("fastapi", EXTRA, "paddlehub-cls serve")
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse

    batcher = MicroBatcher(predictor, max_batch, max_wait_ms / 1000.0)
    labels = predictor.labels()
    name = str(predictor.config.get("model"))
    state = {"in_flight": 0}

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await batcher.start()
        logger.info("serving %s (%s on %s)", name, predictor.backend, predictor.device)
        yield
        await batcher.stop()

    app = fastapi.FastAPI(title=f"paddlehub_cls: {name}", lifespan=lifespan)

    @app.exception_handler(HTTPProblem)
    async def problem(request: Any, exc: HTTPProblem) -> Any:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    # A plain Starlette route: the handler reads the body itself (bounded), so FastAPI must not parse it.
    async def predict(request: Any) -> Any:
        state["in_flight"] += 1
        try:
            body = await _read_limited(request, max_upload_bytes)
            data, source, body_topk = await _image_bytes(request, body, max_upload_bytes)
            k = _topk_arg(request.query_params.get("topk", body_topk), len(labels))
            image = await run_in_threadpool(decode_image, data, source)
            x = await run_in_threadpool(predictor.transform, image)
            row = await batcher.submit(x)
            return JSONResponse({"model": name, "predictions": topk_of(row, labels, k)})
        finally:
            state["in_flight"] -= 1

    app.router.add_route("/predict", predict, methods=["POST"])

    @app.get("/health")
    async def health() -> Dict[str, Any]:
        return {
            "status": "ok",
            "model": name,
            "backend": predictor.backend,
            "device": predictor.device,
            "in_flight": state["in_flight"],
            "batches": batcher.batches,
            "images": batcher.images,
            "largest_batch": batcher.largest,
            "max_batch": batcher.max_batch,
        }

    @app.get("/models")
    async def models() -> List[Dict[str, Any]]:
        cfg = predictor.pretrained_cfg
        return [
            {
                "name": name,
                "backend": predictor.backend,
                "device": predictor.device,
                "input_size": list(predictor.input_size),
                "num_classes": predictor.num_classes,
                "labels": predictor.config.get("labels"),
                "preprocessing": {k: cfg.get(k) for k in ("interpolation", "crop_pct", "mean", "std")},
            }
        ]

    page = resources.files("paddlehub_cls.deploy").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page.replace("{{MODEL}}", name)

    return app


# ---------------------------------------------------------------------------------------------- CLI


def add_parsers(subparsers: Any) -> None:
    """Register ``serve NAME [--weights W] [--host H] [--port P] [--backend B] ...``."""
    p = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP (needs paddlehub_cls[serve])",
        description=(
            "Classify images over HTTP: POST /predict (multipart file, JSON base64 or raw bytes), "
            "GET /health, "
            "GET /models, and a page at / to drop an image on. NAME is a model name (exported at start) or a "
            "directory written by `paddlehub-cls export`. SIGTERM/SIGINT finish in-flight requests, "
            "then exit."
        ),
    )
    add_model_arguments(p, name_help="model name (e.g. ResNet50) or an export directory")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument(
        "--backend",
        choices=("paddle", "onnxruntime"),
        default=None,
        help="engine (default: paddle for a model name, the export's own for a directory); "
        "onnxruntime needs paddlehub_cls[onnx]",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads of the engine (default: all allowed)"
    )
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="images per batch, at most")
    p.add_argument(
        "--max-wait-ms", type=float, default=DEFAULT_MAX_WAIT_MS, help="how long a batch waits to fill (ms)"
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help="largest request body (MiB)"
    )
    p.set_defaults(handler=run_serve)


def _predictor_for(args: argparse.Namespace, workdir: Path) -> "Predictor":
    from paddlehub_cls.exporting import CONFIG_NAME, export
    from paddlehub_cls.inference import Predictor

    folder = Path(args.name).expanduser()
    if (folder / CONFIG_NAME).is_file():
        if args.weights:
            raise ValueError(f"--weights applies to a model name; {args.name!r} is an export directory")
        return Predictor(folder, threads=args.threads, backend=args.backend)
    fmt = "onnx" if args.backend == "onnxruntime" else "paddle"
    out = export(args.name, workdir / "model", weights=args.weights, format=fmt)
    return Predictor(out, threads=args.threads, backend=args.backend)


def run_serve(args: argparse.Namespace) -> int:
    """Run ``paddlehub-cls serve`` until SIGTERM/SIGINT."""
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0..65535, got {args.port}")
    if args.max_batch < 1 or args.max_wait_ms < 0 or args.max_upload_mb <= 0:
        raise ValueError(
            f"--max-batch must be >= 1, --max-wait-ms >= 0 and --max-upload-mb > 0; got {args.max_batch}, "
            f"{args.max_wait_ms} and {args.max_upload_mb}"
        )
    uvicorn = require("uvicorn", EXTRA, "paddlehub-cls serve")
    require("fastapi", EXTRA, "paddlehub-cls serve")
    workdir = Path(tempfile.mkdtemp(prefix="paddlehub-cls-serve-"))
    try:
        predictor = _predictor_for(args, workdir)
        # Paddle's import installs a C-level SIGTERM handler that aborts the process ("FatalError:
        # Termination signal is detected"). The request path imports paddle (the transforms), so
        # without this an import during the first request would replace uvicorn's handler and a
        # SIGTERM would kill the server mid-request. Imported here, uvicorn installs its handlers last.
        import paddle  # noqa: F401

        app = create_app(
            predictor,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_upload_bytes=int(args.max_upload_mb * 2**20),
        )
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
        logger.warning(
            "serving %s on http://%s:%d (backend %s)", args.name, args.host, args.port, predictor.backend
        )
        # uvicorn stops accepting on SIGTERM/SIGINT, waits for in-flight requests, runs the lifespan
        # shutdown (the batcher drains), then re-raises the signal so the exit status tells it.
        uvicorn.Server(config).run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
