"""The build's scan started in a child process before the program loads: what the deploy
takes from it, and when it scans for itself instead."""

from __future__ import annotations

import io
import marshal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_local_target import configure

from devops_tasks import deployer, early, scan_ahead
from devops_tasks.files import default_ignore
from devops_tasks.output import NullProgress
from devops_tasks.platforms.netlify import netlify_ignore
from devops_tasks.project import Project


class Recorded:
    """A Progress that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def start(self, description: str, total: int) -> None:
        self.events.append(("start", description, total))

    def advance(self, amount: int = 1) -> None:
        self.events.append(("advance", amount))

    def finish(self) -> None:
        self.events.append(("finish",))


@pytest.fixture
def site(project: Project) -> Path:
    """dist/ with what a scan skips, warns about and hashes, plus the project's own state."""
    site = project.root / "dist"
    (site / "docs" / "deep").mkdir(parents=True)
    (site / "docs" / "deep" / "page.html").write_text("<p>deep</p>\n")
    (site / "docs" / "notes.md").write_text("# notes\n")
    (site / "server.key").write_text("never shipped\n")  # a warning: keys never are
    (site / ".git").mkdir()
    (site / ".git" / "HEAD").write_text("ref: main\n")
    (site / "gone.html").symlink_to(site / "nowhere")
    project.cache_dir.mkdir(parents=True)
    return site


class FakePlatform:
    ignore = staticmethod(netlify_ignore)
    digest_algorithms = ("sha1",)

    def own_paths(self) -> list[Path]:
        return [Path("/nowhere/own")]


def request(project: Project, **changes: Any) -> scan_ahead.ScanRequest:
    made = scan_ahead.ScanRequest(
        str(project.root / "dist"),
        "devops_tasks.files:default_ignore",
        (str(project.state_dir),),
        ("sha256",),
        str(project.cache_dir / "digests"),
    )
    return made._replace(**changes)


def started(wanted: scan_ahead.ScanRequest) -> None:
    scan_ahead.start(Path(wanted.cache) if wanted.cache else None)
    scan_ahead.ask(wanted)


def test_the_scan_ahead_finds_what_a_scan_here_finds(site: Path, project: Project) -> None:
    wanted = request(project)
    started(wanted)
    taken = scan_ahead.take(wanted, NullProgress())
    here = scan_ahead.scan(wanted._replace(cache=None), default_ignore, NullProgress())
    assert taken is not None
    assert taken.files == here.files
    assert taken.warnings == here.warnings and len(taken.warnings) == 2
    assert taken.per_directory == here.per_directory
    assert taken.digests("sha256") == here.digests("sha256")


def test_the_scan_ahead_names_the_targets_ignore_rule_by_its_function(project: Project) -> None:
    made = scan_ahead.scan_request(project, FakePlatform(), project.root / "dist", cache=False)
    assert made.ignore == "devops_tasks.platforms.netlify:netlify_ignore"
    assert made.exclude == (str(project.state_dir), "/nowhere/own")
    assert made.digests == ("sha1",) and made.cache is None


