"""Deployment history: records, the index, queries, interrupted deploys, secrets, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from devops_tasks import history as history_module
from devops_tasks.durable import FileLock
from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.history import (
    INDEX_FIELDS,
    Deployment,
    DeploymentHistory,
    Status,
    new_deployment_id,
)
from devops_tasks.project import Project
from devops_tasks.redaction import MASK, register_secret

ID_PATTERN = re.compile(r"dep_(\d{13})_([0-9a-f]{8})")

# fork is much faster than spawn and every helper below is fork-safe; spawn is the fallback.
_MP = multiprocessing.get_context(
    "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
)


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def history(project: Project) -> DeploymentHistory:
    return DeploymentHistory(project)


def make(
    n: int,
    *,
    environment: str = "production",
    platform: str = "local",
    status: Status = Status.SUCCESS,
    action: str = "deploy",
    **fields: Any,
) -> Deployment:
    """A deployment whose id sorts by ``n`` (``n`` stands in for the time it started)."""
    return Deployment(
        id=f"dep_{1_700_000_000_000 + n}_{n:08x}",
        platform=platform,
        environment=environment,
        status=status,
        action=action,
        **fields,
    )


def read_index(project: Project) -> dict[str, Any]:
    return json.loads((project.deployments_dir / "index.json").read_text(encoding="utf-8"))


def record_files(project: Project) -> list[Path]:
    return sorted(project.deployments_dir.glob("dep_*.json"))


def _hold_lock(path: str, held: Any, release: Any) -> None:
    """Child process: hold the FileLock on ``path`` until told to let go."""
    with FileLock(Path(path), timeout=5):
        held.set()
        release.wait(10)


class HeldByAnotherProcess:
    """Context manager: a child process holds ``path``'s FileLock for the block's duration."""

    def __init__(self, path: Path) -> None:
        self.held = _MP.Event()
        self.release = _MP.Event()
        self.child = _MP.Process(target=_hold_lock, args=(str(path), self.held, self.release))

    def __enter__(self) -> HeldByAnotherProcess:
        self.child.start()
        assert self.held.wait(10), "the child process never took the lock"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.child.join(10)
        assert self.child.exitcode == 0


def _save_many(root: str, worker: int, count: int, start: Any, ids: Any) -> None:
    """Child process: save ``count`` new deployments to the history under ``root``."""
    history = DeploymentHistory(Project(Path(root)))
    start.wait(10)
    saved = []
    for n in range(count):
        deployment = Deployment(
            id=new_deployment_id(),
            platform="local",
            environment=f"env{worker}",
            status=Status.SUCCESS,
            version=f"v{n}",
        )
        history.save(deployment)
        saved.append(deployment.id)
    ids.put(saved)


def _save_one(root: str, n: int, done: Any) -> None:
    """Child process: save deployment ``make(n)`` and say so."""
    DeploymentHistory(Project(Path(root))).save(make(n))
    done.set()


# -- ids -----------------------------------------------------------------------------------


def test_new_deployment_id_is_dep_epoch_ms_8_hex_unique_and_sorts_by_time() -> None:
    before = int(time.time() * 1000)
    ordered = []
    for _ in range(5):
        ordered.append(new_deployment_id())
        time.sleep(0.002)  # a new millisecond for each id
    after = int(time.time() * 1000)

    for deployment_id in ordered:
        match = ID_PATTERN.fullmatch(deployment_id)
        assert match, deployment_id
        assert before <= int(match.group(1)) <= after
    assert sorted(ordered) == ordered
    assert len(set(ordered)) == len(ordered)
    burst = {new_deployment_id() for _ in range(2000)}  # same millisecond: the hex differs
    assert len(burst) == 2000


# -- saving --------------------------------------------------------------------------------


def test_save_creates_record_and_index_entry_then_second_save_updates_not_duplicates(
    project: Project,
    history: DeploymentHistory,
) -> None:
    deployment = make(1, status=Status.IN_PROGRESS, version="v1")
    deployment.step("start", "3 files")
    history.save(deployment)

    record_path = project.deployments_dir / f"{deployment.id}.json"
    assert json.loads(record_path.read_text(encoding="utf-8")) == deployment.to_dict()
    index = read_index(project)
    assert index["version"] == history_module.INDEX_VERSION
    assert index["deployments"] == [deployment.summary()]
    assert set(index["deployments"][0]) == set(INDEX_FIELDS)

    deployment.status = Status.SUCCESS
    deployment.release = "r1"
    deployment.step("done", "deployment is live")
    history.save(deployment)

    assert record_files(project) == [record_path]
    saved = json.loads(record_path.read_text(encoding="utf-8"))
    assert saved["status"] == "success" and [e["step"] for e in saved["log"]] == ["start", "done"]
    entries = read_index(project)["deployments"]
    assert len(entries) == 1
    assert entries[0]["status"] == "success" and entries[0]["release"] == "r1"
    assert history.get(deployment.id).to_dict() == deployment.to_dict()


# -- reading -------------------------------------------------------------------------------


def test_query_filters_by_environment_platform_status_action_and_limit_newest_first(
    history: DeploymentHistory,
) -> None:
    # Saved out of order on purpose: the index keeps them in id (= time) order.
    for deployment in (
        make(3, environment="staging", platform="netlify", status=Status.FAILED),
        make(1),
        make(5, action="rollback"),
        make(2, platform="netlify", status=Status.ROLLED_BACK),
        make(4, environment="staging"),
        make(6, status=Status.FAILED),
    ):
        history.save(deployment)

    def ids(**filters: Any) -> list[int]:
        return [int(e["id"].split("_")[2], 16) for e in history.query(**filters)]

    assert ids() == [6, 5, 4, 3, 2, 1]
    assert ids(environment="staging") == [4, 3]
    assert ids(platform="netlify") == [3, 2]
    assert ids(status="failed") == [6, 3]
    assert ids(status=["failed", "rolled_back"]) == [6, 3, 2]
    assert ids(action="rollback") == [5]
    assert ids(environment="production", platform="local", status="success", action="deploy") == [1]
    assert ids(limit=2) == [6, 5]
    assert ids(environment="production", limit=3) == [6, 5, 2]
    assert ids(environment="nowhere") == []
    assert all(set(e) == set(INDEX_FIELDS) for e in history.query())


def test_query_of_an_empty_project_is_empty_and_creates_nothing(
    project: Project,
    history: DeploymentHistory,
) -> None:
    assert history.query() == []
    assert history.latest() is None
    assert not project.state_dir.exists()


def test_latest_returns_the_newest_matching_entry_or_none(history: DeploymentHistory) -> None:
    for deployment in (make(1), make(2, environment="staging"), make(3, status=Status.FAILED)):
        history.save(deployment)

    assert history.latest()["id"] == make(3).id
    assert history.latest(environment="production", status="success")["id"] == make(1).id
    assert history.latest(environment="staging")["id"] == make(2).id
    assert history.latest(environment="staging", status="failed") is None


def test_get_of_an_unknown_id_raises_not_found(history: DeploymentHistory) -> None:
    history.save(make(1))
    with pytest.raises(DevopsError) as raised:
        history.get(make(2).id)
    assert raised.value.code is ErrorCode.NOT_FOUND
    assert "devops history" in raised.value.fix


@pytest.mark.parametrize(
    "bad_id",
    [
        "../etc/passwd",
        "../../outside",
        "dep_1/../../outside",
        "/etc/passwd",
        "dep_1.json",
        "dep 1",
        "",
        "..",
    ],
)
def test_get_of_a_malformed_id_raises_invalid_argument_and_opens_no_file(
    tmp_path: Path,
    history: DeploymentHistory,
    bad_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    history.save(make(1))
    # A perfectly valid record outside the deployments directory: it must never be read.
    (tmp_path / "outside.json").write_text(json.dumps(make(2).to_dict()), encoding="utf-8")
    opened: list[Any] = []
    monkeypatch.setattr(history_module, "read_json", lambda path: opened.append(path))
    with pytest.raises(DevopsError) as raised:
        history.get(bad_id)
    assert raised.value.code is ErrorCode.INVALID_ARGUMENT
    assert opened == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda path: path.unlink(), id="deleted"),
        pytest.param(lambda path: path.write_bytes(b"\xff\xfe\x00garbage{{"), id="garbage-bytes"),
        pytest.param(lambda path: path.write_text('{"version": 1, "deploy'), id="truncated"),
        pytest.param(lambda path: path.write_text("[]"), id="not-an-object"),
        pytest.param(
            lambda path: path.write_text('{"version": 99, "deployments": []}'), id="unknown-version"
        ),
    ],
)
def test_missing_or_corrupt_index_is_rebuilt_from_the_records(
    project: Project,
    history: DeploymentHistory,
    damage: Any,
) -> None:
    for n in (1, 2, 3):
        history.save(make(n, status=Status.FAILED if n == 2 else Status.SUCCESS))
    damage(project.deployments_dir / "index.json")

    assert [e["id"] for e in history.query()] == [make(n).id for n in (3, 2, 1)]
    assert history.latest(status="failed")["id"] == make(2).id

    history.save(make(4))  # the next save writes a good index holding every record again
    index = read_index(project)
    assert index["version"] == history_module.INDEX_VERSION
    assert [e["id"] for e in index["deployments"]] == [make(n).id for n in (1, 2, 3, 4)]


def test_rebuild_index_returns_the_record_count_and_rewrites_the_index(
    project: Project,
    history: DeploymentHistory,
) -> None:
    for n in range(1, 6):
        history.save(make(n))
    (project.deployments_dir / "index.json").write_text('{"version": 1, "deployments": []}')
    (project.deployments_dir / "notes.txt").write_text("not a record")
    (project.deployments_dir / "dep_9_broken.json").write_text("{ not json")

    assert history.rebuild_index() == 5
    assert [e["id"] for e in read_index(project)["deployments"]] == [
        make(n).id for n in range(1, 6)
    ]
    assert len(history.query()) == 5


# -- interrupted deployments ---------------------------------------------------------------


def test_in_progress_record_shows_interrupted_when_nobody_holds_the_deploy_lock(
    project: Project,
    history: DeploymentHistory,
) -> None:
    history.save(make(1, status=Status.IN_PROGRESS))
    # The lock file exists but nobody holds it: exactly what a killed deploy leaves behind.
    with FileLock(project.deploy_lock_path("production")):
        pass

    assert history.query()[0]["status"] == "interrupted"
    assert history.latest(status="interrupted")["id"] == make(1).id
    assert history.latest(status="in_progress") is None
    assert history.get(make(1).id).status is Status.INTERRUPTED
    # Only shown so: the stored record and index still say in_progress.
    assert read_index(project)["deployments"][0]["status"] == "in_progress"
    record = json.loads((project.deployments_dir / f"{make(1).id}.json").read_text())
    assert record["status"] == "in_progress"


def test_in_progress_record_stays_in_progress_while_another_process_holds_the_deploy_lock(
    project: Project,
    history: DeploymentHistory,
) -> None:
    history.save(make(1, status=Status.IN_PROGRESS))
    history.save(make(2, environment="staging", status=Status.IN_PROGRESS))

    with HeldByAnotherProcess(project.deploy_lock_path("production")):
        assert history.latest(environment="production")["status"] == "in_progress"
        assert history.get(make(1).id).status is Status.IN_PROGRESS
        assert history.latest(status="in_progress")["id"] == make(1).id
        # The lock is per environment: staging's deploy is not running.
        assert history.latest(environment="staging")["status"] == "interrupted"

    assert history.latest(environment="production")["status"] == "interrupted"


def test_mark_interrupted_persists_interrupted_with_a_step_log_line(
    project: Project,
    history: DeploymentHistory,
) -> None:
    history.save(make(1, status=Status.IN_PROGRESS))
    history.save(make(2, status=Status.SUCCESS))
    history.save(make(3, environment="staging", status=Status.IN_PROGRESS))

    with FileLock(project.deploy_lock_path("production")):  # as a deploy calls it
        assert history.mark_interrupted("production") == [make(1).id]
        assert history.mark_interrupted("production") == []

    record = json.loads((project.deployments_dir / f"{make(1).id}.json").read_text())
    assert record["status"] == "interrupted"
    assert record["log"][-1]["step"] == "interrupted"
    assert "stopped" in record["log"][-1]["message"]
    entries = {e["id"]: e["status"] for e in read_index(project)["deployments"]}
    assert entries == {make(1).id: "interrupted", make(2).id: "success", make(3).id: "in_progress"}
    assert json.loads((project.deployments_dir / f"{make(2).id}.json").read_text())["log"] == []


# -- secrets -------------------------------------------------------------------------------


def test_step_masks_registered_secrets_in_log_messages() -> None:
    secret = f"tok-{secrets.token_hex(12)}"
    register_secret(secret)
    deployment = make(1)
    deployment.step("upload", f"PUT https://user:{secret}@example.com/ ({secret})")

    message = deployment.log[-1]["message"]
    assert secret not in message
    assert message == f"PUT https://user:{MASK}@example.com/ ({MASK})"
    assert deployment.log[-1]["step"] == "upload" and deployment.log[-1]["time"]


def test_to_dict_masks_registered_secrets_in_free_text_and_nothing_saved_holds_them(
    project: Project,
    history: DeploymentHistory,
) -> None:
    secret = f"pw-{secrets.token_hex(12)}"
    register_secret(secret)
    deployment = make(
        1,
        url=f"https://{secret}@example.com",
        version=f"v1-{secret}",
        error={"error": f"denied for {secret}", "code": "DEPLOY_FAILED"},
        details={"headers": [f"Authorization: Bearer {secret}"], "nested": {"deep": secret}},
    )
    deployment.log.append({"time": "t", "step": "upload", "message": f"added raw: {secret}"})

    data = deployment.to_dict()
    assert secret not in json.dumps(data)
    assert data["url"] == f"https://{MASK}@example.com"
    assert data["details"] == {
        "headers": [f"Authorization: Bearer {MASK}"],
        "nested": {"deep": MASK},
    }
    assert data["log"][-1]["message"] == f"added raw: {MASK}"
    assert data["id"] == deployment.id and data["status"] == "success"
    assert secret not in json.dumps(deployment.summary())

    history.save(deployment)
    for path in project.deployments_dir.iterdir():
        assert secret not in path.read_text(encoding="utf-8"), path.name


def test_to_dict_never_masks_the_fields_the_program_writes_itself() -> None:
    for word in ("production", "success", "local", "deploy", "upload"):
        register_secret(word)
    deployment = make(1, details={"production": "kept as a key", "note": "production run"})
    deployment.step("upload", "sent to production")

    data = deployment.to_dict()
    assert (data["environment"], data["status"], data["platform"], data["action"]) == (
        "production",
        "success",
        "local",
        "deploy",
    )
    assert data["log"][-1]["step"] == "upload"
    assert data["details"] == {"production": "kept as a key", "note": f"{MASK} run"}
    assert data["log"][-1]["message"] == f"sent to {MASK}"


# -- concurrency ---------------------------------------------------------------------------


def test_8_processes_saving_25_deployments_each_at_once_keep_all_200_in_records_and_index(
    project: Project,
    history: DeploymentHistory,
) -> None:
    workers, per_worker = 8, 25
    start, ids = _MP.Event(), _MP.Queue()
    children = [
        _MP.Process(target=_save_many, args=(str(project.root), w, per_worker, start, ids))
        for w in range(workers)
    ]
    for child in children:
        child.start()
    start.set()
    saved = [deployment_id for _ in children for deployment_id in ids.get(timeout=60)]
    for child in children:
        child.join(30)
        assert child.exitcode == 0

    expected = set(saved)
    assert len(saved) == len(expected) == workers * per_worker
    assert {p.stem for p in record_files(project)} == expected
    index = json.loads((project.deployments_dir / "index.json").read_text(encoding="utf-8"))
    listed = [e["id"] for e in index["deployments"]]
    assert len(listed) == len(expected) and set(listed) == expected
    assert listed == sorted(listed)
    assert not list(project.deployments_dir.glob("*.devops-tmp"))  # no half-written files left
    assert len(history.query(environment="env3")) == per_worker


def test_save_waits_for_the_history_lock_before_touching_the_index(
    project: Project,
    history: DeploymentHistory,
) -> None:
    history.save(make(1))
    done = _MP.Event()
    with FileLock(history._lock_path):  # as another process's save would hold it
        child = _MP.Process(target=_save_one, args=(str(project.root), 2, done))
        child.start()
        record = project.deployments_dir / f"{make(2).id}.json"
        deadline = time.monotonic() + 10
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert record.exists(), "the child never wrote its record"
        assert not done.wait(0.3), "save() finished while another process held the lock"
        assert [e["id"] for e in read_index(project)["deployments"]] == [make(1).id]
    assert done.wait(10)
    child.join(10)
    assert child.exitcode == 0
    assert [e["id"] for e in read_index(project)["deployments"]] == [make(1).id, make(2).id]


# -- records that are not what they seem ---------------------------------------------------


@pytest.mark.parametrize("which", ["index", "damaged-record"])
def test_get_of_a_json_file_that_is_not_a_record_raises_not_found(
    project: Project,
    history: DeploymentHistory,
    which: str,
) -> None:
    history.save(make(1))
    deployment_id = "index"
    if which == "damaged-record":
        deployment_id = "dep_1700000000002_00000002"
        (project.deployments_dir / f"{deployment_id}.json").write_text('{"status": "success"}')
    with pytest.raises(DevopsError) as raised:
        history.get(deployment_id)
    assert raised.value.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_ARGUMENT)


def test_rebuild_skips_a_record_file_holding_json_that_is_not_an_object(
    project: Project,
    history: DeploymentHistory,
) -> None:
    history.save(make(1))
    (project.deployments_dir / "dep_1700000000002_00000002.json").write_text("[]\n")
    (project.deployments_dir / "index.json").unlink()
    assert [e["id"] for e in history.query()] == [make(1).id]


def test_resaving_a_deployment_whose_id_contains_a_secret_keeps_one_index_entry(
    project: Project,
    history: DeploymentHistory,
) -> None:
    deployment = Deployment(id=new_deployment_id(), platform="local", environment="production")
    register_secret(deployment.id.rsplit("_", 1)[1])  # e.g. a short hex/PIN secret value
    history.save(deployment)
    deployment.status = Status.SUCCESS
    history.save(deployment)
    assert [e["id"] for e in read_index(project)["deployments"]] == [deployment.id]
