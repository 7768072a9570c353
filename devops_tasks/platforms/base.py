"""The interface every deploy target implements, and the values that cross it.

A platform knows how to put files somewhere and make them live; it knows nothing about
config files, locks, records, health checks or output. Those belong to the one flow in
:mod:`devops_tasks.deployer`, which is the same for every target.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import DevopsError, ErrorCode
from ..files import default_ignore

if TYPE_CHECKING:
    from pathlib import Path

    from ..changes import Drift
    from ..config import Settings
    from ..credentials import Credentials
    from ..files import SiteFiles
    from ..history import Deployment
    from ..output import Progress
    from ..project import Project

__all__ = ["DeployOutcome", "Finding", "Platform", "upload_concurrency"]


@dataclass(frozen=True)
class Finding:
    """One problem found before deploying, with what to do about it."""

    message: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {"message": self.message, "fix": self.fix}


@dataclass
class DeployOutcome:
    """What a platform reports after putting a release in place."""

    release: str
    url: str | None = None
    #: Where the release can be seen before it is published (a draft's own URL).
    preview_url: str | None = None
    #: False when deployed with ``publish=False`` and not yet live.
    published: bool = True
    platform_deploy_id: str | None = None
    files_deployed: int = 0
    bytes_uploaded: int = 0
    rollback_available: bool = False
    details: dict[str, Any] = field(default_factory=dict)


class Platform(abc.ABC):
    """A deploy target. Subclasses set ``name`` and implement the abstract methods."""

    name: ClassVar[str]

    #: Commands a new project on this target needs before its first deploy (``init`` shows them).
    first_steps: ClassVar[tuple[str, ...]] = ()
    #: Strategies this target can carry out (others are refused by ``validate``).
    strategies: ClassVar[frozenset[str]] = frozenset({"rolling", "blue-green", "canary"})
    #: Credentials every deploy to this target needs (names the resolver looks up).
    deploy_credentials: ClassVar[tuple[str, ...]] = ()
    #: Whether the target checks each of its hosts itself (``{host}`` URLs, ``remote``).
    checks_hosts: ClassVar[bool] = False
    #: The digests its deploy asks :meth:`SiteFiles.digests` for: the scan computes them in
    #: its one pass over the build, from the hash cache where it can.
    digest_algorithms: ClassVar[tuple[str, ...]] = ("sha256",)

    def __init__(
        self,
        project: Project,
        settings: Settings,
        context: Any = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.project = project
        self.settings = settings
        self.context = context  # invoke's Context, for targets that run local commands
        self.options = settings.section(self.name)
        self._credentials = credentials
        #: This command's flags for the target (``deploy --force-deletes``, ``infra.up
        #: --public``); a target reads the ones it knows and ignores the rest.
        self.flags: dict[str, Any] = {}

    @property
    def credentials(self) -> Credentials:
        """Where this target's tokens and keys come from (see :mod:`devops_tasks.credentials`)."""
        if self._credentials is None:
            from ..credentials import Credentials  # noqa: PLC0415

            self._credentials = Credentials(self.project, self.settings)
        return self._credentials

    def require_credentials(self) -> None:
        """Resolve every credential a deploy needs, before any command runs.

        Resolving registers each value for masking, so a build that prints a token from
        the environment shows it masked; a missing one fails before the build, not after.
        """
        for name in self.deploy_credentials:
            self.credentials.require(name, f"deploying to {self.name}")

    def validate(self) -> list[Finding]:
        """Every problem with this target's settings, found without touching the network."""
        findings = []
        strategy = self.settings.get("deployment.strategy")
        if strategy not in self.strategies:
            findings.append(
                Finding(
                    f"The {self.name} target cannot do a {strategy} deployment",
                    f"Set deployment.strategy to one of: {', '.join(sorted(self.strategies))}.",
                )
            )
        check = self.settings.get("deployment.health_check") or {}
        if not self.checks_hosts and ("{host}" in (check.get("url") or "") or check.get("remote")):
            findings.append(
                Finding(
                    f"deployment.health_check has a per-host check ({{host}} in its url, or "
                    f"remote), which the {self.name} target has no hosts for",
                    "Give health_check.url the site's own address and drop health_check.remote "
                    "(they are for the ssh target).",
                )
            )
        return findings

    #: Whether a build-dir file (path relative to it) is never sent to this target: a
    #: module-level function, which a scan in another process imports by its name.
    ignore = staticmethod(default_ignore)

    def own_paths(self) -> list[Path]:
        """Where this target keeps its own state on this machine: never deployed from there."""
        return []

    def validate_files(self, files: SiteFiles) -> list[Finding]:
        """Every reason this target would refuse these files (limits, names)."""
        return []

    @abc.abstractmethod
    def deploy(
        self, deployment: Deployment, files: SiteFiles, progress: Progress, publish: bool = True
    ) -> DeployOutcome:
        """Put ``files`` in place as a new release; make it live unless ``publish`` is False.

        An unpublished release is made live later with :meth:`restore`.
        """

    @abc.abstractmethod
    def restore(self, release: str) -> None:
        """Make an earlier ``release`` live again (rollback)."""

    def undo(self, previous: str | None) -> bool:
        """Put back what served before the deploy that just went live; False if nothing did.

        ``previous`` is what the whole target served (``None`` if nothing, or if its hosts
        disagreed); a target with hosts may know better, host by host.
        """
        if previous is None:
            return False
        self.restore(previous)
        return True

    def publish(self, release: str) -> None:
        """Make live a release that :meth:`deploy` left unpublished (blue-green's switch)."""
        self.restore(release)

    @abc.abstractmethod
    def can_restore(self, release: str) -> bool:
        """Whether ``release`` still exists on the target, so a rollback to it can work."""

    @abc.abstractmethod
    def live_release(self) -> str | None:
        """Which release the target is serving right now (``None`` before any deploy)."""

    def close(self) -> None:  # noqa: B027 - most targets hold nothing open between calls
        """Let go of what this command opened (connections); the next call opens anew."""

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def discard(self, release: str) -> None:  # noqa: B027 - most targets have nothing to clean
        """Remove a release that never went live (a deploy that failed half-way)."""

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        """Drop old releases beyond ``keep``, never one in ``protect``; returns the dropped."""
        return []

    def describe(self) -> dict[str, Any]:
        """What the target is, for ``status`` and ``infra.show``."""
        return {"platform": self.name}

    def provision(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create what the target needs (``infra.up``).

        Returns what now exists, and settings to store in the config (dotted key -> value),
        e.g. the id of a site it created.
        """
        return self.describe(), {}

    def plan(self) -> list[dict[str, Any]]:
        """What :meth:`provision` would do, found without changing anything (``infra.plan``).

        One ``{"action", "what", "where"}`` per thing it makes: ``create``, ``none`` (there
        already), ``conflict`` (something else is in the way) or ``unknown`` (it could not
        look; an ``error`` says why). A target whose ``provision`` makes nothing plans nothing.
        """
        return []

    def host_logs(self, lines: int) -> list[dict[str, Any]]:
        """The last ``lines`` lines of the service's log on each host (``logs --lines``).

        One ``{"host", "lines"}`` per host, or ``{"host", "code", "error"}`` for a host that
        could not answer; raises only when none could.
        """
        raise self._no_host_logs()

    def follow_logs(
        self, lines: int, emit: Callable[[str, str], None], warn: Callable[[str], None]
    ) -> None:
        """Pass each new line of every host's log to ``emit(host, line)`` as it comes, after
        the last ``lines``, until every stream ends or Ctrl-C (``logs --follow``).

        A host that cannot be followed, or whose stream ends, is told to ``warn(message)``
        (naming the host); the others go on.
        """
        raise self._no_host_logs()

    def _no_host_logs(self) -> DevopsError:
        return DevopsError(
            ErrorCode.NOT_SUPPORTED,
            f"The {self.name} target has no hosts whose logs --lines or --follow could read",
            "Use `devops logs` without --lines and --follow for a deployment's own steps.",
        )

    def remote_history(self, limit: int) -> list[dict[str, Any]]:
        """The target's own record of deployments, newest first (``history --remote``).

        Each item says at least its ``action`` (``deploy`` or ``rollback``), ``release`` and
        ``status`` (``success`` for one that went live), so that ``status`` and ``rollback``
        work from a checkout with no records of its own.
        """
        raise self._unsupported("keeps no deployment list of its own", "history")

    def unreachable(self) -> list[dict[str, Any]]:
        """The hosts that did not answer what this command asked (each with its ``code`` and
        ``error``): a target with several hosts answers for those that do where it can."""
        return []

    @contextlib.contextmanager
    def hold(self, holder: dict[str, Any]) -> Iterator[None]:
        """Hold the target's own locks while one deploy or rollback by ``holder`` runs.

        ``holder`` is :func:`devops_tasks.host_state.lock_holder`. A target that machines
        other than this one deploy to keeps a lock where they all see it (the ssh target: on
        each host) and raises LOCKED naming whoever has it; the project's own lock, which the
        deployer takes first, is all the others need.
        """
        yield

    def lock_states(self) -> list[dict[str, Any]]:
        """Each lock :meth:`hold` takes, as it is now (``lock.status``)."""
        return []

    def release_locks(self, force: bool) -> list[dict[str, Any]]:
        """Remove the stale locks :meth:`hold` left (any, with ``force``) (``lock.release``)."""
        return []

    def record_audit(self, entry: dict[str, Any]) -> None:  # noqa: B027 - most keep none
        """Append ``entry`` (:meth:`Deployment.audit_entry`) to the target's own audit log.

        A target with one keeps it where a second checkout can read it back through
        :meth:`remote_history`.
        """

    def prefetch(self) -> None:  # noqa: B027 - most targets read nothing ahead
        """Start reading what a deploy will ask the target first, while the build dir is
        scanned (a bucket's manifest and listing); errors surface when the reads are used."""

    def read_ahead(self) -> None:  # noqa: B027 - most targets read nothing ahead
        """Start the reads of :meth:`prefetch` for the platform that the command, once loaded,
        will make: it uses them if it reaches the same target with the same credentials.
        Called before the program loads (:mod:`devops_tasks.early`); it must not write."""

    def plan_deploy(self, files: SiteFiles) -> dict[str, Any]:
        """What a deploy of ``files`` would change, found without changing anything.

        For ``deploy --dry-run``: :meth:`Changes.summary` of what would be added, changed and
        deleted, ``steps`` (what the deploy would do, in order) and what else the target can
        tell (``live_release``, per-host counts). It reads the target, writes nothing there,
        and takes no lock.
        """
        raise self._unsupported("cannot tell in advance what a deploy would change", "deploy")

    def drift(self, expected: str | None) -> Drift:
        """How the files the target serves differ from what a deployment put there.

        Compared with the manifest (or digest map) of the live release, or failing that of
        ``expected``, the release the records say the last deployment made live. Reads only.
        """
        raise self._unsupported("cannot tell what changed on it since a deploy", "status")

    def teardown(self, force: bool) -> dict[str, Any]:
        """Remove what :meth:`provision` made (``infra.down --yes``).

        Never something it did not make and that holds data, unless ``force``.
        """
        raise self._unsupported("cannot be torn down by devops-tasks", "infra.show")

    def trigger_build(self, wait: bool) -> dict[str, Any]:
        """Start a build on the target's side (``build --remote``)."""
        raise self._unsupported("does not build remotely", "build (without --remote)")

    def deployment_log(self, platform_deploy_id: str) -> dict[str, Any]:
        """What the target says about one deployment (for ``logs``); empty if nothing."""
        return {}

    def promote(
        self,
        deployment: Deployment,
        source: Platform,
        release: str,
        progress: Progress,
        publish: bool = True,
    ) -> DeployOutcome:
        """Make ``release`` of ``source`` (another environment on this target) a release here,
        from the bytes the target already holds: nothing is built, as little as possible sent.

        Like :meth:`deploy`: live unless ``publish`` is False; the outcome says what was sent.
        """
        raise self._unsupported("cannot promote a release between environments", "deploy")

    def _unsupported(self, what: str, instead: str) -> DevopsError:
        return DevopsError(
            ErrorCode.NOT_SUPPORTED,
            f"The {self.name} target {what}",
            f"Use `devops {instead}` instead.",
        )


def upload_concurrency(setting: str, value: int) -> list[Finding]:
    """The finding for an upload concurrency outside 1 to 256, if ``value`` is one.

    It is a ceiling: how many uploads are under way adapts to the answers (``uploads.Pace``).
    """
    if 1 <= value <= 256:
        return []
    return [
        Finding(
            f"{setting} {value} is out of range",
            "Use 1 to 256: the most uploads under way at once (default 32).",
        )
    ]
