"""``promote``: the release tested in one environment goes live in another, unbuilt.

Each target is run against a real server (sshd, fakes following the providers' API
descriptions, emulators); what matters is that the promoted environment serves the very
bytes of the source, that nothing of the site is sent again, and that the record says
where the release came from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from helpers import write_site

from devops_tasks.project import Project
from devops_tasks.schemas import bundled


def configure(project: Project, platform: str, **settings: object) -> None:
    project.state_dir.mkdir(exist_ok=True)
    project.config_path.write_text(
        json.dumps({"version": 1, "platform": platform, **settings}), encoding="utf-8"
    )


def files_of(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory`` (links followed), relative path -> bytes."""
    return {
        os.path.relpath(os.path.join(d, name), directory): Path(d, name).read_bytes()
        for d, _, names in os.walk(directory)
        for name in names
    }


def deploy(cli, env: str, version: str, root: Path) -> dict:
    write_site(root / "dist", version)
    result = cli("deploy", "--env", env, "--json").json
    assert result["success"], result
    return result


UNREACHABLE_CHECK = {
    "enabled": True,
    "url": "http://127.0.0.1:9/",
    "retries": 1,
    "interval": 0,
    "timeout": 1,
}

# --------------------------------------------------------------------------- local


def test_local_promote_links_the_staging_release_into_production_and_sends_nothing(project, cli):
    configure(project, "local")
    staged = deploy(cli, "staging", "tested", project.root)
    write_site(project.root / "dist", "changed since")  # never looked at by a promote

    result = cli("promote", "--from", "staging", "--to", "production", "--json").json

    assert result["success"], result
    jsonschema.Draft202012Validator(bundled("promote")).validate(result)
    assert result["action"] == "promote" and result["environment"] == "production"
    assert result["promoted_from"] == staged["id"]
    assert result["bytes_uploaded"] == 0 and result["files_deployed"] == 2
    staging = project.root / ".devops/local/staging/current"
    production = project.root / ".devops/local/production/current"
    assert files_of(production) == files_of(staging)
    assert b"tested" in (production / "index.html").read_bytes()
    assert os.stat(production / "index.html").st_ino == os.stat(staging / "index.html").st_ino


def test_local_promote_of_a_named_release_takes_it_rather_than_the_live_one(project, cli):
    configure(project, "local")
    first = deploy(cli, "staging", "first", project.root)
    deploy(cli, "staging", "second", project.root)

    result = cli("promote", "--from", "staging", "--release", first["id"], "--json").json

    assert result["success"], result
    assert result["promoted_from"] == first["id"]
    served = project.root / ".devops/local/production/current/index.html"
    assert b"first" in served.read_bytes()


def test_people_see_what_was_promoted_and_from_which_deployment(project, cli):
    configure(project, "local")
    staged = deploy(cli, "staging", "tested", project.root)

    shown = cli("promote", "--from", "staging")

    assert shown.exit_code == 0
    assert "Promote dep_" in shown.stdout and ": success" in shown.stdout
    assert f"promoted from  {staged['id']}" in shown.stdout
    assert "sent" in shown.stdout and "0 bytes" in shown.stdout


def test_status_is_in_sync_after_a_promote_and_rollback_returns_to_what_served_before(project, cli):
    configure(project, "local")
    before = deploy(cli, "production", "old", project.root)
    deploy(cli, "staging", "new", project.root)
    promoted = cli("promote", "--from", "staging", "--json").json
    assert promoted["success"], promoted

    status = cli("status", "--json").json
    assert status["in_sync"] and status["live_release"] == promoted["release"]
    rolled = cli("rollback", "--json").json
    assert rolled["success"], rolled
    assert rolled["release"] == before["release"]


def test_a_promote_whose_health_check_fails_puts_the_previous_release_back(project, cli):
    configure(project, "local")
    before = deploy(cli, "production", "old", project.root)
    deploy(cli, "staging", "new", project.root)
    configure(  # production's site is down from now on
        project,
        "local",
        environments={"production": {"deployment": {"health_check": UNREACHABLE_CHECK}}},
    )

    result = cli("promote", "--from", "staging", "--to", "production", "--json").json

    assert not result["success"]
    assert result["code"] == "HEALTH_CHECK_FAILED"
    assert result["deployment_status"] == "rolled_back"
    served = project.root / ".devops/local/production/current/index.html"
    assert b"old" in served.read_bytes()
    assert cli("status", "--json").json["live_release"] == before["release"]


