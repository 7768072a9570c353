"""Dry runs and drift on the targets that take files by SHA1 digest (Netlify, Vercel).

Such a target keeps every deploy whole and lists the files of the live one by digest: a dry
run compares the build's digests with that list. It does not always list an older deploy's
files, so drift compares the live files with the map the deploy sent, kept on this machine:
``path -> digest``, one JSON file per deploy under the project's cache (never committed).
Without its map, drift is told by the live deploy's id alone.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .changes import PLAN_PATHS, Changes, Drift
from .durable import FileRefused, read_json, write_json
from .ids import SAFE_ID
from .output import NullProgress

if TYPE_CHECKING:
    from pathlib import Path

    from .files import SiteFiles
    from .platforms.base import Platform

__all__ = ["DigestMaps", "digest_drift", "digest_plan"]

_FORMAT = 1
_DIGEST = re.compile(r"[0-9a-f]{40,64}", re.ASCII)


class DigestMaps:
    """The digest maps of one target and environment, the newest ``keep`` of them."""

    def __init__(self, platform: Platform) -> None:
        settings = platform.settings
        self.directory = platform.project.cache_dir / "deployed" / platform.name
        self.directory /= settings.environment
        self.keep = int(settings.get("deployment.keep_releases"))

    def _path(self, release: str) -> Path | None:
        return self.directory / f"{release}.json" if SAFE_ID.fullmatch(release) else None

    def save(self, release: str, files: Mapping[str, str]) -> None:
        """Keep ``release``'s map, and drop the oldest beyond ``keep``."""
        path = self._path(release)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"format": _FORMAT, "release": release, "files": dict(files)}, indent=None)
        kept = sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        for old in kept[: -self.keep]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()

    def load(self, release: str | None) -> dict[str, str] | None:
        """``release``'s map, or None if this machine has none (or none it can trust)."""
        path = self._path(release) if release else None
        if path is None:
            return None
        try:
            data = read_json(path)
        except (OSError, ValueError, FileRefused):
            return None
        if not isinstance(data, dict) or data.get("release") != release:
            return None
        files = data.get("files")
        if not isinstance(files, dict):
            return None
        if not all(isinstance(d, str) and _DIGEST.fullmatch(d) for d in files.values()):
            return None
        return {str(path): digest for path, digest in files.items()}


def digest_drift(
    maps: DigestMaps,
    live: str | None,
    expected: str | None,
    live_files: Callable[[], Mapping[str, str]],
) -> Drift:
    """The live deploy's files (``live_files()``: ``path -> digest``, from the target's API)
    against the map of the live deploy if this machine sent it, else of ``expected`` (the
    deploy the records say is live).

    With neither map, nothing is compared: a deploy's files never change once it is made, so
    only a replaced live deploy (which the caller sees by its id) can be drift.
    """
    for against in dict.fromkeys(r for r in (live, expected) if r):
        sent = maps.load(against)
        if sent is not None:
            now = live_files() if live else {}
            return Drift(
                Changes.between(
                    {path: (digest, None) for path, digest in sent.items()},
                    {path: (digest, None) for path, digest in now.items()},
                ),
                against=against,
            )
    unknown = (
        f"this machine has no digest map of {expected} to say which files differ"
        if expected and expected != live
        else None
    )
    return Drift(against=expected or live, unknown=unknown)


def digest_plan(
    files: SiteFiles,
    served: Mapping[str, tuple[str, int | None]],
    live: str | None,
    provider: str,
    publish: str,
) -> dict[str, Any]:
    """``deploy --dry-run``: the build's SHA1s against ``served`` (``path -> (sha1, size)``
    of the live deploy), and the steps of a deploy that ends with ``publish``."""
    digests = files.hashed("sha1", NullProgress())
    changes = Changes.between(served, {path: (sha, f.size) for path, (sha, f) in digests.items()})
    known = {sha for sha, _ in served.values()}
    new = {sha: f.size for sha, f in digests.values() if sha not in known}
    return {
        **changes.summary(PLAN_PATHS),
        "live_release": live,
        "steps": [
            f"create a deploy of {len(files)} files by SHA1 digest",
            f"upload the contents {provider} lacks: at most {len(new)} ({sum(new.values())} bytes)",
            publish,
        ],
    }
