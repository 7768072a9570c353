"""What the environment refuses becomes a specific, documented error; never INTERNAL_ERROR."""

from __future__ import annotations

import errno
import os

import pytest

from devops_tasks.errors import ErrorCode, os_failure, printable


@pytest.mark.parametrize("number", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_a_refused_access_is_permission_denied_naming_the_path(number):
    error = os_failure(OSError(number, os.strerror(number), "/srv/site/.devops"))
    assert error is not None and error.code is ErrorCode.PERMISSION_DENIED
    assert error.details == {"path": "/srv/site/.devops", "errno": errno.errorcode[number]}
    assert "/srv/site/.devops" in error.message and "/srv/site/.devops" in error.fix


def test_a_full_disk_is_a_filesystem_error_even_without_a_path():
    error = os_failure(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert error is not None and error.code is ErrorCode.FILESYSTEM_ERROR
    assert "space" in error.fix and error.details["errno"] == "ENOSPC"


def test_a_network_error_is_not_the_file_systems_fault():
    assert os_failure(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")) is None


def test_a_path_too_long_to_read_is_cut_in_the_middle():
    path = "/deep" + "/d" * 3000 + "/.devops/config.json"
    error = os_failure(OSError(errno.ENAMETOOLONG, "File name too long", path))
    assert error is not None and len(error.details["path"]) <= 201
    assert error.details["path"].startswith("/deep/d") and error.details["path"].endswith(
        "/.devops/config.json"
    )


def test_bytes_a_name_could_not_decode_are_shown_escaped():
    assert printable(os.fsdecode(b"caf\xe9/\xff.json")) == "caf\\xe9/\\xff.json"
    assert printable("\ud800 alone") == "\\ud800 alone"
