"""A real HTTP/1.1 file server on 127.0.0.1 for download tests, with programmable faults.

It runs in a thread of the test process and is reached by URL, so subprocesses
can download from it too. It serves files from a dict and/or a directory,
supports ``Range``/``If-Range``/``ETag``/``Last-Modified``/``HEAD``, records every
request and counts the body bytes actually sent per path.

Faults are queued per path and each applies to a number of requests::

    server.set_file("/w.bin", data)
    server.add_fault("/w.bin", Fault(status=503), times=2)       # two 503s, then normal
    server.add_fault("/w.bin", Fault(drop_after=65536))          # next request: cut after 64 KiB
    server.add_fault("/w.bin", Fault(stall_after=0, stall=30))   # headers, then silence
    server.set_default_fault("/w.bin", Fault(ignore_range=True)) # every request after the queue

Run ``python tests/httpserver.py DIR`` to serve a directory from the command line.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Fault:
    """How to misbehave on one request. Unset fields mean normal behaviour.

    Attributes:
        status: answer with this status (and ``body``/``headers``) instead of the file.
        headers: extra response headers (e.g. ``{"Retry-After": "2"}``).
        body: send these bytes (with status 200 unless ``status`` is set) instead of the file.
        redirect_to: answer 302 with this Location (a path or a full URL).
        drop_after: send this many body bytes, then close the connection abruptly.
        stall_after: send this many body bytes, then go silent for ``stall`` seconds
            (or until the server stops) and close.
        stall: seconds to stall (default: until the server stops).
        stall_before_headers: seconds to wait before answering at all.
        ignore_range: answer 200 with the whole file even when a Range was asked.
        range_offset: answer a Range request with content starting at this offset instead.
        content_length_delta: add this to the Content-Length header (body unchanged).
        reset: close the connection without answering.
        chunk: bytes per write (with ``delay`` seconds between writes) to throttle.
        delay: seconds to sleep between body chunks.
    """

    status: Optional[int] = None
    headers: Dict[str, str] = field(default_factory=dict)
    body: Optional[bytes] = None
    redirect_to: Optional[str] = None
    drop_after: Optional[int] = None
    stall_after: Optional[int] = None
    stall: Optional[float] = None
    stall_before_headers: Optional[float] = None
    ignore_range: bool = False
    range_offset: Optional[int] = None
    content_length_delta: int = 0
    reset: bool = False
    chunk: int = 1 << 16
    delay: float = 0.0


NORMAL = Fault()


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    headers: Dict[str, str]
    status: int = 0
    body_bytes: int = 0

    @property
    def range(self) -> Optional[str]:
        return self.headers.get("range")


@dataclass
class _File:
    data: bytes
    etag: str
    last_modified: str


class FileServer:
    """Threaded HTTP server on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(self, files: Optional[Dict[str, bytes]] = None, directory: Optional[Path] = None) -> None:
        self._lock = threading.Lock()
        self._files: Dict[str, _File] = {}
        self._faults: Dict[str, List[Fault]] = {}
        self._default: Dict[str, Fault] = {}
        self.requests: List[Request] = []
        self.directory = Path(directory) if directory is not None else None
        self.stopping = threading.Event()
        for path, data in (files or {}).items():
            self.set_file(path, data)
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- content ---------------------------------------------------------------------
    def set_file(self, path: str, data: bytes, *, etag: Optional[str] = None) -> str:
        """Serve ``data`` at ``path`` (replacing any earlier content); returns its URL."""
        path = "/" + path.lstrip("/")
        tag = etag if etag is not None else '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        with self._lock:
            self._files[path] = _File(bytes(data), tag, formatdate(time.time(), usegmt=True))
        return self.url(path)

    def remove_file(self, path: str) -> None:
        with self._lock:
            self._files.pop("/" + path.lstrip("/"), None)

    def _lookup(self, path: str) -> Optional[_File]:
        with self._lock:
            f = self._files.get(path)
        if f is not None or self.directory is None:
            return f
        target = (self.directory / path.lstrip("/")).resolve()
        root = self.directory.resolve()
        if root not in target.parents or not target.is_file():
            return None
        data = target.read_bytes()
        st = target.stat()
        return _File(data, f'"{st.st_mtime_ns:x}-{st.st_size:x}"', formatdate(st.st_mtime, usegmt=True))

    # -- faults ----------------------------------------------------------------------
    def add_fault(self, path: str, fault: Fault, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` requests of ``path``."""
        with self._lock:
            self._faults.setdefault("/" + path.lstrip("/"), []).extend([fault] * times)

    def set_default_fault(self, path: str, fault: Optional[Fault]) -> None:
        """Apply ``fault`` to every request of ``path`` once its queue is empty (None: normal)."""
        with self._lock:
            if fault is None:
                self._default.pop("/" + path.lstrip("/"), None)
            else:
                self._default["/" + path.lstrip("/")] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._default.clear()

    def _next_fault(self, path: str) -> Fault:
        with self._lock:
            queue = self._faults.get(path)
            if queue:
                return queue.pop(0)
            return self._default.get(path, NORMAL)

    # -- statistics ------------------------------------------------------------------
    def requests_for(self, path: str, method: Optional[str] = "GET") -> List[Request]:
        path = "/" + path.lstrip("/")
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def body_bytes(self, path: str) -> int:
        """Body bytes actually written to sockets for ``path``, all requests together."""
        return sum(r.body_bytes for r in self.requests_for(path, None))

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the HOST part a mirror layout uses."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def start(self) -> "FileServer":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        httpd = self._httpd
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.05), name="test-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FileServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that give up (timeouts, killed processes) are part of the tests.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _parse_range(value: str, size: int) -> Optional[Tuple[int, int]]:
    """(start, end inclusive) of a single ``bytes=`` range, or None when unsatisfiable."""
    if not value.startswith("bytes=") or "," in value:
        return None
    first, _, last = value[6:].partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), size - 1) if n > 0 else None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FileServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _record(self) -> Request:
        path = self.path.split("?", 1)[0]
        req = Request(self.command, path, {k.lower(): v for k, v in self.headers.items()})
        with self.owner._lock:
            self.owner.requests.append(req)
        return req

    def _serve(self, head: bool) -> None:
        req = self._record()
        fault = self.owner._next_fault(req.path)
        if fault.stall_before_headers:
            self.owner.stopping.wait(fault.stall_before_headers)
        if fault.reset:
            self._abort()
            return
        if fault.redirect_to is not None:
            target = fault.redirect_to
            if target.startswith("/"):
                target = self.owner.url(target)
            self._simple(req, 302, b"", {"Location": target, **fault.headers})
            return
        if fault.status is not None:
            self._simple(req, fault.status, fault.body or b"", fault.headers, head)
            return
        if fault.body is not None:
            self._simple(req, 200, fault.body, fault.headers, head)
            return
        f = self.owner._lookup(req.path)
        if f is None:
            self._simple(req, 404, b"not found", {}, head)
            return
        data, status = f.data, 200
        headers = {"ETag": f.etag, "Last-Modified": f.last_modified, "Accept-Ranges": "bytes"}
        rng = req.headers.get("range")
        if_range = req.headers.get("if-range")
        if rng and not fault.ignore_range and (if_range is None or if_range in (f.etag, f.last_modified)):
            span = _parse_range(rng, len(data))
            if span is None:
                self._simple(req, 416, b"", {"Content-Range": f"bytes */{len(data)}"}, head)
                return
            start, end = span
            if fault.range_offset is not None:
                start = fault.range_offset
            status, data = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{len(f.data)}"
        headers.update(fault.headers)
        self._send(req, status, data, headers, fault, head)

    def _simple(
        self, req: Request, status: int, body: bytes, headers: Dict[str, str], head: bool = False
    ) -> None:
        self._send(req, status, body, headers, NORMAL, head)

    def _send(
        self, req: Request, status: int, body: bytes, headers: Dict[str, str], fault: Fault, head: bool
    ) -> None:
        req.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) + fault.content_length_delta))
        self.end_headers()
        if head:
            return
        limit = len(body)
        cut = fault.drop_after if fault.drop_after is not None else fault.stall_after
        if cut is not None:
            limit = min(limit, cut)
        sent = 0
        try:
            while sent < limit:
                piece = body[sent : min(limit, sent + fault.chunk)]
                self.wfile.write(piece)
                self.wfile.flush()
                sent += len(piece)
                with self.owner._lock:
                    req.body_bytes = sent
                if fault.delay:
                    time.sleep(fault.delay)
        except OSError:
            self.close_connection = True
            return
        if fault.stall_after is not None and fault.stall_after < len(body):
            self.owner.stopping.wait(fault.stall if fault.stall is not None else 3600)
            self._abort()
        elif fault.drop_after is not None and fault.drop_after < len(body):
            self._abort()
        elif fault.content_length_delta:
            self.close_connection = True

    def _abort(self) -> None:
        """Close the TCP connection at once (RST), as a crashing server or proxy would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def with_fault(fault: Fault, **changes: object) -> Fault:
    """A copy of ``fault`` with some fields changed."""
    return replace(fault, **changes)  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover - manual use
    import argparse

    parser = argparse.ArgumentParser(description="serve a directory on 127.0.0.1 for download tests")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    with FileServer(directory=args.directory) as srv:
        print(srv.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
