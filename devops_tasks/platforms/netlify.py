"""Netlify: file-digest deploys through the REST API, the way Netlify's own clients do them.

Every file of the build directory is hashed (SHA1, in parallel) and the deploy is created
with the ``{path: sha1}`` map; Netlify answers with the digests it does not have yet, and
only those are uploaded — once per digest, concurrently. An unchanged site uploads nothing.
Netlify switches a deploy live atomically when it is ready; a draft deploy (blue-green)
stays off the live URL until it is published with ``restore``, which is also how a
rollback puts an earlier deploy back.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..digest_maps import DigestMaps, digest_drift, digest_plan
from ..errors import DevopsError, ErrorCode
from ..redaction import register_secret
from ..uploads import one_file_per_digest, send_all
from .base import DeployOutcome, Finding, Platform, upload_concurrency
from .netlify_api import DEFAULT_API_URL, NetlifyApi

if TYPE_CHECKING:
    from ..changes import Drift
    from ..files import SiteFiles
    from ..history import Deployment
    from ..output import Progress

__all__ = ["NetlifyPlatform", "netlify_ignore"]

TOKEN = "NETLIFY_AUTH_TOKEN"
BUILD_HOOK = "NETLIFY_BUILD_HOOK"
DEFAULT_CONCURRENCY = 32  # the official CLI uploads 5 at a time
FILES_PER_DIRECTORY = 54_000  # Netlify refuses a deploy with more in one directory
ASYNC_THRESHOLD = 1_000  # files; larger deploys are created with async and polled
_SITE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SITE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}(\.[a-z0-9-]+)*")


def netlify_ignore(relative: str) -> bool:
    """Netlify's own rules: no dotfiles but ``.well-known``, no node_modules, no __MACOSX."""
    if not (
        relative.startswith(".")
        or "/." in relative
        or "node_modules" in relative
        or "__MACOSX" in relative
    ):
        return False  # no part can match: a scan asks this of every one of 20,000 paths
    parts = relative.split("/")
    return any(
        (part.startswith(".") and part != ".well-known") or part in ("node_modules", "__MACOSX")
        for part in parts
    )


