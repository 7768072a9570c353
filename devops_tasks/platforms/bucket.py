"""What every static-site-in-a-bucket target (aws, gcp, azure) shares: all of it but the SDK.

A bucket target deploys, rolls back, prunes, describes and provisions through the one sync
engine (:mod:`devops_tasks.sync`); a subclass only says how to open its store
(:meth:`BucketPlatform.open_store`), which settings it needs, and, where it has a CDN, how to
invalidate it (:meth:`BucketPlatform.cdn_invalidate`) and what state it is in.
"""

from __future__ import annotations

import abc
import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ..changes import Changes, Drift
from ..errors import DevopsError, ErrorCode
from ..health import check_http
from ..project import actor
from ..sync import DEFAULT_PRIVATE_PREFIX, SHOWN_PATHS, BucketLock, HeaderRules, Sync, drift
from .base import DeployOutcome, Finding, Platform

if TYPE_CHECKING:
    from ..files import SiteFiles
    from ..history import Deployment
    from ..objectstore import ObjectStore
    from ..output import Progress
    from ..sync import Plan

__all__ = ["DEFAULTS", "BucketPlatform"]

#: The common settings of every bucket target, and their defaults.
DEFAULTS: dict[str, Any] = {
    "prefix": "",
    "private_prefix": DEFAULT_PRIVATE_PREFIX,
    "cache_control": [],
    "compress": [],
    "delete": True,
    "max_deletes": 256,
    "concurrency": 16,
    "endpoint_url": None,
    "index_document": "index.html",
    "error_document": "404.html",
}
#: Left in the private prefix by ``infra.up`` when it created the bucket (``infra.down``
#: deletes a non-empty bucket only if it finds this).
CREATED_MARKER = "bucket.json"


