"""GitHub deployments for every deploy, rollback and promotion: one deployment, its statuses.

With ``report.github.repository`` set, each action creates a GitHub deployment (the
environment, and the commit it makes live) and posts ``in_progress`` as it starts, then
``success``, ``failure`` or ``error`` as it ends, whatever ended it: an interruption (Ctrl-C,
SIGTERM) posts ``error`` on its way out, so GitHub never shows a deployment left in progress.
Reporting is a side channel: when GitHub cannot be reached or refuses, the action goes on and
its result carries a warning.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .answers import StatusFixes, status_error, token_may_go_to
from .errors import DevopsError, ErrorCode
from .history import Status
from .redaction import redact

if TYPE_CHECKING:
    import requests

    from .config import Settings
    from .credentials import Credentials
    from .history import Deployment, DeploymentHistory
    from .output import Output
    from .project import Project

__all__ = ["API_URL_VARIABLE", "DEFAULT_API_URL", "TOKEN", "DeploymentReport"]

TOKEN = "GITHUB_TOKEN"
API_URL_VARIABLE = "GITHUB_API_URL"
DEFAULT_API_URL = "https://api.github.com"
#: The REST API version the requests are written for (and its media type).
_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
#: GitHub keeps at most this many characters of a description.
_DESCRIPTION_CHARS = 140
#: Reporting never holds up a deploy for long, nor the exit of an interrupted one.
_TIMEOUT = (3.05, 10.0)
_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_FIXES = StatusFixes(
    token=f"Set {TOKEN} to a token that may write deployments (classic: repo_deployment; "
    "fine-grained: Deployments read and write); in GitHub Actions, `permissions: deployments: "
    "write`.",
    scope="Give the token write access to the deployments of report.github.repository.",
    missing="Check report.github.repository (owner/name), and that the token can see it.",
    unavailable="Nothing to do for this deploy; the next one reports again.",
    refused="Push the commit being deployed: GitHub only knows commits it has.",
)


class DeploymentReport:
    """Tells GitHub about the actions on one environment, when ``report.github`` says where.

    The deployer calls :meth:`started` and :meth:`ended` (or wraps the action in
    :meth:`around`); both are no-ops without ``report.github``.
    """

    def __init__(
        self,
        project: Project,
        settings: Settings,
        credentials: Credentials,
        history: DeploymentHistory,
        output: Output,
    ) -> None:
        self.project = project
        self.environment = settings.environment
        self.options: dict[str, Any] = settings.get("report.github") or {}
        check_url = (settings.get("deployment.health_check") or {}).get("url")
        #: Where the environment is seen when the target has no URL of its own.
        self.live_url = check_url if check_url and "{host}" not in check_url else None
        self.credentials = credentials
        self.history = history
        self.output = output
        self._http: requests.Session | None = None
        self._api_url = ""
        #: record id -> the GitHub deployment's statuses URL, while its action runs.
        self._open: dict[str, str] = {}

    @contextlib.contextmanager
    def around(self, record: Deployment) -> Iterator[None]:
        """GitHub hears of ``record`` as its action starts, and of how it ended."""
        try:
            self.started(record)  # inside: stopped while it posts, it still ends as error
            yield
        finally:
            self.ended(record)

    def started(self, record: Deployment) -> None:
        """Create the GitHub deployment for ``record`` and mark it ``in_progress``."""
        if not self.options:
            return
        try:
            session = self._session()
            ref = self.project.commit(record.version)
            if ref is None:
                raise DevopsError(
                    ErrorCode.NOT_FOUND,
                    "there is no git commit to name (not a git checkout)",
                    "Deploy from a git checkout whose commit GitHub has.",
                )
            created = self._post(session, "/deployments", _deployment_body(self, record, ref))
            deployment_id = created.get("id")
            if type(deployment_id) is not int:
                raise DevopsError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "GitHub's answer names no deployment id",
                    _FIXES.unavailable,
                )
            record.details["github_deployment_id"] = deployment_id
            self._open[record.id] = f"/deployments/{deployment_id}/statuses"
            self._post(session, self._open[record.id], {"state": "in_progress"})
        except DevopsError as error:
            self._warn(record, error)

    def ended(self, record: Deployment) -> None:
        """Post how ``record`` ended: success, failure, or error (interrupted, or unfinished).

        Signals wait meanwhile: a second Ctrl-C must not leave the deployment in progress
        (the post is bounded by its timeouts).
        """
        statuses = self._open.pop(record.id, None)
        session = self._http
        if statuses is None or session is None:
            return
        body = {
            "state": _state(record),
            "description": _description(record),
            "auto_inactive": True,
        }
        environment_url = record.url or self.live_url
        if environment_url:
            body["environment_url"] = environment_url
        log_url = _run_url()
        if log_url:
            body["log_url"] = log_url
        try:
            with _signals_wait():
                self._post(session, statuses, body)
        except DevopsError as error:
            self._warn(record, error)

    # -- helpers ---------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        if self._http is None:
            self._api_url = _api_url(self.options).rstrip("/")
            token = self.credentials.lookup(TOKEN)
            if token is None:
                raise DevopsError(
                    ErrorCode.CREDENTIALS_MISSING,
                    f"{TOKEN} is not set",
                    f"Export {TOKEN} (GitHub Actions: `${{{{ github.token }}}}`), or run "
                    f"`devops secrets.set {TOKEN}`.",
                )
            from . import http  # noqa: PLC0415 - the HTTP stack only when reporting is on

            policy = http.default_policy(
                total=2, connect=2, read=1, status=2, backoff_factor=0.2, backoff_max=2.0
            )
            self._http = http.session(
                policy,
                pool_size=2,
                headers={**_HEADERS, "Authorization": f"Bearer {token}"},
                base_url=self._api_url,
            )
        return self._http

    def _post(self, session: requests.Session, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import requests  # noqa: PLC0415

        what = "a deployment status" if path.endswith("/statuses") else "a deployment"
        url = f"{self._api_url}/repos/{self.options['repository']}{path}"
        try:
            response = session.post(url, json=body, timeout=_TIMEOUT)
        except requests.RequestException as exc:
            raise DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"GitHub could not be reached for {what}: {type(exc).__name__}",
                _FIXES.unavailable,
            ) from None
        if response.status_code != 201:
            raise status_error("GitHub", response.status_code, what, _said(response), _FIXES)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise DevopsError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"GitHub's answer to {what} is not a JSON object",
                _FIXES.unavailable,
            )
        return answer

    def _warn(self, record: Deployment, error: DevopsError) -> None:
        text = f"GitHub was not told of {record.id}: {error.message}. {error.fix}"
        record.details.setdefault("warnings", []).append(redact(text))
        record.step("report", f"warning: {text}")
        self.history.save(record)
        self.output.warn(text)


def _deployment_body(report: DeploymentReport, record: Deployment, ref: str) -> dict[str, Any]:
    """What GitHub is told of a new deployment (no merging, no required status checks)."""
    environment = report.environment
    production = report.options.get("production_environments", ["production"])
    transient = report.options.get("transient_environments", [])
    return {
        "ref": ref,
        "task": "deploy" if record.action == "deploy" else f"deploy:{record.action}",
        "auto_merge": False,
        "required_contexts": [],
        "environment": environment,
        "production_environment": _matches(environment, production),
        "transient_environment": _matches(environment, transient),
        "description": _clip(redact(f"devops-tasks {record.action} {record.id}")),
        "payload": {"devops_id": record.id, "version": record.version},
    }


def _state(record: Deployment) -> str:
    """GitHub's word for how the action ended: ``error`` when it never finished."""
    if record.status is Status.SUCCESS:
        return "success"
    interrupted = (record.error or {}).get("code") == ErrorCode.INTERRUPTED.value
    if interrupted or record.status in (Status.IN_PROGRESS, Status.INTERRUPTED):
        return "error"
    return "failure"


