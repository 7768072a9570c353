"""The blocks of a tar stream written on the fly: regular files and hard links, nothing else.

A release is sent to a host as one tar stream that the host's ``tar -x`` reads from stdin.
Python's :mod:`tarfile` builds each header through several objects (about 25 µs a member);
with one header per file per host that is most of the CPU a deploy of thousands of small
files costs, so this module packs the few fields a release needs straight into POSIX ustar
headers. A name that does not fit ustar's fields gets a PAX extended header first (GNU tar,
bsdtar and busybox tar all read them). Owners are always 0: hosts extract with
``--no-same-owner``, so every file belongs to whoever deploys.
"""

from __future__ import annotations

import struct

__all__ = ["BLOCK", "END", "file_header", "link_header", "padding"]

BLOCK = 512
#: Two zero blocks end an archive.
END = bytes(2 * BLOCK)

_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12s")
_NAME, _LINK_NAME, _PREFIX = 100, 100, 155
#: The largest size or time an 11-digit octal field holds (8 GiB, the year 2242).
_MAX_OCTAL_11 = 8**11 - 1
_CHECKSUM = slice(148, 156)
_OWNER = b"0000000\0"
_MAGIC, _VERSION = b"ustar\0", b"00"
#: What the fields every header has the same add to its checksum (the checksum field itself
#: counts as eight spaces).
_FIXED_SUM = 2 * sum(_OWNER) + sum(_MAGIC) + sum(_VERSION) + 8 * ord(" ")
_REGULAR, _HARD_LINK, _PAX = b"0", b"1", b"x"


def file_header(name: bytes, size: int, mode: int, mtime: int) -> bytes:
    """The header of a regular file; ``size`` bytes of content and :func:`padding` follow."""
    extended = []
    if size > _MAX_OCTAL_11:
        extended.append((b"size", b"%d" % size))
        size = 0
    return _header(name, _REGULAR, size, mode, min(max(mtime, 0), _MAX_OCTAL_11), b"", extended)


def link_header(name: bytes, target: bytes) -> bytes:
    """The header of a hard link: extracting it links ``name`` to the file ``target``.

    Both are relative to the directory ``tar -x`` runs in.
    """
    return _header(name, _HARD_LINK, 0, 0o644, 0, target, [])


def padding(size: int) -> bytes:
    """The zeros that fill a member's last block of content."""
    return bytes(-size % BLOCK)


def _header(
    name: bytes,
    kind: bytes,
    size: int,
    mode: int,
    mtime: int,
    link: bytes,
    extended: list[tuple[bytes, bytes]],
) -> bytes:
    prefix = b""
    if len(name) > _NAME:
        # ustar keeps up to 155 more bytes of the directories in a prefix field
        cut = name.find(b"/", len(name) - _NAME - 1)
        if 0 < cut <= _PREFIX and cut < len(name) - 1:
            prefix, name = name[:cut], name[cut + 1 :]
        else:
            extended.append((b"path", name))
            name = name[:_NAME]
    if len(link) > _LINK_NAME:
        extended.append((b"linkpath", link))
        link = link[:_LINK_NAME]
    pax = b""
    if extended:
        records = b"".join(_pax_record(key, value) for key, value in extended)
        pax = _ustar(b"././@PaxHeader", _PAX, len(records), 0o644, 0, b"", b"")
        pax += records + padding(len(records))
    return pax + _ustar(name, kind, size, mode, mtime, link, prefix)


def _ustar(
    name: bytes, kind: bytes, size: int, mode: int, mtime: int, link: bytes, prefix: bytes
) -> bytes:
    fields = (b"%07o\0" % mode, b"%011o\0" % size, b"%011o\0" % mtime)
    block = _USTAR.pack(
        name,
        fields[0],
        _OWNER,
        _OWNER,
        fields[1],
        fields[2],
        b"        ",
        kind,
        link,
        _MAGIC,
        _VERSION,
        b"",
        b"",
        b"",
        b"",
        prefix,
        b"",
    )
    # The checksum is the sum of the header's bytes, its own field counted as spaces: summed
    # from the fields themselves (a few dozen bytes), not from the 512 of the block.
    checksum = _FIXED_SUM + sum(name) + sum(link) + sum(prefix) + kind[0]
    checksum += sum(fields[0]) + sum(fields[1]) + sum(fields[2])
    return block[: _CHECKSUM.start] + b"%06o\0 " % checksum + block[_CHECKSUM.stop :]


def _pax_record(key: bytes, value: bytes) -> bytes:
    """``"<length> key=value\\n"``, where the length counts its own digits too."""
    body = b" %s=%s\n" % (key, value)
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d" % length + body
