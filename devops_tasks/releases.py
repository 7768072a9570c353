"""Releases with an atomic ``current`` switch, on this machine or on a host reached over SSH.

The layout is Capistrano's: ``<root>/releases/<release-id>/`` holds each deployed copy and
``<root>/current`` is a symlink to the live one. Switching is a rename of a fresh symlink
over ``current``, which POSIX makes atomic: a reader sees the old release or the new one.

Each release has a manifest, ``<root>/.devops/manifests/<release-id>.json`` (path -> sha256,
size, mode and mtime of every file it was given), kept outside the served directory. It makes
uploads *deltas*: a new release starts as hard links to the unchanged files of the host's
current release, and only the added and changed files are sent, as one tar stream. A changed
file is always a new inode, so an older release is never modified. Before linking, the
current release's files are listed on the host; one whose size, mode or time no longer
matches its manifest (edited by hand) is sent in full instead.

The root may hold other people's files, so the engine touches only names it owns: release
ids (which are deployment ids, ``dep_<ms>_<hex>``), ``current``, ``shared/``, the
manifests, and its temporary names (``releases/.<id>.partial/``, ``releases/.<id>.manifest``,
``.current-<id>``). A release is built in its ``.partial``
directory and renamed to its id only once complete, so a ``releases/<id>`` is always whole;
whatever a killed run leaves behind carries a temporary name, which
:meth:`ReleaseEngine.sweep` removes on the next deploy.

Small commands go through ``connection.run(command)``: fabric's ``Connection`` has it, and
:class:`LocalConnection` gives invoke's ``Context`` the same shape. The two bulk steps of an
upload (reading what the host has, writing the release) are done the fastest way each side
allows: over SSH, one command each on a raw channel (:mod:`devops_tasks.channels`; the tar
of :mod:`devops_tasks.tar_stream` streams into ``tar -x``'s stdin); on this machine,
directly (files are copied or linked straight into the release). What to link and what to
send is the plan of :mod:`devops_tasks.manifests`.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import posixpath
import re
import shlex
import stat
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import tar_stream
from .background import Background
from .channels import Completed, Ran, run_streamed, run_timed
from .child_env import child_environment
from .errors import DevopsError, ErrorCode, os_failure
from .ids import DEPLOYMENT_ID
from .known_releases import KnownReleases, Remembered
from .manifests import (
    MANIFESTS,
    Plan,
    Survey,
    as_made,
    drift,
    listing_of,
    parse_listing,
    parse_manifest,
    plan_upload,
    planned_changes,
    within,
)
from .redaction import redact

if TYPE_CHECKING:
    from .changes import Changes
    from .files import SiteFile, SiteFiles
    from .output import Progress

__all__ = ["Connection", "LocalConnection", "ReleaseEngine", "Upload", "no_manifest"]

_RELEASE = DEPLOYMENT_ID.pattern
#: A leftover is renamed to this suffix before it is removed (see ``ReleaseEngine.sweep``).
_SWEPT = r"\.swept"
#: What an interrupted upload or switch leaves behind; nothing else is ever swept.
#: (``.tar`` is what versions that uploaded an archive first left; ``.pruned`` and
#: ``.standby.partial``, work in the background cut short: see ``ReleaseEngine.prune``.)
_LEFTOVER_IN_RELEASES = re.compile(
    rf"\.{_RELEASE}\.(?:tar|partial|manifest|pruned|standby\.partial)(?:{_SWEPT})?", re.ASCII
)
_LEFTOVER_IN_ROOT = re.compile(rf"\.current-{_RELEASE}(?:{_SWEPT})?", re.ASCII)
_MANIFEST = re.compile(rf"({_RELEASE})\.json", re.ASCII)
#: Bytes handed to the channel at a time: big enough that per-call costs vanish.
_STREAM_CHUNK = 256 * 1024
#: Sets ``$c`` to the release ``current`` names, in the root; kept only if it is plain
#: letters, digits and _, so it can name nothing but an entry of releases/ (Python checks
#: what it reads again).
_READ_CURRENT = (
    "c=$(readlink current 2>/dev/null); c=${c#releases/}\n"
    "case $c in dep_*) case $c in *[!a-z0-9_]*) c= ;; esac ;; *) c= ;; esac\n"
)
#: Exit statuses of an upload that starts from a copy of its base: the base is no longer
#: the live release; the copy did not hold exactly the files to link.
_BASE_MOVED, _NOT_COPIED = 3, 4
#: Lines of a failing hook's output that its error message quotes.
_HOOK_TAIL_LINES = 20


class _BaseMoved(Exception):
    """The release an upload was planned to link from is no longer the host's live one."""


