"""Digests of a stream, computed in other threads while the stream is read.

sha256 runs at a few hundred MB/s on CPUs without SHA extensions, several times slower than a
local network or disk, and md5 at about twice that. :class:`Hashes` therefore hands each chunk
to one thread per digest through a bounded queue and returns: the caller receives and writes the
next chunk while this one is hashed (hashlib releases the GIL), so a download costs about one
sha256 pass instead of a read, an md5 and a sha256 one after the other. Chunks travel in batches
of about 1 MiB (a 64 KiB network read per queue operation would cost as much thread switching
as hashing on a busy machine). Chunks are hashed in the order given; an error in a hashing
thread is raised in the caller's thread.

Internal to :mod:`paddlehub_cls._transfer`.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any, Dict, List, Optional, Sequence

# Chunks are handed over once this many bytes are pending.
BATCH_BYTES = 1 << 20
# Batches waiting for each hashing thread: a slow hash holds at most ~4 MiB (plus one batch pending).
QUEUED_BATCHES = 4


class HashThread:
    """One digest, computed in order by its own thread from a bounded queue of batches of chunks."""

    def __init__(self, algo: str) -> None:
        self.hash = hashlib.new(algo)
        self.error: Optional[Exception] = None
        self._queue: "queue.Queue[Optional[Sequence[bytes]]]" = queue.Queue(QUEUED_BATCHES)
        self._cancelled = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"paddlehub_cls-{algo}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            # After an error or a cancel, keep draining so that the reader never blocks on a full queue.
            if self.error is None and not self._cancelled:
                try:
                    for chunk in batch:
                        self.hash.update(chunk)
                except Exception as exc:  # raised in the reading thread by put() or close()
                    self.error = exc

    def put(self, batch: Sequence[bytes]) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(batch)

    def close(self, cancel: bool) -> None:
        """Stop the thread once the queued chunks are hashed (or dropped, when ``cancel``)."""
        if self._closed:
            return
        self._closed = True
        self._cancelled = cancel
        self._queue.put(None)
        self._thread.join()


class Hashes:
    """sha256 (always: the content address) and md5 (only for an md5 pin) of the bytes fed so far.

    ``update`` queues each chunk for one thread per digest and returns, so the caller reads and
    writes the next chunk while this one is hashed. Use it as a context manager (the threads end
    with the block, cancelled on an exception) and call :meth:`finish` before reading a digest.
    ``resumed`` when the bytes continue an earlier partial download.
    """

    def __init__(self, md5: bool, resumed: bool = False) -> None:
        self.size = 0
        self.resumed = resumed
        self._threads = {"sha256": HashThread("sha256")}
        if md5:
            self._threads["md5"] = HashThread("md5")
        self._digests: Dict[str, str] = {}
        self._pending: List[bytes] = []
        self._pending_bytes = 0

    def __enter__(self) -> "Hashes":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        for worker in self._threads.values():
            worker.close(cancel=exc_type is not None)

    def update(self, data: bytes) -> None:
        """Queue one chunk for every digest; raises what a hashing thread raised."""
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.size += len(data)
        if self._pending_bytes >= BATCH_BYTES:
            self._hand_over()

    def _hand_over(self) -> None:
        batch, self._pending, self._pending_bytes = tuple(self._pending), [], 0
        if batch:
            for worker in self._threads.values():
                worker.put(batch)

    def finish(self) -> None:
        """Wait until every chunk is hashed; raises what a hashing thread raised."""
        self._hand_over()
        for worker in self._threads.values():
            worker.close(cancel=False)
        for algo, worker in self._threads.items():
            if worker.error is not None:
                raise worker.error
            self._digests[algo] = worker.hash.hexdigest()

    def digest(self, algo: Optional[str]) -> Optional[str]:
        """Hex digest after :meth:`finish`: ``"md5"``, else sha256; None for an md5 not computed."""
        return self._digests.get("md5" if algo == "md5" else "sha256")
