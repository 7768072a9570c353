"""Walking a build directory: what gets deployed, safely, and what each file is.

Every platform deploys the same :class:`SiteFiles`: the regular files under a build
directory, minus ignored ones, with symlinks followed only while they stay inside the
directory (a link to ``/etc/passwd`` in a build output is refused, not shipped).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import DevopsError, ErrorCode

__all__ = ["IgnoreRule", "SiteFile", "SiteFiles", "default_ignore"]

IgnoreRule = Callable[[str], bool]
"""Takes a path relative to the build dir (POSIX separators); True means skip it."""

_ALWAYS_SKIPPED = {".git", ".hg", ".svn", "__MACOSX", ".DS_Store", "Thumbs.db"}


def default_ignore(relative: str) -> bool:
    """Version-control metadata and OS litter never belong in a deployment."""
    return any(part in _ALWAYS_SKIPPED for part in relative.split("/"))


@dataclass(frozen=True)
class SiteFile:
    """One file to deploy: its path in the site (POSIX, relative) and on disk."""

    path: str
    source: Path
    size: int

    def digest(self, algorithm: str = "sha256") -> str:
        """Hex digest of the content, read in chunks (large files never sit in memory)."""
        hasher = hashlib.new(algorithm)
        with self.source.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                hasher.update(chunk)
        return hasher.hexdigest()

    @property
    def content_type(self) -> str:
        guessed, _ = mimetypes.guess_type(self.path)
        return guessed or "application/octet-stream"


@dataclass(frozen=True)
class SiteFiles:
    """The files of one build directory, in a stable (sorted) order."""

    root: Path
    files: tuple[SiteFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[SiteFile]:
        return iter(self.files)

    @classmethod
    def scan(cls, root: Path, ignore: IgnoreRule = default_ignore) -> SiteFiles:
        """Every deployable file under ``root``; raises VALIDATION_FAILED for what cannot ship."""
        root = root.resolve()
        if not root.is_dir():
            raise DevopsError(
                ErrorCode.VALIDATION_FAILED,
                f"Build directory {root} does not exist",
                "Build the site first (`devops build`, or pass --build), or point --dir / "
                "build.dir at the directory that holds it.",
            )
        found = sorted(cls._walk(root, ignore), key=lambda f: f.path)
        if not found:
            raise DevopsError(
                ErrorCode.VALIDATION_FAILED,
                f"Build directory {root} has no files to deploy",
                "Build the site first, or check that build.dir names the output directory.",
            )
        return cls(root, tuple(found))

    @staticmethod
    def _walk(root: Path, ignore: IgnoreRule) -> Iterator[SiteFile]:
        # The real path of each walked directory, and of every directory above it: a link
        # back to one of those is a loop that would repeat the same files forever. Only
        # links need a realpath() call; a plain subdirectory's real path is its parent's.
        real_of: dict[str, str] = {str(root): str(root)}
        ancestors: dict[str, frozenset[str]] = {str(root): frozenset({str(root)})}
        for directory, subdirs, names in os.walk(root, followlinks=True):
            base = Path(directory)
            relative_dir = base.relative_to(root).as_posix()
            prefix = "" if relative_dir == "." else relative_dir + "/"
            subdirs[:] = sorted(d for d in subdirs if not ignore(prefix + d))
            for name in subdirs:
                child = os.path.join(directory, name)
                if os.path.islink(child):
                    _refuse_escape(root, base / name, prefix + name)
                    real = os.path.realpath(child)
                    if real in ancestors[directory]:
                        raise DevopsError(
                            ErrorCode.VALIDATION_FAILED,
                            f"{prefix + name} is a link loop (it points back to {real})",
                            "Remove the link from the build output, or replace it with a copy.",
                        )
                else:
                    real = os.path.join(real_of[directory], name)
                real_of[child] = real
                ancestors[child] = ancestors[directory] | {real}
            for name in names:
                relative = prefix + name
                if ignore(relative):
                    continue
                source = base / name
                if os.path.islink(source):  # only links can leave the directory
                    _refuse_escape(root, source, relative)
                if source.is_file():
                    yield SiteFile(relative, source, source.stat().st_size)


def _refuse_escape(root: Path, path: Path, relative: str) -> None:
    """Raise unless ``path``, with every link resolved, is ``root`` or below it."""
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        raise DevopsError(
            ErrorCode.VALIDATION_FAILED,
            f"{relative} is a link to {real}, outside the build directory",
            "Replace the link with a copy of its target, or remove it from the build output.",
        )
