"""A worker process for the reliability battery: loads artifacts the way a user's process does.

Usage: ``python _worker.py JOB`` where JOB is JSON:

- ``{"load": ["Name.tag", ...]}``: ``hub.download_variant`` then ``fastload.read_source`` for
  each registry variant (the path ``load_model`` takes, without building a network);
- ``{"fetch": [[url, checksum or null], ...]}``: ``hub.fetch`` each file;
- ``{"model": ["Name", ...]}``: ``paddlehub_cls.load_model`` each model (imports paddle);
- ``{"import": [bundle, ...]}``: ``cache_cli.import_bundle`` each bundle;
- ``"catch": true``: a task that raises the package's own error reports ``{"error", "message"}``
  instead of ending the process;
- ``"fsize": N``: ``RLIMIT_FSIZE`` of N bytes, so no file can grow past N (a full disk);
- ``"umask": M``: this umask;
- ``"become": [uid, gid]``: import everything, then switch to that uid and gid (the process must
  start as root) before touching any cache, so every file access is checked as that user.
- ``"threads": N`` (with ``fetch`` or ``load``): run the job in N threads of this process;
- ``"barrier": DIR``: import everything, create ``DIR/ready.<pid>``, then start only once
  ``DIR/go`` exists, so that many workers really start at the same moment.

The last line of stdout is JSON: ``{"pid", "rank", "started", "finished", "results": [...]}`` (the
times are ``time.time()`` after the barrier and at the end). With the environment
variables of :mod:`_killhook` the process dies at a chosen point instead.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _killhook  # noqa: E402

PREIMPORT = [
    "numpy",
    "requests",
    "urllib3",
    "email.utils",
    "filelock",
    "tarfile",
    "zipfile",
    "gzip",
    "lzma",
    "bz2",
    "mmap",
    "resource",
    "uuid",
    "warnings",
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.idna",
    "_support",
    "paddlehub_cls.hub",
    "paddlehub_cls._transfer",
    "paddlehub_cls.fastload",
    "paddlehub_cls.formats",
    "paddlehub_cls.cache_cli",
    "paddlehub_cls._bundle",
    "paddlehub_cls.registry",
    "paddlehub_cls.archive",
    "paddlehub_cls.errors",
]


def _load(name: str) -> Dict[str, Any]:
    from _support import digests

    from paddlehub_cls import fastload, hub
    from paddlehub_cls.registry import load_registry

    _killhook.ARTIFACT = name
    info, variant = load_registry().resolve(name)
    artifact = hub.download_variant(info, variant)
    path, checksum = artifact.path, artifact.checksum
    src = fastload.read_source(artifact)
    _killhook.ARTIFACT = "-"
    return {
        "name": name,
        "path": str(path),
        "checksum": checksum,
        "format": src.format,
        "converted": src.metadata.get("fastload"),
        "tensors": digests(src.tensors),
    }


def _fetch(url: str, checksum: str) -> Dict[str, Any]:
    from paddlehub_cls import hub

    _killhook.ARTIFACT = url.rsplit("/", 1)[-1]
    path = hub.fetch(url, checksum)
    return {"url": url, "path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _model(name: str) -> Dict[str, Any]:
    import paddlehub_cls

    model = paddlehub_cls.load_model(name)
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.numpy().tobytes())
    report = model.load_report
    return {"name": name, "path": report.path, "checksum": report.checksum, "state": digest.hexdigest()}


def _import(bundle: str) -> Dict[str, Any]:
    from paddlehub_cls import cache_cli

    return {"bundle": bundle, "imported": [e["sha256"] for e in cache_cli.import_bundle(bundle)]}


def _catching(task: Any) -> Any:
    from paddlehub_cls.errors import PaddleHubClsError

    def run() -> Dict[str, Any]:
        try:
            return task()
        except PaddleHubClsError as exc:
            return {"error": type(exc).__name__, "message": str(exc)}

    return run


def main() -> None:
    job = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _killhook.install()
    tasks: List[Any] = (
        [lambda n=n: _load(n) for n in job.get("load", [])]
        + [lambda u=u, c=c: _fetch(u, c) for u, c in job.get("fetch", [])]
        + [lambda n=n: _model(n) for n in job.get("model", [])]
        + [lambda b=b: _import(b) for b in job.get("import", [])]
    )
    if job.get("catch"):
        tasks = [_catching(t) for t in tasks]
    if "umask" in job:
        os.umask(int(job["umask"]))
    if job.get("become"):
        # The interpreter may live where the other user cannot read (say under /root): import
        # everything the tasks need while still root, then drop to the user for the real work.
        for name in PREIMPORT:
            importlib.import_module(name)
        uid, gid = job["become"]
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    if job.get("fsize"):
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (int(job["fsize"]), int(job["fsize"])))
    if job.get("barrier"):
        # Everything a task needs is imported before the start.
        names = ["numpy", "requests", "paddlehub_cls.hub", "paddlehub_cls.fastload"]
        for name in names + (["paddle", "paddlehub_cls.models"] if job.get("model") else []):
            importlib.import_module(name)
        gate = Path(job["barrier"])
        (gate / f"ready.{os.getpid()}").touch()
        while not (gate / "go").exists():
            time.sleep(0.005)
    started = time.time()
    threads = int(job.get("threads", 0))
    results: List[Any] = []
    if threads:
        errors: List[str] = []

        def run(i: int) -> None:
            try:
                results.extend(
                    {"thread": i, **task()} for task in tasks[i % len(tasks) :] + tasks[: i % len(tasks)]
                )
            except Exception as exc:  # reported to the test, which fails on it
                errors.append(f"{type(exc).__name__}: {exc}")

        pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if errors:
            raise SystemExit("thread errors: " + " | ".join(errors))
    else:
        results = [task() for task in tasks]
    rank = os.environ.get("PADDLE_RANK_IN_NODE")
    out = {
        "pid": os.getpid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "rank": rank,
        "started": started,
        "finished": time.time(),
        "results": results,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
