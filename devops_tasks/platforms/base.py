"""The interface every deploy target implements, and the values that cross it.

A platform knows how to put files somewhere and make them live; it knows nothing about
config files, locks, records, health checks or output. Those belong to the one flow in
:mod:`devops_tasks.deployer`, which is the same for every target.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..files import IgnoreRule, default_ignore

if TYPE_CHECKING:
    from ..config import Settings
    from ..files import SiteFiles
    from ..history import Deployment
    from ..output import Progress
    from ..project import Project

__all__ = ["Platform", "Finding", "DeployOutcome"]


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
    platform_deploy_id: str | None = None
    files_deployed: int = 0
    bytes_uploaded: int = 0
    rollback_available: bool = False
    details: dict[str, Any] = field(default_factory=dict)


class Platform(abc.ABC):
    """A deploy target. Subclasses set ``name`` and implement the abstract methods."""

    name: ClassVar[str]
    #: Which build-dir files this target never receives.
    ignore: ClassVar[IgnoreRule] = staticmethod(default_ignore)

    def __init__(self, project: Project, settings: Settings, context: Any = None) -> None:
        self.project = project
        self.settings = settings
        self.context = context  # invoke's Context, for targets that run local commands
        self.options = settings.section(self.name)

    def validate(self) -> list[Finding]:
        """Every problem with this target's settings, found without touching the network."""
        return []

    @abc.abstractmethod
    def deploy(self, deployment: Deployment, files: SiteFiles, progress: Progress) -> DeployOutcome:
        """Put ``files`` in place as a new release and make it live."""

    @abc.abstractmethod
    def restore(self, release: str) -> None:
        """Make an earlier ``release`` live again (rollback)."""

    @abc.abstractmethod
    def can_restore(self, release: str) -> bool:
        """Whether ``release`` still exists on the target, so a rollback to it can work."""

    @abc.abstractmethod
    def live_release(self) -> str | None:
        """Which release the target is serving right now (``None`` before any deploy)."""

    def discard(self, release: str) -> None:
        """Remove a release that never went live (a deploy that failed half-way)."""

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        """Drop old releases beyond ``keep``, never one in ``protect``; returns the dropped."""
        return []

    def describe(self) -> dict[str, Any]:
        """What the target is, for ``status`` and ``infra.show``."""
        return {"platform": self.name}

    def provision(self) -> dict[str, Any]:
        """Create what the target needs (``infra.up``); returns what now exists."""
        return self.describe()
