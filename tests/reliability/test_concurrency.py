"""Battery 3: many processes and threads loading the same and different artifacts at once.

Each worker process (:mod:`_worker`) loads registry variants from an empty cache the way
``load_model`` does (download, verify, unpack, convert). The server is throttled so the
transfers overlap. What must hold: one body transfer per artifact, one extraction and one
conversion per artifact, identical results everywhere, a consistent cache afterwards; a lock
left by a killed process does not block the next one; and under ``paddle.distributed.launch``
only local rank 0 downloads while rank 1 waits and gets the same path.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
from _support import (
    WORKER,
    audit_cache,
    count,
    digests,
    fluid_tar,
    md5,
    model_entry,
    pdparams_bytes,
    sha256,
    tiny_tensors,
    variant_entry,
    worker_cmd,
    write_registry,
)
from httpserver import Fault, FileServer

from paddlehub_cls import hub
from paddlehub_cls.errors import LockTimeoutError

SLOW = Fault(chunk=32768, delay=0.02)  # about 1.6 MB/s: every transfer outlasts the start of all workers


def artifacts(server: FileServer, registry: Path) -> Dict[str, Tuple[bytes, Dict[str, str]]]:
    """Serve four artifacts (a pinned archive, sha256-, md5- and un-pinned pickles), register them."""
    shared_t, t0, t1, t2 = (tiny_tensors(seed=s) for s in (10, 11, 12, 13))
    data = {
        "Tiny.shared": (fluid_tar(shared_t), digests(shared_t)),
        "Tiny.v0": (pdparams_bytes(t0), digests(t0)),
        "Tiny.v1": (pdparams_bytes(t1), digests(t1)),
        "Tiny.v2": (pdparams_bytes(t2), digests(t2)),
    }
    urls = {}
    for name, (blob, _) in data.items():
        path = f"/{name}.tar" if name == "Tiny.shared" else f"/{name}.pdparams"
        urls[name] = server.set_file(path, blob)
        server.set_default_fault(path, SLOW)
    weights = {
        "shared": variant_entry(urls["Tiny.shared"], data["Tiny.shared"][0], "fluid-tar"),
        "v0": variant_entry(urls["Tiny.v0"], data["Tiny.v0"][0], "pdparams"),
        "v1": variant_entry(urls["Tiny.v1"], None, "pdparams", checksum=f"md5:{md5(data['Tiny.v1'][0])}"),
        "v2": variant_entry(urls["Tiny.v2"], None, "pdparams"),
    }
    write_registry(registry, {"Tiny": model_entry(weights)})
    return data


def check_one_transfer_each(server: FileServer, data: Dict[str, Tuple[bytes, Dict[str, str]]]) -> None:
    for name, (blob, _) in data.items():
        path = f"/{name}.tar" if name == "Tiny.shared" else f"/{name}.pdparams"
        gets = server.requests_for(path)
        assert [g.status for g in gets] == [200], f"{name}: {[(g.range, g.status) for g in gets]}"
        assert server.body_bytes(path) == len(blob)


def results_of(out: str) -> List[Dict[str, str]]:
    return json.loads(out.splitlines()[-1])["results"]


def start_together(cmds: List[List[str]], env: Dict[str, str], gate: Path) -> List[Tuple[str, str]]:
    """Start workers, let them all reach the barrier, open it; returns (stdout, stderr) of each."""
    gate.mkdir()
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds
    ]
    deadline = time.monotonic() + 240
    while len(list(gate.glob("ready.*"))) < len(procs):
        failed = [p for p in procs if p.poll() is not None]
        assert not failed, failed[0].communicate()
        assert time.monotonic() < deadline, "the workers never reached the barrier"
        time.sleep(0.02)
    (gate / "go").touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), [e[-3000:] for _, e in outs]
    # Every worker started before any finished: they really ran at the same time.
    spans = [json.loads(o.splitlines()[-1]) for o, _ in outs]
    assert max(s["started"] for s in spans) < min(s["finished"] for s in spans)
    return outs


def test_sixteen_processes_load_the_same_and_different_artifacts(
    http_server: FileServer, cache_env: Path, tmp_path: Path, wenv: Dict[str, str]
) -> None:
    data = artifacts(http_server, tmp_path / "registry.json")
    env = {**wenv, "PADDLEHUB_CLS_REGISTRY": str(tmp_path / "registry.json")}
    gate = tmp_path / "gate"
    jobs = [["Tiny.shared", f"Tiny.v{i % 3}"] for i in range(16)]
    count("concurrent processes", len(jobs))
    outs = start_together(
        [worker_cmd(json.dumps({"load": job, "barrier": str(gate)})) for job in jobs], env, gate
    )
    count("concurrent processes", len(jobs), outcome="passed")

    by_name: Dict[str, set] = {}
    for out, _ in outs:
        for r in results_of(out):
            assert r["tensors"] == data[r["name"]][1]
            by_name.setdefault(r["name"], set()).add((r["path"], r["checksum"], r["converted"]))
    assert {n: len(v) for n, v in by_name.items()} == {n: 1 for n in data}  # identical everywhere
    check_one_transfer_each(http_server, data)
    logs = "".join(err for _, err in outs)
    assert logs.count("paddlehub_cls.hub: unpacking") == 1
    assert logs.count("paddlehub_cls.fastload: converted") == len(data)
    audit = audit_cache(cache_env, expected={sha256(b): d for b, d in data.values()})
    assert audit.problems == [] and audit.partials == [] and len(audit.converted) == len(data)
    count("concurrent loads (artifact x process)", 32, outcome="run")
    count("concurrent loads (artifact x process)", 32, outcome="passed")


def test_eight_threads_load_the_same_and_different_artifacts(
    http_server: FileServer, cache_env: Path, tmp_path: Path, wenv: Dict[str, str]
) -> None:
    data = artifacts(http_server, tmp_path / "registry.json")
    env = {**wenv, "PADDLEHUB_CLS_REGISTRY": str(tmp_path / "registry.json")}
    out = subprocess.run(
        worker_cmd(json.dumps({"load": list(data), "threads": 8})),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    count("concurrent threads", 8)
    assert out.returncode == 0, out.stderr[-3000:]
    results = results_of(out.stdout)
    assert len(results) == 8 * len(data) and sorted({r["thread"] for r in results}) == list(range(8))
    for r in results:
        assert r["tensors"] == data[r["name"]][1]
    assert len({(r["name"], r["path"], r["converted"]) for r in results}) == len(data)
    check_one_transfer_each(http_server, data)
    assert out.stderr.count("paddlehub_cls.fastload: converted") == len(data)
    assert audit_cache(cache_env).problems == []
    count("concurrent threads", 8, outcome="passed")


def test_load_model_in_three_processes_at_once(
    http_server: FileServer, cache_env: Path, tmp_path: Path, wenv: Dict[str, str]
) -> None:
    import paddle

    from paddlehub_cls.models import get_builder

    paddle.seed(7)
    net = get_builder("mobilenet_v1")(num_classes=10)
    weights = tmp_path / "tiny_mobilenet.pdparams"
    paddle.save(net.state_dict(), str(weights))
    expected = __import__("hashlib").sha256()
    for key, value in sorted(net.state_dict().items()):
        expected.update(key.encode())
        expected.update(value.numpy().tobytes())
    blob = weights.read_bytes()
    url = http_server.set_file("/tiny_mobilenet.pdparams", blob)
    http_server.set_default_fault("/tiny_mobilenet.pdparams", Fault(chunk=65536, delay=0.002))
    write_registry(
        tmp_path / "registry.json",
        {
            "TinyMobileNet": model_entry(
                {"native": variant_entry(url, blob, "pdparams")},
                architecture="mobilenet_v1",
                family="mobilenet_v1",
                num_classes=10,
            )
        },
    )
    env = {**wenv, "PADDLEHUB_CLS_REGISTRY": str(tmp_path / "registry.json")}
    gate = tmp_path / "gate"
    count("load_model processes", 3)
    outs = start_together(
        [worker_cmd(json.dumps({"model": ["TinyMobileNet"], "barrier": str(gate)}))] * 3, env, gate
    )
    results = [results_of(o)[0] for o, _ in outs]
    assert {r["state"] for r in results} == {expected.hexdigest()}
    assert {(r["path"], r["checksum"]) for r in results} == {
        (str(cache_env / "blobs" / "sha256" / sha256(blob)), f"sha256:{sha256(blob)}")
    }
    assert [g.status for g in http_server.requests_for("/tiny_mobilenet.pdparams")] == [200]
    assert "".join(e for _, e in outs).count("paddlehub_cls.fastload: converted") == 1
    assert audit_cache(cache_env).problems == []
    count("load_model processes", 3, outcome="passed")


def test_a_lock_left_by_a_killed_process_does_not_block(
    http_server: FileServer, cache_env: Path, wenv: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytes(np.random.default_rng(5).integers(0, 256, 400_000, dtype=np.uint8))
    url = http_server.set_file("/held.bin", data)
    checksum = f"sha256:{sha256(data)}"
    http_server.add_fault("/held.bin", Fault(stall_after=100_000, stall=120))
    holder = subprocess.Popen(
        worker_cmd(json.dumps({"fetch": [[url, checksum]]})),
        env=wenv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    count("lock processes")
    partial = cache_env / "tmp" / f"sha256-{sha256(data)}.partial"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size == 100_000):
        assert holder.poll() is None, holder.communicate()
        assert time.monotonic() < deadline, "the holder never got its first 100 kB"
        time.sleep(0.02)
    lock = cache_env / "locks" / f"sha256-{sha256(data)}.lock"
    assert lock.exists()

    # While the holder lives, a bounded wait ends with an error that names the lock file.
    monkeypatch.setenv("PADDLEHUB_CLS_DOWNLOAD_TIMEOUT", "0.5")
    with pytest.raises(LockTimeoutError, match=str(lock)):
        hub.fetch(url, checksum)

    holder.send_signal(signal.SIGKILL)
    holder.wait()
    count("lock processes", outcome="passed")
    assert lock.exists()  # the killed process could not clean up: the file is stale
    monkeypatch.setenv("PADDLEHUB_CLS_DOWNLOAD_TIMEOUT", "60")
    path = hub.fetch(url, checksum)
    assert path.read_bytes() == data
    assert [g.range for g in http_server.requests_for("/held.bin")] == [None, "bytes=100000-"]
    assert audit_cache(cache_env).problems == [] and audit_cache(cache_env).partials == []


def test_paddle_distributed_launch_two_ranks_one_download(
    http_server: FileServer, cache_env: Path, tmp_path: Path, wenv: Dict[str, str]
) -> None:
    data = artifacts(http_server, tmp_path / "registry.json")
    env = {**wenv, "PADDLEHUB_CLS_REGISTRY": str(tmp_path / "registry.json")}
    job = json.dumps({"load": ["Tiny.shared", "Tiny.v2"]})
    out = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--max_restart", "0",
         "--log_dir", str(tmp_path / "logs"), str(WORKER), job],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    count("distributed ranks", 2)
    logs = {int(p.name.rsplit(".", 1)[1]): p.read_text() for p in (tmp_path / "logs").glob("workerlog.*")}
    assert out.returncode == 0, out.stderr[-2000:] + "\n".join(logs.values())[-3000:]
    assert sorted(logs) == [0, 1]
    ranks = {}
    for rank, log in logs.items():
        line = [ln for ln in log.splitlines() if ln.startswith('{"pid"')][-1]
        ranks[rank] = json.loads(line)
        assert ranks[rank]["rank"] == str(rank)
    assert ranks[0]["results"] == ranks[1]["results"]  # same paths, checksums and tensors
    for r in ranks[0]["results"]:
        assert r["tensors"] == data[r["name"]][1]
    assert "local rank 1 waits for local rank 0" in logs[1]
    assert "local rank 0 waits" not in logs[0] and "verified" not in logs[1]
    for name in ("Tiny.shared", "Tiny.v2"):
        path = f"/{name}.tar" if name == "Tiny.shared" else f"/{name}.pdparams"
        assert [g.status for g in http_server.requests_for(path)] == [200]
    assert audit_cache(cache_env).problems == []
    count("distributed ranks", 2, outcome="passed")
