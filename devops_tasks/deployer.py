"""The one flow every deploy, rollback and status check goes through, whatever the target.

config → platform → validate → build and checks → lock → record → deploy → health check →
record (or roll back). Platforms only move files and switch releases; everything that makes
a deployment safe and auditable is written once, here.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import platforms
from .background import Background
from .changes import KINDS, Drift
from .commands import require_clean_git, run_command
from .config import ConfigStore, Settings
from .durable import FileLock
from .errors import DevopsError, ErrorCode, os_failure
from .files import SiteFiles
from .history import (
    RELEASE_ACTIONS,
    Deployment,
    DeploymentHistory,
    Status,
    check_message,
    new_deployment_id,
)
from .host_state import lock_holder
from .ids import check_environment, check_id
from .interrupts import terminate_as_interrupt
from .output import Output, Progress
from .project import Project, actor
from .reporting import DeploymentReport
from .scan_ahead import scan, scan_request, take

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

    def validate(self, build_dir: Path, cache: bool = True) -> SiteFiles:
        """Every problem with the target's settings and the files at once, then the files.

        The files are hashed for the target in the same pass; ``cache``: from the hash cache
        (``.devops/cache/digests``) where it knows a file as it is now.
        """
        findings = self.platform.validate()
        try:
            request = scan_request(self.project, self.platform, build_dir, cache)
            progress = self.output.progress()
            # started before the program loaded (devops deploy), else now
            files = take(request, progress) or scan(request, self.platform.ignore, progress)
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
        self,
        build_dir: str | None = None,
        build: bool = False,
        message: str | None = None,
        skip_checks: bool = False,
        cache: bool = True,
    ) -> Deployment:
        """Deploy the build directory to this environment and return its record.

        ``skip_checks``: deploy without the pre-deploy checks; the record says who skipped
        which checks. ``cache=False`` (``--no-cache``): hash every file, neither reading nor
        writing the hash cache.
        """
        message = check_message(message)
        if build:
            self.platform.require_credentials()  # so the build's output masks them too
            self.build()
        describing = Background(self.project.version)  # git may take as long as the scan
        files = self._scanned(build_dir, checks=not skip_checks, cache=cache)
        version: str | None = describing.result()
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
            if skip_checks:
                skipped = self._configured_checks()
                deployment.details["checks_skipped"] = {"by": deployment.actor, "checks": skipped}
                deployment.step("checks", f"skipped by {deployment.actor}: {skipped or 'none set'}")
            with self.report.around(deployment):
                return self._run_deploy(
                    deployment,
                    f"deploying {len(files)} files",
                    lambda progress, publish: self.platform.deploy(
                        deployment, files, progress, publish
                    ),
                    previous,
                )

    def dry_run(
        self, build_dir: str | None = None, build: bool = False, cache: bool = True
    ) -> dict[str, Any]:
        """What a deploy would change on the target, and nothing written there (nor here but
        the hash cache)."""
        if build:
            self.platform.require_credentials()
            self.build()
        files = self._scanned(build_dir, checks=False, cache=cache)
        with self.platform:
            plan = self.platform.plan_deploy(files)
        steps = [*self._check_steps(), *plan.pop("steps", []), *self._closing_steps()]
        return {
            "dry_run": True,
            "environment": self.environment,
            "platform": self.platform.name,
            "files": len(files),
            "bytes": files.total_bytes,
            **plan,
            "steps": steps,
        }

    def _check_steps(self) -> list[str]:
        """What a deploy runs before it takes the lock (a dry run runs none of it)."""
        steps = (
            ["check: the git tree is clean"]
            if self.settings.get("deployment.require_clean_git")
            else []
        )
        return steps + [f"check: {c}" for c in self.settings.get("deployment.pre_deploy") or []]

    def _closing_steps(self) -> list[str]:
        """What a deploy does once the platform has made the release live."""
        check = self.settings.get("deployment.health_check") or {}
        url = check.get("url")
        steps = (
            [f"health check: {url}"] if check.get("enabled") and url and "{host}" not in url else []
        )
        if self.settings.get("deployment.rollback_on_failure"):
            steps.append("on failure: roll back to what is live now")
        return [*steps, "record the deployment"]

    def _scanned(self, build_dir: str | None, checks: bool, cache: bool = True) -> SiteFiles:
        """The build's files, checked, while the target's first reads run (its prefetch).

        ``checks``: run the pre-deploy checks too. If anything fails, what the prefetch
        opened is closed.
        """
        self.platform.prefetch()
        try:
            files = self.validate(
                self.project.build_dir(self.settings.get("build.dir"), build_dir), cache
            )
            self.platform.require_credentials()
            if checks:
                self._pre_deploy_checks()
        except BaseException:
            self.platform.close()
            raise
        return files

    def _run_deploy(
        self,
        deployment: Deployment,
        doing: str,
        put: Callable[[Progress, bool], platforms.DeployOutcome],
        previous: str | None,
    ) -> Deployment:
        """Put the release in place (``put(progress, publish)``: a deploy or a promote),
        check and publish it; on any failure put ``previous`` (what was live) back.

        The record is saved now and at every step; ``doing`` tells people what runs.
        """
        self.history.save(deployment)
        deployment.on_step(self.history.save_progress)
        self.output.step(f"{doing} to {self.environment} ({self.platform.name}) as {deployment.id}")
        progress = self.output.progress()
        started = time.monotonic()
        blue_green = self.settings.get("deployment.strategy") == "blue-green"
        release: str | None = None
        activated = False
        try:
            outcome = put(progress, not blue_green)
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
        from .health import check_http  # noqa: PLC0415 - HTTP: only when a check is on

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

    def _configured_checks(self) -> list[str]:
        """What must pass before a deploy: ``require_clean_git`` and each pre_deploy command."""
        clean = ["require_clean_git"] if self.settings.get("deployment.require_clean_git") else []
        return clean + list(self.settings.get("deployment.pre_deploy") or [])

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
                    environment=self.environment,
                    action=RELEASE_ACTIONS,
                    status=Status.SUCCESS.value,
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

    # -- promote ---------------------------------------------------------------------------

    def promote(
        self, source: str, release: str | None = None, message: str | None = None
    ) -> Deployment:
        """Make the release live in environment ``source`` (or ``release`` of it) live here.

        The bytes tested there are the bytes served here: nothing is built, and the target
        copies what it already holds. Locks, records, the health check and
        ``rollback_on_failure`` are those of a deploy.
        """
        message = check_message(message)
        origin = self._origin(source)
        findings = self.platform.validate()
        if findings:
            raise _findings_error(
                ErrorCode.VALIDATION_FAILED, f"before promoting to {self.platform.name}", findings
            )
        self.platform.require_credentials()
        with (
            terminate_as_interrupt(),
            self._lock(),
            self.platform,
            origin,
        ):
            chosen, entry = self._promoted(origin, release)
            version = entry["version"] if entry else None
            with self._holding("promote", version, message) as deployment_id:
                previous = self.platform.live_release()
                self.history.mark_interrupted(self.environment, previous)
                deployment = Deployment(
                    id=deployment_id,
                    platform=self.platform.name,
                    environment=self.environment,
                    action="promote",
                    version=version,
                    actor=actor(),
                    message=message,
                    promoted_from=entry["id"] if entry else None,
                    details={"source": {"environment": source, "release": chosen}},
                )
                deployment.step("start", f"promoting release {chosen} of {source}")
                with self.report.around(deployment):
                    return self._run_deploy(
                        deployment,
                        f"promoting {chosen} from {source}",
                        lambda progress, publish: self.platform.promote(
                            deployment, origin, chosen, progress, publish
                        ),
                        previous,
                    )

    def _origin(self, source: str) -> platforms.Platform:
        """The target of environment ``source``, which must be another one of this target."""
        check_environment(source, "--from")
        if source == self.environment:
            raise DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                f"--from and --to both name {source}",
                "Promote from another environment, e.g. --from staging --to production.",
            )
        settings = ConfigStore(self.project).settings(source)
        if settings.platform != self.platform.name:
            raise DevopsError(
                ErrorCode.NOT_SUPPORTED,
                f"{source} deploys to {settings.platform} and {self.environment} to "
                f"{self.platform.name}: a promote copies a release within one target",
                f"Deploy the build to {self.environment} instead.",
            )
        return platforms.create(self.project, settings, self.context)

    def _promoted(
        self, origin: platforms.Platform, release: str | None
    ) -> tuple[str, dict[str, Any] | None]:
        """The source's release to promote (``release``: a deployment id of the source
        environment, or the target's own release id; else what it serves now), and the
        record of the deployment that made it, if this project has one."""
        source = origin.settings.environment
        if release and release.startswith("dep_") and self.history.has(release):
            record = self.history.get(release)
            if record.environment != source or not record.release:
                raise DevopsError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"{release} is not a deployment of {source}",
                    f"Pick one from `devops history --env {source}`.",
                )
            release = record.release
        chosen = release or origin.live_release()
        if chosen is None or not origin.can_restore(chosen):
            raise DevopsError(
                ErrorCode.NOT_FOUND,
                f"{source} has no release {chosen}" if chosen else f"Nothing is live in {source}",
                f"Deploy to {source} first, or name a release with --release "
                f"(see `devops history --env {source}`).",
            )
        entry = next(
            (
                item
                for item in self.history.query(environment=source, action=RELEASE_ACTIONS)
                if chosen in (item["release"], item["platform_deploy_id"])
            ),
            None,
        )
        return chosen, entry

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
                or target["action"] not in RELEASE_ACTIONS
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
            environment=self.environment,
            action=RELEASE_ACTIONS,
            status=Status.SUCCESS.value,
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
            if item.get("action", "deploy") not in RELEASE_ACTIONS or not item.get("release"):
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
        for entry in self.history.query(environment=self.environment, action=RELEASE_ACTIONS):
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

    def status(self, check: bool = False) -> dict[str, Any]:
        """What the target serves, what the records say it should, whether they agree, and
        whether its files are still what the deployment put there (drift).

        ``check``: raise DRIFT_DETECTED on drift, DRIFT_UNKNOWN if it could not be told
        (``status --check``, for cron and CI); the error carries the whole status.
        """
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
                        and item.get("action", "deploy") in RELEASE_ACTIONS
                    ),
                    None,
                )
            expected = live["release"] if live else None
            drift = self._drift(expected, release)
        running = self.history.latest(environment=self.environment, status=Status.IN_PROGRESS.value)
        result = {
            "environment": self.environment,
            "platform": self.platform.name,
            "live_release": release,
            "deployment": live,
            "in_sync": release == expected,
            "in_progress": running["id"] if running else None,
            "target": target,
            "locks": locks,
            "drift": drift,
        }
        if check:
            _check_drift(result)
        return result

    def _drift(self, expected: str | None, release: str | None) -> dict[str, Any] | None:
        """``status``'s drift report; None from a target that cannot tell."""
        try:
            found = self.platform.drift(expected)
        except DevopsError as error:
            if error.code is ErrorCode.NOT_SUPPORTED:
                return None
            found = Drift(against=expected, unknown=error.message)
        # no single live release, and part of the target unread (a host down): not a claim
        told = release is not None or found.unknown is None
        return found.report(replaced=expected is not None and release != expected and told)

    def _entry_serving(self, release: str) -> dict[str, Any] | None:
        """The newest deploy record that put ``release`` in place, whatever became of it."""
        for entry in self.history.query(environment=self.environment, action=RELEASE_ACTIONS):
            if release in (entry["release"], entry["platform_deploy_id"]):
                return entry
        return None

    def _live_entry(self) -> dict[str, Any] | None:
        """The deploy record whose release the latest successful action made live."""
        latest = self.history.latest(environment=self.environment, status=Status.SUCCESS.value)
        if latest is None or latest["action"] in RELEASE_ACTIONS:
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


