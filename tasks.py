"""This repository's own tasks: the devops namespace, plus `test` and `demo` for contributors.

`invoke --list` shows every devops task (`invoke deploy.local --env production` works
here as in any project), and two more:

    invoke demo   # a real deploy → status → rollback on the local target, no account needed
    invoke test   # lint, type check and the whole test suite with coverage (.ci/run)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from invoke import task

from devops_tasks import build_namespace

HERE = Path(__file__).resolve().parent


@task(
    help={
        "pytest_args": "Extra arguments for pytest, e.g. '-k history -x'.",
        "lint": "Run ruff (lint and format check) and mypy first (default: yes).",
    }
)
def test(c, pytest_args="", lint=True):
    """Run the linters, the type checker and the whole test suite with coverage."""
    python = sys.executable
    if lint:
        paths = "devops_tasks tests tasks.py benchmarks"
        c.run(f"{python} -m ruff check {paths}", pty=False)
        c.run(f"{python} -m ruff format --check {paths}", pty=False)
        c.run(f"{python} -m mypy devops_tasks", pty=False)
    c.run(f"{python} -m pytest {pytest_args}", pty=False)


@task(help={"where": "Directory to run the demo in (default: .demo/ in this repository)."})
def demo(c, where=None):
    """Deploy examples/site twice on the local target, roll back, and show each step."""
    demo_dir = Path(where).resolve() if where else HERE / ".demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    shutil.copytree(HERE / "examples" / "site", demo_dir)
    page = demo_dir / "public" / "index.html"
    devops = f"{sys.executable} -m devops_tasks"
    steps = [
        "init --platform local",
        "config.set build.dir public",
        "deploy",
        ("edit", "v1", "v2"),
        "deploy",
        "status",
        "rollback",
        "status",
        "history",
    ]
    with c.cd(str(demo_dir)):
        for step in steps:
            if isinstance(step, tuple):
                _, old, new = step
                page.write_text(page.read_text().replace(old, new))
                print(f"\n$ (edit public/index.html: {old} -> {new})")
                continue
            print(f"\n$ devops {step}")
            c.run(f"{devops} {step}", pty=False)
    print(f"\nDone. Look around in {demo_dir}/.devops (records, releases, the current link).")


ns = build_namespace()
ns.add_task(test)
ns.add_task(demo)
