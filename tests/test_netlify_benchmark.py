"""benchmarks/netlify_vs_cli.py runs on the project's fake, the independent fake, or any
Netlify API given by URL, and checks that each deploy really went live there.

Only our client runs here (``--skip-cli``: netlify-cli is not a test dependency), on tiny
sites; the figures are not looked at, only what the benchmark says it did.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import independent_netlify
import pytest
from fake_netlify import FakeNetlify
from helpers import REPO

BENCHMARK = REPO / "benchmarks" / "netlify_vs_cli.py"
TOKEN = "bench-test-token"


def benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(BENCHMARK), "--files", "12", "--megabytes", "0.1", "--skip-cli"]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=300, check=False, cwd=REPO
    )


@pytest.fixture
def outside_fake() -> Iterator[FakeNetlify]:
    """A Netlify API the benchmark did not start (it has no ``/__stats``)."""
    fake = FakeNetlify(token=TOKEN).start()
    try:
        yield fake
    finally:
        fake.stop()


def test_by_default_it_deploys_to_the_projects_fake_then_the_independent_one() -> None:
    done = benchmark("--scale", "20/0.1")

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.index("== on the project's fake") < out.index("== on the independent fake")
    assert out.count("devops-tasks                ") == 2  # a figure on each server
    assert out.count("12 / 0") == 2  # uploads: all 12 files, then none
    assert out.count("unchanged re-deploy of 20 files") == 2


def test_a_server_given_by_url_is_reached_through_its_api_alone(
    outside_fake: FakeNetlify,
) -> None:
    done = benchmark("--server", outside_fake.api_url, "--token", TOKEN)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"== on the API at {outside_fake.api_url}" in done.stdout
    assert "? / ?" in done.stdout  # no /__stats there: the counts are not known
    published = [site.get("published_deploy") or {} for site in outside_fake.sites.values()]
    assert [deploy.get("state") for deploy in published] == ["ready"]


def test_a_deploy_the_server_does_not_serve_whole_is_a_failure(
    outside_fake: FakeNetlify, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outside_fake, "_list_site_files", lambda context: (200, []))

    done = benchmark("--server", outside_fake.api_url, "--token", TOKEN)

    assert done.returncode == 1
    assert "lacks 12 of the site's files" in done.stdout


def test_a_server_without_the_site_files_route_is_judged_by_ready_and_published(
    outside_fake: FakeNetlify, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = (404, {"code": 404, "message": "Not Found"})
    monkeypatch.setattr(outside_fake, "_list_site_files", lambda context: missing)

    done = benchmark("--server", outside_fake.api_url, "--token", TOKEN)

    assert done.returncode == 0, done.stdout + done.stderr


def test_a_server_that_refuses_the_token_is_a_failure_that_says_so(
    outside_fake: FakeNetlify,
) -> None:
    done = benchmark("--server", outside_fake.api_url, "--token", "not-the-token")

    assert done.returncode == 1
    assert "cannot use the server" in done.stdout
    assert f"POST {outside_fake.api_url}/sites: HTTP 401" in done.stdout
    assert "Traceback" not in done.stderr


def test_without_node_the_independent_fake_is_a_failure_that_says_so() -> None:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # python, but no node
    argv = [sys.executable, str(BENCHMARK), "--files", "12", "--skip-cli"]
    done = subprocess.run(
        [*argv, "--server", "independent"], capture_output=True, text=True, env=env, timeout=300
    )

    assert done.returncode == 1
    assert "cannot use the server: the independent fake: node is not on PATH" in done.stdout
    assert "Traceback" not in done.stderr


def test_the_independent_fake_counts_what_the_benchmark_reports() -> None:
    with independent_netlify.start(TOKEN) as running:
        done = benchmark("--server", running.base, "--token", TOKEN)
        stats = running.stats()

    assert done.returncode == 0, done.stdout + done.stderr
    assert stats["uploads"] == 12
    assert "12 / 0" in done.stdout
