"""`download` and `cache ls|verify|rm|export|import`: the subcommands and the functions behind them."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from paddlehub_cls import archive, cache_cli, hub
from paddlehub_cls.errors import CacheError, ChecksumError, DownloadError, UnsafeArchiveError
from paddlehub_cls.registry import load_registry

# The first-use warning itself is asserted in test_hub.py.
pytestmark = pytest.mark.filterwarnings("ignore:.*trusting it on first use:UserWarning")


def run_cli(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="paddlehub-cls")
    cache_cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args)


def tar_bytes(files: Dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def local_registry(
    cache_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Dict[Tuple[str, str], bytes]:
    """Every model's paddleclas/paddle_vision variants and ResNet18/34's fluid2019 point at file:// URLs.

    The pdparams stand-ins are pinned by sha256; the fluid2019 archives stay unpinned (trust on
    first use), like the real ones. Offline mode is on and sockets are blocked: nothing can leak
    to the network. Returns {(model, tag): bytes}.
    """
    files = tmp_path / "files"
    files.mkdir()
    contents: Dict[Tuple[str, str], bytes] = {}
    models: Dict[str, Dict] = {}
    reg = load_registry()
    for name in reg.names():
        weights = {}
        for tag, variant in reg.get(name).weights.items():
            if tag in ("paddleclas", "paddle_vision"):
                data = f"{name}.{tag} weights ".encode() * 50
                checksum = "sha256:" + hashlib.sha256(data).hexdigest()
            elif name in ("ResNet18", "ResNet34"):
                data = tar_bytes({f"{variant.archive_root}/conv1_weights": name.encode() * 10})
                checksum = None
            else:
                continue
            path = files / f"{name}_{tag}.bin"
            path.write_bytes(data)
            contents[(name, tag)] = data
            weights[tag] = {
                "urls": [path.as_uri()],
                "checksum": checksum,
                "size": len(data),
                "checksum_note": None if checksum else "test archive, unpinned",
            }
        models[name] = {"weights": weights}
    extra = tmp_path / "extra_registry.json"
    extra.write_text(json.dumps({"schema_version": 1, "models": models}))
    monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(extra))
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cache command opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return contents


def download(name: str, tag: str, **kwargs: object) -> Path:
    info, variant = load_registry().resolve(name, tag)
    return hub.download_variant(info, variant, **kwargs).path  # type: ignore[arg-type]


def blob_files(root: Path) -> List[str]:
    d = root / "blobs" / "sha256"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_download_command_by_name_and_all(
    local_registry: Dict, cache_env: Path, capsys: pytest.CaptureFixture
) -> None:
    assert run_cli(["download", "ResNet18", "resnet34.paddleclas", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ResNet18.paddle_vision\t") and out[1].startswith("ResNet34.paddleclas\t")
    assert Path(out[1].split("\t")[1]).read_bytes() == local_registry[("ResNet34", "paddleclas")]

    assert run_cli(["download", "--all", "--weights", "paddle_vision"]) == 0
    out = capsys.readouterr().out
    with_tag = [n for n in load_registry().names() if "paddle_vision" in load_registry().get(n).weights]
    for name in load_registry().names():
        if name in with_tag:
            assert f"{name}.paddle_vision\t" in out
        else:
            assert f"{name}: no 'paddle_vision' weights, skipped" in out
    assert len(blob_files(cache_env)) == 2 * (len(with_tag) + 1)  # blob + stamp each


def test_download_command_reports_failures_and_usage(
    local_registry: Dict, capsys: pytest.CaptureFixture
) -> None:
    assert run_cli(["download", "NoSuchNet", "ResNet18.paddleclas"]) == 1
    captured = capsys.readouterr()
    assert "paddlehub-cls: error: NoSuchNet:" in captured.err and "ResNet18.paddleclas\t" in captured.out
    assert run_cli(["download"]) == 2
    assert "give model names or --all" in capsys.readouterr().err


def test_cache_ls_shows_user_and_shared_entries(
    local_registry: Dict,
    cache_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    shared = tmp_path / "shared"
    download("ResNet34", "paddleclas", cache_dir=shared)
    monkeypatch.setenv("PADDLEHUB_CLS_SHARED_CACHE", str(shared))
    download("ResNet18", "fluid2019")
    assert run_cli(["cache", "ls", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    by_label = {(e["sources"][0]["model"], e["shared"]): e for e in entries}
    assert set(by_label) == {("ResNet34", True), ("ResNet18", False)}
    r18 = by_label[("ResNet18", False)]
    assert r18["trust"] == "tofu" and r18["unpacked"] is True and r18["root"] == str(cache_env)
    assert by_label[("ResNet34", True)]["trust"] == "pinned"
    assert run_cli(["cache", "ls"]) == 0
    text = capsys.readouterr().out
    assert "ResNet18.fluid2019" in text and "shared" in text and "tofu,unpacked" in text


def test_cache_verify_quarantines_a_changed_file_that_stat_cannot_see(
    local_registry: Dict, cache_env: Path, capsys: pytest.CaptureFixture
) -> None:
    path = download("ResNet34", "paddleclas")
    st = path.stat()
    path.write_bytes(b"X" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: only a re-hash sees it
    assert run_cli(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"BAD  {path}: content changed" in out and "moved to" in out
    assert not path.exists()
    assert [
        p.read_bytes() for p in (cache_env / "quarantine").glob(f"{path.name}.*") if p.suffix != ".json"
    ] == [b"X" * st.st_size]
    assert run_cli(["cache", "verify"]) == 0
    # The next use fetches a good copy again.
    assert download("ResNet34", "paddleclas").read_bytes() == local_registry[("ResNet34", "paddleclas")]


def test_cache_verify_checks_unpacked_archives_and_leftovers(
    local_registry: Dict, cache_env: Path, capsys: pytest.CaptureFixture
) -> None:
    root = download("ResNet18", "fluid2019")
    (root / "conv1_weights").write_bytes(b"tampered")
    stale = cache_env / "unpacked" / f".{root.parent.name}.tmp-99999-abcdef12"
    stale.mkdir()
    (cache_env / "tmp" / "sha256-feed.partial").write_bytes(b"half")
    report = cache_cli.verify_cache()
    assert not report.ok
    reasons = {Path(p.path).name: p.reason for p in report.problems}
    assert "conv1_weights: changed" in reasons[root.parent.name]
    assert "unfinished extraction" in reasons[stale.name]
    assert report.partials == [str(cache_env / "tmp" / "sha256-feed.partial")]
    assert not root.exists() and not stale.exists()
    again = download("ResNet18", "fluid2019")  # unpacked again from the verified archive
    assert (again / "conv1_weights").read_bytes() == b"ResNet18" * 10


def test_cache_verify_reports_but_never_touches_a_shared_cache(
    local_registry: Dict, cache_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    path = download("ResNet34", "paddleclas", cache_dir=shared)
    path.write_bytes(b"broken")
    monkeypatch.setenv("PADDLEHUB_CLS_SHARED_CACHE", str(shared))
    before = sorted((str(p), p.stat().st_mtime_ns) for p in shared.rglob("*"))
    report = cache_cli.verify_cache()
    assert [(p.path, p.action) for p in report.problems] == [
        (str(path), "reported only (read-only shared cache)")
    ]
    assert sorted((str(p), p.stat().st_mtime_ns) for p in shared.rglob("*")) == before


def test_cache_rm_removes_one_model_and_its_refs(
    local_registry: Dict, cache_env: Path, capsys: pytest.CaptureFixture
) -> None:
    r18 = download("ResNet18", "fluid2019")
    r34 = download("ResNet34", "paddleclas")
    r18_sha = r18.parent.name
    assert run_cli(["cache", "rm", "resnet18"]) == 0
    assert f"removed {cache_env / 'blobs' / 'sha256' / r18_sha}" in capsys.readouterr().out
    assert not (cache_env / "unpacked" / r18_sha).exists()
    assert blob_files(cache_env) == sorted([r34.name, f"{r34.name}.json"])
    assert all(p.read_text().strip() != r18_sha for p in (cache_env / "refs").rglob("*") if p.is_file())
    assert run_cli(["cache", "rm", "ResNet18"]) == 1
    assert "nothing of 'ResNet18' is in the user cache" in capsys.readouterr().err
    with pytest.raises(CacheError, match="cache ls"):
        cache_cli.remove_model("ResNet18")


def test_export_import_round_trip_on_a_second_cache_root(
    local_registry: Dict, cache_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    r18 = download("ResNet18", "fluid2019")
    r34 = download("ResNet34", "paddle_vision")
    download("VGG16", "paddleclas")
    bundle = tmp_path / "bundle.tar"
    assert run_cli(["cache", "export", str(bundle), "ResNet18", "ResNet34"]) == 0
    assert "wrote 2 artifact(s)" in capsys.readouterr().out
    with tarfile.open(bundle) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))
    assert names[0] == "manifest.json" and not any(n.startswith("unpacked") for n in names)
    got = {(e["model"], e["tag"]): e for e in manifest["entries"]}
    assert set(got) == {("ResNet18", "fluid2019"), ("ResNet34", "paddle_vision")}
    assert got[("ResNet18", "fluid2019")]["sha256"] == r18.parent.name
    assert got[("ResNet34", "paddle_vision")]["size"] == r34.stat().st_size

    other = tmp_path / "other"
    assert run_cli(["cache", "import", str(bundle), "--cache-dir", str(other)]) == 0
    assert len(blob_files(other)) == 4
    # The other root now serves both offline (sockets are blocked) without the original files.
    for p in (tmp_path / "files").iterdir():
        p.unlink()
    assert (
        download("ResNet18", "fluid2019", cache_dir=other) / "conv1_weights"
    ).read_bytes() == b"ResNet18" * 10
    assert download("ResNet34", "paddle_vision", cache_dir=other).read_bytes() == r34.read_bytes()
    assert run_cli(["cache", "verify", "--cache-dir", str(other)]) == 0


def _rewrite_bundle(src: Path, dest: Path, change) -> None:
    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read()
            for info, payload in change(member, data):
                tout.addfile(info, io.BytesIO(payload) if payload is not None else None)


def _member(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def _flip(member: tarfile.TarInfo, data: bytes):
    if member.name.startswith("blobs/") and not member.name.endswith(".json"):
        data = bytes([data[0] ^ 1]) + data[1:]
    return [(member, data)]


def _extra(member: tarfile.TarInfo, data: bytes):
    out = [(member, data)]
    if member.name == "manifest.json":
        out.append((_member("../../evil", b"x"), b"x"))
    return out


def _symlink(member: tarfile.TarInfo, data: bytes):
    if member.name.endswith(".json") and member.name != "manifest.json":
        link = tarfile.TarInfo(member.name)
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return [(link, None)]
    return [(member, data)]


def _drop_blob(member: tarfile.TarInfo, data: bytes):
    return [] if member.name.startswith("blobs/") and not member.name.endswith(".json") else [(member, data)]


def _no_manifest(member: tarfile.TarInfo, data: bytes):
    return [] if member.name == "manifest.json" else [(member, data)]


@pytest.mark.parametrize(
    "change, error, message",
    [
        (_flip, ChecksumError, "expected sha256:"),
        (_extra, UnsafeArchiveError, "'../../evil' is unexpected"),
        (_symlink, UnsafeArchiveError, "is not a regular file"),
        (_drop_blob, UnsafeArchiveError, "lacks members listed in its manifest"),
        (_no_manifest, UnsafeArchiveError, "does not start with a manifest.json"),
    ],
    ids=["flipped-byte", "unexpected-member", "symlink", "missing-blob", "no-manifest"],
)
def test_import_verifies_everything_before_anything_lands(
    local_registry: Dict, cache_env: Path, tmp_path: Path, change, error, message: str
) -> None:
    download("ResNet34", "paddleclas")
    good = tmp_path / "good.tar"
    cache_cli.export_bundle(good)
    bad = tmp_path / "bad.tar"
    _rewrite_bundle(good, bad, change)
    other = tmp_path / "other"
    with pytest.raises(error, match=message) as err:
        cache_cli.import_bundle(bad, cache_dir=other)
    assert str(bad) in str(err.value)
    assert blob_files(other) == [] and not (other / "refs").exists()
    assert list((other / "tmp").iterdir()) == []  # staging cleaned up
    assert not (tmp_path.parent / "evil").exists()


def test_export_of_an_uncached_model_is_explained(local_registry: Dict, tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="paddlehub-cls download VGG19"):
        cache_cli.export_bundle(tmp_path / "b.tar", ["VGG19"])
    assert not (tmp_path / "b.tar").exists()


def test_cache_commands_do_not_import_paddle(
    cache_env: Path, subprocess_env: Dict[str, str], tmp_path: Path
) -> None:
    code = (
        "import argparse, sys\n"
        "from paddlehub_cls import cache_cli\n"
        "p = argparse.ArgumentParser(); cache_cli.add_parsers(p.add_subparsers())\n"
        "for argv in (['cache', 'ls'], ['cache', 'verify'], ['cache', 'export', sys.argv[1]]):\n"
        "    a = p.parse_args(argv); assert a.handler(a) == 0, argv\n"
        # Nor numpy: fastload's converted files are listed and removed without it.
        "print(sorted(m for m in sys.modules if m in ('paddle', 'numpy') or m.startswith('paddle.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "b.tar")],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert archive.is_archive(tmp_path / "b.tar")


# --------------------------------------------------------------------------- converted files (fastload)


@pytest.fixture
def converted(cache_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dict[str, Path]:
    """ResNet18 and ResNet34 pinned to small safetensors files (file:// URLs), downloaded and converted.

    Returns {model: converted file}; the user cache is ``cache_env``.
    """
    import numpy as np

    from paddlehub_cls import fastload, formats

    files = tmp_path / "files"
    files.mkdir()
    weights = {}
    out = {}
    for i, name in enumerate(("ResNet18", "ResNet34")):
        rng = np.random.default_rng(i)
        path = files / f"{name}.safetensors"
        formats.save_safetensors(
            {"conv.weight": rng.standard_normal((8, 3, 3, 3), dtype=np.float32), "fc.bias": np.arange(4.0)},
            path,
        )
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        weights[name] = {
            "weights": {
                "paddle_vision": {
                    "urls": [path.as_uri()],
                    "checksum": f"sha256:{sha}",
                    "size": path.stat().st_size,
                }
            }
        }
    extra = tmp_path / "converted_registry.json"
    extra.write_text(json.dumps({"schema_version": 1, "models": weights}))
    monkeypatch.setenv("PADDLEHUB_CLS_REGISTRY", str(extra))
    monkeypatch.setenv("PADDLEHUB_CLS_OFFLINE", "1")
    for name in weights:
        artifact = hub.download_variant(*load_registry().resolve(name, "paddle_vision"))
        src = fastload.read_source(artifact)
        out[name] = Path(src.metadata["fastload"])
        assert out[name] == fastload.converted_path(cache_env, artifact.path.name)
    return out


def test_cache_ls_lists_converted_copies_after_their_artifact(
    converted: Dict[str, Path], cache_env: Path, capsys: pytest.CaptureFixture
) -> None:
    entries = cache_cli.list_entries()
    assert [(e.label(), e.kind) for e in entries] == [
        (label, kind)
        for label in sorted(
            ["ResNet18.paddle_vision", "ResNet34.paddle_vision"],
            key=lambda lab: next(e.sha256 for e in entries if e.label() == lab and e.kind == "artifact"),
        )
        for kind in ("artifact", "converted")
    ]
    for artifact, copy in zip(entries[::2], entries[1::2]):
        assert copy.sha256 == artifact.sha256 and Path(copy.path).name == f"{artifact.sha256}.safetensors"
        assert copy.size == Path(copy.path).stat().st_size > 0 and copy.sources == artifact.sources
        assert artifact.path == str(cache_env / "blobs" / "sha256" / artifact.sha256)
    assert run_cli(["cache", "ls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["artifact", "converted"] * 2
    assert rows[1]["path"] == entries[1].path and rows[1]["size"] == entries[1].size

    # A converted copy whose artifact left the cache is listed last, as such.
    (cache_env / "blobs" / "sha256" / converted["ResNet18"].name.split(".")[0]).unlink()
    assert run_cli(["cache", "ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ResNet34.paddle_vision") and lines[1].startswith("  converted copy")
    assert lines[2].startswith("converted, artifact not cached")
    assert f"fastload/v1/{converted['ResNet18'].name}" in lines[2]
    size = converted["ResNet18"].stat().st_size
    assert f" {size} B " in lines[2] or f"{size / 1024:.1f} KiB" in lines[2]


def test_cache_rm_removes_the_converted_copies_with_the_artifact(
    converted: Dict[str, Path], cache_env: Path, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture
) -> None:
    assert run_cli(["cache", "rm", "ResNet18"]) == 0
    out = capsys.readouterr().out
    assert f"removed {converted['ResNet18']}" in out
    folder = converted["ResNet18"].parent
    assert sorted(p.name for p in folder.iterdir()) == [
        converted["ResNet34"].name,
        converted["ResNet34"].name + ".json",
    ]
    # The artifact in a read-only shared cache, its converted copy in the user cache: the copy goes.
    shared = tmp_path / "shared"
    (shared / "blobs").mkdir(parents=True)
    os.replace(cache_env / "blobs" / "sha256", shared / "blobs" / "sha256")
    monkeypatch.setenv("PADDLEHUB_CLS_SHARED_CACHE", str(shared))
    assert cache_cli.remove_model("ResNet34") == [converted["ResNet34"]]
    assert list(folder.iterdir()) == []
    assert len(list((shared / "blobs" / "sha256").iterdir())) == 2  # never touched
    with pytest.raises(CacheError, match="only in read-only shared caches"):
        cache_cli.remove_model("ResNet34")


def _damage_keeping_mtime(path: Path, offset: int, data: bytes) -> None:
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the stamp still vouches for it


def test_cache_verify_converts_a_damaged_copy_again_and_drops_an_orphan(
    converted: Dict[str, Path], cache_env: Path, capsys: pytest.CaptureFixture
) -> None:
    from paddlehub_cls import fastload, formats

    assert cache_cli.verify_cache().checked == 4 and cache_cli.verify_cache().ok
    r18, r34 = converted["ResNet18"], converted["ResNet34"]
    _damage_keeping_mtime(r18, r18.stat().st_size - 4, b"\x7f\x7f\x7f\x7f")  # in the last tensor
    os.utime(r34)  # only the stamp is stale now: loads would ignore the file
    assert run_cli(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"BAD  {r18}: tensor 'conv.weight' differs from its source" in out
    assert "-> converted again from" in out
    assert f"FIXED {r34}: stamp missing or stale" in out
    for name, file in converted.items():
        blob = cache_env / "blobs" / "sha256" / file.name.split(".")[0]
        assert fastload.fresh_stamp(file, blob.name) is not None
        got, _ = fastload.map_safetensors(file)
        for key, value in formats.read_weights(blob).tensors.items():
            assert got[key].tobytes() == value.tobytes(), (name, key)
    assert run_cli(["cache", "verify"]) == 0
    capsys.readouterr()

    # A damaged header, and a copy of an artifact no cache holds any more.
    _damage_keeping_mtime(r18, 0, b"\xff" * 8)
    (cache_env / "blobs" / "sha256" / r34.name.split(".")[0]).unlink()
    report = cache_cli.verify_cache()
    assert [(p.path, p.reason.split(" (")[0], p.action.split(" from")[0]) for p in report.problems] == [
        (str(r18), "cannot be read", "converted again")
    ]
    assert [r for r in report.repaired if str(r34) in r] == [
        f"{r34}: converted from sha256:{r34.name.split('.')[0]}, of which no cache holds a verified copy; "
        "removed (it is converted again once the artifact is back)"
    ]
    assert not r34.exists() and not r34.with_name(r34.name + ".json").exists()
    assert fastload.map_safetensors(r18)[0].keys() == {"conv.weight", "fc.bias"}


def test_cache_verify_leaves_a_converted_copy_alone_while_it_is_being_converted(
    converted: Dict[str, Path], cache_env: Path
) -> None:
    import filelock

    r18 = converted["ResNet18"]
    _damage_keeping_mtime(r18, r18.stat().st_size - 4, b"\x7f\x7f\x7f\x7f")
    before = r18.read_bytes()
    lock = filelock.FileLock(str(cache_env / "locks" / f"fastload-{r18.name.split('.')[0]}.lock"))
    with lock:
        report = cache_cli.verify_cache()
    assert report.ok and r18.read_bytes() == before
    assert not cache_cli.verify_cache().ok  # once the lock is free, it is found and repaired


def test_cache_verify_only_reports_a_damaged_converted_copy_in_a_shared_cache(
    converted: Dict[str, Path], cache_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    os.replace(cache_env, shared)
    monkeypatch.setenv("PADDLEHUB_CLS_SHARED_CACHE", str(shared))
    file = shared / converted["ResNet18"].relative_to(cache_env)
    _damage_keeping_mtime(file, file.stat().st_size - 4, b"\x7f\x7f\x7f\x7f")
    os.utime(shared / converted["ResNet34"].relative_to(cache_env))  # a stale stamp alone is no problem
    before = sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in shared.rglob("*"))
    report = cache_cli.verify_cache()
    assert [(p.path, p.action) for p in report.problems] == [
        (str(file), "reported only (read-only shared cache)")
    ]
    assert sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in shared.rglob("*")) == before


def test_bundles_never_carry_converted_files(converted: Dict[str, Path], tmp_path: Path) -> None:
    bundle = tmp_path / "b.tar"
    assert len(cache_cli.export_bundle(bundle)) == 2
    with tarfile.open(bundle) as tf:
        names = tf.getnames()
    assert len(names) == 5 and not [n for n in names if "fastload" in n or n.endswith(".safetensors")]
    other = tmp_path / "other"
    cache_cli.import_bundle(bundle, cache_dir=other)
    assert not (other / "fastload").exists()


def _stored(root: Path) -> Dict[str, object]:
    """What the cache holds, minus what differs between two stores of the same file (times, source URL)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    stamps = {}
    for p in sorted((root / "blobs" / "sha256").glob("*.json")):
        stamp = json.loads(p.read_text())
        stamps[p.name] = {k: v for k, v in stamp.items() if k not in ("url", "verified_at", "mtime_ns")}
    return {
        "files": sorted(str(p.relative_to(root)) for p in files if "locks" not in p.parts),
        "stamps": stamps,
        "refs": {
            str(p.relative_to(root)): p.read_text() for p in files if p.parts[len(root.parts)] == "refs"
        },
    }


def test_cache_add_stores_a_hand_downloaded_file_as_a_download_would(
    local_registry: Dict, cache_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = local_registry[("ResNet18", "fluid2019")]
    downloaded = tmp_path / "downloaded"
    download("ResNet18", "fluid2019", cache_dir=downloaded)  # the reference: a real download
    browser = tmp_path / "Downloads" / "ResNet18_pretrained (1).tar"
    browser.parent.mkdir()
    browser.write_bytes(data)
    for p in (tmp_path / "files").iterdir():
        p.unlink()  # nothing can be downloaded any more (offline, sockets blocked, no file)
    with pytest.warns(UserWarning, match="no published checksum .*; trusting it on first use"):
        assert run_cli(["cache", "add", "ResNet18.fluid2019", str(browser)]) == 0
    sha = hashlib.sha256(data).hexdigest()
    unpacked = cache_env / "unpacked" / sha / "ResNet18_pretrained"
    assert f"added {browser}\t{unpacked}" in capsys.readouterr().out
    assert _stored(cache_env) == _stored(downloaded)
    assert (download("ResNet18", "fluid2019") / "conv1_weights").read_bytes() == b"ResNet18" * 10


def test_cache_add_refuses_a_wrong_file_and_caches_nothing(
    local_registry: Dict, cache_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import paddlehub_cls

    wrong = tmp_path / "resnet34.pdparams"
    wrong.write_bytes(local_registry[("ResNet18", "paddle_vision")])
    expected = "sha256:" + hashlib.sha256(local_registry[("ResNet34", "paddle_vision")]).hexdigest()
    actual = "sha256:" + hashlib.sha256(wrong.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as err:
        paddlehub_cls.cache_add("ResNet34", wrong, weights="paddle_vision")
    msg = str(err.value)
    for part in ("ResNet34 weights 'paddle_vision'", str(wrong), f"expected {expected}", f"got {actual}"):
        assert part in msg, (part, msg)
    assert blob_files(cache_env) == [] and list((cache_env / "tmp").iterdir()) == []

    page = tmp_path / "VGG16_pretrained.tar"
    page.write_bytes(b"<html><body>Sign in to continue</body></html>" * 20)
    size = len(local_registry[("ResNet18", "fluid2019")])
    with pytest.raises(ChecksumError, match=f"{len(page.read_bytes())} bytes, expected {size}"):
        paddlehub_cls.cache_add("ResNet18.fluid2019", page)  # this variant's size is known
    with pytest.raises(UnsafeArchiveError, match="not a readable tar archive"):
        paddlehub_cls.cache_add("VGG16.fluid2019", page)  # unpinned, no size: it must be readable
    assert blob_files(cache_env) == [] and not (cache_env / "refs").exists()

    good = tmp_path / "ResNet18_pretrained.tar"
    good.write_bytes(local_registry[("ResNet18", "fluid2019")])
    monkeypatch.setenv("PADDLEHUB_CLS_REQUIRE_CHECKSUM", "1")
    with pytest.raises(DownloadError, match="PADDLEHUB_CLS_REQUIRE_CHECKSUM=1 refuses unpinned files"):
        paddlehub_cls.cache_add("ResNet18.fluid2019", good)
    assert blob_files(cache_env) == []
