"""The soak: random combinations of faults and crashes, repeated (marker ``slow``).

``PADDLEHUB_CLS_SOAK_ROUNDS`` (default 20) sets the rounds of random network faults; crash rounds
are one per ten of those (at least one). The default keeps the normal ``pytest`` run, which
includes ``slow`` tests, quick; CI or a developer can raise it for a long soak. Every round is
seeded (``PADDLEHUB_CLS_SOAK_SEED``), so a failure names the round that reproduces it.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import test_crash_consistency as crash
from _support import audit_cache, count, sha256
from httpserver import Fault, FileServer

from paddlehub_cls import hub

ROUNDS = int(os.environ.get("PADDLEHUB_CLS_SOAK_ROUNDS", "20"))
SEED = int(os.environ.get("PADDLEHUB_CLS_SOAK_SEED", "2024"))
DATA = np.random.default_rng(7).integers(0, 256, 300_000, dtype=np.uint8).tobytes()

pytestmark = pytest.mark.slow


def random_faults(rng: random.Random, size: int) -> List[Fault]:
    """One to four faults a real network or server might produce, in a random order."""
    pool = [
        lambda: Fault(drop_after=rng.randrange(1, size)),
        lambda: Fault(stall_after=rng.randrange(0, size), stall=10),
        lambda: Fault(stall_before_headers=10),
        lambda: Fault(status=rng.choice([500, 502, 503, 504])),
        lambda: Fault(status=429, headers={"Retry-After": str(rng.randrange(0, 100))}),
        lambda: Fault(reset=True),
        lambda: Fault(range_offset=rng.randrange(0, size)),
        lambda: Fault(ignore_range=True),
        lambda: Fault(content_length_delta=rng.randrange(1, 500)),
        lambda: Fault(chunk=rng.choice([1024, 8192, 65536])),
    ]
    return [rng.choice(pool)() for _ in range(rng.randrange(1, 5))]


def test_soak_random_network_faults(
    cache_env: Path, http_server: FileServer, sleeps: List[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PADDLEHUB_CLS_READ_TIMEOUT", "0.3")
    monkeypatch.setenv("PADDLEHUB_CLS_RETRIES", "8")
    for i in range(ROUNDS):
        count("soak rounds (network)")
        rng = random.Random(SEED + i)
        url = http_server.set_file(f"/r{i}.bin", DATA)
        faults = random_faults(rng, len(DATA))
        for fault in faults:
            http_server.add_fault(f"/r{i}.bin", fault)
        checksum = rng.choice([f"sha256:{sha256(DATA)}", None])
        cache = cache_env / f"round{i}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trust on first use
            path = hub.fetch(url, checksum, cache_dir=cache)
        assert path.read_bytes() == DATA, f"round {i} (seed {SEED + i}): {faults}"
        audit = audit_cache(cache)
        assert audit.problems == [] and audit.partials == [], f"round {i}: {faults}"
        assert all(0 <= s <= 60 for s in sleeps)
        count("soak rounds (network)", outcome="passed")


def test_soak_repeated_crashes(tmp_path: Path, wenv: Dict[str, str]) -> None:
    """Two workers killed at two random points in a row, then a clean one, per round."""
    with FileServer() as server:
        crash.serve(server, "trace", tmp_path / "trace-registry.json")
        env = {**wenv, "PADDLEHUB_CLS_REGISTRY": str(tmp_path / "trace-registry.json")}
        env["PADDLEHUB_CLS_HOME"] = str(tmp_path / "trace-cache")
        out = crash.run_worker(env, PADDLEHUB_CLS_TEST_TRACE=str(tmp_path / "trace.json"))
        assert out.returncode == 0, out.stderr[-3000:]
        trace = json.loads((tmp_path / "trace.json").read_text())
        expected = {
            sha256(crash.FLUID): crash.EXPECTED["Tiny.fluid"],
            sha256(crash.PICKLE): crash.EXPECTED["Tiny.pickle"],
        }
        for i in range(max(1, ROUNDS // 10)):
            count("soak rounds (crashes)")
            rng = random.Random(SEED + 1000 + i)
            points = crash.plan(trace)
            first, second = rng.sample(points, 2)
            cache = tmp_path / f"cache{i}"
            crash.serve(server, f"s{i}", tmp_path / f"registry{i}.json")
            env = {
                **wenv,
                "PADDLEHUB_CLS_HOME": str(cache),
                "PADDLEHUB_CLS_REGISTRY": str(tmp_path / f"registry{i}.json"),
            }
            for point in (first, second):
                spec = "|".join(map(str, point))
                killed = crash.run_worker(env, PADDLEHUB_CLS_TEST_KILL=spec)
                # The second point may lie in work the first run already finished: then it runs through.
                assert killed.returncode in (-9, 0), killed.stderr[-3000:]
                assert audit_cache(cache, expected).problems == [], f"round {i}, after {spec}"
            clean = crash.run_worker(env)
            assert clean.returncode == 0, clean.stderr[-3000:]
            results = {r["name"]: r["tensors"] for r in json.loads(clean.stdout.splitlines()[-1])["results"]}
            assert results == crash.EXPECTED
            final = audit_cache(cache, expected)
            assert final.problems == [] and final.partials == [] and len(final.converted) == 2
            count("soak rounds (crashes)", outcome="passed")
