"""Vercel: file-digest deploys through the REST API, the way Vercel's own client does them.

Every file of the build directory is hashed (SHA1, in parallel) and the deployment is
created with the list of ``{file, sha, size}``. Vercel answers ``400 missing_files`` with
the digests it does not have yet; exactly those are uploaded (once per digest,
concurrently) and the deployment is created again. An unchanged site uploads nothing.

The default strategy deploys to the production target: Vercel points the production
domains at it once it is ready. ``blue-green`` deploys a preview instead, which the
deployer health-checks on its own URL before :meth:`VercelPlatform.publish` promotes it.
A rollback is Vercel's instant rollback to an earlier deployment.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..answers import token_may_go_to
from ..background import Background
from ..digest_maps import DigestMaps, digest_drift, digest_plan
from ..errors import DevopsError, ErrorCode
from ..redaction import register_secret
from ..uploads import one_file_per_digest, send_all
from .base import DeployOutcome, Finding, Platform, upload_concurrency
from .vercel_api import DEFAULT_API_URL, MissingFiles, VercelApi

if TYPE_CHECKING:
    from ..changes import Drift
    from ..files import SiteFile, SiteFiles
    from ..history import Deployment
    from ..output import Progress

__all__ = ["VercelPlatform", "vercel_ignore"]

TOKEN = "VERCEL_TOKEN"
DEPLOY_HOOK = "VERCEL_DEPLOY_HOOK"
API_URL_VARIABLE = "VERCEL_API_URL"
DEFAULT_CONCURRENCY = 32
#: Vercel's documented limit of files in one deployment (source files, CLI and API alike).
MAX_FILES = 15_000
#: How often a deployment is created again after uploading what Vercel said it lacked.
UPLOAD_ROUNDS = 3
#: Vercel's environments, which environment variables are scoped to.
TARGETS = ("production", "preview", "development")
#: A prebuilt static directory: no framework, no build, the files served from the root.
STATIC_SETTINGS: dict[str, Any] = {"framework": None, "outputDirectory": "."}
EVENTS_SHOWN = 100
#: The first pause between two looks at a deployment (or a domain switch), doubled after
#: each look up to ``vercel.poll_interval``: a prebuilt static deployment is often ready
#: within a second, and a full interval would be waited for nothing.
FIRST_PAUSE = 0.25
#: The official CLI's default ignore list (``.vercelignore`` rules of a non-prebuilt deploy):
#: names, and globs of one path part.
_IGNORED_NAMES = (
    ".hg",
    ".git",
    ".gitmodules",
    ".svn",
    ".cache",
    ".next",
    ".now",
    ".vercel",
    ".npmignore",
    ".dockerignore",
    ".gitignore",
    ".DS_Store",
    ".lock-wscript",
    ".env.local",
    ".venv",
    "npm-debug.log",
    "config.gypi",
    "node_modules",
    "__pycache__",
    "venv",
    "CVS",
)
_IGNORED_GLOBS = (".*.swp", ".wafpicke-*", ".env.*.local", ".pnp*")
#: All of them as one search over the whole path, a part at a time (``*`` stays inside its
#: part): the scan asks for every file and directory, and a loop over the parts with a match
#: per part cost 7 ms on a 5,000-file site, this 1 ms.
_IGNORED = re.compile(
    r"^\.yarn/cache/|(?:^|/)(?:"
    + "|".join(
        [re.escape(name) for name in _IGNORED_NAMES]
        + [re.escape(glob).replace(r"\*", "[^/]*") for glob in _IGNORED_GLOBS]
    )
    + ")(?:/|$)"
)
_PROJECT_NAME = re.compile(r"[a-z0-9._-]{1,100}")


def vercel_ignore(relative: str) -> bool:
    """What the Vercel CLI never uploads: VCS metadata, node_modules, local env files..."""
    return _IGNORED.search(relative) is not None


class VercelPlatform(Platform):
    name = "vercel"
    strategies = frozenset({"rolling", "blue-green"})
    digest_algorithms = ("sha1",)
    first_steps = (f"devops secrets.set {TOKEN}", "devops infra.up")
    deploy_credentials = (TOKEN,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project_ref: str | None = self.options.get("project")
        self.team_id: str | None = self.options.get("team_id")
        self.concurrency = int(self.options.get("concurrency", DEFAULT_CONCURRENCY))
        self.poll_interval = float(self.options.get("poll_interval", 1.0))
        self.deploy_timeout = float(self.options.get("deploy_timeout", 1800))
        self._api: VercelApi | None = None
        self._project_id: str | None = None
        #: The project as this command last read it (a deploy reads it once, for both the
        #: release it replaces and the deployment's name).
        self._seen: dict[str, Any] | None = None

    @property
    def api(self) -> VercelApi:
        if self._api is None:
            url = self._api_url()
            token = self.credentials.require(TOKEN, "deploying to Vercel")
            self._api = VercelApi(token, url, self.team_id, pool_size=self.concurrency)
        return self._api

    def _api_url(self) -> str:
        """Where the token goes: ``VERCEL_API_URL`` (the person running chose it), else
        ``vercel.api_url`` when it is Vercel's own API or this machine, else the public API.

        A committed config file must not be a way to send a CI token to another host.
        """
        chosen = os.environ.get(API_URL_VARIABLE)
        if chosen:
            return chosen
        configured = self.options.get("api_url")
        if configured and not token_may_go_to(configured, DEFAULT_API_URL):
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "vercel.api_url points at a host other than Vercel's API or this machine; the "
                "token is never sent there from a config file",
                f"Remove vercel.api_url, or set {API_URL_VARIABLE} in the environment of the "
                "command (a test server, a proxy you run).",
            )
        return configured or DEFAULT_API_URL

    def _site_url(self, host: str | None) -> str | None:
        """A deployment's ``url`` or alias (a bare host name) as a URL to open.

        Vercel serves deployments over HTTPS; a local test API (plain HTTP) serves them
        over HTTP on its own address.
        """
        if not host:
            return None
        if "://" in host:
            return host
        return f"{urlsplit(self.api.api_url).scheme or 'https'}://{host}"

    # -- checks before any network call ----------------------------------------------------

    def validate(self) -> list[Finding]:
        findings = super().validate()
        if not self.project_ref:
            findings.append(
                Finding(
                    "vercel.project is not set",
                    "Create the project with `devops infra.up`, or name it: "
                    "`devops config.set vercel.project <project id or name>`.",
                )
            )
        return findings + upload_concurrency("vercel.concurrency", self.concurrency)

    ignore = staticmethod(vercel_ignore)

    def validate_files(self, files: SiteFiles) -> list[Finding]:
        if len(files) <= MAX_FILES:
            return []
        return [
            Finding(
                f"The build directory holds {len(files):,} files; Vercel accepts at most "
                f"{MAX_FILES:,} in one deployment",
                "Deploy fewer files: bundle or drop what the site does not serve (source maps, "
                "sources, duplicates), or split the site across projects.",
            )
        ]

    # -- deploy ----------------------------------------------------------------------------

    def deploy(
        self, deployment: Deployment, files: SiteFiles, progress: Progress, publish: bool = True
    ) -> DeployOutcome:
        project = self._seen or self._project()
        digests = files.hashed("sha1", progress)
        listed = [
            {"file": path, "sha": sha, "size": site_file.size}
            for path, (sha, site_file) in digests.items()
        ]
        body = self._body(project, listed, deployment, publish)
        created, uploads, sent = self._create(body, digests, deployment, progress)
        return self._settle(deployment, project, created, listed, sent, uploads, publish)

    def promote(
        self,
        deployment: Deployment,
        source: Platform,
        release: str,
        progress: Progress,
        publish: bool = True,
    ) -> DeployOutcome:
        """Vercel's promote when both environments are one project; else a deployment of
        this project with the source deployment's file digests, which uploads nothing."""
        if not isinstance(source, VercelPlatform):
            raise self._unsupported("promotes only from another vercel environment", "deploy")
        project = self._seen or self._project()
        if source._project_id_now() == project["id"]:
            if publish:
                self.publish(release)
            deployment.platform_deploy_id = release
            deployment.step("promote", f"deployment {release} of this project, unchanged")
            ready = self.api.get_deployment(release)
            return self._outcome(ready, project, 0, 0, 0, publish)
        served = sorted(source.api.deployment_files(release).items())
        listed = [{"file": path, "sha": sha} for path, sha in served]
        try:
            created = self.api.create_deployment(self._body(project, listed, deployment, publish))
        except MissingFiles as missing:
            raise DevopsError(
                ErrorCode.DEPLOY_FAILED,
                f"Vercel asks for {len(missing.digests)} content(s) of deployment {release} "
                "again, and a promote uploads nothing",
                f"Deploy the build to {self.settings.environment} instead.",
            ) from None
        return self._settle(deployment, project, created, listed, 0, 0, publish)

    def _body(
        self,
        project: dict[str, Any],
        files: list[dict[str, Any]],
        deployment: Deployment,
        publish: bool,
    ) -> dict[str, Any]:
        """What creates a deployment of ``files`` (``{file, sha[, size]}``) in ``project``."""
        body: dict[str, Any] = {
            "name": project["name"],
            "project": project["id"],
            "files": files,
            "projectSettings": STATIC_SETTINGS,
            "meta": {
                "devopsDeployment": deployment.id,
                "devopsEnvironment": self.settings.environment,
            },
        }
        if publish:
            body["target"] = "production"  # no target: a preview, off the production domains
        return body

    def _settle(
        self,
        deployment: Deployment,
        project: dict[str, Any],
        created: dict[str, Any],
        listed: list[dict[str, Any]],
        sent: int,
        uploads: int,
        publish: bool,
    ) -> DeployOutcome:
        """Wait until the deployment ``created`` of ``listed`` is ready (and live, if
        ``publish``); keep its digest map, for drift."""
        files = len(listed)
        deployment_id = str(created["id"])
        # Vercel is asked how the deployment is doing while this machine writes the record's
        # step and the digest map: the look only reads, and each side would wait on the other.
        look = (
            None
            if _settled(created, publish)
            else Background(lambda: self.api.get_deployment(deployment_id))
        )
        deployment.platform_deploy_id = deployment_id
        deployment.step(
            "create",
            f"Vercel deployment {deployment_id} ({'production' if publish else 'preview'}) "
            f"for {files} files",
        )
        DigestMaps(self).save(deployment_id, {entry["file"]: entry["sha"] for entry in listed})
        ready = self._wait_ready(created, production=publish, look=look)
        if publish and not ready.get("aliasAssigned"):
            # READY but staged: after an instant rollback Vercel stops moving the production
            # domains to new deployments until one is promoted.
            deployment.step("promote", f"{deployment_id} is staged; promoting it")
            self.publish(deployment_id)
        deployment.step(
            "ready",
            f"deployment {deployment_id} is ready"
            + ("" if publish else " as a preview (production unchanged)"),
        )
        return self._outcome(ready, project, files, sent, uploads, publish)

    def _outcome(
        self,
        ready: dict[str, Any],
        project: dict[str, Any],
        files: int,
        sent: int,
        uploads: int,
        publish: bool,
    ) -> DeployOutcome:
        preview = self._site_url(ready.get("url"))
        live = self._production_url(ready) if publish else self._production_url(project)
        return DeployOutcome(
            release=str(ready["id"]),
            url=live or preview,
            preview_url=preview,
            platform_deploy_id=str(ready["id"]),
            files_deployed=files,
            bytes_uploaded=sent,
            rollback_available=True,
            published=publish,
            details={
                "files_uploaded": uploads,
                "deployment_url": preview,
                "inspector_url": ready.get("inspectorUrl"),
                "target": "production" if publish else "preview",
            },
        )

    def _create(
        self,
        body: dict[str, Any],
        digests: dict[str, tuple[str, SiteFile]],
        deployment: Deployment,
        progress: Progress,
    ) -> tuple[dict[str, Any], int, int]:
        """Create the deployment, uploading what Vercel lacks in between; (it, files, bytes)."""
        uploaded = sent = 0
        for _ in range(UPLOAD_ROUNDS):
            try:
                return self.api.create_deployment(body), uploaded, sent
            except MissingFiles as missing:
                uploads = one_file_per_digest(digests, missing.digests)
                unknown = set(missing.digests) - set(uploads)
                if unknown or not uploads:
                    raise DevopsError(
                        ErrorCode.DEPLOY_FAILED,
                        f"Vercel asked for {len(unknown)} content(s) this deployment does not "
                        f"have (e.g. {sorted(unknown)[:1] or 'none named'})",
                        "Deploy again; if it repeats, report it with `devops logs`.",
                    ) from None
                deployment.step(
                    "upload",
                    f"Vercel lacks {len(uploads)} distinct contents of the {len(digests)} files",
                )
                sent += send_all(
                    uploads,
                    lambda digest, f: self.api.upload_file(digest, f.source.read_bytes()),
                    self.concurrency,
                    progress,
                )
                uploaded += len(uploads)
        raise DevopsError(
            ErrorCode.DEPLOY_FAILED,
            f"Vercel still lacked files after {UPLOAD_ROUNDS} rounds of uploads",
            "Deploy again; if it repeats, check the files for changes during the deploy.",
        )

    def plan_deploy(self, files: SiteFiles) -> dict[str, Any]:
        """The build's SHA1s against the file tree of the production deployment."""
        live = self.live_release()
        served = self.api.deployment_files(live) if live else {}
        publish = (
            "deploy it as a preview, check its own URL, then promote it to production"
            if self.settings.get("deployment.strategy") == "blue-green"
            else "Vercel points the production domains at it once it is ready"
        )
        sizes = {path: (sha, None) for path, sha in served.items()}  # the tree has no sizes
        return digest_plan(files, sizes, live, "Vercel", publish)

    def drift(self, expected: str | None) -> Drift:
        """The production deployment's file tree against the digest map it (or, if another
        one is live, the expected one) was created with."""
        live = self.live_release()
        return digest_drift(
            DigestMaps(self),
            live,
            expected,
            lambda: self.api.deployment_files(live) if live else {},
        )

    def _wait_ready(
        self, state: dict[str, Any], production: bool, look: Background | None = None
    ) -> dict[str, Any]:
        """Poll until READY (with its production alias settled) or ERROR/CANCELED.

        ``look``: the first poll, already under way (its answer is taken before any other).
        """
        deployment_id = str(state["id"])
        deadline = time.monotonic() + self.deploy_timeout
        pauses = self._pauses()
        polled = False  # the first look follows the create at once; later ones wait
        while True:
            ready_state = state.get("readyState")
            if state.get("aliasError"):
                error = state["aliasError"]
                raise self._failed(deployment_id, f"alias error: {_text(error)}")
            if _settled(state, production):
                return state
            if ready_state in ("ERROR", "CANCELED"):
                reason = state.get("errorMessage") or state.get("errorCode") or ready_state
                raise self._failed(deployment_id, str(reason))
            if time.monotonic() >= deadline:
                raise DevopsError(
                    ErrorCode.DEPLOY_FAILED,
                    f"Vercel deployment {deployment_id} was not ready after "
                    f"{self.deploy_timeout:.0f} s (state {ready_state})",
                    "Check the deployment in the Vercel dashboard; raise vercel.deploy_timeout "
                    "for very large sites.",
                    vercel_deployment=deployment_id,
                )
            if look is not None:
                state, look, polled = look.result(), None, True
                continue
            if polled:
                time.sleep(next(pauses))
            state, polled = self.api.get_deployment(deployment_id), True

    def _pauses(self) -> Iterator[float]:
        """The pauses between looks: from :data:`FIRST_PAUSE`, doubling, up to the interval."""
        pause = min(FIRST_PAUSE, self.poll_interval)
        while True:
            yield pause
            pause = min(pause * 2, self.poll_interval)

    @staticmethod
    def _failed(deployment_id: str, reason: str) -> DevopsError:
        return DevopsError(
            ErrorCode.DEPLOY_FAILED,
            f"Vercel deployment {deployment_id} failed: {reason}",
            "See `devops logs` for Vercel's build events, fix what they name and deploy again; "
            "production was not changed.",
            vercel_deployment=deployment_id,
        )

    # -- going live, back, and looking -----------------------------------------------------

    def publish(self, release: str) -> None:
        """Promote a ready deployment to production (blue-green's switch)."""
        self._switch(release, "promote")

    def restore(self, release: str) -> None:
        """Vercel's instant rollback: production domains back on an earlier deployment."""
        self._switch(release, "rollback")

    def _switch(self, release: str, action: str) -> None:
        project_id = self._project_id_now()
        call = self.api.promote if action == "promote" else self.api.rollback
        call(project_id, release)
        deadline = time.monotonic() + self.deploy_timeout
        pauses = self._pauses()
        while True:
            project = self.api.get_project(project_id)
            request = project.get("lastAliasRequest") or {}
            job = request.get("jobStatus") if request.get("toDeploymentId") == release else None
            if _production_id(project) == release or job in ("succeeded", "skipped"):
                return
            if job == "failed":
                raise DevopsError(
                    ErrorCode.DEPLOY_FAILED,
                    f"Vercel could not move the production domains to {release} ({action})",
                    "See the project's domains in the Vercel dashboard, then try again.",
                    vercel_deployment=release,
                )
            if not request and "targets" not in project:
                return  # nothing to wait on: Vercel answered the request as done
            if time.monotonic() >= deadline:
                raise DevopsError(
                    ErrorCode.DEPLOY_FAILED,
                    f"The {action} of {release} did not finish in {self.deploy_timeout:.0f} s",
                    "Check the project in the Vercel dashboard; `devops status` shows what "
                    "is live.",
                    vercel_deployment=release,
                )
            time.sleep(next(pauses))

    def can_restore(self, release: str) -> bool:
        try:
            found = self.api.get_deployment(release)
        except DevopsError as error:
            if error.code is ErrorCode.NOT_FOUND:
                return False
            raise
        return found.get("readyState") == "READY" and found.get("projectId") in (
            None,
            self._project_id_now(),
        )

    def live_release(self) -> str | None:
        return _production_id(self._project())

    def describe(self) -> dict[str, Any]:
        project = self._seen or self._project()
        production = _production(project)
        return {
            "platform": self.name,
            "project_id": project.get("id"),
            "name": project.get("name"),
            "team_id": self.team_id,
            "url": self._production_url(project),
            "production_deployment": production.get("id"),
            "state": production.get("readyState"),
        }

    def provision(self) -> tuple[dict[str, Any], dict[str, Any]]:
        reference = self.project_ref or self._default_name()
        created = False
        try:
            project = self._project(reference)
        except DevopsError as error:
            if error.code is not ErrorCode.NOT_FOUND or reference.startswith("prj_"):
                raise
            project = self._seen = self.api.create_project(reference, STATIC_SETTINGS)
            created = True
        self.project_ref = self._project_id = str(project["id"])
        infra = {**self.describe(), "created": created}
        updates = {} if reference == project["id"] else {"vercel.project": project["id"]}
        return infra, updates

    def _default_name(self) -> str:
        """A project name from the config's ``project`` or the directory, as Vercel allows."""
        wanted = str(self.settings.get("project") or self.project.root.name).lower()
        name = re.sub(r"-{3,}", "--", re.sub(r"[^a-z0-9._-]+", "-", wanted)).strip("-.")[:100]
        if not _PROJECT_NAME.fullmatch(name):
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "No Vercel project name can be made from the project's name",
                "Name it: `devops config.set vercel.project my-site`, then run infra.up again.",
            )
        return name

    def remote_history(self, limit: int) -> list[dict[str, Any]]:
        return [
            {
                "platform_deploy_id": d.get("uid"),
                "state": d.get("state") or d.get("readyState"),
                "created_at": _iso(d.get("created") or d.get("createdAt")),
                "target": d.get("target") or "preview",
                "url": self._site_url(d.get("url")),
                "error_message": d.get("errorMessage"),
                "devops_deployment": (d.get("meta") or {}).get("devopsDeployment"),
            }
            for d in self.api.list_deployments(self._project_id_now(), limit)
        ]

    def trigger_build(self, wait: bool) -> dict[str, Any]:
        hook = self.options.get("deploy_hook") or self.credentials.lookup(DEPLOY_HOOK)
        if not hook:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "No Vercel deploy hook is configured for build --remote",
                "Create one in the project's Settings > Git > Deploy Hooks (a Git repository "
                f"must be connected) and store it: `devops secrets.set {DEPLOY_HOOK}`, or set "
                "vercel.deploy_hook.",
            )
        register_secret(hook)  # a deploy hook URL lets anyone build: treat it as a secret
        since = int(time.time() * 1000) - 1000
        job = self.api.trigger_hook(hook).get("job") or {}
        result: dict[str, Any] = {
            "triggered": "deploy hook",
            "job_id": job.get("id"),
            "job_state": job.get("state"),
            "waited": wait,
        }
        if wait:
            built = self._wait_ready(self._hook_deployment(since), production=False)
            result.update(deployment_id=built.get("id"), state=built.get("readyState"))
        return result

    def _hook_deployment(self, since: int) -> dict[str, Any]:
        """The deployment a deploy hook started: the project's first one after ``since``."""
        deadline = time.monotonic() + self.deploy_timeout
        while True:
            found = self.api.list_deployments(self._project_id_now(), 1, since=since)
            if found:
                return self.api.get_deployment(str(found[0]["uid"]))
            if time.monotonic() >= deadline:
                raise DevopsError(
                    ErrorCode.BUILD_FAILED,
                    f"The deploy hook started no deployment in {self.deploy_timeout:.0f} s",
                    "Check the project's deployments in the Vercel dashboard.",
                )
            time.sleep(self.poll_interval)

    def deployment_log(self, platform_deploy_id: str) -> dict[str, Any]:
        """The deployment's state, times and error, and the last of Vercel's build events."""
        found = self.api.get_deployment(platform_deploy_id)
        keys = (
            "id",
            "readyState",
            "readySubstate",
            "target",
            "createdAt",
            "buildingAt",
            "ready",
            "errorCode",
            "errorMessage",
            "inspectorUrl",
        )
        log: dict[str, Any] = {key: found.get(key) for key in keys}
        log["url"] = self._site_url(found.get("url"))
        events = self.api.deployment_events(platform_deploy_id, EVENTS_SHOWN)
        log["events"] = [_event(e) for e in events[-EVENTS_SHOWN:]]
        return log

    # -- environment variables -------------------------------------------------------------

    def sync_env(self) -> dict[str, Any]:
        """Push the secrets ``vercel.env_sync`` names to the project, encrypted, per target.

        Every secret is read before anything is sent: a missing one stops the sync with
        nothing changed. The result names secrets and targets, never a value.
        """
        entries = env_sync_entries(self.options.get("env_sync") or [])
        if not entries:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "vercel.env_sync names no secrets to push",
                'List them: `devops config.set vercel.env_sync \'[{"name": "API_KEY", '
                '"targets": ["production", "preview"]}]\'`.',
            )
        from ..secrets import open_backend  # noqa: PLC0415 - only this task reads app secrets

        store = open_backend(self.project, self.settings)
        environment = self.settings.environment
        values = {name: store.get(name, environment) for name, _ in entries}
        missing = [name for name, value in values.items() if value is None]
        if missing:
            raise DevopsError(
                ErrorCode.NOT_FOUND,
                f"{len(missing)} secret(s) named in vercel.env_sync are not in the secrets "
                f"store for {environment}: {', '.join(missing)}",
                "Store each one with `devops secrets.set NAME` (add --env "
                f"{environment} for this environment only), then sync again.",
                missing=missing,
            )
        project_id = self._project_id_now()
        for name, targets in entries:
            for target in targets:
                self.api.upsert_env(project_id, name, str(values[name]), [target])
        synced = [{"name": name, "targets": list(targets)} for name, targets in entries]
        return {
            "project_id": project_id,
            "environment": environment,
            "synced": synced,
            "count": len(synced),
        }

    # -- helpers ---------------------------------------------------------------------------

    def _project(self, reference: str | None = None) -> dict[str, Any]:
        """The project as Vercel has it now (its id is kept for the routes that need one)."""
        reference = reference or self._project_id or self._reference()
        project = self._seen = self.api.get_project(reference)
        self._project_id = str(project["id"])
        return project

    def _project_id_now(self) -> str:
        return self._project_id or str(self._project()["id"])

    def _reference(self) -> str:
        if not self.project_ref:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "vercel.project is not set",
                "Run `devops infra.up` to create the project, or set vercel.project.",
            )
        return self.project_ref

    def _production_url(self, owner: dict[str, Any]) -> str | None:
        """The production domain of a project (its production target) or of a deployment."""
        source = _production(owner) if "targets" in owner else owner
        aliases = source.get("alias") or []
        return self._site_url(aliases[0] if aliases else None)