class NetlifyPlatform(Platform):
    name = "netlify"
    strategies = frozenset({"rolling", "blue-green"})
    digest_algorithms = ("sha1",)
    first_steps = (f"devops secrets.set {TOKEN}", "devops infra.up")
    deploy_credentials = (TOKEN,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.site_id: str | None = self.options.get("site_id")
        self.concurrency = int(self.options.get("concurrency", DEFAULT_CONCURRENCY))
        self.poll_interval = float(self.options.get("poll_interval", 1.0))
        self.deploy_timeout = float(self.options.get("deploy_timeout", 1800))
        self._api: NetlifyApi | None = None

    @property
    def api(self) -> NetlifyApi:
        if self._api is None:
            url = self._api_url()
            token = self.credentials.require(TOKEN, "deploying to Netlify")
            self._api = NetlifyApi(token, url, pool_size=self.concurrency)
        return self._api

    def _api_url(self) -> str:
        """Where the token goes: ``NETLIFY_API_URL`` (the person running chose it), else
        ``netlify.api_url`` only when it is Netlify's own API, else the public API.

        A committed config file must not be a way to send a CI token to another host.
        """
        chosen = os.environ.get("NETLIFY_API_URL")
        if chosen:
            return chosen
        configured = self.options.get("api_url")
        if configured and urlsplit(configured)[:2] != urlsplit(DEFAULT_API_URL)[:2]:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "netlify.api_url points at a host other than Netlify's API; the token is never "
                "sent there from a config file",
                "Remove netlify.api_url, or set NETLIFY_API_URL in the environment of the "
                "command (a test server, a proxy you run).",
            )
        return configured or DEFAULT_API_URL

    # -- checks before any network call ----------------------------------------------------

    def validate(self) -> list[Finding]:
        findings = super().validate()
        if not self.site_id:
            findings.append(
                Finding(
                    "netlify.site_id is not set",
                    "Create the site with `devops infra.up`, or set its id: "
                    "`devops config.set netlify.site_id <API ID from Site configuration>`.",
                )
            )
        elif not (_SITE_ID.fullmatch(self.site_id) or _SITE_NAME.fullmatch(self.site_id)):
            findings.append(
                Finding(
                    f"netlify.site_id {self.site_id!r} is neither a site id (a UUID) nor a name",
                    "Copy the API ID from the site's Site configuration page in Netlify.",
                )
            )
        return findings + upload_concurrency("netlify.concurrency", self.concurrency)

    ignore = staticmethod(netlify_ignore)

    def validate_files(self, files: SiteFiles) -> list[Finding]:
        return [
            Finding(
                f"{directory} holds {count} files; Netlify allows {FILES_PER_DIRECTORY} "
                "per directory",
                "Split the directory into subdirectories.",
            )
            for directory, count in sorted(files.per_directory.items())
            if count > FILES_PER_DIRECTORY
        ]

    # -- deploy ----------------------------------------------------------------------------

    def deploy(
        self, deployment: Deployment, files: SiteFiles, progress: Progress, publish: bool = True
    ) -> DeployOutcome:
        digests = files.digests("sha1", progress)
        created = self._create(
            deployment, {"/" + path: sha for path, sha in digests.items()}, publish
        )
        deploy_id = str(created["id"])
        required = created.get("required") or []
        uploads = one_file_per_digest(files.hashed("sha1", progress), required) if required else {}
        deployment.step(
            "upload", f"Netlify lacks {len(uploads)} distinct contents of the {len(files)} files"
        )
        upload = self.api.file_uploader(deploy_id)
        uploaded = send_all(
            uploads,
            lambda _, f: upload(f.path, f.content()),
            self.concurrency,
            progress,
        )
        ready = self._wait(deploy_id, {"ready"}, "ready")
        DigestMaps(self).save(deploy_id, digests)
        deployment.step(
            "ready",
            f"deploy {deploy_id} is ready" + ("" if publish else " as a draft (not live yet)"),
        )
        return self._outcome(ready, len(files), uploaded, len(uploads), publish)

    def promote(
        self,
        deployment: Deployment,
        source: Platform,
        release: str,
        progress: Progress,
        publish: bool = True,
    ) -> DeployOutcome:
        """A deploy of this site with the digest map of ``source``'s published deploy: Netlify
        has every content already, so nothing is uploaded. On one site, the deploy itself is
        published."""
        if not isinstance(source, NetlifyPlatform):
            raise self._unsupported("promotes only from another netlify environment", "deploy")
        if source._site_id() == self._site_id():  # one site: its deploy is already here
            if publish:
                self.restore(release)
            deployment.step("publish", f"deploy {release} of this site, unchanged")
            return self._outcome(self.api.get_deploy(release), 0, 0, 0, publish)
        if release != source.live_release():
            raise DevopsError(
                ErrorCode.NOT_SUPPORTED,
                f"Netlify lists the files of a site's published deploy only, and {release} is "
                f"not the one of {source.settings.environment}",
                f"Promote what {source.settings.environment} serves (without --release), or "
                f"deploy the build to {self.settings.environment}.",
            )
        listed = source.api.list_site_files(source._site_id())
        created = self._create(deployment, {f["path"]: f["sha"] for f in listed}, publish)
        if created.get("required"):
            raise DevopsError(
                ErrorCode.DEPLOY_FAILED,
                f"Netlify asks for {len(created['required'])} content(s) this site cannot "
                "reuse, and a promote uploads nothing",
                f"Deploy the build to {self.settings.environment} instead.",
                netlify_deploy=created["id"],
            )
        ready = self._wait(str(created["id"]), {"ready"}, "ready")
        sent = {f["path"].lstrip("/"): f["sha"] for f in listed}  # as a deploy keeps it
        DigestMaps(self).save(str(created["id"]), sent)
        deployment.step("ready", f"deploy {created['id']} is ready; nothing was uploaded")
        return self._outcome(ready, len(listed), 0, 0, publish)

    def _create(
        self, deployment: Deployment, files: dict[str, str], publish: bool
    ) -> dict[str, Any]:
        """A new deploy of ``files`` (``{"/path": sha1}``), prepared: it names what it lacks."""
        created = self.api.create_deploy(
            self._site_id(),
            files,
            draft=not publish,
            asynchronous=len(files) > ASYNC_THRESHOLD,
            title=deployment.version or deployment.id,
        )
        deploy_id = str(created["id"])
        deployment.platform_deploy_id = deploy_id
        deployment.step("create", f"Netlify deploy {deploy_id} for {len(files)} files")
        if created.get("state") == "preparing" or created.get("required") is None:
            created = self._wait(
                deploy_id, {"prepared", "uploading", "processing", "ready"}, "prepared"
            )
        return created

    @staticmethod
    def _outcome(
        ready: dict[str, Any], files: int, sent: int, uploads: int, publish: bool
    ) -> DeployOutcome:
        deploy_id = str(ready["id"])
        return DeployOutcome(
            release=deploy_id,
            url=ready.get("ssl_url") or ready.get("url"),
            preview_url=ready.get("deploy_ssl_url") or ready.get("deploy_url"),
            platform_deploy_id=deploy_id,
            files_deployed=files,
            bytes_uploaded=sent,
            rollback_available=True,
            published=publish,
            details={
                "files_uploaded": uploads,
                "admin_url": ready.get("admin_url"),
                "deploy_url": ready.get("deploy_ssl_url"),
            },
        )

    def plan_deploy(self, files: SiteFiles) -> dict[str, Any]:
        """The build's SHA1s against the files Netlify lists for the published deploy."""
        live = self.live_release()
        publish = (
            "create it as a draft, check its own URL, then publish it"
            if self.settings.get("deployment.strategy") == "blue-green"
            else "Netlify publishes it once every content is there"
        )
        return digest_plan(files, self._live_files() if live else {}, live, "Netlify", publish)

    def drift(self, expected: str | None) -> Drift:
        """The published deploy's files against the digest map that deploy (or, if another
        one is live, the expected one) was created with."""
        return digest_drift(
            DigestMaps(self),
            self.live_release(),
            expected,
            lambda: {path: sha for path, (sha, _) in self._live_files().items()},
        )

    def _live_files(self) -> dict[str, tuple[str, int | None]]:
        """``path -> (sha1, size)`` of the published deploy, as Netlify lists it."""
        return {
            str(f.get("path", "")).lstrip("/"): (str(f.get("sha")), f.get("size"))
            for f in self.api.list_site_files(self._site_id())
        }

    def _site_id(self) -> str:
        if not self.site_id:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                "netlify.site_id is not set",
                "Run `devops infra.up` to create the site, or set netlify.site_id.",
            )
        return self.site_id

    def _wait(self, deploy_id: str, states: set[str], goal: str) -> dict[str, Any]:
        """Poll the deploy until it reaches one of ``states``; its error_message on error."""
        deadline = time.monotonic() + self.deploy_timeout
        while True:
            deploy = self.api.get_deploy(deploy_id)
            state = deploy.get("state")
            if state in states:
                return deploy
            if state in ("error", "rejected"):
                raise DevopsError(
                    ErrorCode.DEPLOY_FAILED,
                    f"Netlify deploy {deploy_id} failed: {deploy.get('error_message') or state}",
                    "Fix what the message names and deploy again; the live site was not changed.",
                    netlify_deploy=deploy_id,
                )
            if time.monotonic() >= deadline:
                raise DevopsError(
                    ErrorCode.DEPLOY_FAILED,
                    f"Netlify deploy {deploy_id} was not {goal} after {self.deploy_timeout:.0f} s "
                    f"(state {state})",
                    "Check the deploy in the Netlify UI; raise netlify.deploy_timeout for very "
                    "large sites.",
                    netlify_deploy=deploy_id,
                )
            time.sleep(self.poll_interval)

    # -- going live, back, and looking -----------------------------------------------------

    def restore(self, release: str) -> None:
        self.api.restore(self._site_id(), release)

    def can_restore(self, release: str) -> bool:
        try:
            return self.api.get_deploy(release).get("state") == "ready"
        except DevopsError as error:
            if error.code is ErrorCode.NOT_FOUND:
                return False
            raise

    def live_release(self) -> str | None:
        published = self.api.get_site(self._site_id()).get("published_deploy") or {}
        return published.get("id")

    def describe(self) -> dict[str, Any]:
        site = self.api.get_site(self._site_id())
        published = site.get("published_deploy") or {}
        return {
            "platform": self.name,
            "site_id": site.get("id"),
            "name": site.get("name"),
            "url": site.get("ssl_url") or site.get("url"),
            "admin_url": site.get("admin_url"),
            "published_deploy": published.get("id"),
            "state": published.get("state"),
        }

    def provision(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.site_id:
            return self.describe(), {}
        site = self.api.create_site(self.options.get("site_name"))
        self.site_id = str(site["id"])
        return {**self.describe(), "created": True}, {"netlify.site_id": self.site_id}

    def plan(self) -> list[dict[str, Any]]:
        if self.site_id:
            return [{"action": "none", "what": f"site {self.site_id}", "where": "Netlify"}]
        name = self.options.get("site_name")
        what = f"site {name}" if name else "a site (Netlify picks its name)"
        return [{"action": "create", "what": what, "where": "Netlify"}]

    def remote_history(self, limit: int) -> list[dict[str, Any]]:
        return [
            {
                "action": "deploy",
                "release": d.get("id"),
                # a deploy that went live once (published), so a rollback can go back to it
                "status": "success"
                if d.get("state") == "ready" and d.get("published_at")
                else d.get("state"),
                "platform_deploy_id": d.get("id"),
                "state": d.get("state"),
                "created_at": d.get("created_at"),
                "published_at": d.get("published_at"),
                "title": d.get("title"),
                "context": d.get("context"),
                "url": d.get("deploy_ssl_url"),
                "error_message": d.get("error_message"),
            }
            for d in self.api.list_deploys(self._site_id(), per_page=limit)
        ]

    def trigger_build(self, wait: bool) -> dict[str, Any]:
        hook = self.options.get("build_hook") or self.credentials.lookup(BUILD_HOOK)
        if hook:
            register_secret(hook)  # a build hook URL lets anyone build: treat it as a secret
            self.api.trigger_hook(hook)
            return {"triggered": "build hook", "waited": False}
        build = self.api.create_build(self._site_id())
        while wait and not build.get("done"):
            time.sleep(self.poll_interval)
            build = self.api.get_build(str(build["id"]))
        if wait and build.get("error"):
            raise DevopsError(
                ErrorCode.BUILD_FAILED,
                f"Netlify build {build['id']} failed: {build['error']}",
                "See the build log in the Netlify UI, fix it, and build again.",
            )
        return {
            "triggered": "api",
            "build_id": build.get("id"),
            "deploy_id": build.get("deploy_id"),
            "done": bool(build.get("done")),
            "error": build.get("error"),
        }

    def deployment_log(self, platform_deploy_id: str) -> dict[str, Any]:
        """The deploy's state, times and error; for a deploy made by a build, the build too."""
        deploy = self.api.get_deploy(platform_deploy_id)
        keys = (
            "id",
            "state",
            "created_at",
            "updated_at",
            "published_at",
            "error_message",
            "deploy_ssl_url",
            "context",
            "title",
            "branch",
            "commit_ref",
        )
        log: dict[str, Any] = {key: deploy.get(key) for key in keys}
        if deploy.get("build_id"):
            build = self.api.get_build(str(deploy["build_id"]))
            log["build"] = {
                key: build.get(key) for key in ("id", "done", "error", "sha", "created_at")
            }
        return log
