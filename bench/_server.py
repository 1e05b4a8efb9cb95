"""A loopback HTTP file server for the benchmarks: streams files with sendfile and counts bodies.

It serves a directory (``ROOT/HOST/PATH``, the ``PADDLEHUB_CLS_MIRROR`` layout) from a thread of
the benchmark process. ``GET`` and ``HEAD`` with ``Content-Length``, ``ETag``, ``Last-Modified``
and single ``Range`` requests; each completed body is counted per path, so a benchmark can check
how many copies of a file were actually sent.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_HTTPServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
        pass  # the benchmark prints its own table

    def _target(self) -> Optional[Path]:
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        target = (self.server.root / rel).resolve()
        if self.server.root not in target.parents or not target.is_file():
            return None
        return target

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        target = self._target()
        if target is None:
            self.send_error(404)
            return
        st = target.stat()
        start, end, status = 0, st.st_size, 200
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes=") and "," not in rng:
            first, _, last = rng[len("bytes=") :].partition("-")
            if first.isdigit() and int(first) < st.st_size:
                start = int(first)
                end = min(int(last) + 1, st.st_size) if last.isdigit() else st.st_size
                status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(end - start))
        self.send_header("ETag", f'"{st.st_mtime_ns:x}-{st.st_size:x}"')
        self.send_header("Last-Modified", formatdate(st.st_mtime, usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{st.st_size}")
        self.end_headers()
        if not body:
            return
        self.wfile.flush()
        sent = 0
        with open(target, "rb") as f:
            try:
                sent = self.connection.sendfile(f, offset=start, count=end - start)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                self.close_connection = True
        if sent == end - start:
            with self.server.lock:
                self.server.bodies[urlsplit(self.path).path] += 1


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    lock: threading.Lock
    bodies: Counter


class LoopbackServer:
    """Serve ``root`` on 127.0.0.1 (a free port) until :meth:`stop`; ``bodies[path]`` counts full bodies."""

    def __init__(self, root: Path) -> None:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.root = Path(root).resolve()
        self._httpd.lock = threading.Lock()
        self._httpd.bodies = Counter()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="bench-http", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def bodies(self, path: str) -> int:
        """Complete bodies sent for ``path`` (``/HOST/PATH``) so far."""
        with self._httpd.lock:
            return self._httpd.bodies["/" + path.lstrip("/")]

    def reset(self) -> None:
        with self._httpd.lock:
            self._httpd.bodies.clear()

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


if __name__ == "__main__":  # pragma: no cover - manual use: python bench/_server.py DIR
    import sys
    import time

    with LoopbackServer(Path(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())) as srv:
        print(srv.base_url, flush=True)
        while True:
            time.sleep(3600)