def test_promote_refuses_environments_on_different_targets(project, cli):
    configure(project, "local", environments={"staging": {"platform": "netlify"}})

    result = cli("promote", "--from", "staging", "--json").json

    assert not result["success"] and result["code"] == "NOT_SUPPORTED"


def test_promote_from_an_environment_with_nothing_live_says_so(project, cli):
    configure(project, "local")

    result = cli("promote", "--from", "staging", "--json").json

    assert not result["success"] and result["code"] == "NOT_FOUND"


# --------------------------------------------------------------------------- ssh


def test_ssh_promote_copies_the_release_on_each_host_and_sends_no_file_bytes(
    project, cli, hosts, ssh_servers, fleet
):
    staged = deploy(cli, "staging", "tested on the fleet", project.root)

    result = cli("promote", "--from", "staging", "--to", "production", "--json").json

    assert result["success"], result
    assert result["promoted_from"] == staged["id"] and result["bytes_uploaded"] == 0
    assert [h["sent"]["bytes"] for h in result["details"]["hosts"]] == [0, 0, 0]
    for host in ssh_servers.hosts:
        staging = fleet / host.ip / "staging" / "current"
        production = fleet / host.ip / "production" / "current"
        assert files_of(production) == files_of(staging)
        assert os.stat(production / "index.html").st_ino == os.stat(staging / "index.html").st_ino
    assert cli("status", "--json").json["in_sync"]


def test_ssh_promote_refuses_hosts_the_source_environment_does_not_deploy_to(
    project, cli, ssh_servers, fleet
):
    from fleet import configure as configure_fleet

    configure_fleet(project, ssh_servers, fleet)
    config = json.loads(project.config_path.read_text())
    one = config["ssh"]["hosts"][:1]
    config["environments"] = {"staging": {"ssh": {"hosts": one}}}
    project.config_path.write_text(json.dumps(config))
    deploy(cli, "staging", "on one host only", project.root)

    result = cli("promote", "--from", "staging", "--json").json

    assert not result["success"] and result["code"] == "NOT_SUPPORTED"
    assert "never between hosts" in result["error"]


# --------------------------------------------------------------------------- netlify


def with_a_staging_site(project: Project, netlify) -> dict:
    staging = netlify.add_site("my-site-staging")
    config = json.loads(project.config_path.read_text())
    config["environments"] = {"staging": {"netlify": {"site_id": staging["id"]}}}
    project.config_path.write_text(json.dumps(config))
    return staging


def test_netlify_promote_creates_a_deploy_with_the_same_digests_and_uploads_nothing(
    project, cli, netlify
):
    import requests

    staging = with_a_staging_site(project, netlify)
    staged = deploy(cli, "staging", "tested on netlify", project.root)
    uploads = len(netlify.uploads)

    result = cli("promote", "--from", "staging", "--json").json

    assert result["success"], result
    assert result["promoted_from"] == staged["id"] and result["bytes_uploaded"] == 0
    assert len(netlify.uploads) == uploads
    assert result["release"] != staged["release"]
    assert netlify.deploy_files(result["release"]) == netlify.deploy_files(staged["release"])
    production = netlify.site["ssl_url"]
    for path in ("/", "/css/site.css"):
        served = requests.get(production + path, timeout=5)
        assert served.content == requests.get(staging["ssl_url"] + path, timeout=5).content
    assert b"tested on netlify" in requests.get(production + "/", timeout=5).content


def test_netlify_promote_of_a_release_the_source_no_longer_serves_is_refused(project, cli, netlify):
    with_a_staging_site(project, netlify)
    first = deploy(cli, "staging", "first", project.root)
    deploy(cli, "staging", "second", project.root)

    result = cli("promote", "--from", "staging", "--release", first["id"], "--json").json

    assert not result["success"] and result["code"] == "NOT_SUPPORTED"


# --------------------------------------------------------------------------- vercel


@pytest.fixture(scope="module")
def vercel_server():
    from fake_vercel import FakeVercel

    server = FakeVercel().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def vercel(vercel_server, project, monkeypatch):
    """Production on one Vercel project of the fake; every request must follow the spec."""
    vercel_server.reset()
    monkeypatch.setenv("VERCEL_TOKEN", vercel_server.token)
    monkeypatch.setenv("VERCEL_API_URL", vercel_server.api_url)
    vercel_server.project = vercel_server.add_project("my-site")
    configure(project, "vercel", vercel={"poll_interval": 0.01, "project": "my-site"})
    yield vercel_server
    assert vercel_server.violations == [], "requests that Vercel's spec does not allow"