def _check_drift(status: dict[str, Any]) -> None:
    """``status --check``: DRIFT_DETECTED or DRIFT_UNKNOWN, carrying the status, unless the
    target was compared whole and matches its last deployment."""
    drift = status["drift"]
    where = f"{status['environment']} ({status['platform']})"
    if drift is not None and drift["detected"]:
        found = ", ".join(f"{drift[k]['count']} {k}" for k in KINDS if drift[k]["count"])
        paths = [p for k in KINDS for p in drift[k]["paths"]]
        replaced = f"it serves {status['live_release'] or 'no single release'} instead of " + (
            f"{drift['against']}" if drift["against"] else "the last deployment's release"
        )
        raise DevopsError(
            ErrorCode.DRIFT_DETECTED,
            f"{where} no longer matches its last deployment: "
            + "; ".join(
                ([replaced] if drift["replaced"] else [])
                + ([f"{found} by hand ({', '.join(paths)})"] if found else [])
            ),
            "See what a deploy would put back with `devops deploy --dry-run`, then deploy "
            "again (or roll back); find out who changed the target by hand.",
            **status,
        )
    if drift is None or drift["unknown"]:
        why = drift["unknown"] if drift else f"the {status['platform']} target cannot tell"
        raise DevopsError(
            ErrorCode.DRIFT_UNKNOWN,
            f"Whether {where} still matches its last deployment is unknown: {why}",
            "Run `devops status` to see what could not be read, fix that (a host down, a "
            "token), then check again; deploying again makes the target comparable.",
            **status,
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
