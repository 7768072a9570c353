"""The built-in ``local`` target: releases in a directory on this machine.

It needs no account, so it is the default and the quickest way to see the whole flow. It
is the :class:`~devops_tasks.releases.ReleaseEngine` over a local connection; the SSH
target is the same engine over fabric connections.

Each environment has a root of its own (``local.root``, where ``{env}`` stands for the
environment's name): two environments sharing one ``current`` would mean deploying staging
replaces what production serves, so a config in which two resolve to one root is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..changes import PLAN_PATHS, Drift
from ..config import ConfigStore
from ..errors import DevopsError, ErrorCode
from ..project import STATE_DIR
from ..releases import LocalConnection, ReleaseEngine, no_manifest
from .base import DeployOutcome, Finding, Platform

if TYPE_CHECKING:
    from ..config import Settings
    from ..files import SiteFiles
    from ..history import Deployment
    from ..output import Progress
    from ..project import Project

DEFAULT_ROOT = f"{STATE_DIR}/local/{{env}}"


def release_root(project: Project, settings: Settings) -> Path:
    """The resolved ``local.root`` of ``settings``' environment (links followed, to compare)."""
    template = str(settings.section("local").get("root", DEFAULT_ROOT))
    return project.resolve(template.replace("{env}", settings.environment))


class LocalPlatform(Platform):
    name = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.root = release_root(self.project, self.settings)
        self.engine = ReleaseEngine(LocalConnection(self.context), str(self.root))

    def validate(self) -> list[Finding]:
        return super().validate() + self._shared_root()

    def _shared_root(self) -> list[Finding]:
        """A finding if another environment of the config resolves to this one's root."""
        sharing = [name for name, root in self._other_roots() if root == self.root]
        if not sharing:
            return []
        everyone = sorted([self.settings.environment, *sharing])
        names = ", ".join(everyone[:-1]) + " and " + everyone[-1]
        return [
            Finding(
                f"Environments {names} would share the local release root {self.root}, so "
                "deploying one would replace what the other serves",
                'Put {env} in local.root (e.g. ".devops/local/{env}"), or give each '
                "environment its own environments.<env>.local.root.",
            )
        ]

    def _other_roots(self) -> Iterator[tuple[str, Path]]:
        """The other environments of the config file on this target, and their roots.

        Judged by the file alone: ``DEVOPS__*`` variables only apply to this run.
        """
        store = ConfigStore(self.project)
        if not store.exists():
            return
        data = store.read()
        default = store.settings(None, data, use_environ=False).environment
        others = {default, *store.environment_names(data)} - {self.settings.environment}
        for name in sorted(others):
            settings = store.settings(name, data, use_environ=False)
            if settings.platform == self.name:
                yield name, release_root(self.project, settings)

    def own_paths(self) -> list[Path]:
        # releases/ and the manifests only: the root may be a directory of the user's that
        # holds the build dir; ``current`` and the temporary links all resolve into releases/.
        return [self.root / "releases", self.root / ".devops" / "manifests"]

    def deploy(
        self, deployment: Deployment, files: SiteFiles, progress: Progress, publish: bool = True
    ) -> DeployOutcome:
        release = deployment.id
        # The deployer holds this environment's lock, hence this root's: nothing else runs here.
        swept = self.engine.sweep()
        if swept:
            deployment.step("cleanup", f"removed what interrupted deploys left: {', '.join(swept)}")
        upload = self.engine.upload(release, files, progress)
        linked = (
            f", linked {upload.files_linked} unchanged from {upload.base}" if upload.base else ""
        )
        deployment.step(
            "upload",
            f"copied {upload.files_sent} files to {self.engine.release_path(release)}{linked}",
        )
        return self._outcome(
            deployment,
            publish,
            len(files),
            upload.bytes_sent,
            {"files_copied": upload.files_sent, "files_linked": upload.files_linked},
        )

    def promote(
        self,
        deployment: Deployment,
        source: Platform,
        release: str,
        progress: Progress,
        publish: bool = True,
    ) -> DeployOutcome:
        """Hard links to ``source``'s release (a copy if its root is on another filesystem)."""
        if not isinstance(source, LocalPlatform):
            raise self._unsupported("promotes only from another local environment", "deploy")
        swept = self.engine.sweep()
        if swept:
            deployment.step("cleanup", f"removed what interrupted deploys left: {', '.join(swept)}")
        linked = self.engine.copy_release(source.engine, release, deployment.id)
        how = "linked" if linked else "copied"
        deployment.step(
            "copy", f"{how} {source.engine.release_path(release)} as releases/{deployment.id}"
        )
        count = len(self.engine.manifest(deployment.id) or {})
        return self._outcome(deployment, publish, count, 0, {"promoted_by": how})

    def _outcome(
        self,
        deployment: Deployment,
        publish: bool,
        files: int,
        sent: int,
        details: dict[str, Any],
    ) -> DeployOutcome:
        """Release ``deployment.id`` is in place: switch to it if ``publish``; what was done."""
        release = deployment.id
        if publish:
            self.engine.activate(release)
            deployment.step("activate", f"current -> releases/{release}")
        return DeployOutcome(
            release=release,
            files_deployed=files,
            bytes_uploaded=sent,
            rollback_available=True,
            published=publish,
            details={"path": str(self.root / "current"), **details},
        )

    def plan_deploy(self, files: SiteFiles) -> dict[str, Any]:
        current, changes = self.engine.planned(files)
        sent = len(changes.added) + len(changes.changed)
        linked = f" and link the {len(files) - sent} unchanged from {current}" if current else ""
        return {
            **changes.summary(PLAN_PATHS),
            "live_release": current,
            "steps": [
                f"copy {sent} file(s) into {self.root / 'releases'}/<new release>{linked}",
                f"switch {self.root / 'current'} to the new release",
            ],
        }

    def drift(self, expected: str | None) -> Drift:
        current, changes = self.engine.drift()
        if changes is None:
            return Drift(against=current, unknown=no_manifest(current))
        return Drift(changes, against=current)

    def restore(self, release: str) -> None:
        shared = self._shared_root()
        if shared:  # a rollback switches current too: refused for the same reason as a deploy
            raise DevopsError(ErrorCode.CONFIG_INVALID, shared[0].message, shared[0].fix)
        self.engine.activate(release)

    def can_restore(self, release: str) -> bool:
        return self.engine.exists(release)

    def live_release(self) -> str | None:
        self.engine.look()  # and, in the same command, what a deploy's sweep reads next
        return self.engine.current()

    def discard(self, release: str) -> None:
        self.engine.remove(release)

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        return self.engine.prune(keep, protect)

    def describe(self) -> dict[str, Any]:
        return {
            "platform": self.name,
            "root": str(self.root),
            "current": str(self.root / "current"),
            "releases": self.engine.releases(),
        }

    def provision(self) -> tuple[dict[str, Any], dict[str, Any]]:
        (self.root / "releases").mkdir(parents=True, exist_ok=True)
        return self.describe(), {}

    def plan(self) -> list[dict[str, Any]]:
        return [_planned(path) for path in (self.root, self.root / "releases")]


def _planned(path: Path) -> dict[str, Any]:
    """What ``provision`` does about the directory ``path``: nothing, create it, or fail."""
    row = {"what": str(path), "where": "this machine"}
    if path.is_dir():
        return {"action": "none", **row}
    if path.exists() or path.is_symlink():
        return {"action": "conflict", **row, "error": "exists and is not a directory"}
    return {"action": "create", **row}