def test_vercel_promote_between_projects_deploys_the_same_digests_and_uploads_nothing(
    project, cli, vercel
):
    import requests

    staging = vercel.add_project("my-site-staging")
    configure(
        project,
        "vercel",
        vercel={"poll_interval": 0.01, "project": "my-site"},
        environments={"staging": {"vercel": {"project": "my-site-staging"}}},
    )
    staged = deploy(cli, "staging", "tested on vercel", project.root)
    uploads = len(vercel.uploads)

    result = cli("promote", "--from", "staging", "--json").json

    assert result["success"], result
    assert result["promoted_from"] == staged["id"] and result["bytes_uploaded"] == 0
    assert len(vercel.uploads) == uploads
    assert vercel.production(vercel.project["id"]) == result["release"] != staged["release"]
    assert vercel.deployment_files(result["release"]) == vercel.deployment_files(staged["release"])
    assert vercel.production(staging["id"]) == staged["release"]
    assert (
        requests.get(result["url"], timeout=5).content
        == requests.get(staged["url"], timeout=5).content
    )


def test_vercel_promote_within_one_project_promotes_the_deployment_itself(project, cli, vercel):
    tested = deploy(cli, "staging", "tested", project.root)  # staging shares the project
    live = deploy(cli, "production", "live", project.root)
    assert vercel.production(vercel.project["id"]) == live["release"]
    requests_before = len(vercel.api_requests())

    result = cli("promote", "--from", "staging", "--release", tested["id"], "--json").json

    assert result["success"], result
    assert result["release"] == tested["release"] and result["bytes_uploaded"] == 0
    assert vercel.production(vercel.project["id"]) == tested["release"]
    created = [r for r in vercel.api_requests()[requests_before:] if r.method == "POST"]
    assert [r.path.endswith(f"/promote/{tested['release']}") for r in created] == [True]


# --------------------------------------------------------------------------- object stores


def store_settings(request, monkeypatch) -> dict:
    """The settings both environments share on the emulator of ``request.param``
    (credentials go in the environment)."""
    if request.param == "aws":
        return {"endpoint_url": request.getfixturevalue("aws_env")}
    if request.param == "gcp":
        import gcs_emulator

        url = request.getfixturevalue("gcs_server").url
        gcs_emulator.reset(url)
        return {"endpoint_url": url, "project": "test-project"}
    import azurite

    server = request.getfixturevalue("azurite_server")
    azurite.reset(server)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    return {}


@pytest.fixture(params=["aws", "gcp", "azure"])
def buckets(request, project, cli, monkeypatch) -> str:
    """Staging and production each in a bucket (container) of its own on one store."""
    platform = request.param
    name = "container" if platform == "azure" else "bucket"
    configure(
        project,
        platform,
        **{platform: {**store_settings(request, monkeypatch), name: "production"}},
        environments={"staging": {platform: {name: "staging"}}},
    )
    for env in ("staging", "production"):
        made = cli("infra.up", "--env", env, "--json").json
        assert made["success"], made
    return platform


def served(project: Project, env: str, key: str) -> bytes | None:
    """What environment ``env``'s bucket holds at ``key``, read through its own store."""
    from devops_tasks.config import ConfigStore
    from devops_tasks.platforms import create

    with create(project, ConfigStore(project).settings(env)) as platform:
        return platform.store.get(key)


def test_bucket_promote_copies_server_side_from_the_staging_bucket_and_uploads_nothing(
    project, cli, buckets
):
    staged = deploy(cli, "staging", "tested in a bucket", project.root)
    write_site(project.root / "dist", "never sent")

    result = cli("promote", "--from", "staging", "--json").json

    assert result["success"], result
    assert result["promoted_from"] == staged["id"] and result["bytes_uploaded"] == 0
    sync = result["details"]["sync"]
    assert sync["uploaded"] == 0 and sync["copied"] == 2
    for key in ("index.html", "css/site.css"):
        assert served(project, "production", key) == served(project, "staging", key)
    assert b"tested in a bucket" in (served(project, "production", "index.html") or b"")
    assert cli("status", "--json").json["in_sync"]
