"""The tar headers a release is streamed with read back, by Python's tarfile and by GNU tar."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from devops_tasks.tar_stream import END, file_header, link_header, padding

_SEGMENT = st.text(alphabet=st.sampled_from("abcxyz019._- éü漢"), min_size=1, max_size=60).filter(
    lambda s: s not in (".", "..")
)
_PATH = st.lists(_SEGMENT, min_size=1, max_size=8).map("/".join)


def _members(stream: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as tar:
        return tar.getmembers()


@given(
    path=_PATH,
    content=st.binary(max_size=1500),
    mode=st.integers(0, 0o777),
    mtime=st.integers(0, 8**11 - 1),
)
def test_a_file_reads_back_with_its_name_content_mode_and_time(path, content, mode, mtime):
    name = os.fsencode(path)
    stream = file_header(name, len(content), mode, mtime) + content + padding(len(content)) + END

    (member,) = _members(stream)

    assert member.isreg() and os.fsencode(member.name) == name
    assert (member.size, member.mode, member.mtime) == (len(content), mode, mtime)
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as tar:
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == content


@given(path=_PATH, target=_PATH)
def test_a_hard_link_reads_back_with_its_name_and_target(path, target):
    (member,) = _members(link_header(os.fsencode(path), os.fsencode(target)) + END)

    assert member.islnk()
    assert (os.fsencode(member.name), os.fsencode(member.linkname)) == (
        os.fsencode(path),
        os.fsencode(target),
    )


def test_a_size_beyond_eleven_octal_digits_goes_in_an_extended_header():
    big = 8**11 + 5
    stream = file_header(b"huge.bin", big, 0o644, 0)

    with tarfile.open(fileobj=io.BytesIO(stream + bytes(1024)), mode="r:") as tar:
        member = tar.next()

    assert member is not None and member.size == big


def test_gnu_tar_extracts_long_names_and_links_to_one_inode(tmp_path: Path):
    deep = "/".join(["d" * 30] * 6) + "/page.html"  # 196 bytes: a ustar prefix holds it
    flat = "f" * 150 + ".html"  # one name longer than 100: only PAX holds it
    content = b"<p>hello</p>\n"
    stream = b""
    for path in (deep, flat):
        stream += file_header(path.encode(), len(content), 0o640, 1_700_000_000)
        stream += content + padding(len(content))
    stream += link_header(b"a/" + b"l" * 120, flat.encode()) + END

    subprocess.run(
        ["tar", "-x", "-p", "--no-same-owner", "-f", "-", "-C", str(tmp_path)],
        input=stream,
        check=True,
    )

    for path in (deep, flat, "a/" + "l" * 120):
        assert (tmp_path / path).read_bytes() == content
    assert (tmp_path / flat).stat().st_mode & 0o777 == 0o640
    assert (tmp_path / flat).stat().st_mtime == 1_700_000_000
    assert (tmp_path / "a" / ("l" * 120)).stat().st_ino == (tmp_path / flat).stat().st_ino