def env_sync_entries(configured: list[Any]) -> list[tuple[str, tuple[str, ...]]]:
    """``vercel.env_sync`` as ``(secret name, targets)``: a bare name means every target."""
    entries: list[tuple[str, tuple[str, ...]]] = []
    for item in configured:
        if isinstance(item, str):
            entries.append((item, TARGETS))
        else:
            entries.append((str(item["name"]), tuple(item.get("targets") or TARGETS)))
    return entries


def _settled(state: dict[str, Any], production: bool) -> bool:
    """Whether a deployment in ``state`` needs no further look: READY (and for production,
    its alias settled, or staged after an instant rollback)."""
    return state.get("readyState") == "READY" and bool(
        not production or state.get("aliasAssigned") or state.get("readySubstate") == "STAGED"
    )


def _production(project: dict[str, Any]) -> dict[str, Any]:
    return (project.get("targets") or {}).get("production") or {}


def _production_id(project: dict[str, Any]) -> str | None:
    found = _production(project).get("id")
    return str(found) if found else None


def _event(event: dict[str, Any]) -> dict[str, Any]:
    """One build event, flat: Vercel sends both ``{type, created, payload: {...}}`` and flat."""
    payload = event["payload"] if isinstance(event.get("payload"), dict) else event
    return {
        "created": _iso(event.get("created") or payload.get("date")),
        "type": event.get("type"),
        "text": payload.get("text"),
    }


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("message") or value.get("code") or value)
    return str(value)


def _iso(epoch_ms: Any) -> str | None:
    if not isinstance(epoch_ms, (int, float)):
        return None
    moment = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
