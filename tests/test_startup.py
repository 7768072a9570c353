"""Start-up: a deploy imports only what its target needs.

Timing start-up in a test would be flaky; what makes it slow is not. An unchanged local
re-deploy runs in a fresh interpreter here, and the libraries that only other targets or
other commands need must not have been imported by the end of it (jsonschema neither: the
config was found valid by the deploy before, and is not checked again).
"""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import write_site

#: Imported only by the targets and commands that use them (top-level package names).
HEAVY = (
    "boto3",
    "botocore",
    "paramiko",
    "fabric",
    "google",
    "azure",
    "requests",
    "urllib3",
    "rich",
    "jsonschema",
    "cryptography",
    "dotenv",
)

_DEPLOY_THEN_LIST_MODULES = """
import json, sys
from devops_tasks.cli import program
try:
    program.run(["devops", "deploy", "--dir", "dist", "--json"])
except SystemExit as exit_:
    assert not exit_.code, exit_.code
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""


def test_an_unchanged_local_deploy_imports_no_sdk_nor_library_it_does_not_use(tmp_path):
    write_site(tmp_path / "dist")
    for first in (["init", "--platform", "local"], ["deploy"]):
        subprocess.run(
            [sys.executable, "-m", "devops_tasks", *first, "--json"],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=True,
        )

    done = subprocess.run(
        [sys.executable, "-c", _DEPLOY_THEN_LIST_MODULES],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    *deploy_output, modules_line = done.stdout.splitlines()
    assert json.loads(deploy_output[-1])["success"]
    imported = set(json.loads(modules_line))
    assert "devops_tasks" in imported and "invoke" in imported  # the check itself works
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))
