"""The built-in ``local`` target: releases in a directory on this machine.

It needs no account, so it is the default and the quickest way to see the whole flow. It
is the :class:`~devops_tasks.releases.ReleaseEngine` over a local connection; the SSH
target is the same engine over fabric connections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..releases import LocalConnection, ReleaseEngine
from .base import DeployOutcome, Platform

if TYPE_CHECKING:
    from ..files import SiteFiles
    from ..history import Deployment
    from ..output import Progress


class LocalPlatform(Platform):
    name = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        default_root = self.project.state_dir / "local" / self.settings.environment
        self.root = self.project.resolve(self.options.get("root", default_root))
        self.engine = ReleaseEngine(LocalConnection(self.context), str(self.root))

    def deploy(
        self, deployment: Deployment, files: SiteFiles, progress: Progress, publish: bool = True
    ) -> DeployOutcome:
        release = deployment.id
        # The deployer holds this environment's lock, hence this root's: nothing else runs here.
        swept = self.engine.sweep()
        if swept:
            deployment.step("cleanup", f"removed what interrupted deploys left: {', '.join(swept)}")
        self.engine.upload(release, files, progress)
        deployment.step(
            "upload", f"copied {len(files)} files to {self.engine.release_path(release)}"
        )
        if publish:
            self.engine.activate(release)
            deployment.step("activate", f"current -> releases/{release}")
        return DeployOutcome(
            release=release,
            files_deployed=len(files),
            bytes_uploaded=files.total_bytes,
            rollback_available=True,
            published=publish,
            details={"path": str(self.root / "current")},
        )

    def restore(self, release: str) -> None:
        self.engine.activate(release)

    def can_restore(self, release: str) -> bool:
        return self.engine.exists(release)

    def live_release(self) -> str | None:
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
