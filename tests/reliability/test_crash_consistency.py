"""Battery 2: a loading process SIGKILLed at 20 seeded points, then a clean process.

The worker (:mod:`_worker`) loads two registry variants the way ``load_model`` does, minus the
network build: a pinned 2019 archive (download, verify, commit, extract, convert to safetensors)
and an unpinned ``.pdparams`` (download, trust on first use, convert). :mod:`_killhook` numbers
every call of the functions that move bytes; a trace run lists them, and 20 of them are drawn
with a fixed seed (``PADDLEHUB_CLS_KILL_SEED``), spread over the phases. For each point:

1. a worker is started with that point armed and must die there by SIGKILL;
2. the cache is audited: every file at a final path is re-hashed against its name, stamp or
   completion marker (partials and temporary files may remain);
3. a second worker, unarmed, must return exactly the expected tensors, resuming the partial the
   first one left (a ``Range`` request from the byte it stopped at) or starting cleanly;
4. the cache is audited again: everything verified, no partial, no half extraction left.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from _support import (
    audit_cache,
    count,
    digests,
    fluid_tar,
    model_entry,
    pdparams_bytes,
    sha256,
    tiny_tensors,
    variant_entry,
    worker_cmd,
    write_registry,
)
from httpserver import FileServer

from paddlehub_cls import cache_cli

FLUID_T = tiny_tensors(seed=3)
PICKLE_T = tiny_tensors(seed=4)
FLUID = fluid_tar(FLUID_T)
PICKLE = pdparams_bytes(PICKLE_T)
ARTIFACTS = {"Tiny.fluid": FLUID, "Tiny.pickle": PICKLE}
EXPECTED = {"Tiny.fluid": digests(FLUID_T), "Tiny.pickle": digests(PICKLE_T)}
# How many of the 20 points each (artifact, phase) gets.
QUOTAS = {
    ("Tiny.fluid", "body"): 4,
    ("Tiny.fluid", "commit"): 4,
    ("Tiny.fluid", "extract"): 4,
    ("Tiny.fluid", "convert"): 3,
    ("Tiny.pickle", "body"): 2,
    ("Tiny.pickle", "commit"): 2,
    ("Tiny.pickle", "convert"): 1,
}
N_POINTS = sum(QUOTAS.values())
SEED = int(os.environ.get("PADDLEHUB_CLS_KILL_SEED", "5"))
Point = Tuple[str, str, str, int]


def serve(server: FileServer, tag: str, registry: Path) -> Dict[str, str]:
    """Serve both artifacts under /<tag>/ and write a registry naming them; returns the URLs."""
    urls = {
        "Tiny.fluid": server.set_file(f"/{tag}/Tiny_pretrained.tar", FLUID),
        "Tiny.pickle": server.set_file(f"/{tag}/tiny.pdparams", PICKLE),
    }
    write_registry(
        registry,
        {
            "Tiny": model_entry(
                {
                    "fluid": variant_entry(urls["Tiny.fluid"], FLUID, "fluid-tar"),
                    "pickle": variant_entry(urls["Tiny.pickle"], None, "pdparams"),
                }
            )
        },
    )
    return urls


def run_worker(env: Dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        worker_cmd(json.dumps({"load": list(ARTIFACTS)})),
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=240,
    )


# The event each phase is about; every other draw in a phase is one of its other events.
MAIN_EVENT = {"body": "chunk", "commit": "verify", "extract": "member", "convert": "read"}


def plan(trace: List[List[str]]) -> List[Point]:
    """Draw the kill points: per (artifact, phase), alternately its main event and its other events."""
    seen = Counter(tuple(e) for e in trace)
    rng = random.Random(SEED)
    points: List[Point] = []
    for (artifact, phase), quota in QUOTAS.items():
        main = MAIN_EVENT[phase]
        others = sorted({e for (a, p, e) in seen if (a, p) == (artifact, phase)} - {main})
        rng.shuffle(others)
        assert seen[(artifact, phase, main)], f"the trace has no {phase} {main} events for {artifact}"
        taken: List[Point] = []
        for i in range(quota):
            order = ([main] + others) if i % 2 == 0 else (others[i // 2 :] + others[: i // 2] + [main])
            for kind in order:
                most = seen[(artifact, phase, kind)]
                if kind == "chunk":  # read1() may split the body further; this many chunks always happen
                    most = min(most, math.ceil(len(ARTIFACTS[artifact]) / 65536))
                options = [n for n in range(1, most + 1) if (artifact, phase, kind, n) not in taken]
                if options:
                    taken.append((artifact, phase, kind, rng.choice(options)))
                    break
        points += taken
    return points


@pytest.fixture(scope="module")
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def kill_plan(server: FileServer, tmp_path_factory: pytest.TempPathFactory) -> List[Point]:
    """Run the job once with tracing on, and draw the 20 points from what it did."""
    from _support import REPO_ROOT, subprocess_env

    work = tmp_path_factory.mktemp("trace")
    serve(server, "trace", work / "registry.json")
    env = subprocess_env(
        {**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        PADDLEHUB_CLS_HOME=str(work / "cache"),
        PADDLEHUB_CLS_REGISTRY=str(work / "registry.json"),
        PADDLEHUB_CLS_TEST_TRACE=str(work / "trace.json"),
    )
    for name in ("PADDLEHUB_CLS_SHARED_CACHE", "PADDLEHUB_CLS_MIRROR", "PADDLEHUB_CLS_OFFLINE"):
        env.pop(name, None)
    out = run_worker(env)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.splitlines()[-1])["results"]
    assert {r["name"]: r["tensors"] for r in results} == EXPECTED
    points = plan(json.loads((work / "trace.json").read_text()))
    assert len(points) == N_POINTS == 20 and len(set(points)) == 20
    return points


@pytest.mark.parametrize("index", range(N_POINTS))
def test_kill_point(
    index: int, kill_plan: List[Point], server: FileServer, tmp_path: Path, wenv: Dict[str, str]
) -> None:
    count("kill points")
    point = kill_plan[index]
    spec = "|".join(map(str, point))
    cache = tmp_path / "cache"
    urls = serve(server, f"k{index}", tmp_path / "registry.json")
    env = {
        **wenv,
        "PADDLEHUB_CLS_HOME": str(cache),
        "PADDLEHUB_CLS_REGISTRY": str(tmp_path / "registry.json"),
    }

    killed = run_worker(env, PADDLEHUB_CLS_TEST_KILL=spec)
    count("processes (crash runs)")
    assert killed.returncode == -9, f"{spec}: the worker did not die there\n{killed.stderr[-3000:]}"
    assert f"KILLED at {spec}\n" in killed.stderr
    count("processes (crash runs)", outcome="passed")

    after_kill = audit_cache(
        cache, expected={sha256(FLUID): EXPECTED["Tiny.fluid"], sha256(PICKLE): EXPECTED["Tiny.pickle"]}
    )
    assert after_kill.problems == [], f"{spec}: unverified files at final paths"
    resumable = {}
    for name, data in ARTIFACTS.items():
        key = f"sha256-{sha256(data)}" if name == "Tiny.fluid" else None
        for partial in (cache / "tmp").glob("*.partial") if (cache / "tmp").is_dir() else []:
            meta_path = partial.with_name(partial.name + ".json")
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            if meta.get("url") == urls[name] and (key is None or partial.name == f"{key}.partial"):
                resumable[name] = partial.stat().st_size
    server.reset_stats()

    clean = run_worker(env)
    count("processes (crash runs)")
    assert clean.returncode == 0, f"{spec}: the next process failed\n{clean.stderr[-3000:]}"
    count("processes (crash runs)", outcome="passed")
    results = {r["name"]: r for r in json.loads(clean.stdout.splitlines()[-1])["results"]}
    assert {n: r["tensors"] for n, r in results.items()} == EXPECTED
    assert results["Tiny.fluid"]["checksum"] == f"sha256:{sha256(FLUID)}"
    assert results["Tiny.pickle"]["checksum"] == f"sha256:{sha256(PICKLE)}"
    for name, url in urls.items():
        gets = server.requests_for(url.split(":", 2)[2].split("/", 1)[1])
        if gets and resumable.get(name):
            assert gets[0].range == f"bytes={resumable[name]}-", f"{spec}: {name} was not resumed"
        elif gets:
            assert gets[0].range is None

    final = audit_cache(
        cache, expected={sha256(FLUID): EXPECTED["Tiny.fluid"], sha256(PICKLE): EXPECTED["Tiny.pickle"]}
    )
    assert final.problems == []
    assert sorted(final.blobs) == sorted([sha256(FLUID), sha256(PICKLE)])
    assert len(final.unpacked) == 1 and len(final.converted) == 2
    assert final.partials == [] and not [
        p for p in final.leftovers if p.startswith("unpacked/")
    ], final.leftovers
    # What may remain are small hidden temporaries of the killed writer; `cache verify` removes them
    # once they are old enough to belong to no running process.
    for rel in final.leftovers:
        os.utime(cache / rel, (1, 1))
    assert cache_cli.verify_cache(cache).ok
    assert audit_cache(cache).leftovers == []
    count("kill points", outcome="passed")
