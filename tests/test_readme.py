"""The README's promises to a newcomer: its commands work as written, and the licence is there."""

from __future__ import annotations

import re
import shlex

from helpers import REPO, run_devops, write_site

README = (REPO / "README.md").read_text(encoding="utf-8")


def _section_commands(heading: str) -> list[str]:
    """The command lines (comments stripped) of the first ``sh`` block under ``heading``."""
    section = README.split(f"## {heading}\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, heading
    lines = (line.split("#", 1)[0].strip() for line in block[1].splitlines())
    return [line for line in lines if line]


def test_the_licence_file_is_the_mit_licence_the_package_declares():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert 'license = "MIT"' in (REPO / "pyproject.toml").read_text()


def test_no_install_command_writes_into_the_system_python():
    installs = [
        line
        for heading in ("Quick start", "Using it in your project")
        for line in _section_commands(heading)
        if "pip install" in line or "pipx" in line
    ]
    assert installs, "the README shows how to install"
    for line in installs:
        assert line.startswith(("pipx ", "python3 -m venv .venv && .venv/bin/pip ")), line


def test_the_project_sequence_deploys_twice_then_rolls_back_and_every_step_works(tmp_path):
    steps = [line for line in _section_commands("Using it in your project") if line != "cd my-site"]
    devops_steps = [shlex.split(line)[1:] for line in steps if line.startswith("devops ")]
    names = [step[0] for step in devops_steps]
    assert names.index("rollback") > max(i for i, n in enumerate(names) if n == "deploy")
    assert names.count("deploy") >= 2

    site = tmp_path / "my-site"
    write_site(site / "dist", "v1")
    for step in devops_steps:
        result = run_devops(*step, "--json", cwd=site)
        assert result.json["success"], (step, result.json)
        if step[0] == "deploy":
            write_site(site / "dist", "v2")  # "change the site, rebuild"
    live = site / ".devops" / "local" / "production" / "current" / "index.html"
    assert live.read_text() == "<h1>v1</h1>\n"