def test_the_child_inherits_nothing_but_the_locale(
    site: Path, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "a-secret-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "another-secret-value")
    monkeypatch.setenv("LANG", "C.UTF-8")
    spawned: list[dict[str, Any]] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        spawned.append(kwargs)
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(scan_ahead.subprocess, "Popen", popen)
    started(request(project))
    assert scan_ahead.take(request(project), NullProgress()) is not None
    assert spawned[0]["env"] == {"LANG": "C.UTF-8"}


def test_a_scan_started_for_another_request_is_stopped_not_taken(
    site: Path, project: Project
) -> None:
    started(request(project))
    child = scan_ahead._started[-1].process
    assert scan_ahead.take(request(project, digests=("sha1",)), NullProgress()) is None
    assert child.returncode is not None and not scan_ahead._started


def test_a_build_the_hash_cache_knows_as_small_is_not_scanned_ahead(
    site: Path, project: Project
) -> None:
    (project.cache_dir / "digests").write_bytes(bytes(1000))  # about ten files
    started(request(project))
    assert not scan_ahead._started


def test_a_child_never_told_what_to_scan_is_stopped_not_taken(site: Path, project: Project) -> None:
    scan_ahead.start(None)  # the settings could not be read: nothing was asked
    child = scan_ahead._started[-1].process
    assert scan_ahead.take(request(project), NullProgress()) is None
    assert child.returncode is not None and not scan_ahead._started


def test_a_child_that_cannot_be_started_leaves_the_scan_to_the_deploy(
    site: Path, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_process(*_: Any, **__: Any) -> Any:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(scan_ahead.subprocess, "Popen", no_process)
    started(request(project))
    assert not scan_ahead._started
    assert scan_ahead.take(request(project), NullProgress()) is None


def test_nothing_is_taken_when_nothing_was_started(site: Path, project: Project) -> None:
    assert scan_ahead.take(request(project), NullProgress()) is None


def test_a_scan_that_fails_in_the_child_is_not_taken(project: Project) -> None:
    missing = request(project, root=str(project.root / "missing"))
    started(missing)
    assert scan_ahead.take(missing, NullProgress()) is None


def test_a_child_that_dies_mid_way_is_not_taken(site: Path, project: Project) -> None:
    started(request(project))
    scan_ahead._started[-1].process.kill()
    assert scan_ahead.take(request(project), NullProgress()) is None


def test_the_childs_progress_is_shown_as_it_goes(site: Path, project: Project) -> None:
    recorded = Recorded()
    started(request(project))
    assert scan_ahead.take(request(project), recorded) is not None
    assert recorded.events[0] == ("start", "Hashing files", 4)
    assert sum(e[1] for e in recorded.events if e[0] == "advance") == 4
    assert recorded.events[-1] == ("finish",)


def test_a_scan_nobody_took_ends_with_the_process(site: Path, project: Project) -> None:
    started(request(project))
    child = scan_ahead._started[-1].process
    scan_ahead._stop_all()
    assert child.returncode is not None and not scan_ahead._started


def test_the_child_sends_progress_then_the_files(
    site: Path, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = io.BytesIO()
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(marshal.dumps(tuple(request(project)))))
    )
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(sent))
    scan_ahead.main()
    recorded = Recorded()
    files = scan_ahead._result(io.BytesIO(sent.getvalue()), recorded, site)
    assert files is not None and "docs/deep/page.html" in files.digests("sha256")
    assert recorded.events[-1] == ("finish",)


def test_a_child_never_told_what_to_scan_ends_saying_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = io.BytesIO()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(sent))
    scan_ahead.main()
    assert sent.getvalue() == b""


def test_the_child_says_when_its_scan_failed(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = io.BytesIO()
    missing = request(project, root=str(project.root / "missing"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(marshal.dumps(tuple(missing)))))
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(sent))
    scan_ahead.main()
    assert scan_ahead._result(io.BytesIO(sent.getvalue()), NullProgress(), Path("/")) is None


def test_a_deploy_takes_the_scan_started_before_it_loaded(  # type: ignore[no-untyped-def]
    site: Path, project: Project, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(project)
    early.start(["deploy", "--json"])
    assert scan_ahead._started

    def no_scan_here(*_: Any) -> None:
        raise AssertionError("scanned again")

    monkeypatch.setattr(deployer, "scan", no_scan_here)
    result = cli("deploy", "--json")
    assert result.json["success"] and not scan_ahead._started


def test_a_deploy_that_asks_for_another_scan_scans_here(  # type: ignore[no-untyped-def]
    site: Path, project: Project, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(project)
    early.start(["deploy", "--json", "--no-cache"])  # the deploy below uses the cache
    scans: list[scan_ahead.ScanRequest] = []

    def scan_here(wanted: scan_ahead.ScanRequest, *args: Any) -> Any:
        scans.append(wanted)
        return scan_ahead.scan(wanted, *args)

    monkeypatch.setattr(deployer, "scan", scan_here)
    result = cli("deploy", "--json")
    assert result.json["success"] and not scan_ahead._started
    assert [s.cache for s in scans] == [str(project.cache_dir / "digests")]


def test_a_build_dir_that_cannot_be_scanned_is_reported_by_the_deploy(  # type: ignore[no-untyped-def]
    project: Project, cli
) -> None:
    configure(project)
    early.start(["deploy", "--json", "--dir", "missing"])
    result = cli("deploy", "--json", "--dir", "missing").json
    assert result["code"] == "VALIDATION_FAILED"
    assert f"Build directory {project.root / 'missing'} does not exist" in result["error"]
