"""Sending a build's files to a provider that stores contents by digest (Netlify, Vercel).

Both answer a deploy's manifest with the digests they do not have yet. Each of those is
sent once, whatever the number of paths that hold it, on many threads at once; the first
upload that fails for good (after the HTTP layer's retries) stops the rest.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .files import SiteFile
    from .output import Progress

__all__ = ["one_file_per_digest", "send_all"]


def one_file_per_digest(
    digests: Mapping[str, tuple[str, SiteFile]], wanted: Iterable[str]
) -> dict[str, SiteFile]:
    """``digest -> file`` for every wanted digest the site has: the first file that holds it.

    ``digests`` is :meth:`SiteFiles.digests`' ``path -> (digest, file)``; a wanted digest
    that no file has is left out (the caller decides whether that is an error).
    """
    wanted = set(wanted)
    chosen: dict[str, SiteFile] = {}
    for digest, site_file in digests.values():
        if digest in wanted and digest not in chosen:
            chosen[digest] = site_file
    return chosen


def send_all(
    uploads: Mapping[str, SiteFile],
    send: Callable[[str, SiteFile], object],
    workers: int,
    progress: Progress,
) -> int:
    """``send(digest, file)`` for each upload on ``workers`` threads; returns the bytes sent.

    The first failure cancels every upload not started yet and is raised once the ones
    under way have finished.
    """
    progress.start("Uploading", total=sum(f.size for f in uploads.values()))

    def one(digest: str, site_file: SiteFile) -> int:
        send(digest, site_file)
        progress.advance(site_file.size)
        return site_file.size

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, digest, f) for digest, f in uploads.items()]
        done, pending = concurrent.futures.wait(
            futures, return_when=concurrent.futures.FIRST_EXCEPTION
        )
        for future in pending:  # one upload failed for good: do not send the rest
            future.cancel()
    progress.finish()
    failed = next((f.exception() for f in done if f.exception() is not None), None)
    if failed is not None:
        raise failed
    return sum(f.result() for f in futures)
