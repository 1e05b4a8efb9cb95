"""Safe archive extraction: good tar/tar.gz/zip unpack completely; hostile ones write nothing."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

import hypothesis
import hypothesis.strategies as st
import pytest

from paddlehub_cls import archive
from paddlehub_cls.errors import UnsafeArchiveError

FILES = {"ResNet50_pretrained/conv1_weights": b"w" * 1000, "ResNet50_pretrained/fc_0.b_0": b"b" * 40}


def make_tar(path: Path, files: Dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, files: Dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def tar_with(path: Path, special: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A tar with one ordinary file, then ``special``."""
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("model/ok")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        tf.addfile(special, io.BytesIO(data) if data else None)
    return path


def snapshot(root: Path) -> List[Tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.lstat().st_size) for p in root.rglob("*"))


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
def test_extracts_good_archive_completely(tmp_path: Path, kind: str) -> None:
    src = tmp_path / f"a.{kind}"
    if kind == "zip":
        make_zip(src, FILES)
    else:
        make_tar(src, FILES, "w:gz" if kind == "tar.gz" else "w")
    dest = tmp_path / "out" / "x"
    assert archive.is_archive(src)
    result = archive.extract_archive(src, dest, archive_sha256="ab" * 32)
    assert result == dest
    for name, data in FILES.items():
        assert (dest / name).read_bytes() == data
    assert archive.is_complete(dest)
    marker = archive.read_marker(dest)
    assert marker["archive_sha256"] == "ab" * 32
    assert set(marker["files"]) == set(FILES)
    assert archive.verify_extraction(dest) == []
    # nothing but the final directory is left beside it
    assert [p.name for p in dest.parent.iterdir()] == ["x"]