def _description(record: Deployment) -> str:
    if record.status is Status.SUCCESS:
        return _clip(f"{record.action} {record.id} succeeded")
    why = (record.error or {}).get("error") or "it did not finish"
    return _clip(redact(f"{record.action} {record.id} {record.status.value}: {why}"))


def _clip(text: str) -> str:
    return text if len(text) <= _DESCRIPTION_CHARS else text[: _DESCRIPTION_CHARS - 1] + "…"


def _matches(environment: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(environment, pattern) for pattern in patterns)


def _api_url(options: dict[str, Any]) -> str:
    """``GITHUB_API_URL`` (GitHub Actions sets it, Enterprise Server too), else
    ``report.github.api_url`` when it is GitHub's API or this machine, else GitHub's."""
    chosen = os.environ.get(API_URL_VARIABLE)
    if chosen:
        return chosen
    configured = options.get("api_url")
    if configured and not token_may_go_to(configured, DEFAULT_API_URL):
        raise DevopsError(
            ErrorCode.CONFIG_INVALID,
            "report.github.api_url points at a host other than GitHub's API or this machine; "
            "the token is never sent there from a config file",
            f"Remove report.github.api_url, or set {API_URL_VARIABLE} in the environment.",
        )
    return str(configured or DEFAULT_API_URL)


def _run_url() -> str | None:
    """The GitHub Actions run this process is part of: where its log is."""
    server, repository, run = (
        os.environ.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if not (server and repository and run):
        return None
    attempt = os.environ.get("GITHUB_RUN_ATTEMPT")
    return f"{server}/{repository}/actions/runs/{run}" + (f"/attempts/{attempt}" if attempt else "")


def _said(response: Any) -> str:
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return f" ({str(message)[:200]})" if message else ""


@contextlib.contextmanager
def _signals_wait() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP are ignored inside (main thread only; elsewhere, nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # a handler installed outside Python reads as None and cannot be put back: left alone
    previous = {n: h for n in _SIGNALS if (h := signal.getsignal(n)) is not None}
    for number in previous:
        signal.signal(number, signal.SIG_IGN)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