class Connection(Protocol):
    """What the engine needs of a host: fabric's ``Connection`` already is one."""

    def run(self, command: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Upload:
    """What one upload did on its host: what it linked from ``base``, and what it sent."""

    release: str
    #: The release whose unchanged files were linked (the host's current one), if any.
    base: str | None
    files_linked: int
    files_sent: int
    #: Content bytes of the files sent (the tar's headers are not counted).
    bytes_sent: int


class LocalConnection:
    """Invoke's ``Context``, shaped like a fabric ``Connection``: this machine.

    It also does an upload's bulk steps here directly, in Python, instead of through a tar.
    """

    def __init__(self, context: Any = None) -> None:
        if context is None:
            from invoke import Context  # noqa: PLC0415

            context = Context()
        self.context = context

    def run(self, command: str, timeout: float | None = None, **_: Any) -> Ran:
        """Run ``command`` in the context's shell, output captured, whatever invoke's config says.

        Not through invoke's runner, which polls every 10 ms and starts three threads per
        command: several times what a ``readlink`` costs, and a local deploy runs a few. So
        ``--dry`` or ``INVOKE_RUN_DRY`` cannot turn a deploy into one that did nothing yet is
        recorded as done; stdin is empty, nothing is echoed, and ``mv``/``rm`` get an
        environment without the master key. (The other options of invoke's ``run`` that
        callers pass, ``hide``, ``warn`` and ``in_stream``, are what this does anyway.)
        """
        shell = self.context.config.run.shell
        try:
            done = subprocess.run(
                [shell, "-c", command],
                capture_output=True,
                stdin=subprocess.DEVNULL,
                env=child_environment(),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            from invoke.exceptions import CommandTimedOut  # noqa: PLC0415
            from invoke.runners import Result  # noqa: PLC0415

            timed_out = Result(command=command, shell=shell, exited=-1)
            raise CommandTimedOut(timed_out, int(timeout or 0)) from None
        stdout, stderr = (out.decode(errors="replace") for out in (done.stdout, done.stderr))
        return Ran(stdout, stderr, done.returncode)

    def survey(self, root: str, timeout: float | None, create: bool = True) -> Survey:
        """The current release of ``root``, its manifest and its regular files as they are.

        ``create``: make the directories an upload needs first (else it only reads).
        """
        base = Path(root)
        for directory in ("releases", MANIFESTS) if create else ():
            (base / directory).mkdir(parents=True, exist_ok=True)
        try:
            current = _release_of_link(os.readlink(base / "current"))
        except OSError:
            current = None
        if current is None:
            return Survey(None, None, {})
        try:
            manifest = (base / MANIFESTS / f"{current}.json").read_bytes()
        except FileNotFoundError:
            return Survey(current, None, {})
        on_disk = {}
        top = base / "releases" / current
        for directory, _, names in os.walk(top):
            relative = os.path.relpath(directory, top)
            prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
            for name in names:
                try:
                    status = os.lstat(os.path.join(directory, name))
                except OSError:
                    continue  # gone, or hidden from us: sent again, never linked
                if stat.S_ISREG(status.st_mode):
                    on_disk[prefix + name] = (
                        status.st_size,
                        status.st_mtime_ns / 1e9,
                        stat.S_IMODE(status.st_mode),
                    )
        return Survey(current, manifest, on_disk)

    def build(self, root: str, plan: Plan, progress: Progress, timeout: float | None) -> None:
        """Copy the sent files and link the kept ones into the partial release, then rename it."""
        releases = Path(root) / "releases"
        partial = releases / plan.partial
        partial.mkdir()  # never into someone else's: a leftover is swept first
        # Plain strings and file descriptors: per file, pathlib and file objects would cost
        # more than the copy itself.
        made = {str(partial)}
        progress.start("Copying files", total=sum(f.size for f in plan.sent))
        for site_file, entry, linked in plan.members:
            target = os.path.join(partial, site_file.path)
            parent = os.path.dirname(target)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            if linked:
                os.link(os.path.join(releases, plan.linked_from(site_file.path)), target)
                continue
            copy = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                for chunk in _content(site_file):
                    with memoryview(chunk) as left:
                        while left:
                            left = left[os.write(copy, left) :]
                os.fchmod(copy, entry.mode)
                os.utime(copy, (entry.mtime, entry.mtime))
            finally:
                os.close(copy)
            progress.advance(site_file.size)
        progress.finish()
        (releases / plan.manifest_partial).write_bytes(plan.manifest)
        os.replace(releases / plan.manifest_partial, releases / plan.manifest_path)
        for path in plan.shared:
            if not (Path(root) / "shared" / path).exists():
                raise _no_shared(root, path)
            link = partial / path  # the plan left out what the build has there
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(_shared_link(path))
        release = releases / plan.release
        if os.path.lexists(release):  # rename() would replace an empty directory
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(release))
        partial.rename(release)

    def remember(self, plan: Plan) -> None:
        """Nothing: on this machine a survey reads the release directly, as cheaply."""

    def read(self, path: str, timeout: float | None) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None


class _OverSsh:
    """An upload's bulk steps on a fabric ``Connection``: one command each, on a raw channel
    (see :mod:`devops_tasks.channels`).

    ``known``: the releases this machine remembers (:mod:`devops_tasks.known_releases`); a
    host whose current release is one of them, as made, sends neither its manifest nor
    its listing.
    """

    def __init__(self, connection: Any, known: KnownReleases | None = None) -> None:
        self.connection = connection
        self.known = known

    def survey(self, root: str, timeout: float | None, create: bool = True) -> Survey:
        releases, manifests = (shlex.quote(f"{root}/{d}") for d in ("releases", MANIFESTS))
        # Only reading, a root that does not exist yet holds no release.
        start = (
            f"mkdir -p {releases} {manifests} && cd {shlex.quote(root)} || exit 1\n"
            if create
            else f"cd {shlex.quote(root)} 2>/dev/null || exit 0\n"
        )
        known = self.known.all() if self.known is not None else {}
        # (times of files only: hosts deployed together then list the same bytes)
        listing = (
            "find \"releases/$c\" -mindepth 1 \\( -type f -printf 'f %s %T@ %m %P\\0' \\)"
            " -o -printf '%y 0 0 0 %P\\0' 2>/dev/null"
        )
        manifest = f'"{MANIFESTS}/$c.json"'
        command = start + (
            _READ_CURRENT + "printf '%s\\n' \"$c\"\n"
            f'if test -n "$c" && test -f {manifest}; then\n'
            + _expecting(known)
            + f'  if test -n "$m" && test "$(sha256sum <{manifest} 2>/dev/null)" = "$m  -"'
            f"; then printf =; else m=; cat {manifest}; fi && printf '\\0' &&\n"
            f'  if test -n "$m" && test "$({listing} | LC_ALL=C sort -z | sha256sum)"'
            f' = "$l  -"; then printf =; else {listing}; fi\n'
            "fi\n"
            "exit 0"
        )
        done = _check(
            run_streamed(self.connection, command, (), timeout, "read the current release"), root
        )
        first, _, rest = done.stdout.partition(b"\n")
        current = _release_of_link(os.fsdecode(first))
        held, found, listed = rest.partition(b"\0")
        if current is None or not found:
            return Survey(current, None, {})
        if held == b"=" and current in known:  # as this machine made it
            held = known[current].manifest
            if listed == b"=":
                return Survey(
                    current, held, *as_made(parse_manifest(held) or {}, known[current].shared)
                )
        return Survey(current, held, *parse_listing(listed))

    def remember(self, plan: Plan) -> None:
        """Remember ``plan``'s release, now on a host, for the next survey."""
        if self.known is None:
            return
        base = (
            self.known.all().get(plan.base)
            if plan.same_manifest is not None and plan.base is not None
            else None
        )

        def listing_sha256() -> str:
            if base is not None and base.shared == plan.shared:
                return base.listing_sha256  # the same files and links: the same listing
            listing = listing_of([(f.path, e) for f, e, _ in plan.members], plan.shared)
            return hashlib.sha256(listing).hexdigest()

        self.known.remember(plan.release, plan.manifest, listing_sha256, plan.shared)

    def build(self, root: str, plan: Plan, progress: Progress, timeout: float | None) -> None:
        """Make the release on the host in one command: started from a copy of the base
        that the host makes itself (:meth:`_from_base`) when there are files to link, or
        (the rare second try when that copy does not hold) by a tar that links each file."""
        if not (plan.linked and self._from_base(root, plan, progress, timeout)):
            self._unpack(root, plan, progress, timeout)

    def _unpack(
        self,
        root: str,
        plan: Plan,
        progress: Progress,
        timeout: float | None,
        start: str = "",
        unwanted: bytes | None = None,
    ) -> Completed:
        """Run ``start`` (shell lines that leave the partial release in releases/; by
        default an empty one is made), then unpack the tar of ``plan`` into it and rename it
        to the release. Given ``unwanted``, sent ahead of the tar for ``start`` to read,
        ``start`` has linked the linked files; otherwise the tar links each one."""
        q = shlex.quote
        # 64 KiB records (GNU tar's default is 10 KiB): fewer, larger reads of the pipe; GNU
        # tar and bsdtar both reassemble a record from what the pipe hands over in pieces
        steps = ["tar -x -b 128 -p --no-same-owner -f -"]
        if plan.same_manifest is not None:  # the base's, which the host has
            base_manifest = f"../{MANIFESTS}/{plan.base}.json"
            steps.append(f"cp {q(base_manifest)} {q(plan.manifest_partial)}")
        steps.append(f"mv -f {q(plan.manifest_partial)} {q(plan.manifest_path)}")
        for path in plan.shared:
            in_release = f"{plan.partial}/{path}"
            missing = q(f"{root}/shared/{path} does not exist")
            steps += [  # the plan left out what the build has there
                f"{{ test -e {q('../shared/' + path)} || {{ echo {missing} >&2; false; }}; }}",
                f"mkdir -p {q(posixpath.dirname(in_release))}",
                f"ln -s {q(_shared_link(path))} {q(in_release)}",
            ]
        steps += [f"test ! -e {q(plan.release)}", f"mv {q(plan.partial)} {q(plan.release)}"]
        start = start or f"cd {q(root + '/releases')} && mkdir {q(plan.partial)} || exit 1\n"
        what = f"unpack release {plan.release}"
        tar = _tar(plan, progress, links=unwanted is None)
        stream: Iterable[bytes | bytearray] = (
            tar if unwanted is None else itertools.chain([unwanted], tar)
        )
        done = run_streamed(self.connection, start + " && ".join(steps), stream, timeout, what)
        if done.status not in (_BASE_MOVED, _NOT_COPIED):
            _check(done, root, what)
        return done

    def _from_base(self, root: str, plan: Plan, progress: Progress, timeout: float | None) -> bool:
        """Make the release starting from the host's own hard-link copy of ``plan.base``,
        less :attr:`Plan.unwanted` (sent ahead of the tar, read by ``head -c``), with only
        the sent files in the tar. False if the copy did not hold exactly the linked files:
        nothing is left then, for a tar that links each file itself.

        The copy is the base's standby (see :meth:`ReleaseEngine.prune`) when the host has
        one, else made now by ``cp -al``: one command whatever the release's size, where a
        tar would carry a header per linked file through the connection. The count of what
        is left catches what the listing did not see (a file added to or removed from the
        current release since, a ``cp`` that cannot copy a special file). Raises
        :class:`_BaseMoved` if the base is no longer the live release.
        """
        q = shlex.quote
        partial, base = q(plan.partial), str(plan.base)
        unwanted = b"\0".join(os.fsencode(path) for path in plan.unwanted)
        start = (
            f'cd {q(root)} && {{ test "$(readlink current)" = {q("releases/" + base)}'
            f" || exit {_BASE_MOVED}; }} && cd releases && mkdir {partial} || exit 1\n"
            f"if test -d {q(_standby(base))} && rmdir {partial}"
            f" && mv {q(_standby(base))} {partial}; then :\n"
            f"elif mkdir -p {partial} && cp -al {q(base + '/.')} {partial} 2>/dev/null; then :\n"
            f"else rm -rf {partial}; exit {_NOT_COPIED}; fi\n"
            f"head -c {len(unwanted)} | (cd {partial} && xargs -0 rm -rf --) && (cd {partial}"
            f' && test "$(find . ! -type d -printf x | wc -c)" -eq {plan.linked})'
            f" || {{ rm -rf {partial}; exit {_NOT_COPIED}; }}\n"
        )
        done = self._unpack(root, plan, progress, timeout, start, unwanted)
        if done.status == _BASE_MOVED:
            raise _BaseMoved
        return done.status != _NOT_COPIED

    def read(self, path: str, timeout: float | None) -> bytes | None:
        command = f"cat {shlex.quote(path)}"
        done = run_streamed(self.connection, command, (), timeout, f"read {path}")
        return done.stdout if done.status == 0 else None


def _tar(plan: Plan, progress: Progress, links: bool = True) -> Iterator[bytearray]:
    """The plan as one tar stream, relative to releases/, in chunks of about 256 KiB;
    without ``links``, only the sent files and the manifest (the host linked the rest).

    Memory stays flat: a file's content is read in chunks as it is sent, and read exactly
    to the size its header announced (a file that changed size since the scan stops it).
    """
    progress.start("Sending files", total=sum(f.size for f in plan.sent))
    buffer = bytearray()
    for site_file, entry, linked in plan.members:
        if linked and not links:
            continue
        name = os.fsencode(f"{plan.partial}/{site_file.path}")
        if linked:
            buffer += tar_stream.link_header(name, os.fsencode(plan.linked_from(site_file.path)))
        else:
            buffer += tar_stream.file_header(name, entry.size, entry.mode, entry.mtime)
            for chunk in _content(site_file):
                buffer += chunk
                if len(buffer) >= _STREAM_CHUNK:
                    yield buffer  # sent before the next is asked for: no copy of it kept
                    buffer = bytearray()
            buffer += tar_stream.padding(entry.size)
            progress.advance(entry.size)
        if len(buffer) >= _STREAM_CHUNK:
            yield buffer
            buffer = bytearray()
    if plan.same_manifest is None:
        name = os.fsencode(plan.manifest_partial)
        buffer += tar_stream.file_header(name, len(plan.manifest), 0o644, int(time.time()))
        buffer += plan.manifest + tar_stream.padding(len(plan.manifest))
    buffer += tar_stream.END
    yield buffer
    progress.finish()


def _content(site_file: SiteFile) -> Iterator[bytes]:
    """The file's bytes, in chunks: exactly as many as the scan saw, or VALIDATION_FAILED.

    Each read asks for one byte more than is left, so a small file takes a single read to
    be both read and known to have ended (a regular file reads short only at its end).
    """
    source = os.open(site_file.location, os.O_RDONLY)
    try:
        left = site_file.size
        while True:
            wanted = min(left + 1, _STREAM_CHUNK)
            chunk = os.read(source, wanted)
            if len(chunk) > left:
                raise _changed(site_file)  # it grew
            if chunk:
                left -= len(chunk)
                yield chunk
            if len(chunk) < wanted:
                if left:
                    raise _changed(site_file)  # it shrank
                return
    finally:
        os.close(source)


class ReleaseEngine:
    """Creates, activates, lists and prunes releases under ``root`` on one connection.

    Every command gets ``command_timeout`` seconds (None: no limit); one still running then
    is abandoned and reported as DEPLOY_FAILED, naming what it was doing. ``known``: the
    releases this machine remembers having made, which a host then need not send back.
    """

    def __init__(
        self,
        connection: Connection,
        root: str,
        command_timeout: float | None = None,
        known: KnownReleases | None = None,
    ) -> None:
        self.connection = connection
        self.root = root.rstrip("/") or "/"
        self.command_timeout = command_timeout
        self._bulk: LocalConnection | _OverSsh = (
            connection if isinstance(connection, LocalConnection) else _OverSsh(connection, known)
        )
        self._ahead: Background | None = None
        #: The releases on the host as :meth:`sweep` listed them under the deploy lock, and
        #: as this engine changed them since, for :meth:`prune` (None: list them again).
        self._held: set[str] | None = None
        #: What :meth:`seen` was given (the output of :meth:`look_command`), until this
        #: engine runs a command: ``current`` as it read, then the listings of :meth:`sweep`.
        self._looked: list[list[str]] | None = None

    @property
    def releases_dir(self) -> str:
        return f"{self.root}/releases"

    def release_path(self, release: str) -> str:
        """Where ``release`` lives; refuses any name that is not a release id."""
        return f"{self.releases_dir}/{_checked(release)}"

    # The temporary names of one release's deploy: each matches a _LEFTOVER_* pattern.

    def _archive_path(self, release: str) -> str:
        return f"{self.releases_dir}/.{_checked(release)}.tar"

    def _partial_path(self, release: str) -> str:
        return f"{self.releases_dir}/.{_checked(release)}.partial"

    def _pruned_path(self, release: str) -> str:
        return f"{self.root}/{_pruned(release)}"

    def _standby_path(self, release: str) -> str:
        return f"{self.releases_dir}/{_standby(release)}"

    def _switch_path(self, release: str) -> str:
        return f"{self.root}/.current-{_checked(release)}"

    def _manifest_path(self, release: str) -> str:
        return f"{self.root}/{MANIFESTS}/{_checked(release)}.json"

    def _manifest_partial_path(self, release: str) -> str:
        return f"{self.releases_dir}/.{_checked(release)}.manifest"

    def _call(self, command: str, what: str) -> Any:
        """``command``'s result, whatever its exit status; raises only once it timed out."""
        self._looked = None  # whatever it changes, the look before it may no longer say
        return run_timed(self.connection, command, what, self.command_timeout)

    def look_command(self) -> str:
        """A command printing what :meth:`current` and then :meth:`sweep` read first, for
        :meth:`seen`: run in the same round trip as another (the deploy lock's), it saves
        each of them one."""
        return self._listing_command(None, "releases", ".", MANIFESTS)

    def seen(self, output: str) -> None:
        """What :meth:`look_command` printed: :meth:`current` and :meth:`sweep` use it
        instead of asking, unless this engine has run a command since."""
        self._looked = _split_listings(output, 4)

    def look(self) -> None:
        """Read what :meth:`current` and then :meth:`sweep` read first, in one command."""
        self.seen(self._run(self.look_command(), "look at the releases"))

    def _run(self, command: str, what: str) -> str:
        result = self._call(command, what)
        if result.failed:
            detail = (result.stderr or result.stdout or "").strip()
            raise _failed(what, detail or f"exit status {result.exited}", self.root)
        return str(result.stdout)

    def create_releases_dir(self) -> None:
        """Create the root, ``releases/``, ``shared/`` and the manifests' directory; repeatable."""
        paths = shlex.join(f"{self.root}/{d}" for d in ("releases", "shared", MANIFESTS))
        self._run(f"mkdir -p {paths}", f"create {self.releases_dir}")

    def upload(
        self,
        release: str,
        files: SiteFiles,
        progress: Progress,
        *,
        shared: Sequence[str] = (),
    ) -> Upload:
        """Make ``files`` the release ``release``, sending only what the host does not have.

        Unchanged files are hard links to the host's current release (when it has an intact
        manifest); the rest go in one tar stream. Each of ``shared`` (paths relative to
        ``<root>/shared/``, which must exist) replaces whatever the build has at that path
        with a link to it. The release appears under its id only once whole.
        """
        _checked(release)
        self._looked = None
        links = _shared_paths(shared)
        try:
            # The files are hashed while the host is asked what it has, and while they are
            # sent when it has nothing to link from (once per deploy, however many hosts:
            # SiteFiles keeps the digests).
            with ThreadPoolExecutor(1) as pool:
                hashing = pool.submit(files.digests, "sha256")
                ahead = self._survey_taken_ahead()

                def build(survey: Survey) -> Plan:
                    plan = plan_upload(release, files, hashing.result, survey, links)
                    self._bulk.build(self.root, plan, progress, self.command_timeout)
                    self._bulk.remember(plan)
                    return plan

                try:
                    plan = build(ahead or self._bulk.survey(self.root, self.command_timeout))
                except _BaseMoved:  # since the look ahead: look again, under the lock
                    plan = build(self._bulk.survey(self.root, self.command_timeout))
        except OSError as exc:  # on this machine, or reading the build
            raise (os_failure(exc) or exc) from None
        if self._held is not None:
            self._held.add(release)
        sent = plan.sent
        return Upload(
            release,
            plan.base,
            files_linked=len(plan.members) - len(sent),
            files_sent=len(sent),
            bytes_sent=sum(f.size for f in sent),
        )

    def survey_ahead(self) -> Background:
        """Start reading what the next :meth:`upload` asks the host first (:meth:`survey`),
        before the deploy lock is held: the upload uses it only if it has a release to link
        from, and only if that release is still the live one once the lock is held (the
        host side of the upload checks; else it looks again)."""
        self._ahead = Background(self.survey)
        return self._ahead

    def _survey_taken_ahead(self) -> Survey | None:
        """What :meth:`survey_ahead` found, if an upload can start from it."""
        ahead, self._ahead = self._ahead, None
        try:
            survey: Survey | None = ahead.result() if ahead is not None else None
        except Exception:  # noqa: BLE001 - looked at again under the lock, which says why
            return None
        return survey if survey is not None and survey.manifest is not None else None

    def survey(self) -> Survey:
        """What the host serves: its current release, that one's manifest and its files on
        disk. Reads only (``deploy --dry-run``, drift)."""
        return self._bulk.survey(self.root, self.command_timeout, create=False)

    def planned(self, files: SiteFiles, shared: Sequence[str] = ()) -> tuple[str | None, Changes]:
        """The host's current release, and what a release of ``files`` would change from it
        (linked and sent as :meth:`upload` would); reads only."""
        survey = self.survey()
        digests = files.digests("sha256")
        return survey.current, planned_changes(files, digests, survey, _shared_paths(shared))

    def drift(self) -> tuple[str | None, Changes | None]:
        """The host's current release, and what was changed on the host since it was deployed
        (None: it has no manifest to go by); reads only."""
        survey = self.survey()
        return survey.current, drift(survey)

    def copy_release(self, source: ReleaseEngine, release: str, new: str) -> bool:
        """Make ``new`` here a copy of ``source``'s ``release`` (another root on this host),
        with its manifest; nothing crosses the connection. True if hard links made it (both
        roots on one filesystem), False if the host copied the files.

        Deploys never change a file of a release in place, so linking is as safe as it is
        for the unchanged files of a delta upload.
        """
        q = shlex.quote
        origin = source.release_path(release)
        partial = self._partial_path(new)
        manifest = source._manifest_path(release)
        missing = q(f"{origin} does not exist")
        command = (
            f"mkdir -p {q(self.releases_dir)} {q(f'{self.root}/{MANIFESTS}')}"
            f" && {{ test -d {q(origin)} || {{ echo {missing} >&2; false; }}; }}"
            f" && mkdir {q(partial)}"
            f" && if cp -al {q(origin + '/.')} {q(partial)} 2>/dev/null; then echo linked;"
            f" else rm -rf {q(partial)} && mkdir {q(partial)}"
            f" && cp -Rp {q(origin + '/.')} {q(partial)} && echo copied; fi"
            f" && if test -f {q(manifest)}; then cp -p {q(manifest)}"
            f" {q(self._manifest_partial_path(new))}"
            f" && mv -f {q(self._manifest_partial_path(new))} {q(self._manifest_path(new))}; fi"
            f" && test ! -e {q(self.release_path(new))}"
            f" && mv {q(partial)} {q(self.release_path(new))}"
        )
        done = self._run(command, f"copy release {release} of {source.root} as {new}")
        if self._held is not None:
            self._held.add(new)
        return done.strip().endswith("linked")

    def manifest(self, release: str) -> dict[str, dict[str, Any]] | None:
        """``path -> {sha256, size, mode, mtime}`` of ``release`` as deployed; None if unknown.

        ``mode`` is octal text (``"644"``); a release made before manifests existed, or
        whose manifest cannot be read as one, has none.
        """
        data = self._bulk.read(self._manifest_path(release), self.command_timeout)
        entries = parse_manifest(data) if data is not None else None
        return None if entries is None else {p: e.to_json() for p, e in entries.items()}

    def run_in_release(self, release: str, command: str) -> str:
        """Run the user's shell line ``command`` in ``release``'s directory; its stdout.

        Raises DEPLOY_FAILED with the exit status and the last lines of its output.
        """
        what = f"run `{command}` in release {release}"
        result = self._call(f"cd {shlex.quote(self.release_path(release))} && {command}", what)
        if result.failed:
            output = redact(result.stderr or "").strip() or redact(result.stdout or "").strip()
            tail = "\n".join(output.splitlines()[-_HOOK_TAIL_LINES:])
            raise DevopsError(
                ErrorCode.DEPLOY_FAILED,
                f"`{command}` failed in release {release} with exit status {result.exited}"
                + (f":\n{tail}" if tail else ""),
                "Fix the command (or what it needs on the host) and deploy again; run it by "
                f"hand in {self.release_path(release)} to see all its output.",
                exit_status=result.exited,
            )
        return str(result.stdout)

    def activate(self, release: str) -> str | None:
        """Point ``current`` at ``release`` atomically (a new symlink renamed over the old).

        Returns the release ``current`` pointed at before (None if none), read in the same
        command. A ``current`` that is not a symlink was not made here, and is never replaced.
        """
        target = shlex.quote(self.release_path(release))
        temporary = shlex.quote(self._switch_path(release))
        current = shlex.quote(f"{self.root}/current")
        refusal = shlex.quote(f"{self.root}/current is not a symlink; refusing to replace it")
        # GNU mv needs -T and BSD mv needs -h so as not to move *into* the old link's target.
        before = self._run(
            f"test -d {target}"
            f" && {{ test -L {current} || test ! -e {current}"
            f" || {{ echo {refusal} >&2; false; }}; }}"
            f" && {{ readlink {current} || true; }}"
            f" && ln -sfn {shlex.quote('releases/' + release)} {temporary}"
            f" && {{ mv -Tf {temporary} {current} 2>/dev/null"
            f" || mv -hf {temporary} {current}; }}",
            f"switch current to release {release}",
        )
        return _release_of_link(before)

    def deactivate(self, release: str) -> None:
        """Remove ``current`` if it points at ``release``: undoes a first switch, atomically.

        A host that served nothing before a failed multi-host switch serves nothing again.
        """
        expected = shlex.quote(f"releases/{_checked(release)}")
        current = shlex.quote(f"{self.root}/current")
        self._run(
            f'if test -L {current} && test "$(readlink {current})" = {expected};'
            f" then rm -f {current}; fi",
            f"undo the switch to release {release}",
        )

    def current(self) -> str | None:
        """The release ``current`` points at, or ``None`` (before the first deploy)."""
        if self._looked is not None:
            return _release_of_link("".join(self._looked[0][:1]))
        link = shlex.quote(f"{self.root}/current")
        return _release_of_link(self._run(f"readlink {link} || true", "read the current release"))

    def _listings(self, *directories: str) -> list[list[str]]:
        """The entries (hidden ones too) of each of ``directories`` under the root, at once.

        A directory that does not exist has none.
        """
        output = self._run(self._listing_command(*directories), "list files")
        return _split_listings(output, len(directories))

    def _listing_command(self, *directories: str | None) -> str:
        """Each of ``directories``' entries (None: where ``current`` points), one a line,
        between lines of ``/`` (the one name no directory entry can have)."""
        listing = " echo /;".join(
            " readlink current;" if d is None else f" ls -1A {shlex.quote(d)};" for d in directories
        )
        return f"cd {shlex.quote(self.root)} 2>/dev/null && {{{listing} }} 2>/dev/null; true"

    def releases(self) -> list[str]:
        """Every release on the host, oldest first (release ids sort by time).

        Only release ids count: anything else in ``releases/`` is not the engine's.
        """
        (names,) = self._listings("releases")
        return sorted(n for n in names if DEPLOYMENT_ID.fullmatch(n))

    def exists(self, release: str) -> bool:
        return release in self.releases()

    def remove(self, release: str) -> None:
        """Delete ``release``, its manifest and any temporary files of its deploy."""
        paths = shlex.join(
            [
                self.release_path(release),
                self._archive_path(release),
                self._partial_path(release),
                self._pruned_path(release),
                self._standby_path(release),
                self._switch_path(release),
                self._manifest_path(release),
                self._manifest_partial_path(release),
            ]
        )
        self._run(f"rm -rf {paths}", f"remove release {release}")
        if self._held is not None:
            self._held.discard(release)

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        """Remove all but the newest ``keep`` releases, never one in ``protect``.

        Call it only while holding the deploy lock; after a :meth:`sweep` under that lock,
        the releases it listed (and this engine made or removed since) are all there is.

        On a host, each is renamed out of the listing at once, and the rest is done in the
        background, after the deploy: the files are removed, and the live release gets a
        *standby*, ``releases/.<id>.standby``, its hard-link copy that the next upload
        starts from instead of linking every file while someone waits (standbys of other
        releases go). Unlinking or linking thousands of files is most of what a small deploy
        would otherwise wait for. Whatever the background cut short carries a temporary
        name, which the next deploy's :meth:`sweep` removes.
        """
        held, self._held = self._held, None
        existing = sorted(held) if held is not None else self.releases()
        doomed = [r for r in existing[: max(len(existing) - keep, 0)] if r not in protect]
        manifests = shlex.join(self._manifest_path(r) for r in doomed)
        if isinstance(self._bulk, LocalConnection):
            if doomed:
                paths = shlex.join(self.release_path(r) for r in doomed)
                self._run(f"rm -rf {paths} {manifests}", "prune old releases")
            return doomed
        steps = [f"cd {shlex.quote(self.root)} || exit 1"]
        for release in doomed:
            path, aside = (shlex.quote(p) for p in (f"releases/{release}", _pruned(release)))
            steps.append(f"{{ mv {path} {aside} 2>/dev/null || rm -rf {path}; }}")
        if doomed:
            steps.append(f"rm -f {manifests}")
        later = [f"rm -rf {shlex.join(_pruned(r) for r in doomed)}"] if doomed else []
        later += [
            _READ_CURRENT.strip(),
            # renamed before it is removed: a deploy that takes it meanwhile gets it whole
            'for s in releases/.dep_*.standby; do test "$s" = "releases/.$c.standby"'
            ' || { mv -T "$s" "${s%.standby}.pruned" 2>/dev/null'
            ' && rm -rf "${s%.standby}.pruned"; }; done',
            'test -n "$c" && test ! -e "releases/.$c.standby"'
            ' && mkdir "releases/.$c.standby.partial"'
            ' && { cp -al "releases/$c/." "releases/.$c.standby.partial" 2>/dev/null'
            ' && mv -T "releases/.$c.standby.partial" "releases/.$c.standby"'
            ' || rm -rf "releases/.$c.standby.partial"; }',
        ]
        job = "\n".join(later)
        # at a low priority where the host has nice: it must not slow what the host serves
        steps.append("n=; command -v nice >/dev/null 2>&1 && n='nice -n 10'")
        steps.append(f"{{ $n sh -c {shlex.quote(job)} </dev/null >/dev/null 2>&1 & }}")
        self._run("\n".join(steps), "prune old releases")
        return doomed

    def sweep(self) -> list[str]:
        """Remove what killed runs left (temporary names only); returns what was there.

        Call it only while holding the deploy lock of this root. The last command of a
        killed deploy may still be running (a ``tar`` its death orphaned): each leftover is
        first renamed aside, so that command can never finish a release from a directory
        being emptied under it, and a removal it gets in the way of is left for next time.
        A manifest whose release is gone (the run died between the two renames, or the
        release was deleted by hand) goes too.
        """
        looked, self._looked = self._looked, None
        in_releases, in_root, manifests = (
            looked[1:] if looked is not None else self._listings("releases", ".", MANIFESTS)
        )
        existing = {name for name in in_releases if DEPLOYMENT_ID.fullmatch(name)}
        self._held = set(existing)
        leftovers = [f"releases/{n}" for n in in_releases if _LEFTOVER_IN_RELEASES.fullmatch(n)]
        leftovers += [name for name in in_root if _LEFTOVER_IN_ROOT.fullmatch(name)]
        stale = [
            f"{MANIFESTS}/{name}"
            for name in manifests
            if (match := _MANIFEST.fullmatch(name)) and match[1] not in existing
        ]
        steps = []
        for name in leftovers:
            path = f"{self.root}/{name}"
            aside = path if re.search(f"{_SWEPT}$", name) else f"{path}.swept"
            if aside != path:
                steps.append(f"mv -f {shlex.quote(path)} {shlex.quote(aside)} 2>/dev/null")
            steps.append(f"rm -rf {shlex.quote(aside)} 2>/dev/null")
        if stale:
            steps.append(f"rm -f {shlex.join(f'{self.root}/{name}' for name in stale)}")
        if steps:
            self._run("; ".join([*steps, "true"]), "remove what an interrupted deploy left")
        return leftovers + stale


def _expecting(known: dict[str, Remembered]) -> str:
    """Shell lines that set ``$m`` and ``$l`` to the digests of the manifest and of the
    sorted listing of the release ``$c`` as this machine made it (empty: not one it knows)."""
    cases = "".join(
        f"  {release}) m={r.manifest_sha256} l={r.listing_sha256} ;;\n"
        for release, r in known.items()
        if DEPLOYMENT_ID.fullmatch(release)
    )
    return f"  m= l=\n  case $c in\n{cases}  esac\n" if cases else "  m= l=\n"


def _split_listings(output: str, count: int) -> list[list[str]]:
    """The ``count`` listings of a :meth:`ReleaseEngine._listing_command`'s output."""
    names: list[list[str]] = [[]]
    for line in output.splitlines():
        if line == "/":
            names.append([])
        elif line:
            names[-1].append(line)
    return (names + [[]] * count)[:count]


def _pruned(release: str) -> str:
    """Where a pruned release waits for its removal, relative to the root."""
    return f"releases/.{_checked(release)}.pruned"


def _standby(release: str) -> str:
    """The name of ``release``'s standby copy in releases/ (see ReleaseEngine.prune)."""
    return f".{_checked(release)}.standby"


def _release_of_link(target: str) -> str | None:
    """The release a ``current`` link's target names, if it names one."""
    name = target.strip().rsplit("/", 1)[-1]
    return name if DEPLOYMENT_ID.fullmatch(name) else None


def _shared_paths(shared: Sequence[str]) -> tuple[str, ...]:
    """``shared`` normalised; refused if one is not a plain relative path or holds another.

    Nesting is refused because the outer one is a link to the user's data by the time the
    inner one would be replaced: removing "what the build has there" would reach into it.
    """
    paths = []
    for raw in shared:
        path = posixpath.normpath(raw) if raw else ""
        if path in ("", ".") or path.startswith(("/", "../")) or path == "..":
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                f"shared path {raw!r} is not a path relative to the shared directory",
                'List paths under <path>/shared/ such as "uploads" or "config/.env".',
            )
        paths.append(path)
    for path in paths:
        for other in paths:
            if other != path and within(other, path):
                raise DevopsError(
                    ErrorCode.CONFIG_INVALID,
                    f"shared path {other!r} is inside shared path {path!r}",
                    f"Share {path!r} only: everything under it is shared with it.",
                )
    return tuple(dict.fromkeys(paths))


