"""What people see without --json: short, aligned text; progress bars only on a terminal."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import sys
import termios
import time
from pathlib import Path

from helpers import write_site

from devops_tasks.errors import DevopsError, ErrorCode
from devops_tasks.output import NullProgress, Output


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_init_tells_what_it_created_and_the_next_command(project, cli):
    out = cli("init").stdout
    assert "Created" in out and "Next:\n  devops deploy --dir dist" in out
    assert ".devops/credentials.enc" in out


def test_status_before_any_deploy_says_nothing_is_deployed(project, cli):
    assert "(nothing deployed)" in cli("status").stdout


def test_status_out_of_sync_is_called_out(project, cli):
    cli("deploy", "--json")
    (project.state_dir / "local/production/current").unlink()
    assert "OUT OF SYNC" in cli("status").stdout


def test_history_table_lists_full_ids(project, cli):
    deployment_id = cli("deploy", "--json").json["id"]
    out = cli("history").stdout
    assert deployment_id in out and "status" in out.splitlines()[0]


def test_history_when_empty_says_how_to_start(project, cli):
    assert "No deployments yet" in cli("history").stdout


def test_logs_show_one_line_per_step(project, cli):
    cli("deploy", "--json")
    lines = cli("logs").stdout.splitlines()
    assert "(success)" in lines[0] and any("activate" in line for line in lines[1:])


def test_rollback_prints_what_is_live_again(project, cli):
    first = cli("deploy", "--json").json["id"]
    write_site(Path("dist"), "v2")
    cli("deploy", "--json")
    out = cli("rollback").stdout
    assert "Rollback" in out and first in out


def test_config_views_print_json_people_can_paste(project, cli):
    cli("init")
    assert json.loads(cli("config.show").stdout)["platform"] == "local"
    assert json.loads(cli("config.get", "deployment.keep_releases").stdout) == 5
    assert json.loads(cli("config.export").stdout)["version"] == 1
    assert (
        "deployment.keep_releases = 4" in cli("config.set", "deployment.keep_releases", "4").stdout
    )
    assert "is valid" in cli("config.validate").stdout


def test_config_export_to_a_file_says_where(project, cli, tmp_path):
    cli("init")
    assert "Wrote" in cli("config.export", "--output", str(tmp_path / "c.json")).stdout


def test_infra_show_lists_the_target_fields(project, cli):
    cli("deploy", "--json")
    out = cli("infra.show").stdout
    assert "platform" in out and "local" in out and "releases" in out


def test_build_prints_the_command_and_its_duration(project, cli):
    cli("init")
    cli("config.set", "build.command", "true")
    out = cli("build").stdout
    assert "command" in out and "duration_ms" in out


def test_config_errors_list_every_problem_with_also_lines(project, cli):
    project.state_dir.mkdir()
    project.config_path.write_text(
        json.dumps({"version": 1, "platform": "mars", "deployment": {"strategy": "yolo"}})
    )
    err = cli("status").stderr
    assert "Error [CONFIG_INVALID]" in err and "\n  - " in err and "allowed:" in err


def test_progress_is_a_bar_on_a_terminal_and_nothing_elsewhere():
    terminal = _Terminal()
    bar = Output(stdout=terminal).progress()
    bar.start("Packing files", total=10)
    bar.advance(10)
    bar.finish()
    assert "Packing files" in terminal.getvalue()
    assert isinstance(Output(stdout=io.StringIO()).progress(), NullProgress)
    assert isinstance(Output(json_mode=True, stdout=terminal).progress(), NullProgress)


def test_human_failure_with_debug_prints_the_traceback():
    err = io.StringIO()
    try:
        raise DevopsError(ErrorCode.NOT_FOUND, "no such thing", "look elsewhere")
    except DevopsError as error:
        Output(stderr=err, stdout=io.StringIO()).failure(error, debug=True)
    assert "Traceback" in err.getvalue() and "Fix: look elsewhere" in err.getvalue()


def test_fields_leave_out_empty_values_and_align_keys():
    stream = io.StringIO()
    Output(stdout=stream).fields({"a": 1, "long key": "x", "none": None})
    lines = stream.getvalue().splitlines()
    assert lines == ["a         1", "long key  x"]


def test_markup_in_values_is_shown_literally():
    stream = io.StringIO()
    Output(stdout=stream).line("[bold]not markup[/bold]")
    assert stream.getvalue().strip() == "[bold]not markup[/bold]"


def test_deploy_shows_sizes_and_durations_for_people(project, cli):
    out = cli("deploy").stdout
    assert "sent" in out and " bytes" in out and " s\n" in out


def test_sizes_use_decimal_units():
    from devops_tasks.tasks.deploy import _size

    assert [_size(12), _size(33_322_430), _size(7 * 10**15)] == ["12 bytes", "33.3 MB", "7000.0 TB"]


def test_several_findings_are_listed_each_with_its_own_fix(project, cli):
    project.state_dir.mkdir()
    project.config_path.write_text(json.dumps({"version": 1, "platform": "netlify"}))
    err = cli("deploy", "--dir", "nowhere").stderr
    lines = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(lines) == 2 and all(" — " in line for line in lines)
    assert "\nFix:" not in err


def test_secrets_exec_adds_nothing_to_the_commands_own_output(project, cli, monkeypatch):
    monkeypatch.setenv("DEVOPS_MASTER_KEY", "ab" * 32)
    assert cli("secrets.exec", "--command", "echo just-this").stdout == "just-this\n"


def _history_on_a_terminal(cli, monkeypatch, columns: int) -> tuple[list[str], list[str]]:
    """The human history view at ``columns`` wide: its lines, and the ids it should show."""
    from devops_tasks.tasks.ops import _show_history

    for version in ("v1", "v2", "v3"):
        write_site(Path("dist"), version)
        cli("deploy", "--json")
    cli("rollback", "--json")
    history = cli("history", "--json").json
    monkeypatch.setenv("COLUMNS", str(columns))
    screen = _Terminal()
    _show_history(history, Output(stdout=screen))
    plain = re.sub(r"\x1b\[[0-9;]*m", "", screen.getvalue())  # styles, not characters
    return plain.splitlines(), [d["id"] for d in history["deployments"]]


def test_history_at_80_columns_shows_every_id_in_full_and_drops_other_columns(
    project, cli, monkeypatch
):
    lines, ids = _history_on_a_terminal(cli, monkeypatch, 80)
    assert all(len(line.rstrip()) <= 80 for line in lines) and "…" not in "".join(lines)
    assert [line.split()[0] for line in lines[1:]] == ids
    assert lines[0].split() == ["id", "action", "status", "timestamp"]


def test_history_at_60_columns_still_shows_every_id_in_full(project, cli, monkeypatch):
    lines, ids = _history_on_a_terminal(cli, monkeypatch, 60)
    assert [line.split()[0] for line in lines[1:]] == ids
    assert lines[0].split() == ["id", "action", "status"] and "rolled_back" in "".join(lines)


def test_history_narrower_than_an_id_lists_one_id_a_line(project, cli, monkeypatch):
    lines, ids = _history_on_a_terminal(cli, monkeypatch, 20)
    assert lines == ids


def test_a_failure_clears_a_live_progress_bar_before_it_prints():
    screen = _Terminal()
    out = Output(stdout=screen, stderr=screen)
    out.progress().start("Packing files", total=10)
    out.failure(DevopsError(ErrorCode.DEPLOY_FAILED, "disk on fire", "put it out"))
    bar, _, after = screen.getvalue().rpartition("\x1b[2K")  # the bar's line, erased
    assert "Packing files" in bar and after.startswith("Error [DEPLOY_FAILED]: disk on fire\n")


def test_an_interruption_without_a_bar_starts_its_message_on_a_fresh_line():
    terminal = _Terminal()
    Output(stdout=io.StringIO(), stderr=terminal).failure(
        DevopsError(ErrorCode.INTERRUPTED, "Interrupted", "Run `devops status`.")
    )
    assert terminal.getvalue().startswith("\nError [INTERRUPTED]")  # not after the echoed ^C


def _read_until(fd: int, wanted: bytes | None, timeout: float) -> bytes:
    """Bytes from a pty master until ``wanted`` shows up (or, for None, the child closes it)."""
    received = b""
    deadline = time.monotonic() + timeout
    while wanted is None or wanted not in received:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            raise AssertionError(f"timed out waiting for {wanted!r}; got {received[-500:]!r}")
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            break
        received += chunk
    return received


def test_ctrl_c_during_a_deploy_clears_the_bar_and_prints_the_error_on_its_own_line(project):
    big = project.root / "big"
    big.mkdir()
    for number in range(64):
        (big / f"blob{number}.bin").write_bytes(bytes(4 << 20))  # 256 MB: copying takes a while
    try:
        screen, status = _deploy_interrupted_on_a_terminal(big)
    finally:
        shutil.rmtree(big)
    text = screen.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 1 and "Traceback" not in text
    bar, _, after = text.partition("Error [INTERRUPTED]")
    assert after, text[-2000:]
    assert bar.endswith("\x1b[2K")  # the bar's line erased, and the error starts there
    assert "Copying files" in bar and "Copying files" not in after


def _deploy_interrupted_on_a_terminal(build_dir: Path) -> tuple[bytes, int]:
    """``devops deploy`` on a real 80-column terminal, sent SIGINT once its bar shows."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.execvpe(
            sys.executable,
            [sys.executable, "-m", "devops_tasks", "deploy", "--dir", str(build_dir)],
            {**os.environ, "COLUMNS": "80", "TERM": "xterm"},
        )
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        screen = _read_until(fd, b"Copying files", timeout=60)
        os.kill(pid, signal.SIGINT)
        screen += _read_until(fd, None, timeout=60)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return screen, status
