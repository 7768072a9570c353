"""The one flow every deploy, rollback and status check goes through, whatever the target.

config → platform → validate → build and checks → lock → record → deploy → health check →
record (or roll back). Platforms only move files and switch releases; everything that makes
a deployment safe and auditable is written once, here.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import platforms
from .commands import require_clean_git, run_command
from .config import Settings
from .durable import FileLock
from .errors import DevopsError, ErrorCode, os_failure
from .files import SiteFiles
from .health import check_http
from .history import Deployment, DeploymentHistory, Status, check_message, new_deployment_id
from .host_state import lock_holder
from .ids import check_id
from .interrupts import terminate_as_interrupt
from .output import Output
from .project import Project, actor
from .reporting import DeploymentReport

__all__ = ["Deployer"]

#: How far back the target's own history is read when the local records have no answer.
_REMOTE_LOOKBACK = 100


class Deployer:
    """Deploys, rolls back and reports on one environment of one project."""

    def __init__(
        self,
        project: Project,
        settings: Settings,
        context: Any = None,
        output: Output | None = None,
    ) -> None:
        self.project = project
        self.settings = settings
        self.environment = settings.environment
        self.context = context
        self.output = output or Output(json_mode=True)
        self.history = DeploymentHistory(project)
        self.platform = platforms.create(project, settings, context)
        self.report = DeploymentReport(
            project, settings, self.platform.credentials, self.history, self.output
        )

    # -- deploy ----------------------------------------------------------------------------

    def validate(self, build_dir: Path) -> SiteFiles:
        """Every problem with the target's settings and the files at once, then the files."""
        findings = self.platform.validate()
        try:
            own = [self.project.state_dir, *self.platform.own_paths()]
            files = SiteFiles.scan(build_dir, self.platform.ignore, exclude=own)
        except DevopsError as error:
            if error.code is not ErrorCode.VALIDATION_FAILED:
                raise
            findings.append(platforms.Finding(error.message, error.fix))
        else:
            findings += self.platform.validate_files(files)
        if findings:
            raise _findings_error(
                ErrorCode.VALIDATION_FAILED, f"before deploying to {self.platform.name}", findings
            )
        return files

    def build_dir(self, override: str | None) -> Path:
        """``--dir`` (relative to the current directory), or ``build.dir`` (to the project)."""
        if override:
            return Path(override).resolve()
        return self.project.resolve(self.settings.get("build.dir"))

    def build(self) -> dict[str, Any]:
        """Run ``build.command`` in the project root."""
        command = self.settings.get("build.command")
        if not command:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "No build.command is configured",
                'Set one: `devops config.set build.command "npm run build"`.',
            )
        self.output.step(f"building: {command}")
        started = time.monotonic()
        run_command(
            self._context(),
            command,
            cwd=str(self.project.root),
            code=ErrorCode.BUILD_FAILED,
            json_mode=self.output.json_mode,
        )
        return {"command": command, "duration_ms": _ms_since(started)}

    def deploy(
        self, build_dir: str | None = None, build: bool = False, message: str | None = None
    ) -> Deployment:
        """Deploy the build directory to this environment and return its record."""
        message = check_message(message)
        if build:
            self.platform.require_credentials()  # so the build's output masks them too
            self.build()
        files = self._scanned(build_dir, checks=True)
        version = self.project.version()
        with (
            terminate_as_interrupt(),
            self._lock(),
            self.platform,
            self._holding("deploy", version, message) as deployment_id,
        ):
            previous = self.platform.live_release()
            self.history.mark_interrupted(self.environment, previous)
            deployment = Deployment(
                id=deployment_id,
                platform=self.platform.name,
                environment=self.environment,
                version=version,
                actor=actor(),
                message=message,
            )
            deployment.step(
                "start", f"{len(files)} files, {files.total_bytes} bytes from {files.root}"
            )
            if files.warnings:
                deployment.details["warnings"] = list(files.warnings)
            self.history.save(deployment)
            deployment.on_step(self.history.save_progress)
            self.output.step(
                f"deploying {len(files)} files to {self.environment} "
                f"({self.platform.name}) as {deployment.id}"
            )
            with self.report.around(deployment):
                return self._run_deploy(deployment, files, previous)

    def dry_run(self, build_dir: str | None = None, build: bool = False) -> dict[str, Any]:
        """What a deploy would change on the target, and nothing written there or here."""
        if build:
            self.platform.require_credentials()
            self.build()
        files = self._scanned(build_dir, checks=False)
        with self.platform:
            plan = self.platform.plan_deploy(files)
        return {
            "dry_run": True,
            "environment": self.environment,
            "platform": self.platform.name,
            "files": len(files),
            "bytes": files.total_bytes,
            **plan,
        }

    def _scanned(self, build_dir: str | None, checks: bool) -> SiteFiles:
        """The build's files, checked, while the target's first reads run (its prefetch).

        ``checks``: run the pre-deploy checks too. If anything fails, what the prefetch
        opened is closed.
        """
        self.platform.prefetch()
        try:
            files = self.validate(self.build_dir(build_dir))
            self.platform.require_credentials()
            if checks:
                self._pre_deploy_checks()
        except BaseException:
            self.platform.close()
            raise
        return files

    def _run_deploy(
        self, deployment: Deployment, files: SiteFiles, previous: str | None
    ) -> Deployment:
        """Deploy, check and publish; on any failure put ``previous`` (what was live) back."""
        started = time.monotonic()
        blue_green = self.settings.get("deployment.strategy") == "blue-green"
        release: str | None = None
        activated = False
        try:
            outcome = self.platform.deploy(
                deployment, files, self.output.progress(), publish=not blue_green
            )
            release = deployment.release = outcome.release
            deployment.url = outcome.url
            deployment.platform_deploy_id = outcome.platform_deploy_id
            deployment.files_deployed = outcome.files_deployed
            deployment.bytes_uploaded = outcome.bytes_uploaded
            deployment.rollback_available = previous is not None
            deployment.details.update(outcome.details)
            if not outcome.published:
                # blue-green: prove the new release on its own URL before it takes traffic
                if outcome.preview_url:
                    self._health_check(deployment, outcome.preview_url, "draft")
                self.platform.publish(outcome.release)
                deployment.step("publish", f"{outcome.release} is live")
            activated = True
            self._health_check(deployment, None, "live")
        except BaseException as exc:
            error = _as_error(exc)
            deployment.status = Status.FAILED
            deployment.error = error.to_dict()
            deployment.step("failed", f"{error.code.value}: {error.message}")
            if error.details.get("rolled_back"):  # the platform put its hosts back itself
                deployment.status = Status.ROLLED_BACK
            self._recover(deployment, release, previous, activated)
            # what an agent needs to look further: the record, and every host's outcome
            error.details.update(deployment_id=deployment.id, deployment_status=deployment.status)
            if "hosts" in deployment.details:
                error.details["hosts"] = deployment.details["hosts"]
            raise error from exc
        else:
            deployment.status = Status.SUCCESS
            deployment.step("done", "deployment is live")
            self._prune(deployment, previous)
        finally:
            deployment.duration_ms = _ms_since(started)
            self.history.save(deployment)
            self._audit(deployment)
        return deployment

    def _recover(
        self,
        deployment: Deployment,
        release: str | None,
        previous: str | None,
        activated: bool,
    ) -> None:
        """After a failure: put the previous release back live, or clean up a half release."""
        try:
            if not activated:
                self.platform.discard(release or deployment.id)
                deployment.step("recover", "nothing went live; the previous release still serves")
            elif self.settings.get("deployment.rollback_on_failure") and self.platform.undo(
                previous
            ):
                deployment.status = Status.ROLLED_BACK
                deployment.step("rollback", f"restored {previous or 'each host'} after the failure")
                if previous:
                    entry = self._entry_serving(previous)
                    deployment.details["rolled_back_to"] = entry["id"] if entry else previous
        except DevopsError as cleanup_error:
            deployment.step("rollback", f"could not recover: {cleanup_error.message}")

    def _health_check(self, deployment: Deployment, url: str | None, stage: str) -> None:
        """Check ``url`` (live: the configured URL, else the deployment's) if checks are on."""
        check = self.settings.get("deployment.health_check") or {}
        url = url or check.get("url") or deployment.url
        if not check.get("enabled") or not url or "{host}" in url:
            return  # a URL per host is the platform's to check, host by host
        self.output.step(f"health check ({stage}): {url}")
        result = check_http(url, check)
        deployment.details[f"health_{stage}"] = result.to_dict()
        deployment.step(
            "health", f"{stage} {url}: {result.detail} after {result.attempts} attempt(s)"
        )
        if not result.healthy:
            raise DevopsError(
                ErrorCode.HEALTH_CHECK_FAILED,
                f"Health check of the {stage} release at {url} failed: {result.detail}",
                "See `devops logs` for the deployment's steps; fix the site, then deploy again.",
            )

    def _pre_deploy_checks(self) -> None:
        if self.settings.get("deployment.require_clean_git"):
            require_clean_git(self.project)
        for command in self.settings.get("deployment.pre_deploy") or []:
            self.output.step(f"check: {command}")
            run_command(
                self._context(),
                command,
                cwd=str(self.project.root),
                code=ErrorCode.CHECK_FAILED,
                json_mode=self.output.json_mode,
            )

    def _prune(self, deployment: Deployment, previous: str | None) -> None:
        """Drop old releases, never the new one, the one it replaced, nor the last good one.

        What it replaced may be a deploy that was killed after its switch: the last good
        release before it is then what a rollback would need.
        """
        last_good = next(
            (
                entry["release"]
                for entry in self.history.query(
                    environment=self.environment, action="deploy", status=Status.SUCCESS.value
                )
                if entry["id"] != deployment.id
            ),
            None,
        )
        protect = {deployment.release, previous, last_good}
        removed = self.platform.prune(
            int(self.settings.get("deployment.keep_releases")), {r for r in protect if r}
        )
        if removed:
            deployment.step("prune", f"removed {len(removed)} old release(s): {', '.join(removed)}")

    # -- rollback --------------------------------------------------------------------------

    def rollback(self, to: str | None = None, message: str | None = None) -> Deployment:
        """Make the previous good release live again (or the one deployment ``to`` names)."""
        message = check_message(message)
        if to is not None:
            check_id(
                to,
                "deployment id or release id (--to)",
                f"Pick an id from `devops history --env {self.environment}` (or --remote).",
            )
        findings = self.platform.validate()  # e.g. two environments sharing one `current`
        if findings:
            raise _findings_error(
                ErrorCode.CONFIG_INVALID, f"before rolling back on {self.platform.name}", findings
            )
        with (
            terminate_as_interrupt(),
            self._lock(),
            self.platform,
            self._holding("rollback", None, message) as record_id,
        ):
            serving = self.platform.live_release()
            self.history.mark_interrupted(self.environment, serving)
            live = self._entry_serving(serving) if serving else self._live_entry()
            target = self._rollback_target(to, live, serving)
            record = Deployment(
                id=record_id,
                platform=self.platform.name,
                action="rollback",
                environment=self.environment,
                version=target["version"],
                actor=actor(),
                release=target["release"],
                url=target.get("url"),
                platform_deploy_id=target.get("platform_deploy_id"),
                rollback_of=live["id"] if live else target.get("rollback_of"),
                message=message,
                details={"restored": target["id"]},
            )
            started = time.monotonic()
            name = target["id"] or f"release {target['release']}"
            record.step("start", f"restoring {name} (release {target['release']})")
            try:
                self.report.started(record)
                self.platform.restore(target["release"])
            except DevopsError as error:
                record.status = Status.FAILED
                record.error = error.to_dict()
                record.step("failed", error.message)
                raise
            else:
                record.status = Status.SUCCESS
                record.step("done", f"{name} is live again")
                if target["id"] and not target.get("remote"):
                    self._set_status(
                        target["id"], Status.SUCCESS, f"made live again by {record.id}"
                    )
                if live and live["id"] != target["id"] and live["status"] == Status.SUCCESS.value:
                    self._set_status(live["id"], Status.ROLLED_BACK, f"rolled back by {record.id}")
            finally:
                record.duration_ms = _ms_since(started)
                self.history.save(record)
                self._audit(record)
                self.report.ended(record)
            return record

    def _rollback_target(
        self, to: str | None, live: dict[str, Any] | None, serving: str | None = None
    ) -> dict[str, Any]:
        """The deployment to make live: ``to``, or the newest good one older than ``live``.

        ``serving`` is the release the target serves now: never a rollback target itself.
        """
        if to and not (to.startswith("dep_") and self.history.has(to)):
            # a platform's own id, or a release made from another checkout (ssh: dep_ ids)
            return self._platform_release_target(to)
        if to:
            chosen = self.history.get(to)
            target = chosen.summary()
            if (
                target["environment"] != self.environment
                or target["action"] != "deploy"
                or target["status"] not in (Status.SUCCESS.value, Status.ROLLED_BACK.value)
                or chosen.error  # it went live, failed, and was put back at once
            ):
                raise DevopsError(
                    ErrorCode.ROLLBACK_UNAVAILABLE,
                    f"{to} is not a successful deployment of {self.environment}",
                    f"Pick a deployment of {self.environment} with status success or "
                    f"rolled_back from `devops history --env {self.environment}`.",
                )
            if not self.platform.can_restore(target["release"]):
                raise DevopsError(
                    ErrorCode.ROLLBACK_UNAVAILABLE,
                    f"The release of {to} no longer exists on the target (pruned)",
                    "Deploy that version again instead, or raise deployment.keep_releases.",
                )
            return target
        for entry in self.history.query(
            environment=self.environment, action="deploy", status=Status.SUCCESS.value
        ):
            if (live and entry["id"] >= live["id"]) or entry["release"] == serving:
                continue
            if self.platform.can_restore(entry["release"]):
                return entry
        remote = self._remote_rollback_target(serving)
        if remote is not None:
            return remote
        raise DevopsError(
            ErrorCode.ROLLBACK_UNAVAILABLE,
            f"No earlier successful deployment of {self.environment} to roll back to",
            "Deploy a known-good version instead, or name one with --to <deployment id>.",
        )

    def _remote_rollback_target(self, serving: str | None) -> dict[str, Any] | None:
        """With no local record to go by (a second checkout, CI): the target's own history.

        The newest successful deploy older than the one that put ``serving`` in place, whose
        release the target can still restore. Its ``rollback_of`` names that deploy.
        """
        live: dict[str, Any] | None = None
        for item in self._remote_history():
            if item.get("action", "deploy") != "deploy" or not item.get("release"):
                continue
            if live is None:
                if item["release"] == serving:
                    live = item
                continue
            if (
                item.get("status") == "success"
                and item["release"] != serving
                and self.platform.can_restore(item["release"])
            ):
                return {
                    "id": item.get("id"),
                    "release": item["release"],
                    "version": item.get("version"),
                    "url": item.get("url"),
                    "platform_deploy_id": item.get("platform_deploy_id"),
                    "rollback_of": live.get("id"),
                    "remote": True,  # no local record to update
                }
        return None

    def _remote_history(self) -> list[dict[str, Any]]:
        """The target's own deployments, newest first; none from a target that keeps none."""
        try:
            return self.platform.remote_history(_REMOTE_LOOKBACK)
        except DevopsError as error:
            if error.code is ErrorCode.NOT_SUPPORTED:
                return []
            raise

    def _platform_release_target(self, release: str) -> dict[str, Any]:
        """``--to`` naming the platform's own id (a Netlify deploy id, say), recorded or not."""
        for entry in self.history.query(environment=self.environment, action="deploy"):
            if release in (entry.get("platform_deploy_id"), entry.get("release")):
                return self._rollback_target(entry["id"], None)
        if not self.platform.can_restore(release):
            raise DevopsError(
                # an id of ours that nothing knows is simply not found
                ErrorCode.NOT_FOUND
                if release.startswith("dep_")
                else ErrorCode.ROLLBACK_UNAVAILABLE,
                f"{release} is neither a deployment id nor a release the {self.platform.name} "
                "target can restore",
                f"Pick an id from `devops history --env {self.environment} --remote`.",
            )
        return {
            "id": None,
            "release": release,
            "version": None,
            "url": None,
            "platform_deploy_id": release,
        }

    def _set_status(self, deployment_id: str, status: Status, why: str) -> None:
        record = self.history.get(deployment_id)
        if record.status != status:
            record.status = status
            record.step(status.value, why)
            self.history.save(record)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the target serves, what the records say it should, and whether they agree."""
        live = self._live_entry()
        with self.platform:
            release = self.platform.live_release()
            target = self.platform.describe()
            locks = self.platform.lock_states()
            if live is None and release is not None:  # no records here: the target's own
                live = next(
                    (
                        item
                        for item in self._remote_history()
                        if item.get("release") == release
                        and item.get("action", "deploy") == "deploy"
                    ),
                    None,
                )
        running = self.history.latest(environment=self.environment, status=Status.IN_PROGRESS.value)
        expected = live["release"] if live else None
        return {
            "environment": self.environment,
            "platform": self.platform.name,
            "live_release": release,
            "deployment": live,
            "in_sync": release == expected,
            "in_progress": running["id"] if running else None,
            "target": target,
            "locks": locks,
        }

    def _entry_serving(self, release: str) -> dict[str, Any] | None:
        """The newest deploy record that put ``release`` in place, whatever became of it."""
        for entry in self.history.query(environment=self.environment, action="deploy"):
            if release in (entry["release"], entry["platform_deploy_id"]):
                return entry
        return None

    def _live_entry(self) -> dict[str, Any] | None:
        """The deploy record whose release the latest successful action made live."""
        latest = self.history.latest(environment=self.environment, status=Status.SUCCESS.value)
        if latest is None or latest["action"] == "deploy":
            return latest
        restored = self.history.get(latest["id"]).details.get("restored")
        # a rollback to a release made outside devops-tasks is its own live entry
        return self.history.get(restored).summary() if restored else latest

    # -- helpers ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _holding(self, action: str, version: str | None, message: str | None) -> Iterator[str]:
        """A new deployment id, and the target's own locks held in its name meanwhile.

        Entered under the project's lock, so ids keep the order in which deploys ran.
        """
        deployment_id = new_deployment_id()
        with self.platform.hold(lock_holder(deployment_id, action, version, message)):
            yield deployment_id

    def _audit(self, record: Deployment) -> None:
        """The record's final word in the target's own audit log; failing that, a warning."""
        try:
            self.platform.record_audit(record.audit_entry())
        except DevopsError as error:
            record.step("audit", f"warning: the audit log was not written: {error.message}")
            self.history.save(record)
            self.output.warn(f"the audit log was not written: {error.message}")

    def _lock(self) -> FileLock:
        return FileLock(
            self.project.deploy_lock_path(self.environment),
            timeout=float(self.settings.get("deployment.lock_timeout")),
            owner=f"{actor()} (pid {os.getpid()})",
        )

    def _context(self) -> Any:
        if self.context is None:
            from invoke import Context  # noqa: PLC0415

            self.context = Context()
        return self.context


def _findings_error(code: ErrorCode, when: str, findings: list[platforms.Finding]) -> DevopsError:
    """Every problem found at once, each with its fix."""
    return DevopsError(
        code,
        f"{len(findings)} problem(s) {when}: " + "; ".join(f.message for f in findings),
        " ".join(dict.fromkeys(f.fix for f in findings)),
        problems=[f.to_dict() for f in findings],
    )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _as_error(exc: BaseException) -> DevopsError:
    """What stopped a deploy, as the error its record keeps: specific when the system said no."""
    if isinstance(exc, DevopsError):
        return exc
    refused = os_failure(exc) if isinstance(exc, OSError) else None
    if refused is not None:
        return refused
    if isinstance(exc, KeyboardInterrupt):
        return DevopsError(
            ErrorCode.INTERRUPTED,
            str(exc) or "Interrupted by the user",
            "Run `devops status` to see what is live, then deploy again.",
        )
    return DevopsError(
        ErrorCode.DEPLOY_FAILED,
        f"Deploy failed: {type(exc).__name__}: {exc}",
        "Run again with --debug for the traceback; the previous release is still live.",
    )
