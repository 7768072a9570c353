"""Shared fixtures: throwaway projects with a small site, and ways to run the CLI."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import azurite
import gcs_emulator
import local_server
import moto_server
import pytest
import sshd
from fake_github import FakeGitHub
from fake_netlify import FakeNetlify
from helpers import CliResult, write_site
from s3_proxy import S3Proxy

from devops_tasks import __version__, build_namespace, durable, redaction
from devops_tasks.cli import DevopsConfig, DevopsProgram
from devops_tasks.project import Project

#: The ssh fleet fixtures (``fleet``, ``hosts``) and the cloud secret stores' fakes.
pytest_plugins = ["fleet", "cloud_secrets"]


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the commands tests start, however the suite was started: a shell that
    runs it in the background (``&``, ``nohup``) ignores SIGINT, and so would they."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the machine's DEVOPS_* variables, key files or cloud credentials."""
    for name in list(os.environ):
        if name.startswith(("DEVOPS", "AWS_", "AZURE_", "GOOGLE_", "CLOUDSDK_", "STORAGE_EMU")):
            monkeypatch.delenv(name)
    # Google's credential chain never reads gcloud's files nor asks a metadata server.
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud-config"))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))


@pytest.fixture(autouse=True)
def fresh_redaction_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values one test registers as secret must not mask another test's output."""
    monkeypatch.setattr(redaction, "_secrets", set())


@pytest.fixture(autouse=True)
def fresh_process_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: no directory swept yet."""
    monkeypatch.setattr(durable, "_swept", set())


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the whole session; a missing emulator fails, it never skips."""
    server = moto_server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[local_server.LocalServer]:
    """One gcp-storage-emulator for the whole session; a missing emulator fails, never skips."""
    server = gcs_emulator.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[azurite.Azurite]:
    """One Azurite blob service for the whole session; a missing emulator fails, never skips."""
    server = azurite.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ssh_servers() -> Iterator[sshd.SshServers]:
    """Three real OpenSSH hosts for the whole session; a missing sshd fails, it never skips."""
    servers = sshd.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def aws_env(moto_url: str, isolated_environment: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean emulator and fake credentials pointing boto3 at it; returns its URL."""
    moto_server.reset(moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_url


@pytest.fixture(scope="session")
def s3_proxy(moto_url: str) -> Iterator[S3Proxy]:
    """A recording (and fault-injecting) proxy in front of moto, for the whole session."""
    proxy = S3Proxy(moto_url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """An empty project directory (the current directory for the test) with a site in dist/."""
    root = tmp_path / "proj"
    root.mkdir()
    write_site(root / "dist")
    monkeypatch.chdir(root)
    return Project(root)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``devops ARGS...`` in this process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        program = DevopsProgram(
            name="devops",
            binary="devops",
            version=__version__,
            namespace=build_namespace(),
            config_class=DevopsConfig,
        )
        capsys.readouterr()
        durable._swept.clear()  # a run of devops is a process of its own
        try:
            program.run(["devops", *args])
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def netlify_server() -> Iterator[FakeNetlify]:
    """One spec-following fake Netlify API on 127.0.0.1 for the whole session."""
    server = FakeNetlify().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def netlify(
    netlify_server: FakeNetlify, project: Project, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeNetlify]:
    """A project configured for a fresh site on the fake; every request must follow the spec."""
    netlify_server.reset()
    site = netlify_server.add_site("my-site")
    monkeypatch.setenv("NETLIFY_AUTH_TOKEN", netlify_server.token)
    monkeypatch.setenv("NETLIFY_API_URL", netlify_server.api_url)
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(
        json.dumps(
            {
                "version": 1,
                "platform": "netlify",
                "netlify": {"site_id": site["id"], "poll_interval": 0.01},
            }
        )
    )
    netlify_server.site = site  # type: ignore[attr-defined]
    yield netlify_server
    assert netlify_server.violations == [], "requests that the Netlify spec does not allow"


@pytest.fixture(scope="session")
def github_server() -> Iterator[FakeGitHub]:
    """One spec-following fake GitHub API (deployments) on 127.0.0.1 for the whole session."""
    with FakeGitHub() as server:
        yield server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skipped test fails: the suite marks nothing as skipped there."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must not happen: {report.longrepr}"
