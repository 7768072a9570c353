"""A small client for the Netlify REST API endpoints devops-tasks uses.

Paths, methods, bodies and status codes follow Netlify's OpenAPI spec (``swagger.yml``);
the base URL is ``NETLIFY_API_URL`` (as netlify-cli honours it) or the public API. Every
failure becomes a :class:`~devops_tasks.errors.DevopsError` with a fix; the token is sent
only in the ``Authorization`` header and never appears in a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from ..answers import StatusFixes, status_error
from ..errors import DevopsError, ErrorCode
from ..http import Answer, Origin, Unreachable
from ..ids import check_id

__all__ = ["DEFAULT_API_URL", "NetlifyApi"]

DEFAULT_API_URL = "https://api.netlify.com/api/v1"


def _segment(value: str, what: str) -> str:
    """``value`` as one URL path segment, refused before any request unless it is an id."""
    return check_id(
        value,
        f"Netlify {what}",
        f"Copy the {what} from `devops history --remote` or from the Netlify UI.",
    )


class NetlifyApi:
    """One authenticated, retrying session against one Netlify API base URL."""

    def __init__(self, token: str, api_url: str = DEFAULT_API_URL, pool_size: int = 32) -> None:
        self.api_url = api_url.rstrip("/")
        self._root = urlsplit(self.api_url).path  # "/api/v1": every path below starts here
        self.origin = Origin(
            self.api_url, headers={"Authorization": f"Bearer {token}"}, pool_size=pool_size
        )

    # -- sites -----------------------------------------------------------------------------

    def get_site(self, site_id: str) -> dict[str, Any]:
        return self._call("GET", f"/sites/{_segment(site_id, 'site id')}", what=f"site {site_id}")

    def create_site(self, name: str | None) -> dict[str, Any]:
        return self._call(
            "POST", "/sites", json={"name": name} if name else {}, ok=(200, 201), what="a new site"
        )

    # -- deploys ---------------------------------------------------------------------------

    def create_deploy(
        self,
        site_id: str,
        files: dict[str, str],
        *,
        draft: bool,
        asynchronous: bool,
        title: str | None,
    ) -> dict[str, Any]:
        body = {"files": files, "draft": draft, "async": asynchronous}
        return self._call(
            "POST",
            f"/sites/{_segment(site_id, 'site id')}/deploys",
            json=body,
            params={"title": title} if title else None,
            what="a new deploy",
        )

    def get_deploy(self, deploy_id: str) -> dict[str, Any]:
        return self._call(
            "GET", f"/deploys/{_segment(deploy_id, 'deploy id')}", what=f"deploy {deploy_id}"
        )

    def list_deploys(self, site_id: str, per_page: int) -> list[dict[str, Any]]:
        return list(
            self._call(
                "GET",
                f"/sites/{_segment(site_id, 'site id')}/deploys",
                params={"page": 1, "per_page": per_page},
                what="the deploys",
            )
        )

    def list_site_files(self, site_id: str) -> list[dict[str, Any]]:
        """The files of the site's published deploy: ``{path ("/a.html"), sha, size, ...}``."""
        files = self._call(
            "GET", f"/sites/{_segment(site_id, 'site id')}/files", what="the site's files"
        )
        return [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []

    def file_uploader(self, deploy_id: str) -> Callable[[str, bytes], object]:
        """``upload(path, content)``: PUT one file of the deploy (``path`` without its leading
        slash). The URL's stem and the headers are worked out once for all the files."""
        stem = f"{self._root}/deploys/{_segment(deploy_id, 'deploy id')}/files/"
        headers = self.origin.headers_with({"Content-Type": "application/octet-stream"})

        def upload(path: str, content: bytes) -> object:
            what = f"upload of {path}"
            try:
                answer = self.origin.send("PUT", stem + quote(path, safe="/"), content, headers)
            except Unreachable as exc:
                raise _unreachable(exc, what) from None
            if answer.status != 200:
                raise _failure(answer.status, _message(answer), what)
            return answer

        return upload

    def restore(self, site_id: str, deploy_id: str) -> dict[str, Any]:
        """Publish ``deploy_id`` (Netlify calls it restore): rollback and draft publishing."""
        site, deploy = _segment(site_id, "site id"), _segment(deploy_id, "deploy id")
        return self._call(
            "POST",
            f"/sites/{site}/deploys/{deploy}/restore",
            ok=(200, 201),
            what=f"publishing deploy {deploy_id}",
        )

    # -- builds ----------------------------------------------------------------------------

    def create_build(self, site_id: str) -> dict[str, Any]:
        return self._call(
            "POST", f"/sites/{_segment(site_id, 'site id')}/builds", what="a new build"
        )

    def get_build(self, build_id: str) -> dict[str, Any]:
        return self._call(
            "GET", f"/builds/{_segment(build_id, 'build id')}", what=f"build {build_id}"
        )

    def trigger_hook(self, hook_url: str) -> None:
        """POST to a build hook URL (a secret URL: it is never shown in messages).

        Only a hook on the API's own host is called, and without the API token: a hook is
        a capability of its own, and a URL from a config file or a variable must not be a
        way to send the token somewhere else.
        """
        hook, api = urlsplit(hook_url), urlsplit(self.api_url)
        if (hook.scheme, hook.netloc) != (api.scheme, api.netloc) or not hook.path.startswith(
            "/build_hooks/"
        ):
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                f"The build hook is not a Netlify build hook URL ({api.scheme}://{api.netloc}"
                "/build_hooks/<id>); it was not called",
                "Copy the hook URL from the site's Build & deploy settings in Netlify into "
                "netlify.build_hook or NETLIFY_BUILD_HOOK.",
            )
        try:
            self._call(
                "POST",
                hook_url,
                absolute=True,
                ok=(200, 201, 202, 204),
                json=None,
                headers={"Authorization": None},  # None drops the session's header here
                what="the build hook",
            )
        except DevopsError as error:
            if error.code not in (ErrorCode.NOT_FOUND, ErrorCode.CREDENTIALS_INVALID):
                raise
            raise DevopsError(
                ErrorCode.NOT_FOUND,
                "Netlify does not know this build hook (it was deleted, or the URL is wrong)",
                "Copy the hook URL again from the site's Build & deploy settings in Netlify "
                "(or create one) into netlify.build_hook or NETLIFY_BUILD_HOOK.",
            ) from None

    # -- plumbing --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        ok: tuple[int, ...] = (200,),
        absolute: bool = False,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str | None] | None = None,
    ) -> Any:
        """``method`` on ``path`` (below the API's URL, or ``absolute`` on its host): the JSON
        answer, or the error for its status."""
        try:
            answer = self.origin.call(
                method,
                path if absolute else self._root + path,
                params=params,
                json_body=json,
                headers=headers,
            )
        except Unreachable as exc:
            raise _unreachable(exc, what) from None
        if answer.status in ok:
            return answer.json() if answer.content else {}
        raise _failure(answer.status, _message(answer), what)


def _unreachable(exc: Unreachable, what: str) -> DevopsError:
    return DevopsError(
        ErrorCode.SERVICE_UNAVAILABLE,
        f"Could not reach the Netlify API for {what}: {exc.reason}",
        "Check the network (and NETLIFY_API_URL if you set it), then run the command "
        "again; nothing was published.",
    )


def _message(response: Answer) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip()
    return (
        str(data.get("message") or data.get("error") or data)[:300]
        if isinstance(data, dict)
        else str(data)[:300]
    )


_FIXES = StatusFixes(
    token="Create a new personal access token (Netlify: User settings > Applications) and "
    "store it with `devops secrets.set NETLIFY_AUTH_TOKEN`, or export NETLIFY_AUTH_TOKEN.",
    scope="Use a token of a team member who can deploy this site.",
    missing="Check netlify.site_id (`devops config.get netlify.site_id`), or create the site "
    "with `devops infra.up`.",
    unavailable="Wait a few minutes and deploy again; the live site was not changed.",
    refused="Check the message above; fix the files or settings it names and deploy again.",
)


def _failure(status: int, message: str, what: str) -> DevopsError:
    return status_error("Netlify", status, what, f" ({message})" if message else "", _FIXES)