class BucketPlatform(Platform):
    """A static site in one bucket (or container), under an optional prefix."""

    strategies = frozenset({"rolling"})
    first_steps: ClassVar[tuple[str, ...]] = ("devops infra.up",)
    #: Settings a deploy cannot do without (``validate`` names each one missing).
    required: ClassVar[tuple[str, ...]] = ("bucket",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = {**DEFAULTS, **self.options}
        self.prefix = _folder(str(self.config["prefix"]))
        self.private_prefix = _folder(str(self.config["private_prefix"])) or DEFAULT_PRIVATE_PREFIX
        self._store: ObjectStore | None = None
        self._engine: Sync | None = None
        self._unchanged = False
        self._holder: dict[str, Any] | None = None

    # -- what a subclass provides ----------------------------------------------------------

    @abc.abstractmethod
    def open_store(self) -> ObjectStore:
        """The bucket, seen through ``self.prefix``, with this environment's credentials."""

    def cdn_invalidate(self, paths: list[str]) -> dict[str, Any] | None:
        """Tell the CDN in front of the bucket that ``paths`` (``/a/b.html``) changed.

        Returns what was asked of it (for the deployment's record); None without a CDN.
        """
        return None

    def cdn_state(self) -> dict[str, Any] | None:
        """The CDN's state for ``status`` (None without a CDN)."""
        return None

    def site_url(self) -> str | None:
        """Where the site is served, if it can be told without a request."""
        return None

    # -- the engine --------------------------------------------------------------------------

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = self.open_store()
        return self._store

    @property
    def engine(self) -> Sync:
        if self._engine is None:
            self._engine = Sync(
                self.store,
                HeaderRules.from_settings(self.config["cache_control"], self.config["compress"]),
                private_prefix=self.private_prefix,
                concurrency=int(self.config["concurrency"]),
                delete=bool(self.config["delete"]),
                max_deletes=int(self.config["max_deletes"]),
                lock=self._lock,
                invalidate=self._invalidate,
            )
        return self._engine

    @contextlib.contextmanager
    def hold(self, holder: dict[str, Any]) -> Iterator[None]:
        """The bucket's lock, taken by the first write and kept until the flow ends."""
        self._holder = holder
        try:
            with self.engine.holding():
                yield
        finally:
            self._holder = None

    def _lock(self) -> BucketLock:
        who = f"{actor()} ({self.settings.environment})"
        if self._holder:
            who = f"{self._holder['actor']} ({self._holder['action']} {self._holder['deployment']})"
        return BucketLock(
            self.store,
            self.private_prefix + "lock.json",
            holder=who,
            ttl=float(self.settings.get("deployment.lock_ttl", 3600)),
            timeout=float(self.settings.get("deployment.lock_timeout", 0)),
        )

    def _invalidate(self, paths: list[str]) -> dict[str, Any] | None:
        return self.cdn_invalidate(cdn_paths(paths))

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = None
        self._engine = None

    # -- checks ------------------------------------------------------------------------------

    def validate(self) -> list[Finding]:
        findings = super().validate()
        for key in self.required:
            if not self.options.get(key):
                findings.append(
                    Finding(
                        f"{self.name}.{key} is not set",
                        f"Name it: `devops config.set {self.name}.{key} NAME` "
                        "(`devops infra.up` creates it if it does not exist).",
                    )
                )
        return findings

    def validate_files(self, files: SiteFiles) -> list[Finding]:
        findings = []
        private = [f.path for f in files if f.path.startswith(self.private_prefix)]
        if private:
            findings.append(
                Finding(
                    f"{len(private)} file(s) of the build sit under the private prefix "
                    f"{self.private_prefix}, where devops-tasks keeps its manifests: "
                    + ", ".join(private[:SHOWN_PATHS]),
                    f"Rename them, or set {self.name}.private_prefix to another folder.",
                )
            )
        too_long = [f.path for f in files if _too_long(self.prefix + f.path)]
        if too_long:
            findings.append(
                Finding(
                    f"{len(too_long)} path(s) are longer than an object key may be (1024 "
                    "bytes of UTF-8 with the prefix): " + ", ".join(too_long[:SHOWN_PATHS]),
                    "Shorten them, or the prefix.",
                )
            )
        return findings

    # -- deploy, rollback ------------------------------------------------------------------

    def prefetch(self) -> None:
        if not self.validate():  # settings that cannot work wait for their error
            self.engine.prefetch()

    def read_ahead(self) -> None:
        if not self.validate():
            self.engine.read_ahead()

    def plan_deploy(self, files: SiteFiles) -> dict[str, Any]:
        plan = self.engine.plan(files)
        summary = plan.summary()
        # a dry run names at most PLAN_PATHS in all: these are among the changed ones
        summary["headers"] = {"count": summary["headers"]["count"]}
        deletes = len(plan.deletes)
        summary["max_deletes"] = {
            "limit": int(self.config["max_deletes"]),
            "exceeded": deletes > int(self.config["max_deletes"]),
        }
        summary["live_release"] = plan.base.release if plan.base else None
        summary["bucket"] = self.store.location
        summary["steps"] = self._sync_steps(plan)
        return summary

    def _sync_steps(self, plan: Plan) -> list[str]:
        """What the sync engine would write, in its order."""
        if plan.empty:
            return ["nothing to write: the bucket serves this build already"]
        sent = sum(1 for write in plan.writes if write.copy_from is None)
        steps = [f"upload {sent} object(s), assets before pages"] if sent else []
        if len(plan.writes) > sent:
            steps.append(f"copy {len(plan.writes) - sent} object(s) in place with new headers")
        if plan.deletes or any(write.reason != "new" for write in plan.writes):
            steps.append(
                f"keep a copy of each object replaced or deleted under {self.private_prefix}"
                "objects/ (for rollback)"
            )
        steps.append(f"write {self.private_prefix}manifest.json: the new release is live")
        if self.cdn_state() is not None:
            steps.append("invalidate the changed paths on the CDN")
        if plan.deletes:
            steps.append(f"delete {len(plan.deletes)} object(s) the build no longer has")
        return steps

    def drift(self, expected: str | None) -> Drift:
        """The bucket's listing against the live manifest (sizes, and the store's tags)."""
        live = self.engine.live()
        listing = self.engine.listing()
        found = drift(live, listing)
        files = live.files if live else {}
        return Drift(
            Changes(
                added={path: listing.site[path].size for path in found["added"]},
                changed={path: listing.site[path].size for path in found["changed"]},
                deleted={path: files[path].size for path in found["missing"]},
            ),
            against=live.release if live else None,
        )

    def deploy(
        self, deployment: Deployment, files: SiteFiles, progress: Progress, publish: bool = True
    ) -> DeployOutcome:
        result = self.engine.deploy(
            release_id(deployment.id),
            files,
            self._info(deployment),
            progress,
            force_deletes=bool(self.flags.get("force_deletes")),
        )
        return self._synced(deployment, result, len(files))

    def promote(
        self,
        deployment: Deployment,
        source: Platform,
        release: str,
        progress: Progress,
        publish: bool = True,
    ) -> DeployOutcome:
        """Server-side copies from ``source``'s bucket (or prefix): nothing is uploaded.

        This environment's credentials must be able to read ``source``'s bucket.
        """
        if not isinstance(source, BucketPlatform):
            raise self._unsupported("promotes only from another bucket environment", "deploy")
        held = source.engine.live()
        origin = held if held and held.release == release else source.engine.release(release)
        if origin is None:
            raise DevopsError(
                ErrorCode.NOT_FOUND,
                f"Release {release} is not kept in {source.store.location}",
                f"Pick one from `devops history --env {source.settings.environment} --remote`.",
            )
        result = self.engine.promote(
            release_id(deployment.id),
            source.engine,
            origin,
            self._info(deployment),
            progress,
            force_deletes=bool(self.flags.get("force_deletes")),
        )
        deployment.step("copy", f"release {release} of {source.store.location}, copied there")
        return self._synced(deployment, result, len(origin.files))

    @staticmethod
    def _info(deployment: Deployment) -> dict[str, Any]:
        """Who made a release, kept in its manifest."""
        return {
            "deployment": deployment.id,
            "version": deployment.version,
            "actor": deployment.actor,
            "environment": deployment.environment,
        }

    def _synced(self, deployment: Deployment, result: dict[str, Any], files: int) -> DeployOutcome:
        """The engine's ``result`` in the record and as the deployer's outcome."""
        self._unchanged = result["noop"]
        if result["noop"]:
            deployment.step("sync", f"unchanged: {result['release']} stays live")
        else:
            deployment.step(
                "sync",
                f"{result['uploaded']} uploaded ({result['bytes_uploaded']} bytes), "
                f"{result['copied']} copied, {result['deleted']} deleted, "
                f"{result['unchanged']} unchanged; {result['preserved']} kept for rollback",
            )
        for warning in result["warnings"]:
            deployment.step("warning", warning)
        invalidation = result.get("invalidation")
        if invalidation:
            deployment.step("cdn", f"invalidation {invalidation.get('id')}: {invalidation}")
            if self.flags.get("wait"):
                result["invalidation"] = self.cdn_wait(invalidation)
                deployment.step("cdn", f"invalidation {invalidation.get('id')} completed")
        return DeployOutcome(
            release=result["release"],
            url=self.site_url(),
            platform_deploy_id=None if result["noop"] else result["release"],
            files_deployed=files,
            bytes_uploaded=result["bytes_uploaded"],
            rollback_available=True,
            details={"sync": result},
        )

    def cdn_wait(self, invalidation: dict[str, Any]) -> dict[str, Any]:
        """Wait until ``invalidation`` is done (``--wait``); a target without a CDN has none."""
        return invalidation

    def restore(self, release: str) -> None:
        self.engine.restore(release)

    def can_restore(self, release: str) -> bool:
        return self.engine.restorable(release)

    def live_release(self) -> str | None:
        live = self.engine.live()
        return live.release if live else None

    def discard(self, release: str) -> None:
        self.engine.discard()

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        if self._unchanged:  # an unchanged deploy made no release: nothing to prune
            return []
        return self.engine.prune(keep, protect)

    # -- looking ---------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The live manifest, what the bucket holds, the CDN, and the site's health."""
        live = self.engine.live()
        listing = self.engine.listing()
        described: dict[str, Any] = {
            "platform": self.name,
            "bucket": self.store.location,
            "prefix": self.prefix,
            "live_release": live.release if live else None,
            "deployed_at": live.info.get("created") if live else None,
            "version": live.info.get("version") if live else None,
            "files": len(live.files) if live else 0,
            "bytes": live.total_bytes if live else 0,
            "objects": len(listing.site),
            "objects_bytes": listing.site_bytes,
            "kept_releases": len(listing.releases),
            "kept_objects": len(listing.objects),
            "locked": listing.locked,
        }
        cdn = self.cdn_state()
        if cdn is not None:
            described["cdn"] = cdn
        url = (self.settings.get("deployment.health_check") or {}).get("url") or self.site_url()
        if url and "{host}" not in url:
            check = {**(self.settings.get("deployment.health_check") or {}), "retries": 0}
            described["health"] = check_http(url, check).to_dict()
        return described

    def remote_history(self, limit: int) -> list[dict[str, Any]]:
        return [
            {**item, "platform_deploy_id": item.get("release")}
            for item in self.engine.history()[:limit]
        ]

    def deployment_log(self, platform_deploy_id: str) -> dict[str, Any]:
        events = [e for e in self.engine.history() if e.get("release") == platform_deploy_id]
        return {"release": platform_deploy_id, "events": events}

    # -- infra -----------------------------------------------------------------------------

    def plan(self) -> list[dict[str, Any]]:
        """The bucket (created unless it exists), its website, public read if asked."""
        where = self.store.location
        try:
            exists = self.store.bucket_exists()
        except DevopsError as error:
            return [{"action": "unknown", "what": "bucket", "where": where, "error": error.message}]
        website = (
            f"website (index {self.config['index_document']}, "
            f"error {self.config['error_document']})"
        )
        actions = [
            {"action": "none" if exists else "create", "what": "bucket", "where": where},
            {"action": "configure", "what": website, "where": where},
        ]
        if self.flags.get("public"):
            actions.append({"action": "configure", "what": "public read", "where": where})
        return actions

    def provision(self) -> tuple[dict[str, Any], dict[str, Any]]:
        store = self.store
        created = not store.bucket_exists()
        if created:
            store.create_bucket()
            marker = json.dumps({"created_by": "devops-tasks", "actor": actor()}).encode()
            store.create(self.private_prefix + CREATED_MARKER, marker)
        store.configure_website(self.config["index_document"], self.config["error_document"])
        if self.flags.get("public"):
            store.allow_public_read()
        return {
            "platform": self.name,
            "bucket": store.location,
            "created": created,
            "website": {
                "index": self.config["index_document"],
                "error": self.config["error_document"],
            },
            "public_read": bool(self.flags.get("public")),
        }, {}

    def teardown(self, force: bool) -> dict[str, Any]:
        store = self.store
        if not store.bucket_exists():
            return {"bucket": store.location, "deleted": False, "existed": False}
        ours = store.get(self.private_prefix + CREATED_MARKER) is not None
        keys = [o.key for o in store.list()]
        if keys and not ours and not force:
            raise DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                f"{store.location} holds {len(keys)} object(s) and was not created by "
                "devops-tasks: it is left as it is",
                "Empty it yourself, or pass --force to delete its objects and the bucket.",
                objects=len(keys),
            )
        if keys:
            store.delete(keys)
        store.delete_bucket()
        return {
            "bucket": store.location,
            "deleted": True,
            "existed": True,
            "objects_deleted": len(keys),
            "created_by_devops": ours,
        }


def release_id(deployment_id: str) -> str:
    """``rel_<ms>_<hex>`` for deployment ``dep_<ms>_<hex>``: a name of the bucket's own, so
    ``rollback --to`` takes it from any machine, with or without local records."""
    return "rel_" + deployment_id.removeprefix("dep_")


def cdn_paths(paths: list[str]) -> list[str]:
    """The URL paths a CDN caches each changed object under: ``a/index.html`` is also
    ``/a/`` and ``/a``."""
    result: dict[str, None] = {}
    for path in paths:
        result["/" + path] = None
        if path == "index.html" or path.endswith("/index.html"):
            folder = path[: -len("index.html")]
            result["/" + folder] = None
            if folder:
                result["/" + folder.rstrip("/")] = None
    return list(result)


def _folder(prefix: str) -> str:
    """``a/b`` and ``/a/b/`` as ``a/b/``; empty stays empty."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


def _too_long(key: str) -> bool:
    """Longer than an object key may be: 1024 bytes of UTF-8 (at most 4 a character, so a
    key of 256 characters or fewer is not encoded to know)."""
    return len(key) > 256 and len(key.encode("utf-8", "surrogateescape")) > 1024