def _shared_link(path: str) -> str:
    """What ``releases/<id>/<path>`` links to: ``<root>/shared/<path>``, relatively.

    Relative, so the root can be moved or mounted elsewhere and its releases still work.
    """
    return "../" * (2 + path.count("/")) + f"shared/{path}"


def _check(done: Completed, root: str, what: str = "read the current release") -> Completed:
    if done.status != 0:
        detail = done.stderr.decode(errors="replace").strip()
        raise _failed(what, detail or f"exit status {done.status}", root)
    return done


def _failed(what: str, detail: str, root: str) -> DevopsError:
    return DevopsError(
        ErrorCode.DEPLOY_FAILED,
        f"Could not {what}: {detail}",
        f"Check that {root} is writable, has free space and holds nothing of "
        "yours where releases/ and current go, then deploy again.",
    )


def _changed(site_file: SiteFile) -> DevopsError:
    return DevopsError(
        ErrorCode.VALIDATION_FAILED,
        f"{site_file.path} changed while it was being deployed",
        "Let the build finish writing before deploying, then deploy again.",
    )


def _no_shared(root: str, path: str) -> DevopsError:
    return DevopsError(
        ErrorCode.DEPLOY_FAILED,
        f"{root}/shared/{path} does not exist",
        f"Create it on the host (it is kept across releases), or remove {path!r} from "
        "ssh.shared, then deploy again.",
    )


def _checked(release: str) -> str:
    """``release`` if it is a release id: no other name is ever made into a path to change."""
    if not DEPLOYMENT_ID.fullmatch(release):
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{release!r} is not a release id",
            "Release ids are deployment ids like dep_1764111420000_ab12cd34; "
            "see `devops infra.show` or `devops history`.",
        )
    return release


def no_manifest(release: str | None) -> str:
    """Why a release's files cannot be compared with what was deployed."""
    return (
        f"release {release} has no manifest to compare its files with (it was made before "
        "devops-tasks kept manifests); the next deploy writes one"
    )