def test_not_an_archive_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "page.html"
    src.write_bytes(b"<html>error</html>")
    assert not archive.is_archive(src)
    with pytest.raises(UnsafeArchiveError, match="page.html"):
        archive.extract_archive(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_refused_without_leftovers(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "a.tar.gz", {"m/big": os.urandom(200_000)}, "w:gz")
    src.write_bytes(src.read_bytes()[:50_000])
    parent = tmp_path / "out"
    parent.mkdir()
    with pytest.raises(UnsafeArchiveError):
        archive.extract_archive(src, parent / "x")
    assert list(parent.iterdir()) == []


def test_existing_complete_extraction_is_kept_and_incomplete_one_replaced(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "a.tar", FILES)
    dest = tmp_path / "x"
    dest.mkdir()
    (dest / "half_written").write_bytes(b"junk")  # a crash before the marker
    archive.extract_archive(src, dest)
    assert not (dest / "half_written").exists()
    assert archive.is_complete(dest)
    (dest / "ResNet50_pretrained" / "fc_0.b_0").write_bytes(b"x" * 40)
    archive.extract_archive(src, dest)  # complete: left alone
    assert (dest / "ResNet50_pretrained" / "fc_0.b_0").read_bytes() == b"x" * 40
    problems = archive.verify_extraction(dest)
    assert len(problems) == 1 and problems[0].startswith("ResNet50_pretrained/fc_0.b_0: changed")
    (dest / "extra").write_bytes(b"1")
    assert "extra: not in the archive" in archive.verify_extraction(dest)


def _special(name: str, kind: bytes, linkname: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = size
    return info


HOSTILE_TARS = {
    "absolute": (
        _special("/tmp/paddlehub_cls_evil", tarfile.REGTYPE, size=4),
        b"evil",
        "/tmp/paddlehub_cls_evil",
        "absolute path",
    ),
    "dotdot": (_special("model/../../evil", tarfile.REGTYPE, size=4), b"evil", "model/../../evil", "'..'"),
    "symlink": (
        _special("model/link", tarfile.SYMTYPE, linkname="/etc/passwd"),
        b"",
        "model/link",
        "symbolic link",
    ),
    "hardlink": (
        _special("model/hard", tarfile.LNKTYPE, linkname="/etc/passwd"),
        b"",
        "model/hard",
        "hard link",
    ),
    "chardev": (_special("model/dev", tarfile.CHRTYPE), b"", "model/dev", "device"),
    "blockdev": (_special("model/blk", tarfile.BLKTYPE), b"", "model/blk", "device"),
    "fifo": (_special("model/fifo", tarfile.FIFOTYPE), b"", "model/fifo", "FIFO"),
    "backslash": (
        _special("model\\..\\..\\evil", tarfile.REGTYPE, size=4),
        b"evil",
        "model\\..",
        "backslash",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
def test_hostile_tar_member_is_refused_and_nothing_written(tmp_path: Path, case: str) -> None:
    info, data, shown, why = HOSTILE_TARS[case]
    src = tar_with(tmp_path / "evil.tar", info, data)
    work = tmp_path / "work"
    (work / "cache").mkdir(parents=True)
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeArchiveError, match=why) as err:
        archive.extract_archive(src, work / "cache" / "x")
    assert repr(info.name) in str(err.value) and shown in info.name
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/paddlehub_cls_evil").exists()
    with pytest.raises(UnsafeArchiveError):
        archive.check_archive(src)


def test_symlink_then_file_through_it_is_refused(tmp_path: Path) -> None:
    # The classic two-step escape: a link to outside, then a file written "through" it.
    src = tmp_path / "two_step.tar"
    with tarfile.open(src, "w") as tf:
        tf.addfile(_special("model/out", tarfile.SYMTYPE, linkname=str(tmp_path / "outside")))
        evil = _special("model/out/pwned", tarfile.REGTYPE, size=1)
        tf.addfile(evil, io.BytesIO(b"x"))
    (tmp_path / "outside").mkdir()
    with pytest.raises(UnsafeArchiveError, match="model/out"):
        archive.extract_archive(src, tmp_path / "x")
    assert list((tmp_path / "outside").iterdir()) == []


def test_duplicate_and_file_dir_conflicts_are_refused(tmp_path: Path) -> None:
    dup = tmp_path / "dup.tar"
    with tarfile.open(dup, "w") as tf:
        for payload in (b"good", b"evil"):
            info = _special("model/w", tarfile.REGTYPE, size=4)
            tf.addfile(info, io.BytesIO(payload))
    with pytest.raises(UnsafeArchiveError, match="'model/w' appears twice"):
        archive.check_archive(dup)
    clash = make_tar(tmp_path / "clash.tar", {"model/w": b"1", "model/w/x": b"2"})
    with pytest.raises(UnsafeArchiveError, match="model/w/x"):
        archive.check_archive(clash)


def test_oversized_member_is_refused(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "big.tar", {"model/small": b"1" * 10, "model/huge": b"0" * 5000})
    with pytest.raises(UnsafeArchiveError, match=r"'model/huge' is 5000 bytes, over the limit of 1000"):
        archive.extract_archive(src, tmp_path / "x", max_member_size=1000)
    assert not (tmp_path / "x").exists()


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "many.tar", {f"model/f{i}": b"x" for i in range(12)})
    with pytest.raises(UnsafeArchiveError, match=r"'model/f10' is beyond the limit of 10 members"):
        archive.extract_archive(src, tmp_path / "x", max_members=10)
    assert not (tmp_path / "x").exists()


def test_zip_bomb_is_refused_by_total_size_before_writing(tmp_path: Path) -> None:
    src = make_zip(tmp_path / "bomb.zip", {f"model/zeros{i}": bytes(2_000_000) for i in range(3)})
    assert src.stat().st_size < 50_000  # it really is a compression bomb
    with pytest.raises(UnsafeArchiveError, match=r"'model/zeros2' brings the total to 6000000 bytes"):
        archive.extract_archive(src, tmp_path / "x", max_total_size=5_000_000)
    assert not (tmp_path / "x").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bomb.zip"]


def test_zip_that_lies_about_its_size_is_refused(tmp_path: Path) -> None:
    src = make_zip(tmp_path / "liar.zip", {"model/w": bytes(100_000)})
    raw = bytearray(src.read_bytes())
    # Declare 100 bytes in both the local and the central header: the data is far bigger.
    local = raw.index(b"PK\x03\x04")
    raw[local + 22 : local + 26] = (100).to_bytes(4, "little")
    central = raw.index(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (100).to_bytes(4, "little")
    src.write_bytes(bytes(raw))
    with pytest.raises(UnsafeArchiveError, match="liar.zip"):
        archive.extract_archive(src, tmp_path / "x")
    assert [p.name for p in tmp_path.iterdir()] == ["liar.zip"]


@pytest.mark.parametrize(
    "mode, why",
    [
        (stat.S_IFLNK | 0o777, "symbolic link"),
        (stat.S_IFCHR | 0o644, "device"),
        (stat.S_IFIFO | 0o644, "FIFO"),
    ],
)
def test_hostile_zip_member_types_are_refused(tmp_path: Path, mode: int, why: str) -> None:
    src = tmp_path / "evil.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("model/ok", b"ok")
        info = zipfile.ZipInfo("model/special")
        info.external_attr = mode << 16
        zf.writestr(info, b"/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match=f"'model/special' {why}|'model/special' is a {why}"):
        archive.extract_archive(src, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["/abs/evil", "model/../../evil", "C:/evil"])
def test_hostile_zip_names_are_refused(tmp_path: Path, name: str) -> None:
    src = tmp_path / "evil.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), b"evil")
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeArchiveError, match=repr(name).strip("'")):
        archive.extract_archive(src, tmp_path / "out" / "x")
    assert snapshot(tmp_path) == before


_SEEDS = {}


def _seed(kind: str, tmp: Path) -> bytes:
    if kind not in _SEEDS:
        src = tmp / f"seed.{kind}"
        if kind == "zip":
            make_zip(src, FILES)
        else:
            make_tar(src, FILES, "w:gz" if kind == "tar.gz" else "w")
        _SEEDS[kind] = src.read_bytes()
    return _SEEDS[kind]


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
def test_damaged_archives_extract_or_raise_our_error(tmp_path: Path, kind: str) -> None:
    seed = _seed(kind, tmp_path)

    @hypothesis.settings(max_examples=150, deadline=None, database=None)
    @hypothesis.given(
        edits=st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=8),
        cut=st.integers(1, len(seed)),
    )
    def check(edits: List[Tuple[int, int]], cut: int) -> None:
        raw = bytearray(seed)
        for pos, value in edits:
            raw[pos] = value
        work = tmp_path / "fuzz"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        src = work / f"a.{kind}"
        src.write_bytes(bytes(raw[:cut]))
        try:
            out = archive.extract_archive(src, work / "out", max_total_size=1 << 20)
        except UnsafeArchiveError:
            assert sorted(p.name for p in work.iterdir()) == [src.name]  # nothing left behind
        else:
            assert archive.is_complete(out) and archive.verify_extraction(out) == []

    check()
