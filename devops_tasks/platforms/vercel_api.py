"""A small client for the Vercel REST API endpoints devops-tasks uses.

Paths, methods, query parameters and bodies follow Vercel's OpenAPI description
(``specs/vercel-openapi.json``), plus the one route it leaves out that the official CLI uses
for instant rollback, ``POST /v9/projects/{projectId}/rollback/{deploymentId}``. Every
request goes through the project's one retry policy (an :class:`~devops_tasks.http.Origin`),
carries the token only in its ``Authorization`` header, and names the team (``teamId``) when one
is configured. Every failure becomes a :class:`~devops_tasks.errors.DevopsError` with a fix.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..answers import StatusFixes, status_error
from ..errors import DevopsError, ErrorCode
from ..http import Answer, Origin, Unreachable
from ..ids import check_id

__all__ = ["DEFAULT_API_URL", "MissingFiles", "VercelApi"]

DEFAULT_API_URL = "https://api.vercel.com"
#: Deployments per page of ``GET /v6/deployments`` (Vercel's maximum).
PAGE_SIZE = 100
#: Where a project's deploy hooks live on the API host.
HOOK_PATH = "/v1/integrations/deploy/"
_TOKEN_FIX = (
    "Create a new token (Vercel: Account Settings > Tokens) and store it with "
    "`devops secrets.set VERCEL_TOKEN`, or export VERCEL_TOKEN."
)


class MissingFiles(Exception):
    """Vercel's ``400 missing_files``: upload these digests, then create the deployment again."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(f"{len(digests)} missing file(s)")
        self.digests = digests


def _segment(value: str, what: str) -> str:
    """``value`` as one URL path segment, refused before any request unless it is an id."""
    return check_id(
        value,
        f"Vercel {what}",
        f"Copy the {what} from `devops history --remote` or from the Vercel dashboard.",
    )


