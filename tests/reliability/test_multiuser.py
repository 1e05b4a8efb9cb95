"""Battery 6: caches shared between users, read-only caches and full disks.

Permissions are real: when the tests run as root, worker processes switch to other uids (no
account is created: ``setgid``/``setuid`` in the child to numeric ids), so a write into a cache
that belongs to someone else fails exactly as it would for a colleague. Run as an ordinary user,
the same tests make the shared caches read-only with ``chmod``, which binds that user too.

A full disk is a small tmpfs mounted for the test when that is allowed (root, CAP_SYS_ADMIN),
else ``RLIMIT_FSIZE`` in the worker (a file may not grow past N bytes); the summary says which.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest
from _support import (
    audit_cache,
    count,
    digests,
    fluid_tar,
    model_entry,
    pdparams_bytes,
    sha256,
    snapshot,
    tar_of,
    tiny_tensors,
    variant_entry,
    worker_cmd,
    write_registry,
)
from httpserver import FileServer

from paddlehub_cls import cache_cli, hub
from paddlehub_cls.formats.fluid import encode_var

ROOT_RUN = os.geteuid() == 0
TEAM_GID = 54320


@dataclass(frozen=True)
class User:
    uid: int
    gid: int


ALICE = User(54321, TEAM_GID)
BOB = User(54322, TEAM_GID)


def run_as(
    user: Optional[User], job: Dict[str, Any], env: Dict[str, str], umask: int = 0o022
) -> Dict[str, Any]:
    """Run a worker as ``user`` (when we are root) with ``umask``; returns its JSON report."""
    job = {"catch": True, "umask": umask, **job}
    if user is not None and ROOT_RUN:
        job["become"] = [user.uid, user.gid]
    out = subprocess.run(worker_cmd(json.dumps(job)), env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.splitlines()[-1])
    if user is not None and ROOT_RUN:
        assert (report["uid"], report["gid"]) == (user.uid, user.gid)  # the work ran as that user
    report["log"] = out.stderr
    return report


def read_only(path: Path) -> None:
    """Remove every write bit under ``path`` (a read-only mount, as far as its users can tell)."""
    for p in [path, *path.rglob("*")]:
        os.chmod(p, stat.S_IMODE(p.lstat().st_mode) & ~0o222)


@pytest.fixture
def scene(tmp_path: Path, http_server: FileServer, wenv: Dict[str, str]) -> Iterator["Scene"]:
    # tmp_path lies under a 0700 directory: other users need a base they can traverse.
    base = Path(tempfile.mkdtemp(prefix="paddlehub-cls-multiuser-"))
    os.chmod(base, 0o755)
    try:
        yield Scene(base, http_server, wenv)
    finally:
        for p in [base, *base.rglob("*")]:  # give write bits back so that the tree can go
            if not p.is_symlink():
                os.chmod(p, stat.S_IMODE(p.lstat().st_mode) | 0o700)
        shutil.rmtree(base)


class Scene:
    """Artifacts on the server, a registry naming them, and per-user environments."""

    def __init__(self, base: Path, server: FileServer, wenv: Dict[str, str]) -> None:
        self.base, self.server = base, server
        self.tensors = {"pinned": tiny_tensors(20), "tofu": tiny_tensors(21), "archive": tiny_tensors(22)}
        self.data = {
            "pinned": pdparams_bytes(self.tensors["pinned"]),
            "tofu": pdparams_bytes(self.tensors["tofu"]),
            "archive": fluid_tar(self.tensors["archive"]),
        }
        urls = {k: server.set_file(f"/{k}.bin", v) for k, v in self.data.items()}
        weights = {
            "pinned": variant_entry(urls["pinned"], self.data["pinned"], "pdparams"),
            "tofu": variant_entry(urls["tofu"], None, "pdparams"),
            "archive": variant_entry(urls["archive"], self.data["archive"], "fluid-tar"),
        }
        self.registry = write_registry(base / "registry.json", {"Shared": model_entry(weights)})
        os.chmod(self.registry, 0o644)
        self.wenv = wenv

    def env(self, home: Path, shared: Optional[Path] = None, **extra: str) -> Dict[str, str]:
        env = {**self.wenv, "PADDLEHUB_CLS_HOME": str(home), "PADDLEHUB_CLS_REGISTRY": str(self.registry)}
        env.update(HOME=str(home.parent), XDG_CACHE_HOME=str(home.parent / "xdg"), **extra)
        env.pop("PADDLEHUB_CLS_SHARED_CACHE", None)
        if shared is not None:
            env["PADDLEHUB_CLS_SHARED_CACHE"] = str(shared)
        return env

    def home_of(self, user: User, name: str) -> Path:
        d = self.base / name
        d.mkdir()
        if ROOT_RUN:
            os.chown(d, user.uid, user.gid)
        return d / "cache"

    def fill_shared(self) -> Path:
        """A cache filled by its owner (this process), then made read-only."""
        shared = self.base / "shared"
        env = self.env(shared)
        report = run_as(None, {"load": ["Shared.pinned", "Shared.tofu", "Shared.archive"]}, env)
        assert all("error" not in r for r in report["results"]), report
        shutil.rmtree(shared / "fastload")  # converted files are per user: make the others convert
        read_only(shared)
        self.server.reset_stats()
        return shared


def lock_modes(cache: Path) -> List[Tuple[str, int, int]]:
    return [
        (p.name, stat.S_IMODE(p.stat().st_mode), p.stat().st_uid)
        for p in sorted((cache / "locks").glob("*.lock"))
    ]


def test_read_only_shared_cache_of_another_user_is_used_and_never_written(scene: Scene) -> None:
    count("multi-user scenarios")
    shared = scene.fill_shared()
    before = snapshot(shared)
    home = scene.home_of(ALICE, "alice")
    report = run_as(
        ALICE, {"load": ["Shared.pinned", "Shared.tofu", "Shared.archive"]}, scene.env(home, shared)
    )
    results = {r["name"]: r for r in report["results"]}
    assert all("error" not in r for r in results.values()), results
    for tag in ("pinned", "tofu", "archive"):
        r = results[f"Shared.{tag}"]
        assert r["tensors"] == digests(scene.tensors[tag])
        assert Path(r["path"]).is_relative_to(shared)  # served from the shared cache
        assert Path(r["converted"]).is_relative_to(home)  # converted once into Alice's own cache
    assert scene.server.requests == []
    assert snapshot(shared) == before  # not a byte, stamp, ref or lock file changed
    modes = lock_modes(home)
    assert modes and all(m == 0o664 for _, m, _ in modes), modes  # group-writable despite umask 022
    if ROOT_RUN:
        assert {uid for _, _, uid in modes} == {ALICE.uid}
    assert audit_cache(shared).problems == [] and audit_cache(home).problems == []
    count("multi-user scenarios", outcome="passed")


def test_damaged_and_stale_shared_copies_are_skipped_without_writing(scene: Scene) -> None:
    count("multi-user scenarios")
    shared = scene.fill_shared()
    blobs = shared / "blobs" / "sha256"
    pinned, tofu = blobs / sha256(scene.data["pinned"]), blobs / sha256(scene.data["tofu"])
    for p in (pinned, tofu):
        os.chmod(p.parent, 0o755)
        os.chmod(p, 0o644)
    raw = bytearray(pinned.read_bytes())
    raw[100] ^= 0xFF
    pinned.write_bytes(bytes(raw))  # damaged, and its mtime no longer matches the stamp
    os.utime(tofu, ns=(1, 1))  # intact, but copied without timestamps: the stamp looks stale
    read_only(shared)
    before = snapshot(shared)
    home = scene.home_of(ALICE, "alice")
    report = run_as(ALICE, {"load": ["Shared.pinned", "Shared.tofu"]}, scene.env(home, shared))
    results = {r["name"]: r for r in report["results"]}
    assert all("error" not in r for r in results.values()), results
    assert Path(results["Shared.pinned"]["path"]).is_relative_to(home)  # downloaded again, into Alice's cache
    assert Path(results["Shared.tofu"]["path"]).is_relative_to(shared)  # re-hashed, then used as it is
    assert results["Shared.pinned"]["tensors"] == digests(scene.tensors["pinned"])
    assert "changed after it was verified" in report["log"]
    assert [r.path for r in scene.server.requests] == ["/pinned.bin"]
    assert snapshot(shared) == before  # nothing quarantined, no stamp refreshed: it is not ours
    count("multi-user scenarios", outcome="passed")


def test_a_user_cache_that_cannot_be_written_is_a_clear_cache_error(scene: Scene) -> None:
    count("multi-user scenarios")
    owned = scene.base / "not-yours"
    (owned / "cache").mkdir(parents=True)
    if not ROOT_RUN:
        read_only(owned)
    before = snapshot(owned)
    report = run_as(ALICE, {"load": ["Shared.pinned"]}, scene.env(owned / "cache"))
    (r,) = report["results"]
    assert r["error"] == "CacheError"
    assert str(owned / "cache") in r["message"] and "PADDLEHUB_CLS_HOME" in r["message"]
    assert snapshot(owned) == before and scene.server.requests == []
    count("multi-user scenarios", outcome="passed")


def test_team_cache_works_through_group_writable_locks(scene: Scene) -> None:
    count("multi-user scenarios")
    team = scene.base / "team"
    team.mkdir()
    if ROOT_RUN:
        os.chown(team, 0, TEAM_GID)
    os.chmod(team, 0o2775)  # setgid: everything inside belongs to the team group
    cache = team / "cache"
    env = scene.env(cache)
    first = run_as(ALICE, {"load": ["Shared.pinned"]}, env, umask=0o002)
    assert "error" not in first["results"][0], first
    lock = cache / "locks" / f"sha256-{sha256(scene.data['pinned'])}.lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o664
    # The artifact is removed (say by `cache rm`): Bob must download it again, under Alice's lock file.
    (cache / "blobs" / "sha256" / sha256(scene.data["pinned"])).unlink()
    second = run_as(BOB, {"load": ["Shared.pinned", "Shared.archive"]}, env, umask=0o002)
    assert all("error" not in r for r in second["results"]), second
    assert [r.path for r in scene.server.requests] == ["/pinned.bin", "/pinned.bin", "/archive.bin"]
    if ROOT_RUN:
        assert (lock.stat().st_uid, lock.stat().st_gid) == (ALICE.uid, TEAM_GID)  # Bob used Alice's file
    assert audit_cache(cache).problems == []

    # With umask 022 the directories Alice creates are not group-writable: Bob gets a clear error.
    strict = team / "strict"
    run_as(ALICE, {"load": ["Shared.pinned"]}, scene.env(strict), umask=0o022)
    report = run_as(BOB, {"load": ["Shared.tofu"]}, scene.env(strict), umask=0o022)
    (r,) = report["results"]
    if ROOT_RUN:
        assert r["error"] == "CacheError" and "cannot be written" in r["message"], r
        assert audit_cache(strict).problems == []
    count("multi-user scenarios", outcome="passed")


# --------------------------------------------------------------------------- full disks


class SmallDisk:
    """A directory that holds at most ``size`` bytes: a tmpfs if we may mount one, else RLIMIT_FSIZE."""

    def __init__(self, path: Path, size: int, mount: bool) -> None:
        self.path, self.size = path, size
        path.mkdir()
        mounted = False
        if mount and ROOT_RUN and shutil.which("mount"):
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
            )
            mounted = done.returncode == 0
        self.kind = "tmpfs" if mounted else "RLIMIT_FSIZE"

    def job(self, job: Dict[str, Any]) -> Dict[str, Any]:
        return job if self.kind == "tmpfs" else {**job, "fsize": self.size}

    def close(self) -> None:
        if self.kind == "tmpfs":
            subprocess.run(["umount", str(self.path)], check=True)


def zeros_archive(parts: int, each: int) -> bytes:
    """A tar.gz of ``parts`` variable files of ``each`` bytes of zeros: tiny, but large unpacked."""
    arr = np.zeros(each // 4, np.float32)
    return gzip.compress(tar_of([(f"Tiny_pretrained/w{i}", encode_var(arr)) for i in range(parts)]))


FULL_DISK_CASES = ["download", "extraction", "conversion", "bundle-import"]


@pytest.mark.parametrize("mechanism", ["tmpfs", "rlimit"])
@pytest.mark.parametrize("case", FULL_DISK_CASES)
def test_full_disk_fails_clearly_and_leaves_nothing_half_written(
    case: str, mechanism: str, scene: Scene, tmp_path: Path
) -> None:
    count("full-disk scenarios")
    # A tmpfs bounds the total, RLIMIT_FSIZE each file: the converted file (1 MB) must not fit, while
    # the archive (a few kB) and each unpacked file (250 kB) must.
    sizes = {"download": 1 << 20, "extraction": 1 << 20, "bundle-import": 1 << 20}
    sizes["conversion"] = 1536 << 10 if mechanism == "tmpfs" else 600 << 10
    # "tmpfs" falls back to RLIMIT_FSIZE where mounting is not allowed; the summary counts each kind.
    disk = SmallDisk(scene.base / "disk", sizes[case], mount=mechanism == "tmpfs")
    try:
        cache = disk.path / "cache"
        env = scene.env(cache)
        if case == "download":
            big = np.random.default_rng(3).integers(0, 256, 2 << 20, dtype=np.uint8).tobytes()
            url = scene.server.set_file("/big.bin", big)
            report = run_as(None, disk.job({"fetch": [[url, f"sha256:{sha256(big)}"]]}), env)
        elif case == "extraction":
            data = zeros_archive(1, 3 << 20)
            url = scene.server.set_file("/zeros.tar.gz", data)
            write_registry(
                scene.registry, {"Zeros": model_entry({"z": variant_entry(url, data, "fluid-tar")})}
            )
            report = run_as(None, disk.job({"load": ["Zeros.z"]}), env)
        elif case == "conversion":
            data = zeros_archive(4, 250_000)
            url = scene.server.set_file("/zeros.tar.gz", data)
            write_registry(
                scene.registry, {"Zeros": model_entry({"z": variant_entry(url, data, "fluid-tar")})}
            )
            report = run_as(None, disk.job({"load": ["Zeros.z"]}), env)
        else:
            donor = tmp_path / "donor"
            blob = np.random.default_rng(4).integers(0, 256, 2 << 20, dtype=np.uint8).tobytes()
            hub.fetch(scene.server.set_file("/bundled.bin", blob), f"sha256:{sha256(blob)}", cache_dir=donor)
            cache_cli.export_bundle(tmp_path / "b.tar", cache_dir=donor)
            bundle = scene.base / "b.tar"
            shutil.copy(tmp_path / "b.tar", bundle)
            os.chmod(bundle, 0o644)
            report = run_as(None, disk.job({"import": [str(bundle)]}), env)
        (r,) = report["results"]
        audit = audit_cache(cache)
        assert audit.problems == []
        if case == "conversion":
            # Conversion is an optimisation: a full disk means reading the source directly.
            assert "error" not in r, r
            assert r["converted"] is None and "could not write converted weights" in report["log"]
            converted = cache / "fastload" / "v1"
            assert audit.converted == [] and len(audit.unpacked) == 1
            assert not converted.exists() or list(converted.iterdir()) == [], "a half-written conversion"
        else:
            assert r["error"] == "CacheError", r
            assert "Free disk space" in r["message"] and str(cache) in r["message"], r["message"]
            assert audit.blobs == ([] if case in ("download", "bundle-import") else audit.blobs)
            assert audit.unpacked == []
            assert audit.leftovers == [], audit.leftovers
        count(f"full-disk scenarios ({disk.kind})")
        count(f"full-disk scenarios ({disk.kind})", outcome="passed")
    finally:
        disk.close()
    count("full-disk scenarios", outcome="passed")