class VercelApi:
    """Authenticated, retrying requests to one Vercel API base URL (and team)."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        team_id: str | None = None,
        pool_size: int = 32,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.team_id = team_id
        self._root = urlsplit(self.api_url).path  # every path below starts here
        self.origin = Origin(
            self.api_url, headers={"Authorization": f"Bearer {token}"}, pool_size=pool_size
        )

    # -- projects --------------------------------------------------------------------------

    def get_project(self, id_or_name: str) -> dict[str, Any]:
        return self._call(
            "GET",
            f"/v9/projects/{_segment(id_or_name, 'project id or name')}",
            what=f"project {id_or_name}",
        )

    def create_project(self, name: str, settings: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            "POST",
            "/v11/projects",
            json={"name": name, **settings},
            ok=(200, 201),
            what=f"a new project {name}",
        )

    def promote(self, project_id: str, deployment_id: str) -> int:
        """Point the production domains at a deployment; 202 when Vercel queued it."""
        return self._switch("promote", "/v10/projects/{}/promote/{}", project_id, deployment_id)

    def rollback(self, project_id: str, deployment_id: str) -> int:
        """Instant rollback to an earlier deployment (the route the spec leaves out)."""
        return self._switch("rollback", "/v9/projects/{}/rollback/{}", project_id, deployment_id)

    def _switch(self, action: str, template: str, project_id: str, deployment_id: str) -> int:
        path = template.format(
            _segment(project_id, "project id"), _segment(deployment_id, "deployment id")
        )
        # An empty JSON object, as the official CLI sends: Vercel wants a body here.
        response = self._send(
            "POST", path, json={}, ok=(200, 201, 202), what=f"the {action} of {deployment_id}"
        )
        return response.status

    def upsert_env(
        self, project_id: str, key: str, value: str, targets: list[str]
    ) -> dict[str, Any]:
        """Create or replace one encrypted environment variable for ``targets``."""
        return self._call(
            "POST",
            f"/v10/projects/{_segment(project_id, 'project id')}/env",
            params={"upsert": "true"},
            json={"key": key, "value": value, "type": "encrypted", "target": targets},
            ok=(200, 201),
            what=f"environment variable {key} ({', '.join(targets)})",
        )

    # -- deployments -----------------------------------------------------------------------

    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v13/deployments``; raises :class:`MissingFiles` when uploads must come first."""
        return self._call("POST", "/v13/deployments", json=body, what="a new deployment")

    def get_deployment(self, id_or_url: str) -> dict[str, Any]:
        return self._call(
            "GET",
            f"/v13/deployments/{_segment(id_or_url, 'deployment id')}",
            what=f"deployment {id_or_url}",
        )

    def list_deployments(
        self, project_id: str, limit: int, since: int | None = None
    ) -> list[dict[str, Any]]:
        """The project's deployments, newest first: pages of ``uid``s followed by ``until``."""
        found: list[dict[str, Any]] = []
        until: Any = None
        while len(found) < limit:
            params: dict[str, Any] = {
                "projectId": project_id,
                "limit": min(PAGE_SIZE, limit - len(found)),
            }
            if until is not None:
                params["until"] = until
            if since is not None:
                params["since"] = since
            page = self._call("GET", "/v6/deployments", params=params, what="the deployments")
            items = page.get("deployments") or []
            found += items
            until = (page.get("pagination") or {}).get("next")
            if not items or until is None:
                break
        return found[:limit]

    def deployment_files(self, deployment_id: str) -> dict[str, str]:
        """``path -> sha1`` of the files a deployment was created with (its file tree)."""
        tree = self._call(
            "GET",
            f"/v6/deployments/{_segment(deployment_id, 'deployment id')}/files",
            what=f"the files of deployment {deployment_id}",
        )
        files: dict[str, str] = {}
        stack = [("", entry) for entry in tree] if isinstance(tree, list) else []
        while stack:
            folder, entry = stack.pop()
            if not isinstance(entry, dict):
                continue
            path = folder + str(entry.get("name", ""))
            if entry.get("type") == "directory":
                stack += [(path + "/", child) for child in entry.get("children") or []]
            elif entry.get("type") == "file":
                files[path] = str(entry.get("uid"))
        return files

    def deployment_events(self, id_or_url: str, limit: int) -> list[dict[str, Any]]:
        """The build's events (log lines and state changes), oldest first."""
        events = self._call(
            "GET",
            f"/v3/deployments/{_segment(id_or_url, 'deployment id')}/events",
            params={"limit": limit},
            headers={"Accept": "application/json"},
            what=f"the events of deployment {id_or_url}",
        )
        return (
            [event for event in events if isinstance(event, dict)]
            if isinstance(events, list)
            else []
        )

    def upload_file(self, digest: str, content: bytes) -> None:
        """``POST /v2/files``: one content, named by its SHA1, uploaded once for any deployment."""
        self._call(
            "POST",
            "/v2/files",
            data=content,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(content)),
                "x-vercel-digest": digest,
            },
            what=f"the upload of {digest}",
        )

    # -- deploy hooks ----------------------------------------------------------------------

    def trigger_hook(self, hook_url: str) -> dict[str, Any]:
        """POST to a deploy hook URL (a secret URL: it is never shown in messages).

        Only a hook on the API's own host is called, and without the API token: a hook is
        a capability of its own, and a URL from a config file or a variable must not be a
        way to send the token somewhere else.
        """
        hook, api = urlsplit(hook_url), urlsplit(self.api_url)
        if (hook.scheme, hook.netloc) != (api.scheme, api.netloc) or not hook.path.startswith(
            HOOK_PATH
        ):
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                f"The deploy hook is not a Vercel deploy hook URL ({api.scheme}://{api.netloc}"
                f"{HOOK_PATH}<project>/<hook>); it was not called",
                "Copy the hook URL from the project's Settings > Git > Deploy Hooks in Vercel "
                "into vercel.deploy_hook or VERCEL_DEPLOY_HOOK.",
            )
        try:
            return self._call(
                "POST",
                hook_url,
                absolute=True,
                ok=(200, 201),
                headers={"Authorization": None},  # None drops the session's header here
                what="the deploy hook",
            )
        except DevopsError as error:
            if error.code not in (ErrorCode.NOT_FOUND, ErrorCode.CREDENTIALS_INVALID):
                raise
            raise DevopsError(
                ErrorCode.NOT_FOUND,
                "Vercel does not know this deploy hook (it was deleted, or the URL is wrong)",
                "Copy the hook URL again from the project's Settings > Git > Deploy Hooks "
                "(or create one) into vercel.deploy_hook or VERCEL_DEPLOY_HOOK.",
            ) from None

    # -- plumbing --------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        response = self._send(method, path, what=what, **kwargs)
        return response.json() if response.content else {}

    def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        ok: tuple[int, ...] = (200,),
        absolute: bool = False,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str | None] | None = None,
    ) -> Answer:
        if not absolute:
            path = self._root + path
            if self.team_id:
                params = {**(params or {}), "teamId": self.team_id}
        try:
            response = self.origin.call(
                method, path, params=params, json_body=json, body=data, headers=headers
            )
        except Unreachable as exc:
            raise DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"Could not reach the Vercel API for {what}: {exc.reason}",
                "Check the network (and VERCEL_API_URL if you set it), then run the command "
                "again; nothing was made live.",
            ) from None
        if response.status in ok:
            return response
        error = _error_body(response)
        if response.status == 400 and error.get("code") == "missing_files":
            raise MissingFiles([str(d) for d in error.get("missing") or []])
        raise _failure(response.status, error, what)


def _error_body(response: Answer) -> dict[str, Any]:
    """Vercel's ``{"error": {"code", "message", ...}}``, or what the body says otherwise."""
    try:
        data = response.json()
    except ValueError:
        return {"message": response.text[:200].strip()}
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return dict(data["error"])
    if isinstance(data, dict):
        return {"message": str(data.get("message") or data)[:300]}
    return {"message": str(data)[:300]}


_FIXES = StatusFixes(
    token=_TOKEN_FIX,
    scope="Use a token whose scope includes the project's team, and set vercel.team_id to "
    "that team's id (Vercel: Team Settings > General); " + _TOKEN_FIX,
    missing="Check vercel.project and vercel.team_id (`devops config.get vercel`), or create "
    "the project with `devops infra.up`.",
    unavailable="Wait a few minutes and run the command again; production was not changed.",
    refused="Check the message above; fix the files or settings it names and run the command "
    "again.",
)


def _failure(status: int, error: dict[str, Any], what: str) -> DevopsError:
    message = str(error.get("message") or "")[:300]
    code = str(error.get("code") or "")
    said = f" ({code + ': ' if code else ''}{message})" if message or code else ""
    if status == 403 and error.get("invalidToken"):
        status = 401  # Vercel's way of saying the token itself is bad
    return status_error("Vercel", status, what, said, _FIXES)
